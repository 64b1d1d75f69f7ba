//! A guardian server over HTTP: the [`Guardian`] trait on `backup-api`'s client.

use backup_api::client::{BackupClient, BearerToken, ClientError, ClientOptions};
use backup_api::wire::AccountEventKind;
use backup_api::{ErrorCode, KsfParams};
use vault_core::Passphrase;
use vault_core::SecretBytes;
use vault_core::backup::Transport;
use vault_core::recovery::{
    AccessToken, DeletedObject, Guardian, GuardianDevice, GuardianError, GuardianEvent, GuardianEventKind,
    GuardianEvents, GuardianNetwork, GuardianSession, Versioned,
};

use crate::transport::ServerTransport;

/// Reaches guardian servers over HTTPS (plain HTTP only on loopback, or where
/// [`ClientOptions::allow_insecure_http`] says a TLS-terminating proxy is in front).
#[derive(Clone, Default)]
pub struct HttpNetwork {
    /// TLS roots, plain-HTTP permission and timeouts.
    pub client: ClientOptions,
    /// Key-stretching parameters for new registrations and password changes [default:
    /// `KsfParams::recommended()`].
    pub ksf: Option<KsfParams>,
}

impl HttpNetwork {
    /// A network with these client options and the recommended key stretching.
    pub fn new(client: ClientOptions) -> Self {
        Self { client, ksf: None }
    }

    /// The guardian at `url`.
    fn guardian(&self, url: &str) -> Result<HttpGuardian, GuardianError> {
        let client = BackupClient::with_options(url, self.client.clone()).map_err(guardian_error)?;
        Ok(HttpGuardian { client, ksf: self.ksf.unwrap_or_else(KsfParams::recommended) })
    }
}

impl GuardianNetwork for HttpNetwork {
    fn connect(&self, url: &str) -> Result<Box<dyn Guardian>, GuardianError> {
        Ok(Box::new(self.guardian(url)?))
    }
}

/// One guardian server.
#[derive(Clone)]
pub struct HttpGuardian {
    client: BackupClient,
    ksf: KsfParams,
}

/// A client error as a guardian error: a refused login or token, a lost compare-and-swap, a
/// malformed request, or anything else (unreachable, refused, out of protocol).
pub(crate) fn guardian_error(e: ClientError) -> GuardianError {
    match e {
        ClientError::LoginFailed => GuardianError::LoginRefused,
        ClientError::LoginDelayed { retry_after_secs } => GuardianError::LoginDelayed { retry_after_secs },
        ClientError::Api { code: ErrorCode::LoginTicketRequired, .. } => GuardianError::TicketRequired,
        ClientError::InvalidInput(message) => GuardianError::Refused(message),
        ClientError::Api { code: ErrorCode::AccountExists, .. } => GuardianError::AccountExists,
        ClientError::Api { code: ErrorCode::Unauthorized | ErrorCode::Forbidden, .. } => GuardianError::TokenRefused,
        ClientError::Api { code: ErrorCode::PreconditionFailed, .. } => GuardianError::Conflict,
        ClientError::Api { code: ErrorCode::BadRequest | ErrorCode::InvalidName, message, .. } => {
            GuardianError::Refused(message)
        }
        other => GuardianError::Unavailable(other.to_string()),
    }
}

fn bearer(token: &AccessToken) -> BearerToken {
    BearerToken::new(token.expose_secret().to_owned())
}

fn access(token: BearerToken) -> AccessToken {
    AccessToken::new(token.expose().to_owned())
}

impl Guardian for HttpGuardian {
    fn register(&self, account: &str, password: &Passphrase) -> Result<(), GuardianError> {
        self.client.register(account, password.expose_secret().as_bytes(), self.ksf).map_err(guardian_error)
    }

    fn login(&self, account: &str, password: &Passphrase) -> Result<GuardianSession, GuardianError> {
        let session = self.client.login(account, password.expose_secret().as_bytes()).map_err(guardian_error)?;
        Ok(GuardianSession {
            token: access(session.token),
            export_key: SecretBytes::new(session.export_key.to_vec()),
            server_key: session.server_public_key,
        })
    }

    fn change_password(&self, session: &AccessToken, account: &str, new: &Passphrase) -> Result<(), GuardianError> {
        self.client
            .change_password(&bearer(session), account, new.expose_secret().as_bytes(), self.ksf)
            .map_err(guardian_error)
    }

    fn escrow(&self, session: &AccessToken) -> Result<Option<Versioned>, GuardianError> {
        let record = self.client.get_escrow(&bearer(session)).map_err(guardian_error)?;
        Ok(record.map(|(bytes, version)| Versioned { bytes, version }))
    }

    fn put_escrow(&self, session: &AccessToken, record: &[u8], expected: Option<&str>) -> Result<(), GuardianError> {
        self.client.put_escrow(&bearer(session), record, expected).map(|_| ()).map_err(guardian_error)
    }

    fn enrol_device(&self, session: &AccessToken, name: &str) -> Result<(String, AccessToken), GuardianError> {
        let (id, token) = self.client.enrol_device(&bearer(session), name).map_err(guardian_error)?;
        Ok((id, access(token)))
    }

    fn devices(&self, auth: &AccessToken) -> Result<Vec<GuardianDevice>, GuardianError> {
        let list = self.client.list_devices(&bearer(auth)).map_err(guardian_error)?;
        Ok(list
            .devices
            .into_iter()
            .map(|d| GuardianDevice { id: d.id, name: d.name, enrolled_at_secs: d.created_at })
            .collect())
    }

    fn revoke_device(&self, auth: &AccessToken, device_id: &str) -> Result<(), GuardianError> {
        self.client.revoke_device(&bearer(auth), device_id).map_err(guardian_error)
    }

    fn account_events(&self, auth: &AccessToken, after: u64) -> Result<GuardianEvents, GuardianError> {
        let answer = self.client.account_events(&bearer(auth), after).map_err(guardian_error)?;
        let events = answer
            .events
            .into_iter()
            .map(|e| GuardianEvent {
                seq: e.seq,
                at_secs: e.at,
                kind: event_kind(e.kind),
                authorised: e.authorised,
                retry_at_secs: e.retry_at,
            })
            .collect();
        Ok(GuardianEvents { events, dropped: answer.dropped })
    }

    fn deleted_objects(&self, session: &AccessToken) -> Result<Vec<DeletedObject>, GuardianError> {
        let list = self.client.list_deleted(&bearer(session)).map_err(guardian_error)?;
        Ok(list
            .objects
            .into_iter()
            .map(|o| DeletedObject { id: o.id, size: o.size, deleted_at_secs: o.deleted_at, purge_at_secs: o.purge_at })
            .collect())
    }

    fn restore_deleted(&self, session: &AccessToken, id: &str) -> Result<(), GuardianError> {
        match self.client.restore_deleted(&bearer(session), id) {
            // An object of that name exists again, or the deletion was restored meanwhile.
            Err(ClientError::Api { code: ErrorCode::ObjectExists | ErrorCode::NotFound, .. }) => {
                Err(GuardianError::Conflict)
            }
            other => other.map_err(guardian_error),
        }
    }

    fn transport(&self, auth: &AccessToken) -> Box<dyn Transport + Send + Sync> {
        Box::new(ServerTransport::new(self.client.clone(), bearer(auth)))
    }
}

fn event_kind(kind: AccountEventKind) -> GuardianEventKind {
    match kind {
        AccountEventKind::LoginStarted => GuardianEventKind::LoginStarted,
        AccountEventKind::LoginSucceeded => GuardianEventKind::LoginSucceeded,
        AccountEventKind::LoginDelayed => GuardianEventKind::LoginDelayed,
        AccountEventKind::EscrowRead => GuardianEventKind::EscrowRead,
        AccountEventKind::PasswordChanged => GuardianEventKind::PasswordChanged,
        AccountEventKind::DeviceEnrolled => GuardianEventKind::DeviceEnrolled,
        AccountEventKind::DeviceRevoked => GuardianEventKind::DeviceRevoked,
        AccountEventKind::Unlocked => GuardianEventKind::Unlocked,
        AccountEventKind::Other => GuardianEventKind::Other,
    }
}
