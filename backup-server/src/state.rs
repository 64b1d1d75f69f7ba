//! Shared state of one server process.

use std::net::IpAddr;
use std::time::Duration;

use crate::authcache::DeviceAuthCache;
use crate::guesses::LoginPolicy;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::secrets::{AccountHash, ServerSecrets};
use crate::storage::Storage;

/// Operator-set limits and lifetimes.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Who may guess passwords, how often, and what decoys look like.
    pub login: LoginPolicy,
    /// Lifetime of a session token.
    pub session_ttl: Duration,
    /// Lifetime of sealed protocol state between two OPAQUE messages.
    pub protocol_state_ttl: Duration,
    /// Largest object accepted, in bytes.
    pub max_object_bytes: u64,
    /// Bytes each account may store.
    pub quota_bytes: u64,
    /// Devices each account may enrol.
    pub max_devices: usize,
    /// How long a deleted object stays restorable before the server purges it (zero: deleted at
    /// once).
    pub deletion_grace: Duration,
    /// Requests per second per client address (0: unlimited), and burst.
    pub per_ip_rate: (u32, u32),
    /// Requests per second per account (0: unlimited), and burst.
    pub per_account_rate: (u32, u32),
    /// Time limit for requests other than object transfers.
    pub request_timeout: Duration,
    /// Time limit for object uploads and downloads.
    pub transfer_timeout: Duration,
    /// Time a client has to send a request's headers before the connection is closed.
    pub header_read_timeout: Duration,
    /// Lifetime of presigned URLs on an S3 store (zero: none are handed out; clients transfer
    /// through the server).
    pub direct_url_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            login: LoginPolicy::default(),
            session_ttl: Duration::from_secs(15 * 60),
            protocol_state_ttl: Duration::from_secs(60),
            max_object_bytes: 4 << 30,
            quota_bytes: 50 << 30,
            max_devices: 32,
            deletion_grace: Duration::from_secs(7 * 86_400),
            per_ip_rate: (100, 200),
            per_account_rate: (100, 200),
            request_timeout: Duration::from_secs(30),
            transfer_timeout: Duration::from_secs(3600),
            header_read_timeout: Duration::from_secs(20),
            direct_url_ttl: Duration::from_secs(600),
        }
    }
}

/// Everything a request handler needs.
pub struct AppState {
    /// The setup and derived keys.
    pub secrets: ServerSecrets,
    /// The object store.
    pub storage: Storage,
    /// Limits in force.
    pub limits: Limits,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Per-address limiter.
    pub ip_limiter: RateLimiter<IpAddr>,
    /// Per-account limiter.
    pub account_limiter: RateLimiter<AccountHash>,
    /// Per-address limiter of login starts.
    pub login_ip_limiter: RateLimiter<IpAddr>,
    /// Device tokens verified in the last moments.
    pub device_auth: DeviceAuthCache,
}

impl AppState {
    /// State for a server with these parts.
    pub fn new(secrets: ServerSecrets, storage: Storage, limits: Limits) -> Self {
        Self {
            ip_limiter: RateLimiter::new(limits.per_ip_rate.0, limits.per_ip_rate.1),
            account_limiter: RateLimiter::new(limits.per_account_rate.0, limits.per_account_rate.1),
            login_ip_limiter: RateLimiter::per_minute(
                limits.login.starts_per_ip_minute.0,
                limits.login.starts_per_ip_minute.1,
            ),
            secrets,
            storage,
            limits,
            metrics: Metrics::default(),
            device_auth: DeviceAuthCache::default(),
        }
    }
}

pub use crate::clock::now_secs;
