//! The escrow record: what one server keeps for recovery, one share of the Backup Root Key sealed
//! under a key only the account's password (through OPAQUE's `export_key` at that server)
//! reproduces.
//!
//! Format v1 (`docs/formats.md`), 118 bytes:
//!
//! ```text
//! magic "VESCROW1" (8) ‖ version 1 (1) ‖ share set (16) ‖ threshold (1) ‖ servers (1) ‖
//! recovery code 0|1 (1) ‖ share index (1) ‖ flags (1) ‖ key check (16) ‖ nonce (24) ‖
//! sealed share (32 + 16)
//! ```
//!
//! The share is XChaCha20-Poly1305 under the key derived for `Purpose::EscrowShareSeal` from the
//! `export_key` (`docs/key-hierarchy.md`); the AAD is
//! the 46 header bytes before the nonce ‖ BLAKE3(account) ‖ the server's OPAQUE public key. So a
//! record opens only for this account at this server, and nobody can change its policy, index or
//! key check without the open failing. Flag bit 0: this server holds the backup data.

use super::policy::RecoveryPolicy;
use super::shares::Share;
use crate::crypto::aead;
use crate::crypto::derive::{Purpose, derive_key};
use crate::error::DataKind;
use crate::error::{Error, Result};
use crate::secret::SecretKey;

const MAGIC: &[u8; 8] = b"VESCROW1";
const VERSION: u8 = 1;
const HEADER: usize = 8 + 1 + 16 + 1 + 1 + 1 + 1 + 1 + 16;
/// Length of a version 1 record.
pub(crate) const LEN: usize = HEADER + 24 + 32 + 16;
const HOLDS_DATA: u8 = 1;

/// An escrow record's public header (readable without the password, authenticated on open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EscrowHeader {
    /// Random identifier of one split of the key; a refresh makes a new one.
    pub(crate) share_set: [u8; 16],
    pub(crate) policy: RecoveryPolicy,
    pub(crate) index: u8,
    pub(crate) holds_data: bool,
    /// `BackupKeys::key_check` of the key the shares recover.
    pub(crate) key_check: [u8; 16],
}

impl EscrowHeader {
    fn encode(&self) -> [u8; HEADER] {
        let mut out = [0u8; HEADER];
        out[..8].copy_from_slice(MAGIC);
        out[8] = VERSION;
        out[9..25].copy_from_slice(&self.share_set);
        out[25] = self.policy.threshold;
        out[26] = self.policy.servers;
        out[27] = u8::from(self.policy.recovery_code);
        out[28] = self.index;
        out[29] = if self.holds_data { HOLDS_DATA } else { 0 };
        out[30..46].copy_from_slice(&self.key_check);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let bad =
            || Error::Integrity { object: DataKind::EscrowRecord, problem: "the escrow record is malformed".into() };
        if bytes.len() < 9 || &bytes[..8] != MAGIC {
            return Err(bad());
        }
        if bytes[8] != VERSION {
            return Err(Error::UnsupportedVersion { what: "escrow record", found: bytes[8].into() });
        }
        if bytes.len() != LEN {
            return Err(bad());
        }
        let (threshold, servers, code, index, flags) = (bytes[25], bytes[26], bytes[27], bytes[28], bytes[29]);
        if servers == 0
            || usize::from(servers) > super::policy::MAX_SERVERS
            || code > 1
            || flags & !HOLDS_DATA != 0
            || index == 0
            || index > servers
            || threshold == 0
            || threshold > servers + code
        {
            return Err(bad());
        }
        let policy =
            RecoveryPolicy { threshold, servers, recovery_code: code == 1, single_provider_allowed: threshold <= 1 };
        Ok(Self {
            share_set: bytes[9..25].try_into().map_err(|_| bad())?,
            policy,
            index,
            holds_data: flags & HOLDS_DATA != 0,
            key_check: bytes[30..46].try_into().map_err(|_| bad())?,
        })
    }
}

fn aad(header: &[u8; HEADER], account: &str, server_key: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER + 32 + server_key.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(blake3::hash(account.as_bytes()).as_bytes());
    aad.extend_from_slice(server_key);
    aad
}

fn seal_key(export_key: &[u8]) -> SecretKey {
    derive_key(Purpose::EscrowShareSeal, export_key)
}

/// Seals `share` for `account` at the server with OPAQUE public key `server_key`.
pub(crate) fn seal(
    header: &EscrowHeader,
    share: &Share,
    export_key: &[u8],
    account: &str,
    server_key: &[u8],
) -> Vec<u8> {
    let encoded = header.encode();
    let mut out = encoded.to_vec();
    out.extend_from_slice(&aead::seal(
        &seal_key(export_key),
        &aad(&encoded, account, server_key),
        share.value.expose_secret(),
    ));
    out
}

/// Reads a record's header without opening it.
pub(crate) fn header(bytes: &[u8]) -> Result<EscrowHeader> {
    EscrowHeader::decode(bytes)
}

/// Opens a record: its header and share. A record sealed for another account, server or
/// password, or altered in any byte, fails with [`Error::Integrity`].
pub(crate) fn open(bytes: &[u8], export_key: &[u8], account: &str, server_key: &[u8]) -> Result<(EscrowHeader, Share)> {
    let header = EscrowHeader::decode(bytes)?;
    let encoded = header.encode();
    let plain =
        aead::open(&seal_key(export_key), &aad(&encoded, account, server_key), &bytes[HEADER..]).map_err(|_| {
            Error::Integrity {
                object: DataKind::EscrowRecord,
                problem: "the escrow record does not open with this password at this server".into(),
            }
        })?;
    let value = SecretKey::try_from_slice(plain.expose_secret()).ok_or_else(|| Error::Integrity {
        object: DataKind::EscrowRecord,
        problem: "the escrow record is malformed".into(),
    })?;
    let index = header.index;
    Ok((header, Share { index, value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> EscrowHeader {
        EscrowHeader {
            share_set: [7; 16],
            policy: RecoveryPolicy::new(2, None, true, false).unwrap(),
            index: 2,
            holds_data: false,
            key_check: [9; 16],
        }
    }

    fn share() -> Share {
        Share { index: 2, value: SecretKey::from_bytes([0x5a; 32]) }
    }

    #[test]
    fn opens_only_for_the_same_account_server_and_password() {
        let sealed = seal(&header(), &share(), b"export key", "alice", b"server-a");
        assert_eq!(sealed.len(), LEN);
        let (h, s) = open(&sealed, b"export key", "alice", b"server-a").unwrap();
        assert_eq!(h, header());
        assert_eq!(s.value.expose_secret(), share().value.expose_secret());
        assert!(matches!(open(&sealed, b"other key", "alice", b"server-a"), Err(Error::Integrity { .. })));
        assert!(matches!(open(&sealed, b"export key", "bob", b"server-a"), Err(Error::Integrity { .. })));
        assert!(matches!(open(&sealed, b"export key", "alice", b"server-b"), Err(Error::Integrity { .. })));
    }

    #[test]
    fn every_flipped_bit_and_truncation_is_refused() {
        let sealed = seal(&header(), &share(), b"k", "alice", b"s");
        for at in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[at] ^= 1 << bit;
                assert!(open(&bad, b"k", "alice", b"s").is_err(), "byte {at} bit {bit}");
            }
        }
        for len in 0..sealed.len() {
            assert!(open(&sealed[..len], b"k", "alice", b"s").is_err());
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(open(&longer, b"k", "alice", b"s").is_err());
        let mut version = sealed;
        version[8] = 2;
        assert!(matches!(open(&version, b"k", "alice", b"s"), Err(Error::UnsupportedVersion { .. })));
    }
}
