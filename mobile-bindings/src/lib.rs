//! `mobile-bindings`: the thin uniffi adapter exposing `vault-core` to Kotlin, Swift and Python.
//!
//! One wrapper object per concept ([`Vault`], [`MediaReader`], [`MediaImport`], [`Backup`],
//! [`Recovery`]), one-line
//! methods that delegate and convert errors, records for plain data. No logic lives here: it
//! belongs in `vault-core`. Key material crosses the boundary only as wrapped bytes.

mod backup;
mod backup_records;
mod blocking;
mod error;
mod media;
mod progress;
mod records;
mod vault;
mod wrapper;

pub use backup::{Backup, Recovery};
pub use backup_records::{
    BackupResult, GuardianDevice, RecoveryInfo, RecoveryResult, RestoreResult, ServerConfig, SetupOptions, SetupResult,
    Snapshot,
};
pub use error::{DamagedData, KeyWrapperError, RetryReason, VaultError};
pub use media::{MediaImport, MediaReader};
pub use progress::{CancelToken, ProgressListener};
pub use records::{Message, RetentionPolicy, SearchHit, SecurityEvent, Slot, VaultStatus, VerifyCheck};
pub use vault::Vault;
pub use wrapper::PlatformKeyWrapper;

uniffi::setup_scaffolding!();
