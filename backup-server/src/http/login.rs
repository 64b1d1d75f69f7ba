//! OPAQUE registration and login (RFC 9807 through opaque-ke), three messages each.
//!
//! Guess limiting ([`crate::guesses`]): every admitted login start for an existing account
//! increments the account's failed-login count by compare-and-swap *before* the server evaluates
//! the OPRF, notes it in the account's event log, and a successful finish resets the count. Past
//! the free starts each counted start waits longer; a start that comes too early is not counted
//! and is answered with a decoy (never an evaluation under the account's real OPRF key, which would
//! be an uncounted guessing oracle) under the account's own key-stretching parameters; the first
//! such start in a delay is noted in the event log. With authoriser keys configured, a
//! start without a valid login ticket is refused before anything is counted, and an authorised
//! requester is told when to retry.
//!
//! Registration never evaluates the OPRF for an existing account without a session for it (that
//! would be an uncounted guessing oracle), and each registration draws a fresh credential nonce, so
//! evaluations collected before an account exists are useless against it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use backup_api::names::is_valid_account;
use backup_api::wire::AccountEventKind;
use backup_api::wire::{
    LoginFinishRequest, LoginStartRequest, LoginStartResponse, RegisterFinishRequest, RegisterStartRequest,
    RegisterStartResponse, SessionResponse,
};
use backup_api::{ErrorCode, KsfParams, OPAQUE_CONTEXT, OpaqueSuite};
use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload, ServerLogin,
    ServerLoginParameters, ServerRegistration,
};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use super::extract::{CallerKind, JsonBody, authenticate, bearer};
use crate::error::ApiError;
use crate::metrics::bump;
use crate::records::{self, AccountRecord, RECORD_FORMAT, credential_identifier};
use crate::sealed::{self, Purpose};
use crate::secrets::AccountHash;
use crate::state::{AppState, now_secs};
use crate::storage::{Change, StorageError};
use crate::tokens;

fn login_params() -> ServerLoginParameters<'static, 'static> {
    ServerLoginParameters { context: Some(OPAQUE_CONTEXT), ..Default::default() }
}

fn checked_account(state: &AppState, account: &str) -> Result<AccountHash, ApiError> {
    let hash = valid_account(state, account)?;
    state.account_limiter.check(&hash).map_err(ApiError::rate_limited)?;
    Ok(hash)
}

/// The account's hash, if the name is acceptable (no rate limit taken).
fn valid_account(state: &AppState, account: &str) -> Result<AccountHash, ApiError> {
    if !is_valid_account(account) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            "the account identifier is empty, too long or has control characters",
        ));
    }
    Ok(state.secrets.account_hash(account))
}

fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(format!("malformed OPAQUE {what}"))
}

/// Registration payload sealed between start and finish: `nonce (16) ‖ change flag (1) ‖ KSF`.
struct RegistrationState {
    nonce: [u8; 16],
    password_change: bool,
    ksf: KsfParams,
}

impl RegistrationState {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(31);
        out.extend_from_slice(&self.nonce);
        out.push(u8::from(self.password_change));
        out.extend_from_slice(&self.ksf.version.to_be_bytes());
        out.extend_from_slice(&self.ksf.memory_kib.to_be_bytes());
        out.extend_from_slice(&self.ksf.passes.to_be_bytes());
        out.extend_from_slice(&self.ksf.lanes.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 31 {
            return None;
        }
        let u32_at = |i: usize| bytes[i..i + 4].try_into().ok().map(u32::from_be_bytes);
        Some(Self {
            nonce: bytes[..16].try_into().ok()?,
            password_change: bytes[16] == 1,
            ksf: KsfParams {
                version: u16::from_be_bytes(bytes[17..19].try_into().ok()?),
                memory_kib: u32_at(19)?,
                passes: u32_at(23)?,
                lanes: u32_at(27)?,
            },
        })
    }
}

/// Whether the request carries a session token for `account` (a password change), refusing any
/// other token.
async fn password_change_session(state: &AppState, parts: &Parts, account: &AccountHash) -> Result<bool, ApiError> {
    let Some(token) = bearer(parts) else { return Ok(false) };
    let caller = authenticate(state, token).await?;
    if caller.kind != CallerKind::Session || caller.account != *account {
        return Err(ApiError::new(ErrorCode::Forbidden, "a password change needs a session token for this account"));
    }
    Ok(true)
}

/// `POST /v1/register/start`.
pub async fn register_start(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    JsonBody(body): JsonBody<RegisterStartRequest>,
) -> Result<axum::Json<RegisterStartResponse>, ApiError> {
    let account = checked_account(&state, &body.account)?;
    body.ksf.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
    let request = RegistrationRequest::<OpaqueSuite>::deserialize(&body.request)
        .map_err(|_| malformed("registration request"))?;
    let password_change = password_change_session(&state, &parts, &account).await?;
    let exists = state.storage.read(&records::record_path(&account)).await?.is_some();
    if exists != password_change {
        return Err(if exists {
            ApiError::new(ErrorCode::AccountExists, "this account is already registered")
        } else {
            ApiError::new(ErrorCode::NotFound, "no such account")
        });
    }
    let mut nonce = [0u8; 16];
    crate::random::fill(&mut nonce);
    let start = ServerRegistration::<OpaqueSuite>::start(
        state.secrets.setup(),
        request,
        &credential_identifier(&account, &nonce),
    )
    .map_err(|_| malformed("registration request"))?;
    let payload = RegistrationState { nonce, password_change, ksf: body.ksf }.encode();
    let expires = now_secs() + state.limits.protocol_state_ttl.as_secs();
    let sealed = sealed::seal(state.secrets.state_key(), Purpose::Registration, &account, expires, &payload);
    Ok(axum::Json(RegisterStartResponse { response: start.message.serialize().to_vec(), state: sealed }))
}

/// `POST /v1/register/finish`: 201 for a new account, 204 for a password change.
pub async fn register_finish(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    JsonBody(body): JsonBody<RegisterFinishRequest>,
) -> Result<StatusCode, ApiError> {
    let expired = || ApiError::new(ErrorCode::BadRequest, "registration state is invalid or expired; start again");
    let opened =
        sealed::open(state.secrets.state_key(), Purpose::Registration, &body.state, now_secs()).ok_or_else(expired)?;
    let registration = RegistrationState::decode(&opened.payload).ok_or_else(expired)?;
    let account = opened.account;
    let upload =
        RegistrationUpload::<OpaqueSuite>::deserialize(&body.upload).map_err(|_| malformed("registration upload"))?;
    let password_file = ServerRegistration::<OpaqueSuite>::finish(upload).serialize().to_vec();
    if registration.password_change && !password_change_session(&state, &parts, &account).await? {
        return Err(ApiError::new(ErrorCode::Unauthorized, "a password change needs the session token"));
    }
    let path = records::record_path(&account);
    let now = now_secs();
    state
        .storage
        .update(&path, |current| match (current, registration.password_change) {
            (None, false) => {
                let record = AccountRecord {
                    format: RECORD_FORMAT,
                    credential_nonce: hex::encode(registration.nonce),
                    password_file: password_file.clone(),
                    ksf: registration.ksf,
                    failed_logins: 0,
                    last_login_start: 0,
                    delay_noted: 0,
                    created_at: now,
                    devices: Vec::new(),
                    events: Vec::new(),
                };
                Ok(Change::Write(records::encode(&record), ()))
            }
            (Some(_), false) => Err(ApiError::new(ErrorCode::AccountExists, "this account is already registered")),
            (None, true) => Err(ApiError::new(ErrorCode::NotFound, "no such account")),
            (Some(bytes), true) => {
                let mut record = records::parse_account(bytes, &path)?;
                record.credential_nonce = hex::encode(registration.nonce);
                record.password_file.clone_from(&password_file);
                record.ksf = registration.ksf;
                record.failed_logins = 0;
                record.note(now, AccountEventKind::PasswordChanged, false, None);
                Ok(Change::Write(records::encode(&record), ()))
            }
        })
        .await?;
    if registration.password_change {
        tracing::info!(account = %account.tag(), "password changed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        tracing::info!(account = %account.tag(), "account registered");
        Ok(StatusCode::CREATED)
    }
}

/// What login start found for the account.
enum Counted {
    /// The attempt was counted; evaluate with the real record.
    Real(Box<AccountRecord>),
    /// Too early for another counted attempt: not counted, answered with a decoy under the
    /// account's own parameters (or, to an authorised requester, with the time to retry).
    Delayed { ksf: KsfParams, retry_at: u64 },
    /// Unknown: answer with a decoy.
    Unknown,
}

/// Whether the login start may proceed, and whether a valid ticket authorised it: with authoriser
/// keys configured a start without a valid ticket is refused here, before anything is counted or
/// stored.
fn authorise_start(state: &AppState, body: &LoginStartRequest) -> Result<bool, ApiError> {
    let policy = &state.limits.login;
    if !policy.requires_ticket() {
        return Ok(false);
    }
    let refused = |why: &dyn std::fmt::Display| {
        bump(&state.metrics.login_tickets_refused);
        tracing::debug!(reason = %why, "login start refused: no valid ticket");
        ApiError::new(
            ErrorCode::LoginTicketRequired,
            "this server answers login starts only with a valid ticket from the app's account service",
        )
    };
    let ticket = body.ticket.as_deref().ok_or_else(|| refused(&"no ticket"))?;
    backup_api::ticket::verify(ticket, &body.account, now_secs(), &policy.authorisers).map_err(|e| refused(&e))?;
    Ok(true)
}

/// Refuses a client address that starts logins faster than the per-address login limit.
fn limit_client(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| crate::ratelimit::client_key(c.0.ip()));
    match peer.map(|ip| state.login_ip_limiter.check(&ip)) {
        Some(Err(wait)) => Err(ApiError::rate_limited(wait)),
        _ => Ok(()),
    }
}

/// `POST /v1/login/start`.
pub async fn login_start(
    State(state): State<Arc<AppState>>,
    parts: Parts,
    JsonBody(body): JsonBody<LoginStartRequest>,
) -> Result<axum::Json<LoginStartResponse>, ApiError> {
    // The address's login limit and the ticket come before the account's request budget, so a
    // stranger cannot spend the owner's budget (which device requests share).
    let account = valid_account(&state, &body.account)?;
    limit_client(&state, &parts)?;
    let authorised = authorise_start(&state, &body)?;
    state.account_limiter.check(&account).map_err(ApiError::rate_limited)?;
    let request =
        CredentialRequest::<OpaqueSuite>::deserialize(&body.request).map_err(|_| malformed("credential request"))?;
    let path = records::record_path(&account);
    let delays = state.limits.login.delays;
    let now = now_secs();
    let counted = state
        .storage
        .update::<_, ApiError>(&path, |current| {
            let Some(bytes) = current else { return Ok(Change::Keep(Counted::Unknown)) };
            let mut record = records::parse_account(bytes, &path)?;
            let admitted_at = delays.next_allowed(record.failed_logins, record.last_login_start);
            if now < admitted_at {
                let delayed = Counted::Delayed { ksf: record.ksf, retry_at: admitted_at };
                // The first start refused in a delay is noted (one write per delay); the rest are not.
                if record.delay_noted == admitted_at {
                    return Ok(Change::Keep(delayed));
                }
                record.delay_noted = admitted_at;
                record.note(now, AccountEventKind::LoginDelayed, authorised, Some(admitted_at));
                return Ok(Change::Write(records::encode(&record), delayed));
            }
            record.failed_logins = record.failed_logins.saturating_add(1);
            record.last_login_start = now;
            record.note(now, AccountEventKind::LoginStarted, authorised, None);
            Ok(Change::Write(records::encode(&record), Counted::Real(Box::new(record))))
        })
        .await?;

    // Every start counts alike, whatever the account: a guess is decided here (with a wrong
    // password the OPAQUE client fails on its side and sends no finish), and a metric that told
    // existing, delayed and unknown accounts apart would be an oracle on the public /metrics.
    bump(&state.metrics.login_attempts);
    let (password_file, nonce, ksf) = match counted {
        Counted::Real(record) => {
            if record.failed_logins == delays.free {
                bump(&state.metrics.login_delays);
                tracing::warn!(account = %account.tag(), "failed logins reached the free limit; further ones are delayed");
            }
            let nonce = record.nonce().ok_or_else(|| StorageError::CorruptRecord(path.to_string()))?;
            let file = ServerRegistration::<OpaqueSuite>::deserialize(&record.password_file)
                .map_err(|_| StorageError::CorruptRecord(path.to_string()))?;
            (Some(file), nonce, record.ksf)
        }
        Counted::Delayed { ksf, retry_at } => {
            tracing::debug!(account = %account.tag(), "login start before its delay ended: not counted");
            if authorised {
                return Err(ApiError::login_delayed(retry_at.saturating_sub(now)));
            }
            // A decoy evaluation (the key an unknown name gets), never the account's real one:
            // an uncounted evaluation under the real key would let its holder test a guess
            // offline against any answer captured from a counted start. The parameters stay the
            // account's own. The login cannot succeed.
            decoy_write(&state, &account).await;
            (None, state.secrets.decoy_nonce(&account), ksf)
        }
        Counted::Unknown => {
            // Cost parity with the counted path, which wrote the record.
            decoy_write(&state, &account).await;
            let ksf = &state.limits.login.decoy_ksf;
            let chosen = ksf.get(state.secrets.decoy_choice(&account, ksf.len())).copied();
            (None, state.secrets.decoy_nonce(&account), chosen.unwrap_or_else(KsfParams::recommended))
        }
    };
    let start = ServerLogin::start(
        &mut rand_08::rngs::OsRng,
        state.secrets.setup(),
        password_file,
        request,
        &credential_identifier(&account, &nonce),
        login_params(),
    )
    .map_err(|_| malformed("credential request"))?;
    let mut payload = Zeroizing::new(nonce.to_vec());
    payload.extend_from_slice(&start.state.serialize());
    let expires = now_secs() + state.limits.protocol_state_ttl.as_secs();
    let sealed = sealed::seal(state.secrets.state_key(), Purpose::Login, &account, expires, &payload);
    Ok(axum::Json(LoginStartResponse { response: start.message.serialize().to_vec(), state: sealed, ksf }))
}

/// A write of the same size as an account record to a shared scratch path, so that answering an
/// unknown or locked account costs what answering a real one does.
async fn decoy_write(state: &AppState, account: &AccountHash) {
    use object_store::ObjectStoreExt as _;
    let path = object_store::path::Path::from(format!("decoy/{}", &account.hex()[..2]));
    let filler = vec![b'0'; 400];
    if let Err(error) = state.storage.store().put(&path, filler.into()).await {
        tracing::debug!(%error, "decoy write failed");
    }
}

/// `POST /v1/login/finish`.
pub async fn login_finish(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<LoginFinishRequest>,
) -> Result<Response, ApiError> {
    let failed = |state: &AppState| {
        bump(&state.metrics.login_finishes_rejected);
        ApiError::new(ErrorCode::LoginFailed, "login failed")
    };
    let Some(opened) = sealed::open(state.secrets.state_key(), Purpose::Login, &body.state, now_secs()) else {
        return Err(failed(&state));
    };
    let finalization = CredentialFinalization::<OpaqueSuite>::deserialize(&body.finalization)
        .map_err(|_| malformed("credential finalization"))?;
    if opened.payload.len() < 16 {
        return Err(failed(&state));
    }
    let (nonce, server_state) = opened.payload.split_at(16);
    let server_login = ServerLogin::<OpaqueSuite>::deserialize(server_state).map_err(|_| failed(&state))?;
    if server_login.finish(finalization, login_params()).is_err() {
        tracing::info!(account = %opened.account.tag(), "login failed");
        return Err(failed(&state));
    }
    let account = opened.account;
    let path = records::record_path(&account);
    let nonce = hex::encode(nonce);
    // Reset the counter, unless the password changed since this login started.
    let current = state
        .storage
        .update::<_, ApiError>(&path, |current| {
            let Some(bytes) = current else { return Ok(Change::Keep(false)) };
            let mut record = records::parse_account(bytes, &path)?;
            // The nonce came sealed from this server, but compares like every secret value.
            if !bool::from(record.credential_nonce.as_bytes().ct_eq(nonce.as_bytes())) {
                return Ok(Change::Keep(false));
            }
            record.failed_logins = 0;
            record.note(now_secs(), AccountEventKind::LoginSucceeded, false, None);
            Ok(Change::Write(records::encode(&record), true))
        })
        .await?;
    if !current {
        return Err(failed(&state));
    }
    bump(&state.metrics.logins_ok);
    tracing::info!(account = %account.tag(), "login succeeded");
    let ttl = state.limits.session_ttl.as_secs();
    let token = tokens::mint_session(state.secrets.token_key(), &account, now_secs() + ttl);
    Ok(axum::Json(SessionResponse { session_token: token, expires_in_secs: ttl }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_state_round_trips() {
        let state = RegistrationState { nonce: [4; 16], password_change: true, ksf: KsfParams::recommended() };
        let decoded = RegistrationState::decode(&state.encode()).unwrap();
        assert_eq!(decoded.nonce, [4; 16]);
        assert!(decoded.password_change);
        assert_eq!(decoded.ksf, KsfParams::recommended());
        assert!(RegistrationState::decode(&[0; 30]).is_none());
    }
}
