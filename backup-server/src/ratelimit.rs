//! Token-bucket rate limiting per key (client address or account hash), in memory on each replica.
//!
//! Each key gets a bucket of `burst` tokens refilled at `per_second`; a request takes one token or
//! is refused with the time until the next token. Limits are per replica: N replicas behind a load
//! balancer allow up to N times the configured rate in total. Client addresses are the TCP peer's
//! (a proxy in front makes all its clients share one bucket); IPv6 clients are keyed by their /64.
//!
//! Memory stays bounded: buckets that have refilled completely carry no information and are
//! dropped by a sweep (at most one per [`SWEEP_INTERVAL`] once the table is large), and a table
//! that still exceeds [`MAX_KEYS`] after a sweep is cleared.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Table size from which full buckets are swept.
const SWEEP_AT: usize = 50_000;
/// Shortest time between two sweeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Largest table kept; beyond it (after a sweep) every bucket is forgotten.
const MAX_KEYS: usize = 500_000;

/// The key a client address is limited under: the address itself for IPv4, its /64 for IPv6.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// A keyed token-bucket limiter. A rate of 0 disables it.
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    table: Mutex<Table<K>>,
}

struct Table<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Instant,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `per_second` requests per key with bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            table: Mutex::new(Table { buckets: HashMap::new(), last_sweep: Instant::now() }),
        }
    }

    /// A limiter allowing `per_minute` requests per key with bursts of `burst`.
    pub fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_minute) / 60.0, ..Self::new(0, burst) }
    }

    /// Takes one token for `key`: `Ok` if allowed, else `Err(seconds until a token is available)`.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if table.buckets.len() >= SWEEP_AT && now.duration_since(table.last_sweep) >= SWEEP_INTERVAL {
            let (rate, burst) = (self.per_second, self.burst);
            table.buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst);
            table.last_sweep = now;
            if table.buckets.len() >= MAX_KEYS {
                table.buckets.clear();
            }
        }
        let bucket = table.buckets.entry(key.clone()).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            // A positive finite wait (at most a minute or so); rounding up to whole seconds.
            Err(wait.ceil() as u64)
        }
    }

    /// Keys currently tracked.
    pub fn tracked(&self) -> usize {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner).buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_key() {
        let limiter = RateLimiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check(&"a").is_ok());
        }
        assert_eq!(limiter.check(&"a"), Err(1));
        assert!(limiter.check(&"b").is_ok(), "other keys have their own bucket");
    }

    #[test]
    fn zero_rate_disables() {
        let limiter = RateLimiter::new(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check(&1).is_ok());
        }
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = RateLimiter::new(1_000_000, 1);
        for i in 0..(SWEEP_AT as u64 + 10) {
            let _ = limiter.check(&i);
        }
        // Every bucket was drained by its single request and refills within a microsecond, so
        // the next sweep (at most one per interval) finds them all full and drops them.
        std::thread::sleep(SWEEP_INTERVAL);
        let _ = limiter.check(&u64::MAX);
        assert!(limiter.tracked() < 10, "{}", limiter.tracked());
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }
}
