//! What the server stores per account, and where.
//!
//! ```text
//! accounts/<account hash>/record        AccountRecord (JSON): OPAQUE password file, login counter, devices, events
//! accounts/<account hash>/usage         Usage (JSON): bytes and objects stored
//! accounts/<account hash>/escrow        escrow record (opaque bytes from the client)
//! accounts/<account hash>/head          head record: generation ‖ opaque bytes from the client
//! accounts/<account hash>/objects/<id>  objects (opaque bytes from the client)
//! staging/<account hash>.<random>       large uploads in progress (never listed or served)
//! deleted/<account hash>/<at>.<r>.<id>  deleted objects in their grace period
//! ```
//!
//! The account hash is the keyed hash of the account name (see [`crate::secrets`]); the name itself
//! is stored nowhere.

use backup_api::wire::{AccountEvent, AccountEventKind};
use backup_api::{KsfParams, MAX_ACCOUNT_EVENTS};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::secrets::AccountHash;

/// Current version of the account record format. Version 2 added the time of the last counted
/// login start, the delay last noted and the event log; version-1 records read with them empty.
pub const RECORD_FORMAT: u32 = 2;

/// Path of the account record.
pub fn record_path(account: &AccountHash) -> Path {
    Path::from(format!("accounts/{}/record", account.hex()))
}

/// Path of the usage counter.
pub fn usage_path(account: &AccountHash) -> Path {
    Path::from(format!("accounts/{}/usage", account.hex()))
}

/// Path of the escrow record.
pub fn escrow_path(account: &AccountHash) -> Path {
    Path::from(format!("accounts/{}/escrow", account.hex()))
}

/// Path of the head record.
pub fn head_path(account: &AccountHash) -> Path {
    Path::from(format!("accounts/{}/head", account.hex()))
}

/// Prefix under which deleted objects wait out the grace period, across accounts:
/// `deleted/<account hash>/<deleted at, 20 digits>.<8 hex>.<object id>`.
pub fn deleted_prefix() -> Path {
    Path::from("deleted")
}

/// Prefix of one account's deleted objects.
pub fn deleted_account_prefix(account: &AccountHash) -> Path {
    Path::from(format!("deleted/{}", account.hex()))
}

/// Where an object deleted at `at` (Unix seconds) waits out the grace period.
pub fn deleted_path(account: &AccountHash, at: u64, id: &str) -> Path {
    Path::from(format!("deleted/{}/{at:020}.{}.{id}", account.hex(), crate::random::hex_id(4)))
}

/// A deleted object's place, parsed from its path: the account, when it was deleted, its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedEntry {
    /// The account's hash, lowercase hex.
    pub account_hex: String,
    /// When it was deleted (Unix seconds).
    pub deleted_at: u64,
    /// The object's identifier.
    pub id: String,
}

impl DeletedEntry {
    /// Parses `deleted/<hash>/<at>.<tag>.<id>`; `None` for anything else.
    pub fn parse(path: &Path) -> Option<Self> {
        let mut parts = path.parts();
        if parts.next()?.as_ref() != "deleted" {
            return None;
        }
        let account_hex = parts.next()?.as_ref().to_owned();
        let name = parts.next()?.as_ref().to_owned();
        if parts.next().is_some() || account_hex.len() != 64 {
            return None;
        }
        let (at, rest) = name.split_at_checked(20)?;
        let rest = rest.strip_prefix('.')?;
        let (tag, id) = rest.split_at_checked(8)?;
        let id = id.strip_prefix('.')?;
        if !tag.bytes().all(|b| b.is_ascii_hexdigit()) || !backup_api::names::is_valid_object_id(id) {
            return None;
        }
        Some(Self { account_hex, deleted_at: at.parse().ok()?, id: id.to_owned() })
    }
}

/// The stored head record: `HEAD_MAGIC ‖ u64 generation (BE) ‖ the client's bytes`. Records
/// written before generations were kept have no magic and count as generation 0.
const HEAD_MAGIC: &[u8; 8] = b"VHEADGN1";

/// Wraps the client's head record with the generation it states, for storage.
pub fn encode_head(generation: u64, client_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + client_bytes.len());
    out.extend_from_slice(HEAD_MAGIC);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(client_bytes);
    out
}

/// The generation and the client's bytes of a stored head record.
pub fn decode_head(stored: &[u8]) -> (u64, &[u8]) {
    match stored.strip_prefix(HEAD_MAGIC.as_slice()) {
        Some(rest) if rest.len() >= 8 => {
            let (generation, client) = rest.split_at(8);
            (u64::from_be_bytes(generation.try_into().unwrap_or_default()), client)
        }
        _ => (0, stored),
    }
}

/// Prefix of the account's objects.
pub fn objects_prefix(account: &AccountHash) -> Path {
    Path::from(format!("accounts/{}/objects", account.hex()))
}

/// Path of one object; `id` must have passed [`backup_api::names::is_valid_object_id`].
pub fn object_path(account: &AccountHash, id: &str) -> Path {
    Path::from(format!("accounts/{}/objects/{id}", account.hex()))
}

/// Prefix under which large uploads are staged.
pub fn staging_prefix() -> Path {
    Path::from("staging")
}

/// Where the server notes a presigned upload of `id` it authorised and has not settled yet.
pub fn direct_upload_path(account: &AccountHash, id: &str) -> Path {
    Path::from(format!("direct/{}/{id}", account.hex()))
}

/// Prefix of every noted presigned upload.
pub fn direct_uploads_prefix() -> Path {
    Path::from("direct")
}

/// A presigned upload the server authorised: the quota it reserved, the content the URL binds,
/// and when the URL stops working. Settled (the reservation kept or released) when the client
/// reports it done, or by the sweep once the URL has expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectUpload {
    /// Bytes reserved against the account's quota (with one object).
    pub size: u64,
    /// The content's SHA-256, standard base64, as signed into the URL.
    pub sha256: String,
    /// When the URL expires, in Unix seconds.
    pub expires_at: u64,
    /// Claimed by the replica settling it (which removes the note next).
    #[serde(default)]
    pub settled: bool,
    /// When it was claimed, in Unix seconds (0 in notes of servers before this field): a claim
    /// much older than a settlement takes was left by a replica that stopped.
    #[serde(default)]
    pub claimed_at: u64,
}

/// A fresh staging path for one upload.
pub fn staging_path(account: &AccountHash) -> Path {
    Path::from(format!("staging/{}.{}", account.hex(), crate::random::hex_id(16)))
}

/// The account record: everything the server knows about an account besides its data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountRecord {
    /// Format version ([`RECORD_FORMAT`]).
    pub format: u32,
    /// Random per-registration nonce, part of the OPAQUE credential identifier (hex, 16 bytes).
    pub credential_nonce: String,
    /// The OPAQUE registration record (`ServerRegistration` serialised, base64url).
    #[serde(with = "backup_api::wire::b64")]
    pub password_file: Vec<u8>,
    /// The client's key-stretching parameters.
    pub ksf: KsfParams,
    /// Counted login starts since the last successful login.
    pub failed_logins: u32,
    /// When the latest counted login start happened (Unix seconds; 0: never).
    #[serde(default)]
    pub last_login_start: u64,
    /// The end of the delay for which a refused login start was last noted as an event (Unix
    /// seconds; 0: none), so each delay is noted once.
    #[serde(default)]
    pub delay_noted: u64,
    /// Registration time (Unix seconds).
    pub created_at: u64,
    /// Enrolled devices.
    pub devices: Vec<DeviceRecord>,
    /// The newest events ([`MAX_ACCOUNT_EVENTS`] at most), oldest first.
    #[serde(default)]
    pub events: Vec<AccountEvent>,
}

/// One enrolled device as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRecord {
    /// Device identifier (32 hex characters).
    pub id: String,
    /// Label given at enrolment.
    pub name: String,
    /// Enrolment time (Unix seconds).
    pub created_at: u64,
    /// Keyed hash of the device token's secret (hex).
    pub secret_hash: String,
}

/// Bytes and objects stored for an account, kept by compare-and-swap next to the record.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Bytes stored or reserved by uploads in progress.
    pub bytes: u64,
    /// Objects stored.
    pub objects: u64,
}

/// Parses a stored JSON record, naming the path on failure.
pub fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], path: &Path) -> Result<T, crate::storage::StorageError> {
    serde_json::from_slice(bytes).map_err(|_| crate::storage::StorageError::CorruptRecord(path.to_string()))
}

/// Parses a stored account record of any format this version reads, as the current format (a
/// format-1 record gains empty version-2 fields and is written back as format 2).
pub fn parse_account(bytes: &[u8], path: &Path) -> Result<AccountRecord, crate::storage::StorageError> {
    let mut record: AccountRecord = parse(bytes, path)?;
    record.format = RECORD_FORMAT;
    Ok(record)
}

/// Serialises a record for storage.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serialising plain structs of strings and integers cannot fail.
    serde_json::to_vec(record).unwrap_or_default()
}

/// The OPAQUE credential identifier of an account: `account hash (32) ‖ nonce (16)`.
pub fn credential_identifier(account: &AccountHash, nonce: &[u8; 16]) -> [u8; 48] {
    let mut id = [0u8; 48];
    id[..32].copy_from_slice(account.as_bytes());
    id[32..].copy_from_slice(nonce);
    id
}

impl AccountRecord {
    /// The credential nonce as bytes, if well formed.
    pub fn nonce(&self) -> Option<[u8; 16]> {
        hex::decode(&self.credential_nonce).ok()?.try_into().ok()
    }

    /// Appends an event at `at`, dropping the oldest beyond [`MAX_ACCOUNT_EVENTS`].
    pub fn note(&mut self, at: u64, kind: AccountEventKind, authorised: bool, retry_at: Option<u64>) {
        let seq = self.events.last().map_or(1, |e| e.seq + 1);
        self.events.push(AccountEvent { seq, at, kind, authorised, retry_at });
        let excess = self.events.len().saturating_sub(MAX_ACCOUNT_EVENTS);
        self.events.drain(..excess);
    }

    /// The kept events after `after`, and how many after it are no longer kept.
    pub fn events_after(&self, after: u64) -> (Vec<AccountEvent>, u64) {
        let kept: Vec<AccountEvent> = self.events.iter().filter(|e| e.seq > after).cloned().collect();
        let first_kept = self.events.first().map_or(after + 1, |e| e.seq);
        (kept, first_kept.saturating_sub(after + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccountRecord {
        AccountRecord {
            format: RECORD_FORMAT,
            credential_nonce: "00".repeat(16),
            password_file: Vec::new(),
            ksf: KsfParams::recommended(),
            failed_logins: 0,
            last_login_start: 0,
            delay_noted: 0,
            created_at: 0,
            devices: Vec::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn head_records_carry_their_generation_and_old_ones_count_as_zero() {
        let stored = encode_head(7, b"sealed head");
        assert_eq!(decode_head(&stored), (7, &b"sealed head"[..]));
        assert_eq!(decode_head(b"an old record"), (0, &b"an old record"[..]));
        assert_eq!(decode_head(b"VHEADGN1"), (0, &b"VHEADGN1"[..]));
    }

    #[test]
    fn deleted_paths_parse_back() {
        let account = AccountHash::from_bytes([9; 32]);
        let path = deleted_path(&account, 1_767_225_600, "pack-1.a");
        let entry = DeletedEntry::parse(&path).unwrap();
        assert_eq!(
            entry,
            DeletedEntry { account_hex: account.hex(), deleted_at: 1_767_225_600, id: "pack-1.a".into() }
        );
        for bad in ["deleted/x/00000000001767225600.abcdef01.p", "other/a/b", "deleted/a"] {
            assert_eq!(DeletedEntry::parse(&Path::from(bad)), None, "{bad}");
        }
    }

    #[test]
    fn the_event_log_keeps_the_newest_and_counts_what_it_dropped() {
        let mut record = record();
        for at in 0..(MAX_ACCOUNT_EVENTS as u64 + 6) {
            record.note(at, AccountEventKind::LoginStarted, false, None);
        }
        assert_eq!(record.events.len(), MAX_ACCOUNT_EVENTS);
        assert_eq!(record.events[0].seq, 7);
        let (events, dropped) = record.events_after(2);
        assert_eq!((events.len(), dropped), (MAX_ACCOUNT_EVENTS, 4));
        let (events, dropped) = record.events_after(68);
        assert_eq!((events.len(), dropped), (2, 0));
        let (events, dropped) = record.events_after(70);
        assert_eq!((events.len(), dropped), (0, 0));
    }

    fn record_path_for_tests() -> Path {
        Path::from("accounts/test/record")
    }

    #[test]
    fn a_version_1_record_reads_with_no_events() {
        let mut v1 = serde_json::to_value(record()).unwrap();
        let object = v1.as_object_mut().unwrap();
        object.remove("events");
        object.remove("last_login_start");
        object.remove("delay_noted");
        object.insert("format".into(), 1.into());
        let parsed = parse_account(v1.to_string().as_bytes(), &record_path_for_tests()).unwrap();
        assert_eq!(parsed.format, RECORD_FORMAT, "read as the current format");
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.last_login_start, 0);
    }
}
