//! What the server stores per account, and where.
//!
//! ```text
//! accounts/<account hash>/record        AccountRecord (JSON): OPAQUE password file, login counter, devices
//! accounts/<account hash>/usage         Usage (JSON): bytes and objects stored
//! accounts/<account hash>/escrow        escrow record (opaque bytes from the client)
//! accounts/<account hash>/head          head record (opaque bytes from the client)
//! accounts/<account hash>/objects/<id>  objects (opaque bytes from the client)
//! staging/<account hash>.<random>       large uploads in progress (never listed or served)
//! ```
//!
//! The account hash is the keyed hash of the account name (see [`crate::secrets`]); the name itself
//! is stored nowhere.

use backup_api::KsfParams;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::secrets::AccountHash;

/// Current version of the account record format.
pub const RECORD_FORMAT: u32 = 1;

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
    /// Login starts since the last successful login.
    pub failed_logins: u32,
    /// Registration time (Unix seconds).
    pub created_at: u64,
    /// Enrolled devices.
    pub devices: Vec<DeviceRecord>,
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
}
