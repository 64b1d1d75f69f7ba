//! The zero-knowledge backup server: OPAQUE registration and login, device tokens, escrow and
//! head records with compare-and-swap, and write-once per-account objects, on `object_store`
//! (local directory, S3-compatible bucket, or memory). It stores only opaque bytes.
//!
//! The binary (`src/main.rs`) parses settings and calls [`server::serve`]; tests embed a server with
//! [`server::RunningServer`]. The HTTP API is specified in `docs/server-api.md`.

pub mod authcache;
pub mod clock;
pub mod config;
pub mod error;
pub mod guesses;
pub mod http;
pub mod metrics;
pub mod objcache;
pub mod presign;
pub mod random;
pub mod ratelimit;
pub mod records;
pub mod sealed;
pub mod secrets;
pub mod server;
pub mod state;
pub mod storage;
pub mod tokens;

pub use secrets::ServerSecrets;
pub use server::RunningServer;
pub use state::{AppState, Limits};
pub use storage::Storage;
