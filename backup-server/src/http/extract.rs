//! Request extractors that answer every failure with an [`ApiError`]: the authenticated caller,
//! bounded bodies and JSON.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use backup_api::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::records;
use crate::secrets::AccountHash;
use crate::state::{AppState, now_secs};
use crate::tokens::{self, Token};

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallerKind {
    /// A password login (session token).
    Session,
    /// An enrolled device (device token), with its identifier.
    Device(String),
}

/// An authenticated caller: the account its token is for and how it authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account every request from this caller is confined to.
    pub account: AccountHash,
    /// Session or device.
    pub kind: CallerKind,
}

impl Caller {
    /// Refuses device tokens on routes that need a password login.
    pub fn require_session(&self) -> Result<(), ApiError> {
        match self.kind {
            CallerKind::Session => Ok(()),
            CallerKind::Device(_) => {
                Err(ApiError::new(ErrorCode::Forbidden, "this route needs a session token from a password login"))
            }
        }
    }
}

/// The bearer token of a request, if it has an `Authorization: Bearer` header.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ")
}

/// Checks a bearer token fully (for device tokens, against the account record).
pub async fn authenticate(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    let unauthorized = || ApiError::new(ErrorCode::Unauthorized, "missing, invalid, expired or revoked token");
    let parsed = tokens::parse(state.secrets.token_key(), token, now_secs()).ok_or_else(unauthorized)?;
    let caller = match parsed {
        Token::Session { account } => Caller { account, kind: CallerKind::Session },
        Token::Device { account, device_id, secret } => {
            let presented = tokens::device_secret_hash(state.secrets.device_key(), &secret[..]);
            if !state.device_auth.is_fresh(&account, &device_id, &presented) {
                let path = records::record_path(&account);
                let record = state.storage.read(&path).await?.ok_or_else(unauthorized)?;
                let record = records::parse_account(&record.bytes, &path)?;
                let enrolled = record.devices.iter().any(|d| {
                    d.id == device_id
                        && tokens::device_secret_matches(state.secrets.device_key(), &secret[..], &d.secret_hash)
                });
                if !enrolled {
                    return Err(unauthorized());
                }
                state.device_auth.remember(&account, &device_id, presented);
            }
            Caller { account, kind: CallerKind::Device(device_id) }
        }
    };
    state.account_limiter.check(&caller.account).map_err(ApiError::rate_limited)?;
    Ok(caller)
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "missing bearer token"))?;
        authenticate(state, token).await
    }
}

/// The single `{id}` segment of a route, percent-decoded. A segment that does not decode to UTF-8
/// is refused as an invalid name (with the usual JSON error body).
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| PathId(id))
            .map_err(|_| ApiError::new(ErrorCode::InvalidName, "the identifier in the path is not valid UTF-8"))
    }
}

/// Reads a whole body of at most `limit` bytes.
pub async fn read_bounded(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("the body was cut short"))?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is larger than {limit} bytes")));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// A JSON body of at most [`backup_api::MAX_JSON_BODY_LEN`] bytes.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_bounded(req.into_body(), backup_api::MAX_JSON_BODY_LEN).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {}", json_error_kind(&e))))
    }
}

/// A description of a JSON error that never quotes the input.
fn json_error_kind(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match error.classify() {
        Category::Io | Category::Eof => "truncated".into(),
        Category::Syntax => format!("syntax error at line {} column {}", error.line(), error.column()),
        Category::Data => format!("unexpected field or value at line {} column {}", error.line(), error.column()),
    }
}
