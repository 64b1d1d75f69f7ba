//! A bounded in-memory cache of small objects on a local store, so that reading a recently written
//! or read object costs no trip to the blocking thread pool.
//!
//! Objects are write-once, so a cached copy never goes stale while its object exists; the only
//! change is deletion, after which [`ObjectCache::forget`] drops the copy. A read that began before
//! a deletion must not put back what the deletion removed: each read takes a [`ReadTicket`] before
//! it touches the file, and an insert is refused when any object was forgotten since the ticket was
//! taken. Only a local store gets a cache: one process owns it (the data-directory lock), whereas
//! replicas on a shared bucket could not see each other's deletions.
//!
//! The cache holds what the store holds: ciphertext the clients sealed, never a secret of the
//! server's. Eviction is first in, first out, by bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;
use object_store::path::Path;

/// Bytes of object data the cache holds at most.
pub const CACHE_BYTES: usize = 32 << 20;
/// Largest object the cache keeps.
pub const CACHED_OBJECT_MAX: usize = 64 << 10;

#[derive(Default)]
struct Inner {
    objects: HashMap<Path, Bytes>,
    /// Insertion order, for eviction. May name paths already forgotten (skipped when evicting),
    /// and a path forgotten and written again twice (its first place then evicts it early).
    order: VecDeque<Path>,
    bytes: usize,
    /// Objects forgotten so far; see [`ReadTicket`].
    forgotten: u64,
}

/// Recently written or read small objects of one local store.
pub struct ObjectCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

/// Taken before reading an object from the store, to insert what was read only if nothing was
/// forgotten meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct ReadTicket(u64);

impl Default for ObjectCache {
    fn default() -> Self {
        Self::with_capacity(CACHE_BYTES)
    }
}

impl ObjectCache {
    /// A cache of at most `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), capacity }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached object at `path`.
    pub fn get(&self, path: &Path) -> Option<Bytes> {
        self.lock().objects.get(path).cloned()
    }

    /// A ticket for a read about to start.
    pub fn ticket(&self) -> ReadTicket {
        ReadTicket(self.lock().forgotten)
    }

    /// Keeps an object just written (its content is what the store now holds).
    pub fn insert_written(&self, path: &Path, bytes: &Bytes) {
        let mut inner = self.lock();
        self.insert_locked(&mut inner, path, bytes);
    }

    /// Keeps an object read from the store, unless an object was forgotten since `ticket`.
    pub fn insert_read(&self, ticket: ReadTicket, path: &Path, bytes: &Bytes) {
        let mut inner = self.lock();
        if inner.forgotten == ticket.0 {
            self.insert_locked(&mut inner, path, bytes);
        }
    }

    fn insert_locked(&self, inner: &mut Inner, path: &Path, bytes: &Bytes) {
        if bytes.len() > CACHED_OBJECT_MAX || bytes.len() > self.capacity || inner.objects.contains_key(path) {
            return;
        }
        while inner.bytes + bytes.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(evicted) = inner.objects.remove(&oldest) {
                inner.bytes -= evicted.len();
            }
        }
        inner.bytes += bytes.len();
        inner.objects.insert(path.clone(), bytes.clone());
        inner.order.push_back(path.clone());
    }

    /// Drops the copy of a deleted object, and refuses the inserts of reads already under way.
    pub fn forget(&self, path: &Path) {
        let mut inner = self.lock();
        inner.forgotten += 1;
        if let Some(removed) = inner.objects.remove(path) {
            inner.bytes -= removed.len();
        }
        // The order keeps the names of forgotten objects until eviction passes them; compact it
        // when they outnumber the live ones, so a burst of deletions costs amortised O(1) each.
        if inner.order.len() > 2 * inner.objects.len() + 1024 {
            let Inner { objects, order, .. } = &mut *inner;
            order.retain(|p| objects.contains_key(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> Path {
        Path::from(format!("accounts/a/objects/{name}"))
    }

    #[test]
    fn keeps_what_fits_and_evicts_the_oldest_first() {
        let cache = ObjectCache::with_capacity(10);
        cache.insert_written(&path("a"), &Bytes::from_static(b"aaaa"));
        cache.insert_written(&path("b"), &Bytes::from_static(b"bbbb"));
        cache.insert_written(&path("c"), &Bytes::from_static(b"cccc"));
        assert_eq!(cache.get(&path("a")), None);
        assert_eq!(cache.get(&path("b")).as_deref(), Some(&b"bbbb"[..]));
        assert_eq!(cache.get(&path("c")).as_deref(), Some(&b"cccc"[..]));
        cache.insert_written(&path("big"), &Bytes::from(vec![0; 11]));
        assert_eq!(cache.get(&path("big")), None);
        assert_eq!(cache.get(&path("b")).as_deref(), Some(&b"bbbb"[..]), "a refused object evicts nothing");
    }

    #[test]
    fn objects_over_the_size_limit_are_not_kept() {
        let cache = ObjectCache::default();
        cache.insert_written(&path("large"), &Bytes::from(vec![0; CACHED_OBJECT_MAX + 1]));
        assert_eq!(cache.get(&path("large")), None);
        cache.insert_written(&path("limit"), &Bytes::from(vec![0; CACHED_OBJECT_MAX]));
        assert!(cache.get(&path("limit")).is_some());
    }

    #[test]
    fn a_forgotten_object_is_gone_and_a_read_begun_before_cannot_bring_it_back() {
        let cache = ObjectCache::default();
        cache.insert_written(&path("a"), &Bytes::from_static(b"old"));
        let before = cache.ticket();
        cache.forget(&path("a"));
        assert_eq!(cache.get(&path("a")), None);
        cache.insert_read(before, &path("a"), &Bytes::from_static(b"old"));
        assert_eq!(cache.get(&path("a")), None, "a read that began before the deletion is not kept");
        let after = cache.ticket();
        cache.insert_read(after, &path("b"), &Bytes::from_static(b"new"));
        assert_eq!(cache.get(&path("b")).as_deref(), Some(&b"new"[..]));
    }

    #[test]
    fn eviction_after_a_forget_keeps_the_byte_count_right() {
        let cache = ObjectCache::with_capacity(8);
        cache.insert_written(&path("a"), &Bytes::from_static(b"aaaa"));
        cache.forget(&path("a"));
        cache.insert_written(&path("b"), &Bytes::from_static(b"bbbb"));
        cache.insert_written(&path("c"), &Bytes::from_static(b"cccc"));
        assert!(cache.get(&path("b")).is_some() && cache.get(&path("c")).is_some());
        cache.insert_written(&path("d"), &Bytes::from_static(b"dddd"));
        assert_eq!(cache.get(&path("b")), None);
        assert!(cache.get(&path("c")).is_some() && cache.get(&path("d")).is_some());
    }
}
