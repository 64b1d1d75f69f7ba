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
//! server's. Eviction is first in, first out, by bytes charged: each copy's content plus a fixed
//! overhead per copy (its path and bookkeeping), so that tiny objects cannot outgrow the bound.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::path::Path;

/// Bytes of object data the cache holds at most.
pub const CACHE_BYTES: usize = 32 << 20;
/// Largest object the cache keeps.
pub const CACHED_OBJECT_MAX: usize = 64 << 10;
/// Bytes each copy is charged beyond its content (its path, twice, and the map's bookkeeping), so
/// that many tiny objects cannot grow the cache beyond its bound.
const ENTRY_OVERHEAD: usize = 256;
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
    /// Bytes charged for the copies held.
    bytes: usize,
    /// Copies forgotten so far; a read that began before one may not insert what it read.
    forgotten: u64,
}

/// The charge of a copy of `len` bytes at `path`.
fn charge(path: &Path, len: usize) -> usize {
    len + ENTRY_OVERHEAD + 2 * path.as_ref().len()
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

    /// A mark to take before reading a file whose content [`ObjectCache::insert_read`] keeps.
    pub fn ticket(&self) -> u64 {
        self.lock().forgotten
    }

    /// Keeps a copy of the object at `path` just written whole, whose file has `stamp`.
    pub fn insert(&self, path: &Path, bytes: &Bytes, stamp: FileStamp) {
        let mut inner = self.lock();
        self.insert_locked(&mut inner, path, bytes, stamp);
    }

    /// Keeps a copy read from a file with `stamp`, unless a copy was forgotten since `ticket`
    /// (the read may have begun before a deletion).
    pub fn insert_read(&self, ticket: u64, path: &Path, bytes: &Bytes, stamp: FileStamp) {
        let mut inner = self.lock();
        if inner.forgotten == ticket {
            self.insert_locked(&mut inner, path, bytes, stamp);
        }
    }

    fn insert_locked(&self, inner: &mut Inner, path: &Path, bytes: &Bytes, stamp: FileStamp) {
        if let Some(old) = inner.objects.remove(path) {
            inner.bytes -= charge(path, old.bytes.len());
        }
        let cost = charge(path, bytes.len());
        if bytes.len() > CACHED_OBJECT_MAX || cost > self.capacity {
            return;
        }
        while inner.bytes + cost > self.capacity {
            let Some(oldest) = inner.order.pop_front() else { break };
            if let Some(evicted) = inner.objects.remove(&oldest) {
                inner.bytes -= charge(&oldest, evicted.bytes.len());
            }
        }
        inner.bytes += cost;
        inner.objects.insert(path.clone(), Entry { bytes: bytes.clone(), stamp, checked: Instant::now() });
        inner.order.push_back(path.clone());
    }

    /// Drops the copy of an object deleted or changed, and refuses the inserts of reads begun
    /// before.
    pub fn forget(&self, path: &Path) {
        let mut inner = self.lock();
        inner.forgotten += 1;
        if let Some(removed) = inner.objects.remove(path) {
            inner.bytes -= charge(path, removed.bytes.len());
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

    /// A capacity for `n` copies of 4 bytes at the test paths.
    fn room_for(n: usize) -> usize {
        n * charge(&path("a"), 4)
    }

    #[test]
    fn keeps_what_fits_and_evicts_the_oldest_first() {
        let cache = ObjectCache::with_capacity(room_for(2) + 2);
        cache.insert(&path("a"), &Bytes::from_static(b"aaaa"), stamp(1));
        cache.insert(&path("b"), &Bytes::from_static(b"bbbb"), stamp(2));
        cache.insert(&path("c"), &Bytes::from_static(b"cccc"), stamp(3));
        assert_eq!(bytes_of(&cache, "a"), None);
        assert_eq!(bytes_of(&cache, "b").as_deref(), Some(&b"bbbb"[..]));
        assert_eq!(cache.get(&path("c")), Lookup::Fresh(Bytes::from_static(b"cccc")));
        cache.insert(&path("big"), &Bytes::from(vec![0; room_for(2)]), stamp(4));
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
        let cache = ObjectCache::with_capacity(room_for(2));
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
    fn tiny_objects_are_charged_their_overhead_and_a_refused_copy_drops_the_old_one() {
        let cache = ObjectCache::with_capacity(room_for(3));
        for i in 0..100 {
            cache.insert(&path(&format!("{i:04}")), &Bytes::new(), stamp(i));
        }
        let kept = (0..100).filter(|i| bytes_of(&cache, &format!("{i:04}")).is_some()).count();
        assert!(kept <= 3, "empty objects still cost their overhead: {kept} kept");
        cache.insert(&path("0099"), &Bytes::from(vec![0; CACHED_OBJECT_MAX + 1]), stamp(1));
        assert_eq!(bytes_of(&cache, "0099"), None, "the old copy does not outlive a newer, larger object");
    }

    #[test]
    fn a_read_begun_before_a_deletion_does_not_bring_the_copy_back() {
        let cache = ObjectCache::default();
        let before = cache.ticket();
        cache.forget(&path("a"));
        cache.insert_read(before, &path("a"), &Bytes::from_static(b"old"), stamp(1));
        assert_eq!(bytes_of(&cache, "a"), None);
        cache.insert_read(cache.ticket(), &path("a"), &Bytes::from_static(b"new"), stamp(2));
        assert_eq!(bytes_of(&cache, "a").as_deref(), Some(&b"new"[..]));
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
