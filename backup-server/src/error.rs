//! Error responses: every failure leaves the server as an [`ApiError`] with a code from
//! [`backup_api::ErrorCode`] and a message free of secrets and stored content.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backup_api::ErrorCode;
use backup_api::wire::ErrorBody;

use crate::storage::StorageError;

/// An error answered to the client.
#[derive(Debug)]
pub struct ApiError {
    /// The machine-readable code (decides the HTTP status).
    pub code: ErrorCode,
    /// The explanation sent to the client.
    pub message: String,
    /// Seconds to put in `Retry-After`, for rate limiting.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), retry_after: None }
    }

    /// `bad_request` with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// `login_delayed`, retry after `secs` (only for a requester with a valid login ticket).
    pub fn login_delayed(secs: u64) -> Self {
        Self {
            retry_after: Some(secs.max(1)),
            ..Self::new(ErrorCode::LoginDelayed, "too many failed logins for this account; retry later")
        }
    }

    /// A 429 with `Retry-After` for a rate limit.
    pub fn rate_limited(secs: u64) -> Self {
        Self { retry_after: Some(secs.max(1)), ..Self::new(ErrorCode::RateLimited, "too many requests") }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match &error {
            StorageError::CorruptRecord(_) => {
                tracing::error!(%error, "stored record unreadable");
                Self::new(ErrorCode::Internal, "a stored record is unreadable")
            }
            _ => {
                tracing::warn!(%error, "storage unavailable");
                Self::new(ErrorCode::Unavailable, "storage is unavailable; retry later")
            }
        }
    }
}

impl From<object_store::Error> for ApiError {
    fn from(error: object_store::Error) -> Self {
        StorageError::from(error).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody { error: self.code, message: self.message };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
