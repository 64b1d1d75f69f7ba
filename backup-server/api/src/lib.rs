//! Types shared by the backup server and its clients.
//!
//! - [`suite`]: the OPAQUE (RFC 9807) cipher suite and the versioned key-stretching parameters.
//! - [`wire`]: the JSON request and response bodies of the `/v1` HTTP API, with binary fields in
//!   unpadded base64url.
//! - [`error`]: the machine-readable error codes every error response carries.
//! - [`ticket`]: login tickets signed by the app's account service (Ed25519).
//! - [`names`]: what account and object identifiers may look like, checked identically on both sides.
//! - `client` (feature `client`): a blocking HTTPS client for the whole API.
//!
//! The API is specified in `docs/server-api.md`.

pub mod error;
pub mod names;
pub mod suite;
pub mod ticket;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;

pub use error::ErrorCode;
pub use suite::{KsfParams, OPAQUE_CONTEXT, OpaqueSuite};

/// The version prefix of every API route.
pub const API_PREFIX: &str = "/v1";

/// Largest escrow record the server accepts, in bytes.
pub const MAX_ESCROW_LEN: usize = 16 * 1024;

/// Largest head record the server accepts, in bytes.
pub const MAX_HEAD_LEN: usize = 16 * 1024;

/// The header that carries, on `PUT /v1/head` and in the answer to `GET /v1/head`, the generation
/// the (sealed) head record states: the server keeps device tokens from lowering it.
pub const HEAD_GENERATION_HEADER: &str = "x-head-generation";

/// Largest JSON request body the server accepts on the authentication and device routes, in bytes.
pub const MAX_JSON_BODY_LEN: usize = 16 * 1024;

/// Events an account's log keeps; older ones are dropped first.
pub const MAX_ACCOUNT_EVENTS: usize = 64;

/// Most objects one page of `GET /v1/objects` returns.
pub const MAX_LIST_PAGE: usize = 1000;

/// The `ETag` of an escrow or head record with this content: `"` ‖ the first 16 bytes of its
/// BLAKE3 hash in lowercase hex ‖ `"`. The same on every backend and replica.
pub fn record_etag(content: &[u8]) -> String {
    format!("\"{}\"", &blake3::hash(content).to_hex()[..32])
}
