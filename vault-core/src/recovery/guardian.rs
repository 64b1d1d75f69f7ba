//! Talking to guardian servers: connecting with the caller's options, logging in with the
//! backup password, and running one step on several servers at once.

use backup_api::client::{BackupClient, BearerToken, ClientError, ClientOptions, Session};
use backup_api::{ErrorCode, KsfParams};

use crate::Passphrase;
use crate::backup::ServerTransport;
use crate::error::{Error, Result};

/// How the vault reaches backup servers.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// TLS roots, plain-HTTP permission and timeouts.
    pub client: ClientOptions,
    /// Key-stretching parameters for new registrations and password changes [default:
    /// `KsfParams::recommended()`].
    pub ksf: Option<KsfParams>,
}

impl ServerOptions {
    pub(crate) fn ksf(&self) -> KsfParams {
        self.ksf.unwrap_or_else(KsfParams::recommended)
    }
}

/// One server, by the URL the user gave.
pub(crate) struct Server {
    pub(crate) url: String,
    pub(crate) client: BackupClient,
}

impl Server {
    pub(crate) fn connect(url: &str, options: &ServerOptions) -> Result<Self> {
        let client = BackupClient::with_options(url, options.client.clone()).map_err(|e| error_at(url, e))?;
        Ok(Self { url: url.to_owned(), client })
    }

    /// Logs in with the backup password.
    pub(crate) fn login(&self, account: &str, password: &Passphrase) -> Result<Session> {
        self.client.login(account, password.expose_secret().as_bytes()).map_err(|e| self.error(e))
    }

    /// A backup transport on this server with `token`.
    pub(crate) fn transport(&self, token: BearerToken) -> ServerTransport {
        ServerTransport::new(self.client.clone(), token)
    }

    /// A client error, naming this server.
    pub(crate) fn error(&self, e: ClientError) -> Error {
        error_at(&self.url, e)
    }
}

/// A client error at `url` as a vault error: a refused login is [`Error::BackupAuthentication`],
/// anything else [`Error::BackupStorage`] (or [`Error::InvalidInput`] for a bad URL or name).
pub(crate) fn error_at(url: &str, e: ClientError) -> Error {
    match e {
        ClientError::LoginFailed => {
            Error::BackupAuthentication(format!("{url}: wrong password, or the account is locked or unknown there"))
        }
        ClientError::InvalidInput(message) => Error::InvalidInput(format!("{url}: {message}")),
        ClientError::Api { code: ErrorCode::AccountExists, .. } => {
            Error::AlreadyExists(format!("{url}: the account exists with another password"))
        }
        ClientError::Api { code: ErrorCode::Unauthorized | ErrorCode::Forbidden, .. } => Error::BackupAuthentication(
            format!("{url}: the server refused this device's token (revoked, or the account was set up again)"),
        ),
        ClientError::Api { code: ErrorCode::BadRequest | ErrorCode::InvalidName, message, .. } => {
            Error::InvalidInput(format!("{url}: {message}"))
        }
        other => Error::BackupStorage(format!("{url}: {other}")),
    }
}

/// Runs `step` on every item at once (one thread each; the work is network and Argon2 bound),
/// returning the results in order.
pub(crate) fn in_parallel<I: Sync, T: Send>(items: &[I], step: impl Fn(&I) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items.iter().map(|item| scope.spawn(|| step(item))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
    })
}
