//! The errors apps see: one case per thing the app can do, converted from `vault_core::Error`
//! in one place. No case carries a secret or message content.

use vault_core::WrapperError;

/// What went wrong, as something the app can act on.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// Wrong passphrase or key, or a damaged key-slot file: ask again.
    #[error("wrong password or key")]
    WrongPassword,
    /// A backup server refused the backup password (wrong, or the account is locked there: the
    /// server does not say which), or the recovery code does not match: ask again.
    #[error("backup login failed: {detail}")]
    BackupLoginFailed {
        /// Which server refused, never the password.
        detail: String,
    },
    /// Too many attempts: wait, or recover another way. Not raised at present: backup servers do
    /// not reveal a locked account (a locked login is `BackupLoginFailed`, ADR 0012).
    #[error("locked out")]
    LockedOut,
    /// The vault is busy in another process, or a resource is unavailable: retry later.
    #[error("retry later: {detail}")]
    RetryLater {
        /// What was busy.
        detail: String,
    },
    /// The vault's keys changed in another process: lock and unlock again.
    #[error("unlock again")]
    Reauthenticate,
    /// Stored data failed authentication or an integrity check.
    #[error("data is corrupt or was tampered with: {detail}")]
    CorruptOrTampered {
        /// Which object, never its content.
        detail: String,
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
    #[error("unsupported version: {detail}")]
    UnsupportedVersion {
        /// What has the unknown version.
        detail: String,
    },
    /// The app passed an invalid argument.
    #[error("invalid input: {detail}")]
    InvalidInput {
        /// What was wrong.
        detail: String,
    },
    /// The named item does not exist.
    #[error("not found: {detail}")]
    NotFound {
        /// What was looked up.
        detail: String,
    },
    /// Anything else (I/O, an unexpected database error).
    #[error("{detail}")]
    Other {
        /// A description without secrets.
        detail: String,
    },
}

impl From<vault_core::Error> for VaultError {
    fn from(e: vault_core::Error) -> Self {
        use vault_core::Error as E;
        match e {
            E::AuthenticationFailed => VaultError::WrongPassword,
            E::Integrity(detail) => VaultError::CorruptOrTampered { detail },
            E::UnsupportedVersion { .. } => VaultError::UnsupportedVersion { detail: e.to_string() },
            E::KeyWrapper(WrapperError::Cancelled) => VaultError::Cancelled,
            E::KeyWrapper(WrapperError::KeyInvalidated) => VaultError::KeyInvalidated,
            E::KeyWrapper(WrapperError::Unavailable) => {
                VaultError::RetryLater { detail: "keystore unavailable".into() }
            }
            E::KeyWrapper(WrapperError::Rejected) => VaultError::WrongPassword,
            E::InvalidInput(detail) => VaultError::InvalidInput { detail },
            E::LastSlot => VaultError::InvalidInput { detail: e.to_string() },
            E::NotFound(detail) => VaultError::NotFound { detail },
            E::Busy => VaultError::RetryLater { detail: e.to_string() },
            E::KeysChanged => VaultError::Reauthenticate,
            E::Cancelled => VaultError::Cancelled,
            E::BackupAuthentication(detail) => VaultError::BackupLoginFailed { detail },
            E::BackupStorage(detail) => VaultError::RetryLater { detail },
            E::BackupConflict => VaultError::RetryLater { detail: e.to_string() },
            E::AlreadyExists(detail) => VaultError::InvalidInput { detail },
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
