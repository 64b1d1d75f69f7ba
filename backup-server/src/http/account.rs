//! The caller's own account: status, event log, devices (enrol, list, revoke), escrow and head
//! records.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backup_api::names::is_valid_device_id;
use backup_api::wire::{
    AccountEventKind, AccountEvents, AccountStatus, CreateDeviceRequest, DeviceInfo, DeviceList, DeviceTokenResponse,
};
use backup_api::{ErrorCode, HEAD_GENERATION_HEADER, MAX_ESCROW_LEN, MAX_HEAD_LEN};

use super::extract::{Caller, CallerKind, JsonBody, PathId, read_bounded};
use crate::error::ApiError;
use crate::records::{self, AccountRecord, DeviceRecord, Usage};
use crate::state::{AppState, now_secs};
use crate::storage::{Change, content_etag};
use crate::tokens;

const MAX_DEVICE_NAME_CHARS: usize = 64;

async fn load_record(state: &AppState, caller: &Caller) -> Result<AccountRecord, ApiError> {
    let path = records::record_path(&caller.account);
    let record = state
        .storage
        .read(&path)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "the account no longer exists"))?;
    Ok(records::parse(&record.bytes, &path)?)
}

/// `GET /v1/account`.
pub async fn status(State(state): State<Arc<AppState>>, caller: Caller) -> Result<axum::Json<AccountStatus>, ApiError> {
    let record = load_record(&state, &caller).await?;
    let usage_path = records::usage_path(&caller.account);
    let usage: Usage = match state.storage.read(&usage_path).await? {
        Some(r) => records::parse(&r.bytes, &usage_path)?,
        None => Usage::default(),
    };
    let delays = state.limits.login.delays;
    Ok(axum::Json(AccountStatus {
        failed_logins: record.failed_logins,
        login_limit: delays.free,
        next_login_at: Some(delays.next_allowed(record.failed_logins, record.last_login_start))
            .filter(|at| *at > now_secs())
            .unwrap_or(0),
        used_bytes: usage.bytes,
        objects: usage.objects,
        quota_bytes: state.limits.quota_bytes,
    }))
}

/// `POST /v1/devices` (session only): enrols a device and returns its token once.
pub async fn enrol_device(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateDeviceRequest>,
) -> Result<(StatusCode, axum::Json<DeviceTokenResponse>), ApiError> {
    caller.require_session()?;
    let name = body.name;
    if name.is_empty() || name.chars().count() > MAX_DEVICE_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::InvalidName,
            "a device name has 1 to 64 characters and no control characters",
        ));
    }
    let (device_id, token, secret_hash) = tokens::mint_device(state.secrets.device_key(), &caller.account);
    let path = records::record_path(&caller.account);
    let max = state.limits.max_devices;
    let now = now_secs();
    state
        .storage
        .update::<_, ApiError>(&path, |current| {
            let bytes =
                current.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "the account no longer exists"))?;
            let mut record = records::parse_account(bytes, &path)?;
            if record.devices.len() >= max {
                return Err(ApiError::new(ErrorCode::BadRequest, format!("at most {max} devices; revoke one first")));
            }
            record.devices.push(DeviceRecord {
                id: device_id.clone(),
                name: name.clone(),
                created_at: now,
                secret_hash: secret_hash.clone(),
            });
            record.note(now, AccountEventKind::DeviceEnrolled, false, None);
            Ok(Change::Write(records::encode(&record), ()))
        })
        .await?;
    tracing::info!(account = %caller.account.tag(), device = %device_id, "device enrolled");
    Ok((StatusCode::CREATED, axum::Json(DeviceTokenResponse { device_id, token })))
}

/// `GET /v1/devices`.
pub async fn list_devices(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<DeviceList>, ApiError> {
    let record = load_record(&state, &caller).await?;
    let devices =
        record.devices.into_iter().map(|d| DeviceInfo { id: d.id, name: d.name, created_at: d.created_at }).collect();
    Ok(axum::Json(DeviceList { devices }))
}

/// `DELETE /v1/devices/{id}`: a session may revoke any device, a device only itself.
pub async fn revoke_device(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    if !is_valid_device_id(&id) {
        return Err(ApiError::new(ErrorCode::InvalidName, "a device identifier is 32 lowercase hex characters"));
    }
    if let CallerKind::Device(own) = &caller.kind
        && *own != id
    {
        return Err(ApiError::new(ErrorCode::Forbidden, "a device token may revoke only its own device"));
    }
    let path = records::record_path(&caller.account);
    state
        .storage
        .update::<_, ApiError>(&path, |current| {
            let bytes = current.ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no such device"))?;
            let mut record = records::parse_account(bytes, &path)?;
            let before = record.devices.len();
            record.devices.retain(|d| d.id != id);
            if record.devices.len() == before {
                return Err(ApiError::new(ErrorCode::NotFound, "no such device"));
            }
            record.note(now_secs(), AccountEventKind::DeviceRevoked, false, None);
            Ok(Change::Write(records::encode(&record), ()))
        })
        .await?;
    state.device_auth.forget(&caller.account, &id);
    tracing::info!(account = %caller.account.tag(), device = %id, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Which small client record a route manages.
#[derive(Clone, Copy)]
enum ClientRecord {
    Escrow,
    Head,
}

impl ClientRecord {
    fn path(self, caller: &Caller) -> object_store::path::Path {
        match self {
            Self::Escrow => records::escrow_path(&caller.account),
            Self::Head => records::head_path(&caller.account),
        }
    }

    fn max_len(self) -> usize {
        match self {
            Self::Escrow => MAX_ESCROW_LEN,
            Self::Head => MAX_HEAD_LEN,
        }
    }

    fn authorise(self, caller: &Caller) -> Result<(), ApiError> {
        match self {
            Self::Escrow => caller.require_session(),
            Self::Head => Ok(()),
        }
    }
}

async fn get_record(state: &AppState, caller: &Caller, which: ClientRecord) -> Result<Response, ApiError> {
    which.authorise(caller)?;
    let record = state
        .storage
        .read(&which.path(caller))
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no record stored yet"))?;
    let (generation, content) = match which {
        ClientRecord::Head => {
            let (generation, content) = records::decode_head(&record.bytes);
            (Some(generation), content.to_vec())
        }
        ClientRecord::Escrow => (None, record.bytes.to_vec()),
    };
    let etag = content_etag(&content);
    let mut response = (StatusCode::OK, Body::from(content)).into_response();
    set_etag(&mut response, &etag);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Some(generation) = generation {
        response.headers_mut().insert(HEAD_GENERATION_HEADER, HeaderValue::from(generation));
    }
    Ok(response)
}

/// The generation a head PUT states (`X-Head-Generation`), required.
fn stated_generation(headers: &HeaderMap) -> Result<u64, ApiError> {
    let value = headers.get(HEAD_GENERATION_HEADER).ok_or_else(|| {
        ApiError::new(
            ErrorCode::PreconditionRequired,
            "send X-Head-Generation with the generation the head record states",
        )
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ApiError::bad_request("X-Head-Generation must be an unsigned 64-bit number"))
}

/// What a conditional PUT asks for.
enum Precondition {
    /// `If-None-Match: *`: only if absent.
    Absent,
    /// `If-Match: "etag"`: only if the current content has this ETag.
    Matches(String),
}

fn precondition(headers: &HeaderMap) -> Result<Precondition, ApiError> {
    let header_text = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::trim);
    match (header_text(header::IF_NONE_MATCH), header_text(header::IF_MATCH)) {
        (Some("*"), None) => Ok(Precondition::Absent),
        (None, Some(etag)) if !etag.is_empty() && etag != "*" => Ok(Precondition::Matches(etag.to_owned())),
        (None, None) => Err(ApiError::new(
            ErrorCode::PreconditionRequired,
            "send If-None-Match: * to create the record or If-Match with its current ETag to replace it",
        )),
        _ => Err(ApiError::bad_request("use exactly one of If-None-Match: * and If-Match: \"etag\"")),
    }
}

async fn put_record(
    state: &AppState,
    caller: &Caller,
    which: ClientRecord,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // The (small, bounded) body is read before any refusal: a refusal that leaves it unread makes
    // the server drop the connection, and a client reusing it sees a broken connection instead of
    // the answer.
    let bytes = read_bounded(body, which.max_len()).await?;
    which.authorise(caller)?;
    let condition = precondition(headers)?;
    let generation = match which {
        ClientRecord::Head => Some(stated_generation(headers)?),
        ClientRecord::Escrow => None,
    };
    let path = which.path(caller);
    let device = matches!(caller.kind, CallerKind::Device(_));
    let created = state
        .storage
        .update::<_, ApiError>(&path, |current| {
            let (current_generation, current) = match (which, current) {
                (ClientRecord::Head, Some(stored)) => {
                    let (generation, content) = records::decode_head(stored);
                    (generation, Some(content))
                }
                (_, current) => (0, current),
            };
            let satisfied = match (&condition, current) {
                (Precondition::Absent, None) => true,
                (Precondition::Matches(etag), Some(current)) => content_etag(current) == *etag,
                _ => false,
            };
            if !satisfied {
                return Err(ApiError::new(ErrorCode::PreconditionFailed, "the record changed; read it again"));
            }
            let stored = match generation {
                // Device tokens are append-only: the head never moves to a lower generation
                // through one (a thief's copy of the token cannot rewind the backup).
                Some(new) if device && new < current_generation => {
                    return Err(ApiError::new(
                        ErrorCode::GenerationRegressed,
                        format!(
                            "the head is at generation {current_generation}; a device token may not move it back to \
                             {new} (a session from a password login may)"
                        ),
                    ));
                }
                Some(new) => records::encode_head(new, &bytes),
                None => bytes.to_vec(),
            };
            Ok(Change::Write(stored, current.is_none()))
        })
        .await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut response = status.into_response();
    set_etag(&mut response, &content_etag(&bytes));
    Ok(response)
}

fn set_etag(response: &mut Response, etag: &str) {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
}

/// `GET /v1/escrow` (session only): noted in the account's event log before it is read.
pub async fn get_escrow(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.require_session()?;
    note(&state, &caller, AccountEventKind::EscrowRead).await?;
    get_record(&state, &caller, ClientRecord::Escrow).await
}

/// Appends an event to the caller's account record.
async fn note(state: &AppState, caller: &Caller, kind: AccountEventKind) -> Result<(), ApiError> {
    let path = records::record_path(&caller.account);
    state
        .storage
        .update::<_, ApiError>(&path, |current| {
            let bytes =
                current.ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "the account no longer exists"))?;
            let mut record = records::parse_account(bytes, &path)?;
            record.note(now_secs(), kind, false, None);
            Ok(Change::Write(records::encode(&record), ()))
        })
        .await
}

/// Query of `GET /v1/events`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Return events after this sequence number.
    #[serde(default)]
    after: u64,
}

/// `GET /v1/events?after=SEQ` (session or device): the account's kept events after `SEQ`.
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<axum::Json<AccountEvents>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::bad_request("the one query parameter is `after`"))?;
    let record = load_record(&state, &caller).await?;
    let (events, dropped) = record.events_after(query.after);
    Ok(axum::Json(AccountEvents { events, dropped }))
}

/// `PUT /v1/escrow` (session only, conditional).
pub async fn put_escrow(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    put_record(&state, &caller, ClientRecord::Escrow, &headers, body).await
}

/// `GET /v1/head`.
pub async fn get_head(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    get_record(&state, &caller, ClientRecord::Head).await
}

/// `PUT /v1/head` (conditional, with `X-Head-Generation`; a device token may not lower it).
pub async fn put_head(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    put_record(&state, &caller, ClientRecord::Head, &headers, body).await
}
