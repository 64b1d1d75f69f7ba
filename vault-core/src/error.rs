//! The error of the vault API. Each variant is something a caller can act on; none carries a
//! secret, a message body or a file name chosen by the user.

use crate::crypto::kdf::KdfError;
use crate::keys::wrapper::WrapperError;

/// What kind of stored data failed an integrity check: the part of an error an app can switch on
/// (see [`Error::Integrity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataKind {
    /// The vault's encrypted database (or its stored recovery enrolment).
    Database,
    /// The key-slot file.
    KeySlots,
    /// A media file on the device.
    Media,
    /// A backup pack (sealed chunks).
    BackupPack,
    /// A backup index object.
    BackupIndex,
    /// A backup manifest or its hash chain.
    BackupManifest,
    /// A backup head record, or a storage whose newest generation is older than this device or
    /// a guardian knows (a rollback).
    BackupHead,
    /// A snapshot's tree or database export.
    BackupSnapshot,
    /// A backed-up media object.
    BackupMedia,
    /// A backup keyring (the keys of earlier key epochs), or an object naming an epoch its
    /// key does not reach.
    BackupKeyring,
    /// A guardian's escrow record, or shares that do not combine.
    EscrowRecord,
    /// A guardian's key differs from the one pinned at setup.
    GuardianKey,
}

impl DataKind {
    /// A stable lower-case name (`"backup-pack"`), for logs and the bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Database => "database",
            DataKind::KeySlots => "key-slots",
            DataKind::Media => "media",
            DataKind::BackupPack => "backup-pack",
            DataKind::BackupIndex => "backup-index",
            DataKind::BackupManifest => "backup-manifest",
            DataKind::BackupHead => "backup-head",
            DataKind::BackupSnapshot => "backup-snapshot",
            DataKind::BackupMedia => "backup-media",
            DataKind::BackupKeyring => "backup-keyring",
            DataKind::EscrowRecord => "escrow-record",
            DataKind::GuardianKey => "guardian-key",
        }
    }
}

/// Errors of the vault API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Wrong passphrase or key, or a damaged or tampered key-slot file. Deliberately one case:
    /// the vault never tells which.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// Stored data failed authentication or an integrity check (tampered, corrupt, rolled back).
    #[error("integrity check failed: {problem}")]
    Integrity {
        /// What kind of data failed.
        object: DataKind,
        /// What is wrong, naming no content (object names, generations, guardian URLs).
        problem: String,
    },
    /// A file or database is of a format version this build does not support.
    #[error("unsupported {what} version {found}")]
    UnsupportedVersion {
        /// What has the unknown version.
        what: &'static str,
        /// The version found.
        found: u64,
    },
    /// The platform key wrapper failed (cancelled, key invalidated, unavailable).
    #[error("key wrapper: {0}")]
    KeyWrapper(WrapperError),
    /// The caller passed an invalid argument.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The named thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The target already exists (for example, creating a vault in a non-empty directory).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Removing this slot would leave the vault with no way to unlock.
    #[error("refusing to remove the last key slot")]
    LastSlot,
    /// The caller cancelled the operation through its [`crate::Progress`]; nothing was kept.
    #[error("cancelled")]
    Cancelled,
    /// Another process holds the vault's lock.
    #[error("the vault is in use by another process")]
    Busy,
    /// Another process changed the vault's keys (rotated, re-wrapped or removed the slot this
    /// session unlocked with) or left a rotation to resolve: lock and unlock again.
    #[error("the vault's keys were changed by another process: unlock again")]
    KeysChanged,
    /// An operating-system I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What the vault was doing.
        context: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The backup storage (a backup server or a backup directory) failed, refused or could not
    /// be reached; the message names the operation, never stored content.
    #[error("backup storage: {0}")]
    BackupStorage(String),
    /// A rotation of the backup key (a new recovery code, a share refresh or a device revocation)
    /// stopped before every guardian had its new share: backups wait until it is finished, by
    /// running the same operation again with the backup password (it continues with the same new
    /// key).
    #[error(
        "a backup key rotation did not finish at every guardian: run it again with the backup password to finish it"
    )]
    KeyRotationUnfinished,
    /// Another device wrote a backup generation at the same time; nothing of this run is visible.
    /// Running the backup again continues from the newer generation.
    #[error("another device wrote a backup at the same time: run the backup again")]
    BackupConflict,
    /// Another device took this backup over (a restore on a new device makes that device the
    /// backup's one writer): this device no longer writes to it. Restoring on this device takes
    /// it back. `by_device` is the writer's device id at the data guardian and `at_ms` when it
    /// took over (milliseconds since the epoch); both are `None` when a build without writers
    /// wrote the head (the run's base is then not the current head, which another device wrote).
    #[error("{}", taken_over_message(by_device.as_deref(), *at_ms))]
    TakenOver {
        /// The device that writes the backup now, when the head record names it.
        by_device: Option<String>,
        /// When it took over, milliseconds since the Unix epoch.
        at_ms: Option<i64>,
    },
    /// A device to revoke was given by a name that several enrolled devices carry: nothing was
    /// revoked. `matches` lists them (guardian URL, device id, name); revoke by id instead.
    #[error("{}", ambiguous_message(matches))]
    AmbiguousDevice {
        /// Every device the name matched: (guardian URL, device id, device name).
        matches: Vec<(String, String, String)>,
    },
    /// A backup server did not accept the backup password, or a recovery code does not match the
    /// account's shares. Servers do not tell a requester without a login ticket whether an
    /// account is delayed after failed logins or unknown, so the message says "wrong password,
    /// or too many recent attempts" for each server that refused.
    #[error("backup login failed: {0}")]
    BackupAuthentication(String),
    /// One guardian server failed or refused: `index` is its position in the list the caller
    /// gave (or the enrolment's order, the data guardian first), `url` names it in messages.
    #[error("{url}: {error}")]
    Guardian {
        /// The guardian's position.
        index: usize,
        /// The guardian's URL as given.
        url: String,
        /// What happened there.
        error: crate::recovery::GuardianError,
    },
    /// An unexpected database error (not corruption, which is [`Error::Integrity`]).
    #[error("database error: {0}")]
    Database(String),
    /// A bug or an impossible state; the message names it without any data.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

fn taken_over_message(by: Option<&str>, at_ms: Option<i64>) -> String {
    match (by, at_ms) {
        (Some(by), Some(at)) => format!(
            "this backup was taken over by device {by} at {at} ms since the epoch; this device no longer writes to it"
        ),
        _ => "the backup's newest generation was written by another device; this device no longer writes to it"
            .to_owned(),
    }
}

fn ambiguous_message(matches: &[(String, String, String)]) -> String {
    let list: Vec<String> = matches.iter().map(|(url, id, name)| format!("{id} ({name:?}) at {url}")).collect();
    format!("{} devices carry that name: {}; revoke one by its id", matches.len(), list.join(", "))
}

impl Error {
    pub(crate) fn internal(what: &'static str) -> Self {
        Error::Internal(what)
    }

    pub(crate) fn from_rng(_: getrandom::Error) -> Self {
        Error::Internal("the operating system's random number generator failed")
    }

    pub(crate) fn from_kdf(e: KdfError) -> Self {
        match e {
            KdfError::Params(p) => Error::InvalidInput(p.to_string()),
            KdfError::Argon2(_) => Error::Internal("argon2 refused its parameters"),
        }
    }

    pub(crate) fn io(context: &'static str) -> impl Fn(std::io::Error) -> Error {
        move |source| Error::Io { context, source }
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => Error::Integrity {
                object: DataKind::KeySlots,
                problem: "the database does not match the key slots or is damaged".to_owned(),
            },
            Some(ErrorCode::DatabaseCorrupt) => {
                Error::Integrity { object: DataKind::Database, problem: "the database is damaged".to_owned() }
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::Busy,
            // SQLite's messages name constraints and columns, never row values.
            _ => Error::Database(e.to_string()),
        }
    }
}

/// Shorthand for results of the vault API.
pub type Result<T, E = Error> = std::result::Result<T, E>;
