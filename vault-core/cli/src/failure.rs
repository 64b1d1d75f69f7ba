//! How a command fails: a one-line message for stderr and a documented exit code.

use vault_core::recovery::GuardianError;
use vault_core::{Error, WrapperError};

/// Documented exit codes (see the README).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other error.
    pub const OTHER: u8 = 1;
    /// Bad usage or invalid input.
    pub const USAGE: u8 = 2;
    /// Wrong passphrase or key, or a damaged key-slot file.
    pub const AUTHENTICATION: u8 = 3;
    /// Tampered, corrupt or rolled-back data.
    pub const INTEGRITY: u8 = 4;
    /// Locked out or slowed down after too many attempts: a TPM in dictionary-attack lockout, or
    /// a guardian that delays logins after failed ones (retry after the time printed).
    pub const LOCKED_OUT: u8 = 5;
    /// The backup server or backup directory could not be reached or failed.
    pub const SERVER_UNREACHABLE: u8 = 6;
    /// Another device took the backup over (restored it); this device no longer writes to it.
    pub const TAKEN_OVER: u8 = 7;
}

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    /// Exit code.
    pub code: u8,
    /// One line, no secrets, no message content.
    pub message: String,
}

impl Failure {
    /// A usage error (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self { code: exit::USAGE, message: message.into() }
    }

    /// An integrity failure (exit 4).
    pub fn integrity(message: impl Into<String>) -> Self {
        Self { code: exit::INTEGRITY, message: message.into() }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::AuthenticationFailed | Error::BackupAuthentication(_) => exit::AUTHENTICATION,
            Error::KeyWrapper(WrapperError::Rejected) => exit::AUTHENTICATION,
            Error::KeyWrapper(WrapperError::LockedOut { .. }) => exit::LOCKED_OUT,
            Error::Integrity { .. } => exit::INTEGRITY,
            Error::BackupStorage(_) => exit::SERVER_UNREACHABLE,
            Error::Guardian { error, .. } => match error {
                GuardianError::LoginRefused | GuardianError::TokenRefused | GuardianError::TicketRequired => {
                    exit::AUTHENTICATION
                }
                GuardianError::LoginDelayed { .. } => exit::LOCKED_OUT,
                GuardianError::Unavailable(_) => exit::SERVER_UNREACHABLE,
                GuardianError::Refused(_) => exit::USAGE,
                _ => exit::OTHER,
            },
            Error::InvalidInput(_) | Error::LastSlot | Error::AmbiguousDevice { .. } => exit::USAGE,
            Error::TakenOver { .. } => exit::TAKEN_OVER,
            _ => exit::OTHER,
        };
        if let Error::TakenOver { by_device: Some(by), at_ms: Some(at) } = &e {
            let message = format!(
                "this backup was taken over by device {by} on {}; this device no longer writes to it \
                 (restore on this device to take it back)",
                crate::render::local_time(*at)
            );
            return Self { code, message };
        }
        if let Error::Guardian { error: GuardianError::TicketRequired, .. } = &e {
            let message = format!("{e} (set {})", crate::network::LOGIN_TICKET_VAR);
            return Self { code, message };
        }
        Self { code, message: e.to_string() }
    }
}
