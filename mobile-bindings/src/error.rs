//! The errors apps see: one case per thing the app can do, converted from `vault_core::Error`
//! in one place. No case carries a secret or message content.

use vault_core::recovery::GuardianError;
use vault_core::{DataKind, WrapperError};

/// What went wrong, as something the app can act on. Every field is a fixed case, a guardian's
/// position or a text the library wrote from fixed words and numbers: none carries a secret,
/// message content, a file name, a server URL or an account name, so apps may log errors.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// Wrong passphrase or key, or a damaged key-slot file: ask again.
    #[error("wrong password or key")]
    WrongPassword,
    /// A guardian server refused the backup password (wrong, or recent failed logins delay the
    /// account there: without a login ticket the server does not say which) or this device's token (revoked), or the recovery code
    /// does not match the account's shares: ask again. `guardian` is the position of the
    /// guardian that refused, in the list the app gave (or the enrolment's order), when one
    /// guardian alone decided.
    #[error("backup login failed")]
    BackupLoginFailed {
        /// Which guardian refused, when one did.
        guardian: Option<u32>,
    },
    /// Too many attempts: wait, or unlock or recover another way. Raised when a key wrapper is
    /// locked out (a TPM's dictionary-attack lockout).
    #[error("locked out")]
    LockedOut,
    /// A guardian delays password logins after recent failed ones: retry after
    /// `retry_after_secs`. Said only when the app sent a login ticket (`ServerConfig.loginTicket`);
    /// without one a delayed login is `BackupLoginFailed`, since the server does not tell a
    /// stranger that the account exists.
    #[error("backup login delayed: retry in {retry_after_secs} s")]
    BackupLoginDelayed {
        /// Which guardian, when one did.
        guardian: Option<u32>,
        /// Seconds until the guardian admits the next login.
        retry_after_secs: u64,
    },
    /// A guardian answers password logins only with a valid ticket from the app's account
    /// service, and none was sent (or it expired, or is for another account): get a fresh ticket
    /// and pass it in `ServerConfig.loginTicket`.
    #[error("a login ticket from the app's account service is needed")]
    LoginTicketRequired {
        /// Which guardian, when one did.
        guardian: Option<u32>,
    },
    /// Something is busy or unreachable: retry later.
    #[error("retry later ({reason:?})")]
    RetryLater {
        /// What was busy or unreachable.
        reason: RetryReason,
        /// The guardian, when one guardian was unreachable.
        guardian: Option<u32>,
    },
    /// The vault's keys changed in another process: lock and unlock again.
    #[error("unlock again")]
    Reauthenticate,
    /// Stored data failed authentication or an integrity check.
    #[error("data is corrupt or was tampered with ({object:?})")]
    CorruptOrTampered {
        /// Which kind of data.
        object: DamagedData,
    },
    /// The platform key is permanently invalidated (biometrics re-enrolled, key deleted): unlock
    /// with another slot and add a new key-wrapper slot.
    #[error("the platform key was invalidated")]
    KeyInvalidated,
    /// The user cancelled (a biometric prompt, or a long operation through its `CancelToken`);
    /// nothing was changed.
    #[error("cancelled")]
    Cancelled,
    /// A file or database of a newer format: update the app.
    #[error("unsupported version of {what}")]
    UnsupportedVersion {
        /// What has the unknown version (a fixed name such as "key-slot file").
        what: String,
    },
    /// The app passed an invalid argument.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What was wrong, in the library's own words (no argument values).
        reason: String,
    },
    /// The named item does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was looked up, in the library's own words (ids, never names or content).
        what: String,
    },
    /// The account at a guardian is already in use: by another vault's backup key, or it exists
    /// there with another password. Use another account.
    #[error("the account is in use at a guardian")]
    AccountInUse {
        /// The guardian.
        guardian: Option<u32>,
    },
    /// Another device took this backup over (restored it, so it is now the one device that
    /// writes it): this device no longer backs up to it. Tell the user; restoring on this device
    /// takes it back. `by_device` is the new writer's device id at the data guardian (as in the
    /// device list) and `at_ms` when it took over; both are absent when a build without writers
    /// wrote the newest backup.
    #[error("the backup was taken over by another device")]
    TakenOver {
        /// The device that writes the backup now.
        by_device: Option<String>,
        /// When it took over, milliseconds since the Unix epoch.
        at_ms: Option<i64>,
    },
    /// Anything else (I/O, an unexpected database error).
    #[error("{detail}")]
    Other {
        /// A fixed description of what was being done and the operating system's or SQLite's
        /// error text (which names no user data).
        detail: String,
    },
}

/// Why an operation should be retried later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
#[non_exhaustive]
pub enum RetryReason {
    /// Another process or `Vault` holds the vault, or long work (a backup) is running and the
    /// call would change the keys under it.
    VaultBusy,
    /// The platform keystore cannot be used right now.
    KeystoreUnavailable,
    /// A backup server (guardian) could not be reached or failed.
    ServerUnreachable,
    /// Another device backed up at the same time: run the backup again.
    BackupConflict,
}

/// Which kind of stored data failed a check (mirrors `vault_core::DataKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
#[non_exhaustive]
pub enum DamagedData {
    /// The vault's encrypted database.
    Database,
    /// The key-slot file.
    KeySlots,
    /// A media file on the device.
    Media,
    /// A backup pack, index, manifest, head record, snapshot or media object.
    Backup,
    /// A backup storage older than this device or a guardian knows (a rollback).
    BackupRolledBack,
    /// A guardian's escrow record, or shares that do not combine.
    EscrowRecord,
    /// A guardian's key differs from the one pinned at setup: compare the safety number.
    GuardianKey,
}

impl From<DataKind> for DamagedData {
    fn from(kind: DataKind) -> Self {
        match kind {
            DataKind::Database => DamagedData::Database,
            DataKind::KeySlots => DamagedData::KeySlots,
            DataKind::Media => DamagedData::Media,
            DataKind::BackupHead => DamagedData::BackupRolledBack,
            DataKind::EscrowRecord => DamagedData::EscrowRecord,
            DataKind::GuardianKey => DamagedData::GuardianKey,
            _ => DamagedData::Backup,
        }
    }
}

fn guardian(index: usize) -> Option<u32> {
    u32::try_from(index).ok()
}

impl From<vault_core::Error> for VaultError {
    fn from(e: vault_core::Error) -> Self {
        use vault_core::Error as E;
        let retry = |reason| VaultError::RetryLater { reason, guardian: None };
        match e {
            E::AuthenticationFailed => VaultError::WrongPassword,
            E::Integrity { object, .. } => VaultError::CorruptOrTampered { object: object.into() },
            E::UnsupportedVersion { what, .. } => VaultError::UnsupportedVersion { what: what.to_owned() },
            E::KeyWrapper(WrapperError::Cancelled) => VaultError::Cancelled,
            E::KeyWrapper(WrapperError::KeyInvalidated) => VaultError::KeyInvalidated,
            E::KeyWrapper(WrapperError::Unavailable) => retry(RetryReason::KeystoreUnavailable),
            E::KeyWrapper(WrapperError::Rejected) => VaultError::WrongPassword,
            E::KeyWrapper(WrapperError::LockedOut { .. }) => VaultError::LockedOut,
            E::InvalidInput(reason) => VaultError::InvalidInput { reason },
            E::LastSlot => VaultError::InvalidInput { reason: e.to_string() },
            E::NotFound(what) => VaultError::NotFound { what },
            E::Busy => retry(RetryReason::VaultBusy),
            E::KeysChanged => VaultError::Reauthenticate,
            E::Cancelled => VaultError::Cancelled,
            // These two carry several guardians' URLs in their text: only the case crosses.
            E::BackupAuthentication(_) => VaultError::BackupLoginFailed { guardian: None },
            E::BackupStorage(_) => retry(RetryReason::ServerUnreachable),
            E::BackupConflict => retry(RetryReason::BackupConflict),
            E::TakenOver { by_device, at_ms } => VaultError::TakenOver { by_device, at_ms },
            // The names are the user's: only the case crosses.
            E::AmbiguousDevice { matches } => VaultError::InvalidInput {
                reason: format!("{} devices carry that name; revoke one by its id", matches.len()),
            },
            E::AlreadyExists(what) => VaultError::InvalidInput { reason: format!("already exists: {what}") },
            E::Guardian { index, error, .. } => match error {
                GuardianError::LoginRefused | GuardianError::TokenRefused => {
                    VaultError::BackupLoginFailed { guardian: guardian(index) }
                }
                GuardianError::LoginDelayed { retry_after_secs } => {
                    VaultError::BackupLoginDelayed { guardian: guardian(index), retry_after_secs }
                }
                GuardianError::TicketRequired => VaultError::LoginTicketRequired { guardian: guardian(index) },
                GuardianError::AccountExists | GuardianError::AccountInUse => {
                    VaultError::AccountInUse { guardian: guardian(index) }
                }
                GuardianError::NoEscrowRecord => VaultError::CorruptOrTampered { object: DamagedData::EscrowRecord },
                GuardianError::ShareUnknown => {
                    VaultError::NotFound { what: "this device does not hold the guardian's share".into() }
                }
                GuardianError::Refused(_) => {
                    VaultError::InvalidInput { reason: "a guardian refused the request as malformed".into() }
                }
                GuardianError::Conflict => {
                    VaultError::RetryLater { reason: RetryReason::BackupConflict, guardian: guardian(index) }
                }
                _ => VaultError::RetryLater { reason: RetryReason::ServerUnreachable, guardian: guardian(index) },
            },
            other => VaultError::Other { detail: other.to_string() },
        }
    }
}

/// How an app's key wrapper reports failure.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum KeyWrapperError {
    /// The user dismissed the prompt.
    #[error("cancelled")]
    Cancelled,
    /// The platform key is gone for good.
    #[error("key invalidated")]
    KeyInvalidated,
    /// The keystore cannot be used right now.
    #[error("unavailable")]
    Unavailable,
    /// The wrapped bytes were refused (wrong key or tampered).
    #[error("rejected")]
    Rejected,
    /// Anything else, without secrets.
    #[error("{detail}")]
    Other {
        /// A description.
        detail: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeyWrapperError {
    /// The app's exception text is not kept: it is app code's and could carry anything.
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        KeyWrapperError::Other { detail: "the key wrapper threw an unexpected exception".into() }
    }
}

impl From<KeyWrapperError> for WrapperError {
    fn from(e: KeyWrapperError) -> Self {
        match e {
            KeyWrapperError::Cancelled => WrapperError::Cancelled,
            KeyWrapperError::KeyInvalidated => WrapperError::KeyInvalidated,
            KeyWrapperError::Unavailable => WrapperError::Unavailable,
            KeyWrapperError::Rejected => WrapperError::Rejected,
            KeyWrapperError::Other { detail } => WrapperError::Other(detail),
        }
    }
}
