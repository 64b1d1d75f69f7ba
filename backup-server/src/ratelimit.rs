//! Token-bucket rate limiting per key (client address or account hash), in memory on each replica.
//!
//! Each key gets a bucket of `burst` tokens refilled at `per_second`; a request takes one token or
//! is refused with the time until the next token. Limits are per replica: N replicas behind a load
//! balancer allow up to N times the configured rate in total. Client addresses are the TCP peer's
//! (a proxy in front makes all its clients share one bucket); IPv6 clients are keyed by their /64.
//!
//! Memory stays bounded: buckets that have refilled completely carry no information and are
//! dropped by a sweep (at most one per [`SWEEP_INTERVAL`] once the table is large). A new key that
//! finds [`MAX_KEYS`] buckets first evicts down to [`EVICT_TO`]: full buckets, then those closest to
//! full (forgetting a bucket gives its key back the tokens it lacks, so these give away least).
//! A client that has drained its bucket therefore stays limited through a flood of new keys, unless
//! [`EVICT_TO`] or more other keys are each further from full than it. Each eviction costs time
//! linear in the table and is followed by at least `MAX_KEYS - EVICT_TO` new keys before the next,
//! so the cost per request stays constant on average.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Table size from which full buckets are swept.
const SWEEP_AT: usize = 50_000;
/// Shortest time between two sweeps.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Largest table kept: a new key that finds this many evicts down to [`EVICT_TO`] first.
const MAX_KEYS: usize = 500_000;
/// Table size an eviction leaves.
const EVICT_TO: usize = MAX_KEYS / 4 * 3;

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
    max_keys: usize,
    evict_to: usize,
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

impl Bucket {
    /// The tokens this bucket lacks at `now`, refill included: 0 when full.
    fn deficit(&self, now: Instant, per_second: f64, burst: f64) -> f64 {
        let refilled = self.tokens + now.saturating_duration_since(self.updated).as_secs_f64() * per_second;
        (burst - refilled).max(0.0)
    }
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `per_second` requests per key with bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            max_keys: MAX_KEYS,
            evict_to: EVICT_TO,
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
        let (rate, burst) = (self.per_second, self.burst);
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if table.buckets.len() >= SWEEP_AT && now.duration_since(table.last_sweep) >= SWEEP_INTERVAL {
            table.buckets.retain(|_, b| b.deficit(now, rate, burst) > 0.0);
            table.last_sweep = now;
        }
        if table.buckets.len() >= self.max_keys && !table.buckets.contains_key(key) {
            evict(&mut table.buckets, self.evict_to, now, rate, burst);
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

/// Shrinks `buckets` to at most `keep` entries, forgetting those that lack the fewest tokens
/// (full ones first). Linear in the table size.
fn evict<K>(buckets: &mut HashMap<K, Bucket>, keep: usize, now: Instant, rate: f64, burst: f64) {
    buckets.retain(|_, b| b.deficit(now, rate, burst) > 0.0);
    let Some(excess) = buckets.len().checked_sub(keep).filter(|&n| n > 0) else { return };
    // The `excess`-th smallest deficit: every bucket below it goes, and as many equal to it as
    // are needed to reach `keep`.
    let mut deficits: Vec<f64> = buckets.values().map(|b| b.deficit(now, rate, burst)).collect();
    let (below, cutoff, _) = deficits.select_nth_unstable_by(excess - 1, f64::total_cmp);
    let cutoff = *cutoff;
    let mut equal_to_drop = excess - below.iter().filter(|&&d| d < cutoff).count();
    buckets.retain(|_, b| {
        let deficit = b.deficit(now, rate, burst);
        if deficit < cutoff {
            false
        } else if deficit == cutoff && equal_to_drop > 0 {
            equal_to_drop -= 1;
            false
        } else {
            true
        }
    });
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
    fn a_flood_of_new_keys_neither_resets_a_drained_bucket_nor_grows_the_table() {
        // One token a minute: no bucket refills a whole token while the test runs.
        let bound = 1_000;
        let limiter = RateLimiter { max_keys: bound, evict_to: bound / 4 * 3, ..RateLimiter::per_minute(1, 3) };
        let limited = u64::MAX;
        for _ in 0..3 {
            assert!(limiter.check(&limited).is_ok());
        }
        assert!(limiter.check(&limited).is_err(), "drained");
        // Twenty times the bound in distinct keys, one request each, the limited client retrying
        // now and then.
        for key in 0..(20 * bound as u64) {
            assert!(limiter.check(&key).is_ok(), "a new key has a full bucket");
            assert!(limiter.tracked() <= bound, "{} keys tracked", limiter.tracked());
            if key % 997 == 0 {
                assert!(limiter.check(&limited).is_err(), "still limited after {key} new keys");
            }
        }
        assert!(limiter.check(&limited).is_err(), "still limited after the flood");
        assert!(limiter.tracked() >= bound / 4 * 3, "an eviction stops at its target");
    }

    #[test]
    fn eviction_forgets_the_fullest_buckets_and_keeps_exactly_the_target() {
        let now = Instant::now();
        let mut buckets: HashMap<u32, Bucket> =
            (0..10).map(|i| (i, Bucket { tokens: f64::from(i % 5), updated: now })).collect();
        evict(&mut buckets, 4, now, 1.0, 5.0);
        // The four buckets holding 0 or 1 token lack the most and stay; the fuller six go.
        let mut kept: Vec<u32> = buckets.keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept.len(), 4);
        assert!(kept.iter().all(|&k| k % 5 <= 1), "{kept:?}");
        // Ties are broken to hit the target exactly.
        let mut ties: HashMap<u32, Bucket> = (0..10).map(|i| (i, Bucket { tokens: 1.0, updated: now })).collect();
        evict(&mut ties, 3, now, 1.0, 5.0);
        assert_eq!(ties.len(), 3);
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
