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
#[doc(hidden)]
pub mod bench_support;
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
pub use store::events::{SecurityEvent, SecurityEventKind};
pub use store::media_rows::MediaInfo;
pub use store::messages::{
    ConversationSummary, MAX_BODY_LEN, MAX_LIMIT, MAX_NAME_LEN, Message, MessageId, MessageStatus, NewMessage,
    SearchHit,
};
pub use store::retention::{ConversationExpiry, PurgeReport, RetentionPolicy};
pub use store::secrets::{MAX_SECRET_LEN, MAX_SECRET_NAME_LEN};
pub use store::{CIPHER_COMPATIBILITY, CipherInfo};
pub use vault::{
    Backups, CreateOptions, DATABASE_FILE, GuardianRestore, KEYSLOTS_FILE, KEYSLOTS_NEXT_FILE, Keys, Media,
    MediaImport, MediaTransfers, Messages, OpenReport, Recovery, RestoreOptions, Retention, RevokeReport,
    RotationRecovery, Secrets, UNLOCK_FAILURES_FILE, Vault, VaultStatus, VerifyCheck, VerifyReport, recover_key,
    restore_backup, restore_from_guardians,
};

/// Entry points for the fuzz targets in `fuzz/`; built only by cargo-fuzz (`--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz_support;
