//! Token-bucket rate limiting per key (client address or account hash), in memory on each replica.
//!
//! Each key gets a bucket of `burst` tokens refilled at `per_second`; a request takes one token or
//! is refused with the time until the next token. Limits are per replica: N replicas behind a load
//! balancer allow up to N times the configured rate in total.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets idle for this long are forgotten when the table grows.
const IDLE_EVICTION: Duration = Duration::from_secs(300);
/// Table size at which idle buckets are swept.
const SWEEP_AT: usize = 100_000;

/// A keyed token-bucket limiter. A rate of 0 disables it.
pub struct RateLimiter<K> {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<K, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `per_second` requests per key with bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_second), burst: f64::from(burst.max(1)), buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one token for `key`: `Ok` if allowed, else `Err(seconds until a token is available)`.
    pub fn check(&self, key: &K) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE_EVICTION);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket { tokens: self.burst, updated: now });
        let elapsed = now.duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_second;
            // A positive finite wait of at most a few seconds; rounding up to whole seconds.
            Err(wait.ceil() as u64)
        }
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
}
