//! The guardian seam: what recovery needs from a guardian server, as a trait, so every recovery
//! flow runs against any implementation — the HTTP client in `vault-core-net`, or a scripted
//! in-memory guardian in the tests. This crate opens no network connection.
//!
//! A guardian authenticates the backup password (with OPAQUE, on a real server) and hands back
//! the export key only the password reproduces there, its own public key (pinned at setup), and a
//! bearer token; it keeps one rewritable escrow record per account with compare-and-swap, enrols
//! and revokes devices, and stores backup objects through a [`Transport`].

use std::fmt;

use zeroize::Zeroizing;

use crate::Passphrase;
use crate::backup::Transport;
use crate::secret::SecretBytes;

/// A bearer token: a login session's or an enrolled device's. Zeroized on drop, redacted in
/// `Debug`.
#[derive(Clone)]
pub struct AccessToken(Zeroizing<String>);

impl AccessToken {
    /// Wraps a token string.
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }

    /// The token (secret: it authorises uploads, reads and device changes).
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

/// What a password login at a guardian yields.
pub struct GuardianSession {
    /// The session token.
    pub token: AccessToken,
    /// The export key only the password reproduces at this guardian (OPAQUE's `export_key`);
    /// it seals the guardian's share.
    pub export_key: SecretBytes,
    /// The guardian's public key as the login proved it (pinned at setup).
    pub server_key: Vec<u8>,
}

impl fmt::Debug for GuardianSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardianSession").field("server_key", &hex::encode(&self.server_key)).finish_non_exhaustive()
    }
}

/// A record with the version tag its compare-and-swap needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The record's bytes (sealed; the guardian cannot read them).
    pub bytes: Vec<u8>,
    /// The version to name when replacing it.
    pub version: String,
}

/// A device enrolled at a guardian.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuardianDevice {
    /// The device identifier the guardian gave.
    pub id: String,
    /// The name given at enrolment.
    pub name: String,
    /// Enrolment time, seconds since the Unix epoch.
    pub enrolled_at_secs: u64,
}

/// What happened to the account at a guardian, as the guardian's event log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GuardianEventKind {
    /// A password login was started and counted (a wrong password is a start with no success
    /// after it).
    LoginStarted,
    /// A password login succeeded.
    LoginSucceeded,
    /// Failed logins reached the point where each further one is delayed.
    LoginDelayed,
    /// The escrow record (the sealed share) was read: a recovery, or a password-authenticated
    /// change.
    EscrowRead,
    /// The backup password was changed.
    PasswordChanged,
    /// A device was enrolled.
    DeviceEnrolled,
    /// A device was revoked.
    DeviceRevoked,
    /// The guardian's operator reset the failed-login count.
    Unlocked,
    /// A kind this build does not know (from a newer guardian).
    Other,
}

/// One entry of an account's event log at a guardian. No secret, address or name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GuardianEvent {
    /// Position in the guardian's log for the account, increasing.
    pub seq: u64,
    /// When, seconds since the Unix epoch (the guardian's clock).
    pub at_secs: u64,
    /// What happened.
    pub kind: GuardianEventKind,
    /// Whether a login start carried a valid ticket from the app's account service.
    pub authorised: bool,
    /// When the guardian admits the next counted login, if this event delayed it.
    pub retry_at_secs: Option<u64>,
}

/// An object a password session deleted, kept by the guardian for its grace period.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeletedObject {
    /// The object's name.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was deleted, seconds since the Unix epoch.
    pub deleted_at_secs: u64,
    /// When the guardian purges it.
    pub purge_at_secs: u64,
}

/// The events a guardian still keeps after a given position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardianEvents {
    /// The events, in order.
    pub events: Vec<GuardianEvent>,
    /// Events after the position that the guardian no longer keeps.
    pub dropped: u64,
}

/// How a guardian call failed. No case carries a secret; [`GuardianError::Unavailable`] and
/// [`GuardianError::Refused`] carry a description of the failure from the transport, never
/// stored content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuardianError {
    /// The password login failed: a wrong password, an account unknown there, or one whose
    /// recent failed logins delay it (guardians do not say which to a requester without a login
    /// ticket).
    #[error("wrong password, or too many recent attempts there: try again later")]
    LoginRefused,
    /// Recent failed logins delay the account there: retry after `retry_after_secs` (said only to
    /// a requester with a valid login ticket).
    #[error("too many recent login attempts there: retry in {retry_after_secs} s")]
    LoginDelayed {
        /// Seconds until the guardian admits the next login.
        retry_after_secs: u64,
    },
    /// The guardian answers logins only with a valid ticket from the app's account service, and
    /// none (or an expired or mismatched one) was given.
    #[error(
        "the guardian needs a login ticket from the app's account service (missing, expired or for another account)"
    )]
    TicketRequired,
    /// Registration of an account that exists.
    #[error("the account exists there")]
    AccountExists,
    /// The guardian refused the token (a revoked device, or the account was set up again).
    #[error("the guardian refused this device's token (revoked, or the account was set up again)")]
    TokenRefused,
    /// A compare-and-swap found a newer record.
    #[error("the record changed in the meantime")]
    Conflict,
    /// The guardian refused the request as malformed (a bad URL, name or parameter).
    #[error("refused: {0}")]
    Refused(String),
    /// The guardian could not be reached or failed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The account has no escrow record there (recovery was never set up there, or the record
    /// was lost).
    #[error("the account has no escrow record there (recovery was not set up)")]
    NoEscrowRecord,
    /// The account's escrow there protects the backup key of another vault.
    #[error("the account already protects the backup key of another vault; use another account")]
    AccountInUse,
    /// This device does not hold the guardian's share, which a password change needs when the
    /// guardian's record cannot be opened.
    #[error("this device does not hold the guardian's share; refresh the shares")]
    ShareUnknown,
}

/// One guardian server. Every method may block on the network; implementations must be usable
/// from several threads at once (recovery talks to all guardians in parallel).
pub trait Guardian: Send + Sync {
    /// Registers `account` with `password`; [`GuardianError::AccountExists`] if it exists.
    fn register(&self, account: &str, password: &Passphrase) -> Result<(), GuardianError>;
    /// Logs in with the password.
    fn login(&self, account: &str, password: &Passphrase) -> Result<GuardianSession, GuardianError>;
    /// Re-registers the logged-in account under a new password (its records and devices stay).
    fn change_password(&self, session: &AccessToken, account: &str, new: &Passphrase) -> Result<(), GuardianError>;
    /// The account's escrow record, `None` if it has none.
    fn escrow(&self, session: &AccessToken) -> Result<Option<Versioned>, GuardianError>;
    /// Replaces the escrow record if it is still at `expected` (`None`: still absent).
    fn put_escrow(&self, session: &AccessToken, record: &[u8], expected: Option<&str>) -> Result<(), GuardianError>;
    /// Enrols a device; returns its identifier and its token.
    fn enrol_device(&self, session: &AccessToken, name: &str) -> Result<(String, AccessToken), GuardianError>;
    /// The devices enrolled for the account.
    fn devices(&self, auth: &AccessToken) -> Result<Vec<GuardianDevice>, GuardianError>;
    /// Revokes a device: its tokens stop working at once.
    fn revoke_device(&self, auth: &AccessToken, device_id: &str) -> Result<(), GuardianError>;
    /// The account's events after position `after` (0: all kept), with a session or device token.
    fn account_events(&self, auth: &AccessToken, after: u64) -> Result<GuardianEvents, GuardianError>;
    /// The objects deleted and still in their grace period (session only).
    fn deleted_objects(&self, session: &AccessToken) -> Result<Vec<DeletedObject>, GuardianError>;
    /// Puts the most recently deleted object `id` back (session only).
    fn restore_deleted(&self, session: &AccessToken, id: &str) -> Result<(), GuardianError>;
    /// The account's backup storage (objects and the head record) with `auth`.
    fn transport(&self, auth: &AccessToken) -> Box<dyn Transport + Send + Sync>;
}

/// Reaches guardians by the URL the user gave.
pub trait GuardianNetwork: Sync {
    /// The guardian at `url`; fails only for a URL that cannot name a guardian (no I/O happens
    /// before the first call).
    fn connect(&self, url: &str) -> Result<Box<dyn Guardian>, GuardianError>;
}

/// A guardian reached through a [`GuardianNetwork`], with its position and the URL it was
/// reached by.
pub(crate) struct Remote {
    pub(crate) index: usize,
    pub(crate) url: String,
    pub(crate) guardian: Box<dyn Guardian>,
}

impl Remote {
    /// Connects to the guardian at position `index`, `url`.
    pub(crate) fn connect(network: &dyn GuardianNetwork, index: usize, url: &str) -> crate::Result<Self> {
        let guardian = network.connect(url).map_err(|e| error_at(index, url, e))?;
        Ok(Self { index, url: url.to_owned(), guardian })
    }

    /// A failure at this guardian as a vault error.
    pub(crate) fn error(&self, e: GuardianError) -> crate::Error {
        error_at(self.index, &self.url, e)
    }
}

/// A failure at the guardian at position `index`, `url`, as a vault error.
pub(crate) fn error_at(index: usize, url: &str, error: GuardianError) -> crate::Error {
    crate::Error::Guardian { index, url: url.to_owned(), error }
}

/// Runs `step` on every item at once (one thread each; the work is network and Argon2 bound),
/// returning the results in order.
pub(crate) fn in_parallel<I: Sync, T: Send>(items: &[I], step: impl Fn(&I) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.iter().map(|item| scope.spawn(|| step(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}
