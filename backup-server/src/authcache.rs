//! A short-lived cache of device tokens that recently checked out, so routine requests do not read
//! the account record every time.
//!
//! An entry remembers that a device's token secret matched the account record; it expires after
//! [`DEVICE_AUTH_TTL`], and revoking a device on this replica removes it at once. On other
//! replicas a revoked device token therefore keeps working for at most [`DEVICE_AUTH_TTL`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq as _;

use crate::secrets::AccountHash;

/// How long a successful device-token check is trusted without reading the record again.
pub const DEVICE_AUTH_TTL: Duration = Duration::from_secs(2);
/// Entries at which expired ones are swept.
const SWEEP_AT: usize = 10_000;

/// Recently verified device tokens, keyed by account and device, holding a keyed hash of the
/// secret that matched (never the secret itself).
#[derive(Default)]
pub struct DeviceAuthCache {
    entries: Mutex<HashMap<(AccountHash, String), (String, Instant)>>,
}

impl DeviceAuthCache {
    /// Whether `secret_hash` was verified for this device less than [`DEVICE_AUTH_TTL`] ago. The
    /// hashes are compared in constant time (their length is not secret).
    pub fn is_fresh(&self, account: &AccountHash, device_id: &str, secret_hash: &str) -> bool {
        let entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.get(&(*account, device_id.to_owned())).is_some_and(|(hash, at)| {
            bool::from(hash.as_bytes().ct_eq(secret_hash.as_bytes())) && at.elapsed() < DEVICE_AUTH_TTL
        })
    }

    /// Records a successful check.
    pub fn remember(&self, account: &AccountHash, device_id: &str, secret_hash: String) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= SWEEP_AT {
            entries.retain(|_, (_, at)| at.elapsed() < DEVICE_AUTH_TTL);
        }
        entries.insert((*account, device_id.to_owned()), (secret_hash, Instant::now()));
    }

    /// Forgets a device (on revocation).
    pub fn forget(&self, account: &AccountHash, device_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        entries.remove(&(*account, device_id.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_only_the_matching_secret_and_forgets_on_revocation() {
        let cache = DeviceAuthCache::default();
        let account = AccountHash::from_bytes([1; 32]);
        cache.remember(&account, "d", "h1".into());
        assert!(cache.is_fresh(&account, "d", "h1"));
        assert!(!cache.is_fresh(&account, "d", "h2"));
        assert!(!cache.is_fresh(&account, "e", "h1"));
        assert!(!cache.is_fresh(&AccountHash::from_bytes([2; 32]), "d", "h1"));
        cache.forget(&account, "d");
        assert!(!cache.is_fresh(&account, "d", "h1"));
    }

    #[test]
    fn only_an_exactly_equal_hash_is_fresh() {
        let cache = DeviceAuthCache::default();
        let account = AccountHash::from_bytes([1; 32]);
        let stored = "ab".repeat(32);
        cache.remember(&account, "d", stored.clone());
        assert!(cache.is_fresh(&account, "d", &stored));
        let mut last_differs = stored.clone();
        last_differs.replace_range(63.., "c");
        for other in [&last_differs, &stored[..63], &format!("{stored}a"), "", &"AB".repeat(32)] {
            assert!(!cache.is_fresh(&account, "d", other), "{other:?}");
        }
    }
}
