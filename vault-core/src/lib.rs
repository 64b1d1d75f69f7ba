//! `vault-core`: an encrypted on-device vault for mobile apps.
//!
//! Messages, conversations, small app secrets and a security-event log live in a SQLCipher 4
//! database keyed with a raw 256-bit key derived from the vault root key (VRK). The VRK is
//! sealed in a key-slot file under one or more unlock methods: a passphrase (Argon2id) or a
//! platform key wrapper ([`KeyWrapper`]). Start with [`Vault`].
//!
//! The crypto primitives stay private (`crypto`); the public API speaks in envelopes and vault
//! operations. No error carries a secret or a message's content.

pub mod backup;
mod crypto;
mod error;
mod failpoint;
mod fsutil;
mod keys;
mod media;
mod progress;
pub mod recovery;
mod secret;
mod store;
mod vault;

pub use crypto::kdf::{KdfParams, KdfParamsError};
pub use error::{DataKind, Error, Result};
pub use keys::slot_file::{SlotFileError, SlotId};
pub use keys::wrapper::{KeyWrapper, SOFTWARE_WRAPPER_LABEL, SoftwareKeyWrapper, WrapperDescriptor, WrapperError};
pub use keys::{SlotInfo, SlotMethod, SlotSecret};
pub use media::io::MediaReader;
pub use media::stream::{MediaFormatError, SEGMENT_LEN as MEDIA_SEGMENT_LEN};
pub use media::{MEDIA_DIR, MediaId};
pub use progress::Progress;
pub use secret::{KEY_LEN, Passphrase, SecretBytes, SecretKey};
#[doc(hidden)]
pub use store::bench_support;
pub use store::events::{SecurityEvent, SecurityEventKind};
pub use store::media_rows::MediaInfo;
pub use store::messages::{
    ConversationSummary, MAX_BODY_LEN, MAX_LIMIT, MAX_NAME_LEN, Message, MessageId, MessageStatus, NewMessage,
    SearchHit,
};
pub use store::retention::{PurgeReport, RetentionPolicy};
pub use store::secrets::{MAX_SECRET_LEN, MAX_SECRET_NAME_LEN};
pub use store::{CIPHER_COMPATIBILITY, CipherInfo};
pub use vault::{
    Backups, CreateOptions, DATABASE_FILE, GuardianRestore, KEYSLOTS_FILE, KEYSLOTS_NEXT_FILE, Keys, Media,
    MediaImport, MediaTransfers, Messages, OpenReport, Recovery, RestoreOptions, Retention, RotationRecovery, Secrets,
    UNLOCK_FAILURES_FILE, Vault, VaultStatus, VerifyCheck, VerifyReport, recover_key, restore_backup,
    restore_from_guardians,
};

/// Entry points for the fuzz targets in `fuzz/`: every parser of untrusted bytes. Not part of
/// the API.
#[doc(hidden)]
pub mod fuzz_support {
    use std::io::Read;

    /// Parses a key-slot file; true if it parsed.
    pub fn parse_slot_file(bytes: &[u8]) -> bool {
        crate::keys::slot_file::SlotFile::decode(bytes).is_ok()
    }

    /// Parses a media header; true if it parsed.
    pub fn parse_media_header(bytes: &[u8]) -> bool {
        crate::media::stream::MediaHeader::decode(bytes).is_ok()
    }

    /// Opens `file` as a media file of plaintext length `len` under a fixed key and id, and reads
    /// it all; returns the bytes read before the first error.
    pub fn read_media_file(file: &[u8], len: u64) -> usize {
        let key = crate::secret::SecretKey::from_bytes([7; 32]);
        let cipher_for = |h| crate::media::stream::SegmentCipher::new(&key, h);
        let Ok(mut reader) = crate::media::io::MediaReader::open(std::io::Cursor::new(file), cipher_for, &[0; 16], len)
        else {
            return 0;
        };
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        out.len()
    }

    fn backup_keys() -> crate::backup::BackupKeys {
        crate::backup::BackupKeys::derive(&crate::secret::SecretKey::from_bytes([9; 32]))
    }

    /// Decodes `data` as the plaintext of a manifest, an index object and a head record (sealed
    /// under a fixed key, then opened as a restore does), as a snapshot tree, and as each of those
    /// sealed objects itself; returns how many decoded.
    pub fn decode_backup_objects(data: &[u8]) -> usize {
        use crate::backup::format::{FuzzObject, Head, Manifest, Tree, open_index, seal_for_fuzzing};
        let keys = backup_keys();
        let mut decoded = 0;
        let (manifest, _) = seal_for_fuzzing(&keys, FuzzObject::Manifest, data);
        decoded += usize::from(Manifest::open(&keys, 1, &manifest).is_ok());
        let (index, name) = seal_for_fuzzing(&keys, FuzzObject::Index, data);
        decoded += usize::from(open_index(&keys, &name, &index).is_ok());
        let (head, _) = seal_for_fuzzing(&keys, FuzzObject::Head, data);
        decoded += usize::from(Head::open(&keys, &head).is_ok());
        decoded += usize::from(Tree::decode(data).is_ok());
        decoded += usize::from(Manifest::open(&keys, 1, data).is_ok());
        decoded += usize::from(open_index(&keys, &name, data).is_ok());
        decoded += usize::from(Head::open(&keys, data).is_ok());
        decoded
    }

    /// Reads a chunk from a pack: the first 8 bytes of `data` are the entry's offset and sealed
    /// length, the rest is the pack. True if the chunk opened.
    pub fn open_pack_chunk(data: &[u8]) -> bool {
        use crate::backup::{ChunkId, PackEntry, open_chunk};
        let Some((meta, pack)) = data.split_first_chunk::<8>() else { return false };
        let offset = u32::from_le_bytes([meta[0], meta[1], meta[2], meta[3]]);
        let sealed_len = u32::from_le_bytes([meta[4], meta[5], meta[6], meta[7]]);
        let entry = PackEntry { id: ChunkId([0; 32]), offset, sealed_len };
        let _ = crate::backup::pack::check_header(pack);
        open_chunk(&backup_keys(), pack, &entry).is_ok()
    }

    /// Parses an escrow record's header and tries to open it; true if either worked.
    pub fn parse_escrow_record(data: &[u8]) -> bool {
        let header = crate::recovery::escrow_header(data).is_ok();
        let opened = crate::recovery::open_escrow(data, &[1; 64], "account", &[2; 32]).is_ok();
        header || opened
    }

    /// Reads `data` (lossily as UTF-8) as a recovery code; true if it decoded.
    pub fn parse_recovery_code(data: &[u8]) -> bool {
        crate::recovery::RecoveryCode::new(String::from_utf8_lossy(data).into_owned()).decode().is_ok()
    }

    /// Imports `data` as a database export into an empty in-memory database of the current
    /// schema; true if it imported.
    pub fn import_database_export(data: &[u8]) -> bool {
        let Ok(mut conn) = rusqlite::Connection::open_in_memory() else { return false };
        if crate::store::migrations::migrate(&mut conn).is_err() {
            return false;
        }
        crate::store::export::import(&mut conn, data).is_ok()
    }
}
