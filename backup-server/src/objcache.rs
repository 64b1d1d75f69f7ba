//! A bounded in-memory cache of small objects on a local store, so that reading a recently written
//! or read object costs no trip to the blocking thread pool.
//!
//! Each copy carries the [`FileStamp`] of the file it came from (length, inode, modification and
//! change times). A copy checked less than [`RECHECK_AFTER`] ago is served as it is; an older one
//! only once a fresh `stat` of the file gives the same stamp. So a file deleted, replaced or
//! altered behind the server's back (by an operator, or a fault) is read again, or reported
//! absent, as without the cache, at most [`RECHECK_AFTER`] later — except an in-place change that
//! keeps the length within one tick of the kernel's file clock (a few milliseconds) of the copy's
//! own write or read, whose times do not move. A `stat` per request cost a quarter of the GET
//! rate on the project's machine; one per copy per [`RECHECK_AFTER`] costs nothing measurable.
//! Objects are
//! write-once, so a copy normally stays valid until its object is deleted, which drops it
//! ([`ObjectCache::forget`]). Only a local store gets a cache: one process owns it (the
//! data-directory lock), whereas replicas on a shared bucket cannot `stat` each other's writes.
//!
//! The cache holds what the store holds: ciphertext the clients sealed, never a secret of the
//! server's. Eviction is first in, first out, by bytes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;

/// Bytes of object data the cache holds at most.
pub const CACHE_BYTES: usize = 32 << 20;
/// Largest object the cache keeps.
pub const CACHED_OBJECT_MAX: usize = 64 << 10;
/// How long a copy is served after its file was last found unchanged, before it is checked again.
pub const RECHECK_AFTER: Duration = Duration::from_millis(100);

/// One version of a file: a copy is served only while its file still has this stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    inode: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileStamp {
    /// The file's length in bytes.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// The stamp of a file's current metadata.
    #[cfg(unix)]
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let ns = |secs: i64, nanos: i64| i128::from(secs) * 1_000_000_000 + i128::from(nanos);
        Self {
            len: meta.len(),
            inode: meta.ino(),
            modified_ns: ns(meta.mtime(), meta.mtime_nsec()),
            changed_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The stamp of a file's current metadata (length and modification time only).
    #[cfg(not(unix))]
    pub fn of(meta: &std::fs::Metadata) -> Self {
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        Self {
            len: meta.len(),
            inode: 0,
            modified_ns: modified.and_then(|d| i128::try_from(d.as_nanos()).ok()).unwrap_or(0),
            changed_ns: 0,
        }
    }
}

/// A copy, the stamp of its file, and when the file was last found with that stamp.
#[derive(Clone)]
struct Entry {
    bytes: Bytes,
    stamp: FileStamp,
    checked: Instant,
}

/// What the cache has for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A copy checked less than [`RECHECK_AFTER`] ago: serve it.
    Fresh(Bytes),
    /// A copy to serve only if its file still has this stamp (then [`ObjectCache::confirm`]).
    Recheck(Bytes, FileStamp),
    /// No copy.
    Miss,
}

#[derive(Default)]
struct Inner {
    objects: HashMap<Path, Entry>,
    /// Insertion order, for eviction. May name paths already forgotten (skipped when evicting),
    /// and a path forgotten and written again twice (its first place then evicts it early).
    order: VecDeque<Path>,
    bytes: usize,
}

/// Recently written or read small objects of one local store.
pub struct ObjectCache {
    inner: Mutex<Inner>,
    capacity: usize,
}

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

    /// The cached copy of the object at `path`, and whether its file must be checked first.
    pub fn get(&self, path: &Path) -> Lookup {
        match self.lock().objects.get(path) {
            Some(entry) if entry.checked.elapsed() < RECHECK_AFTER => Lookup::Fresh(entry.bytes.clone()),
            Some(entry) => Lookup::Recheck(entry.bytes.clone(), entry.stamp),
            None => Lookup::Miss,
        }
    }

    /// Notes that the file of the copy at `path` was just found with `stamp` unchanged.
    pub fn confirm(&self, path: &Path, stamp: FileStamp) {
        if let Some(entry) = self.lock().objects.get_mut(path)
            && entry.stamp == stamp
        {
            entry.checked = Instant::now();
        }
    }

    /// Keeps a copy of the object at `path`, read or written whole, whose file has `stamp`.
    pub fn insert(&self, path: &Path, bytes: &Bytes, stamp: FileStamp) {
        if bytes.len() > CACHED_OBJECT_MAX || bytes.len() > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.objects.remove(path) {
            inner.bytes -= old.bytes.len();
        }
        while inner.bytes + bytes.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(evicted) = inner.objects.remove(&oldest) {
                inner.bytes -= evicted.bytes.len();
            }
        }
        inner.bytes += bytes.len();
        inner.objects.insert(path.clone(), Entry { bytes: bytes.clone(), stamp, checked: Instant::now() });
        inner.order.push_back(path.clone());
    }

    /// Drops the copy of an object deleted or changed.
    pub fn forget(&self, path: &Path) {
        let mut inner = self.lock();
        if let Some(removed) = inner.objects.remove(path) {
            inner.bytes -= removed.bytes.len();
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

    fn stamp(n: u64) -> FileStamp {
        FileStamp { len: n, inode: n, modified_ns: 0, changed_ns: 0 }
    }

    fn bytes_of(cache: &ObjectCache, name: &str) -> Option<Bytes> {
        match cache.get(&path(name)) {
            Lookup::Fresh(bytes) | Lookup::Recheck(bytes, _) => Some(bytes),
            Lookup::Miss => None,
        }
    }

    #[test]
    fn keeps_what_fits_and_evicts_the_oldest_first() {
        let cache = ObjectCache::with_capacity(10);
        cache.insert(&path("a"), &Bytes::from_static(b"aaaa"), stamp(1));
        cache.insert(&path("b"), &Bytes::from_static(b"bbbb"), stamp(2));
        cache.insert(&path("c"), &Bytes::from_static(b"cccc"), stamp(3));
        assert_eq!(bytes_of(&cache, "a"), None);
        assert_eq!(bytes_of(&cache, "b").as_deref(), Some(&b"bbbb"[..]));
        assert_eq!(cache.get(&path("c")), Lookup::Fresh(Bytes::from_static(b"cccc")));
        cache.insert(&path("big"), &Bytes::from(vec![0; 11]), stamp(4));
        assert_eq!(bytes_of(&cache, "big"), None);
        assert_eq!(bytes_of(&cache, "b").as_deref(), Some(&b"bbbb"[..]), "a refused object evicts nothing");
    }

    #[test]
    fn objects_over_the_size_limit_are_not_kept() {
        let cache = ObjectCache::default();
        cache.insert(&path("large"), &Bytes::from(vec![0; CACHED_OBJECT_MAX + 1]), stamp(1));
        assert_eq!(bytes_of(&cache, "large"), None);
        cache.insert(&path("limit"), &Bytes::from(vec![0; CACHED_OBJECT_MAX]), stamp(2));
        assert!(bytes_of(&cache, "limit").is_some());
    }

    #[test]
    fn a_new_copy_replaces_the_old_and_forgetting_keeps_the_byte_count_right() {
        let cache = ObjectCache::with_capacity(8);
        cache.insert(&path("a"), &Bytes::from_static(b"aaaa"), stamp(1));
        cache.insert(&path("a"), &Bytes::from_static(b"AAAA"), stamp(2));
        assert_eq!(bytes_of(&cache, "a"), Some(Bytes::from_static(b"AAAA")));
        cache.forget(&path("a"));
        assert_eq!(bytes_of(&cache, "a"), None);
        cache.insert(&path("b"), &Bytes::from_static(b"bbbb"), stamp(3));
        cache.insert(&path("c"), &Bytes::from_static(b"cccc"), stamp(4));
        assert!(bytes_of(&cache, "b").is_some() && bytes_of(&cache, "c").is_some());
        cache.insert(&path("d"), &Bytes::from_static(b"dddd"), stamp(5));
        assert_eq!(bytes_of(&cache, "b"), None);
        assert!(bytes_of(&cache, "c").is_some() && bytes_of(&cache, "d").is_some());
    }

    #[test]
    fn a_copy_is_rechecked_after_a_while_and_confirmed_only_with_its_own_stamp() {
        let cache = ObjectCache::default();
        cache.insert(&path("a"), &Bytes::from_static(b"aaaa"), stamp(1));
        assert_eq!(cache.get(&path("a")), Lookup::Fresh(Bytes::from_static(b"aaaa")));
        std::thread::sleep(RECHECK_AFTER);
        assert_eq!(cache.get(&path("a")), Lookup::Recheck(Bytes::from_static(b"aaaa"), stamp(1)));
        cache.confirm(&path("a"), stamp(2));
        assert!(matches!(cache.get(&path("a")), Lookup::Recheck(..)), "another stamp confirms nothing");
        cache.confirm(&path("a"), stamp(1));
        assert_eq!(cache.get(&path("a")), Lookup::Fresh(Bytes::from_static(b"aaaa")));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_changed_in_place_or_replaced_has_another_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"one").unwrap();
        let first = FileStamp::of(&std::fs::metadata(&file).unwrap());
        assert_eq!(first, FileStamp::of(&std::fs::metadata(&file).unwrap()));
        std::fs::write(&file, b"two").unwrap();
        assert_ne!(first, FileStamp::of(&std::fs::metadata(&file).unwrap()), "same length, rewritten in place");
        let other = dir.path().join("g");
        std::fs::write(&other, b"two").unwrap();
        std::fs::rename(&other, &file).unwrap();
        assert_ne!(first, FileStamp::of(&std::fs::metadata(&file).unwrap()), "replaced");
    }
}
