//! Machine-readable error codes carried by every error response.

use serde::{Deserialize, Serialize};

/// What went wrong, as sent in the `error` field of an error response body. Each code has one HTTP
/// status, given by [`ErrorCode::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body or a parameter is malformed (bad JSON, base64, OPAQUE message or header).
    BadRequest,
    /// An account, object or device identifier is not acceptable (see [`crate::names`]).
    InvalidName,
    /// The bearer token is missing, malformed, expired or revoked.
    Unauthorized,
    /// OPAQUE login did not complete: wrong password, unknown account, an account whose failed
    /// logins delay it (told so only to a requester with a login ticket), or expired state.
    LoginFailed,
    /// This server counts only login starts that carry a valid login ticket from the app's account
    /// service; the ticket is missing, malformed, expired or for another account.
    LoginTicketRequired,
    /// Failed logins delay this account: retry after `Retry-After` seconds (told only to a
    /// requester with a valid login ticket).
    LoginDelayed,
    /// The token is valid but not allowed on this route (a device token on a password-only route).
    Forbidden,
    /// The object, record or device does not exist.
    NotFound,
    /// No route matches, or the method is not allowed on it.
    UnknownRoute,
    /// Registration for an account that already exists.
    AccountExists,
    /// An object with this identifier already exists (objects are write-once).
    ObjectExists,
    /// The record changed since the version named in `If-Match` (or exists despite
    /// `If-None-Match: *`).
    PreconditionFailed,
    /// A conditional header (`If-Match` or `If-None-Match: *`) is required on this route.
    PreconditionRequired,
    /// A device token may not move the head record to a lower generation (device tokens are
    /// append-only; a session from a password login may).
    GenerationRegressed,
    /// An upload without `Content-Length`.
    LengthRequired,
    /// The body is larger than the route allows.
    PayloadTooLarge,
    /// The requested byte range lies outside the object.
    RangeNotSatisfiable,
    /// The server hands out no presigned URLs (a local store, or turned off): transfer through
    /// the server instead.
    DirectTransfersOff,
    /// Storing this object would exceed the account's quota.
    QuotaExceeded,
    /// Too many requests from this address or for this account; retry after `Retry-After` seconds.
    RateLimited,
    /// The request took longer than the server allows.
    Timeout,
    /// The storage backend failed; the request may be retried.
    Unavailable,
    /// An unexpected server fault.
    Internal,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub const fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidName => 400,
            Self::Unauthorized | Self::LoginFailed | Self::LoginTicketRequired => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::UnknownRoute | Self::DirectTransfersOff => 404,
            Self::Timeout => 408,
            Self::AccountExists | Self::ObjectExists | Self::GenerationRegressed => 409,
            Self::LengthRequired => 411,
            Self::PreconditionFailed => 412,
            Self::PayloadTooLarge => 413,
            Self::RangeNotSatisfiable => 416,
            Self::PreconditionRequired => 428,
            Self::RateLimited | Self::LoginDelayed => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
            Self::QuotaExceeded => 507,
        }
    }

    /// The most likely code for a bare status (for answers without a body, such as HEAD).
    pub const fn for_status(status: u16) -> Option<Self> {
        Some(match status {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            408 => Self::Timeout,
            412 => Self::PreconditionFailed,
            413 => Self::PayloadTooLarge,
            429 => Self::RateLimited,
            500 => Self::Internal,
            503 => Self::Unavailable,
            _ => return None,
        })
    }

    /// Whether a client may retry the same request later and expect it to succeed.
    pub const fn is_transient(self) -> bool {
        matches!(self, Self::RateLimited | Self::Timeout | Self::Unavailable)
    }

    /// The code's name as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidName => "invalid_name",
            Self::Unauthorized => "unauthorized",
            Self::LoginFailed => "login_failed",
            Self::LoginTicketRequired => "login_ticket_required",
            Self::LoginDelayed => "login_delayed",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::UnknownRoute => "unknown_route",
            Self::AccountExists => "account_exists",
            Self::ObjectExists => "object_exists",
            Self::PreconditionFailed => "precondition_failed",
            Self::PreconditionRequired => "precondition_required",
            Self::GenerationRegressed => "generation_regressed",
            Self::LengthRequired => "length_required",
            Self::PayloadTooLarge => "payload_too_large",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::DirectTransfersOff => "direct_transfers_off",
            Self::QuotaExceeded => "quota_exceeded",
            Self::RateLimited => "rate_limited",
            Self::Timeout => "timeout",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::PreconditionRequired,
            ErrorCode::GenerationRegressed,
            ErrorCode::QuotaExceeded,
            ErrorCode::LoginTicketRequired,
            ErrorCode::LoginDelayed,
            ErrorCode::DirectTransfersOff,
        ] {
            let json = serde_json::to_string(&code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
