//! Durable storage on `object_store`, with compare-and-swap records.
//!
//! Everything the server keeps lives under one of three backends: in-memory (tests), the local file
//! system (the single-node default, fsync on) or an S3-compatible bucket (stateless replicas). Small
//! JSON records (account record, usage counter, escrow, head) change only by compare-and-swap:
//!
//! - every record update first takes an in-process lock for its path (striped), so requests on one
//!   replica never race each other;
//! - on S3 and in memory the write is then conditional on the version read (`If-Match` on the ETag,
//!   or create-if-absent), so replicas sharing a bucket cannot lose each other's updates;
//! - the local file system has no conditional update, so there the in-process lock is the whole
//!   story, and [`crate::server::DirLock`] holds an exclusive lock on the data directory so that no second
//!   process can write the same files.
//!
//! A local store is private to the server's user: [`Storage::local`] sets the process umask to 077
//! before it creates anything (so every file `object_store` writes, its temporary files and the
//! directories it creates are 0600 and 0700, whatever umask the process started with) and restricts
//! the store's root directory to 0700.

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::AmazonS3ConfigKey;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::objcache::{FileStamp, Lookup, ObjectCache};

/// Why storage failed. Messages name paths by their account hash and object id only.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The backend failed or was unreachable.
    #[error("storage backend error: {0}")]
    Backend(#[from] object_store::Error),
    /// A record kept changing under us; the request may be retried.
    #[error("record {0} is under heavy concurrent update")]
    Contended(String),
    /// A stored record does not parse: storage corruption or a newer server's format.
    #[error("stored record {0} is unreadable")]
    CorruptRecord(String),
    /// The store URL or its options are not usable.
    #[error("{0}")]
    Config(String),
}

/// Which kind of backend a [`Storage`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// `object_store`'s in-memory store (tests).
    Memory,
    /// The local file system.
    LocalFs,
    /// An S3-compatible bucket.
    S3,
}

/// A record as read: its bytes and the backend version to condition the next write on.
#[derive(Debug, Clone)]
pub struct Record {
    /// The stored bytes.
    pub bytes: Bytes,
    version: UpdateVersion,
}

impl Record {
    /// The version clients see in `ETag` headers: a hash of the content, identical on every
    /// backend and replica.
    pub fn etag(&self) -> String {
        content_etag(&self.bytes)
    }
}

/// The `ETag` of a record's content (see [`backup_api::record_etag`]).
pub fn content_etag(bytes: &[u8]) -> String {
    backup_api::record_etag(bytes)
}

/// What a record update wants to do with the current value.
pub enum Change<T> {
    /// Write these bytes and return `T`.
    Write(Vec<u8>, T),
    /// Leave the record as it is and return `T`.
    Keep(T),
}

const LOCK_STRIPES: usize = 256;
const MAX_CAS_ATTEMPTS: u32 = 20;

/// The object store plus the locking that makes record updates safe.
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    kind: BackendKind,
    local_root: Option<std::path::PathBuf>,
    /// Small objects recently written or read, on a local store only (see [`crate::objcache`]).
    cache: Option<ObjectCache>,
    /// On S3: what presigned URLs need (ADR 0019).
    signer: Option<S3Signing>,
    locks: Vec<tokio::sync::Mutex<()>>,
    object_locks: Vec<tokio::sync::Mutex<()>>,
    description: String,
}

impl Storage {
    /// Wraps an existing store. `description` is what the server prints (no secrets).
    pub fn new(store: Arc<dyn ObjectStore>, kind: BackendKind, description: String) -> Self {
        let stripes = || (0..LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        Self {
            store,
            kind,
            local_root: None,
            cache: None,
            signer: None,
            locks: stripes(),
            object_locks: stripes(),
            description,
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> Self {
        Self::new(Arc::new(object_store::memory::InMemory::new()), BackendKind::Memory, "memory://".into())
    }

    /// A local directory, created if missing, with fsync on every write.
    ///
    /// First calls [`restrict_umask`], which changes the umask of the whole process, so that every
    /// file and directory created in the store is private to the server's user; an existing root
    /// directory open to group or others is restricted to 0700 (logged as a warning), and a root
    /// that cannot be restricted is an error.
    pub fn local(root: &std::path::Path) -> Result<Self, StorageError> {
        restrict_umask();
        std::fs::create_dir_all(root)
            .map_err(|e| StorageError::Config(format!("cannot create {}: {e}", root.display())))?;
        let root =
            root.canonicalize().map_err(|e| StorageError::Config(format!("cannot resolve {}: {e}", root.display())))?;
        make_private_dir(&root)?;
        let store =
            object_store::local::LocalFileSystem::new_with_prefix(&root)?.with_fsync(true).with_automatic_cleanup(true);
        let mut storage = Self::new(Arc::new(store), BackendKind::LocalFs, format!("file://{}", root.display()));
        storage.local_root = Some(root);
        storage.cache = Some(ObjectCache::default());
        Ok(storage)
    }

    /// An S3 bucket (`s3://bucket[/prefix]`). Credentials, region and endpoint come from the
    /// standard `AWS_*` environment variables unless given in `options`.
    pub fn s3(url: &str, options: &S3Options) -> Result<Self, StorageError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| StorageError::Config(format!("not an s3:// URL: {url}")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StorageError::Config("the s3:// URL names no bucket".into()));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_copy_if_not_exists(object_store::aws::S3CopyIfNotExists::Multipart);
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if options.allow_http {
            builder = builder.with_allow_http(true);
        }
        let region = builder.get_config_value(&AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned());
        let virtual_hosted = builder
            .get_config_value(&AmazonS3ConfigKey::VirtualHostedStyleRequest)
            .is_some_and(|value| value.eq_ignore_ascii_case("true"));
        let bucket_url =
            bucket_url(builder.get_config_value(&AmazonS3ConfigKey::Endpoint), bucket, &region, virtual_hosted);
        let signer = Arc::new(builder.build()?);
        let s3: Arc<dyn ObjectStore> = signer.clone();
        let prefix = prefix.trim_matches('/');
        let store: Arc<dyn ObjectStore> =
            if prefix.is_empty() { s3 } else { Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)) };
        let shown = match &options.endpoint {
            Some(endpoint) => format!("s3://{bucket}/{prefix} at {endpoint}"),
            None => format!("s3://{bucket}/{prefix}"),
        };
        let mut storage = Self::new(store, BackendKind::S3, shown);
        storage.signer = Some(S3Signing { s3: signer, bucket_url, prefix: Path::from(prefix), region });
        Ok(storage)
    }

    /// Whether [`Storage::presign`] can answer (an S3 store).
    pub fn can_presign(&self) -> bool {
        self.signer.is_some()
    }

    /// A presigned URL for one `method` request on the object at `path`, valid for `expires_in`,
    /// with `headers` (lower-case names) signed into it: the request must carry them exactly
    /// (`content-length` included). `None` on a store that cannot presign (local, in-memory).
    pub async fn presign(
        &self,
        method: &str,
        path: &Path,
        headers: &[(&str, &str)],
        expires_in: Duration,
    ) -> Result<Option<String>, StorageError> {
        let Some(signing) = &self.signer else { return Ok(None) };
        let credential = signing.s3.credentials().get_credential().await?;
        let key: Path = signing.prefix.parts().chain(path.parts()).collect();
        let (origin, bucket_path) = split_bucket_url(&signing.bucket_url);
        let url_path = format!("{bucket_path}/{}", key.as_ref());
        let target = crate::presign::PresignTarget {
            endpoint: origin,
            path: &url_path,
            region: &signing.region,
            key_id: &credential.key_id,
            secret: &credential.secret_key,
            token: credential.token.as_deref(),
        };
        Ok(Some(crate::presign::presign(method, &target, headers, crate::clock::now_secs(), expires_in.as_secs())))
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// What to print about the store (no credentials).
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Reads a record, `None` if absent.
    pub async fn read(&self, path: &Path) -> Result<Option<Record>, StorageError> {
        match self.store.get(path).await {
            Ok(result) => {
                let version = UpdateVersion { e_tag: result.meta.e_tag.clone(), version: result.meta.version.clone() };
                Ok(Some(Record { bytes: result.bytes().await?, version }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// On a local store, reads a whole object of at most `max_len` bytes with one blocking file
    /// read, bypassing `object_store`'s separate open and read steps, or from the cache of recently
    /// written or read small objects without touching the file. `Ok(None)` when the object
    /// is absent; `Err` with [`FastRead::NotApplicable`] on other backends or for larger objects,
    /// where the caller uses the general path. Valid only for paths whose segments need no
    /// escaping (account hashes and checked object identifiers).
    pub async fn read_small_local(&self, path: &Path, max_len: u64) -> Result<Option<Bytes>, FastRead> {
        let Some(root) = &self.local_root else { return Err(FastRead::NotApplicable) };
        let file_path = || local_file(root, path);
        if let Some(cache) = &self.cache {
            match cache.get(path) {
                Lookup::Fresh(bytes) if bytes.len() as u64 <= max_len => return Ok(Some(bytes)),
                // One `stat` on this thread (the kernel keeps the inode of a file read recently):
                // the copy is served only while the file is the one it came from.
                Lookup::Recheck(bytes, stamp) if bytes.len() as u64 <= max_len => {
                    match std::fs::metadata(file_path()) {
                        Ok(meta) if FileStamp::of(&meta) == stamp => {
                            cache.confirm(path, stamp);
                            return Ok(Some(bytes));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            cache.forget(path);
                            return Ok(None);
                        }
                        _ => cache.forget(path),
                    }
                }
                _ => {}
            }
        }
        let ticket = self.cache.as_ref().map(ObjectCache::ticket);
        let file_path = file_path();
        let read = tokio::task::spawn_blocking(move || -> std::io::Result<Option<(Vec<u8>, FileStamp)>> {
            use std::io::Read as _;
            let mut file = match std::fs::File::open(&file_path) {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let meta = file.metadata()?;
            if meta.len() > max_len {
                return Err(std::io::Error::other("large"));
            }
            let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            file.read_to_end(&mut bytes)?;
            Ok(Some((bytes, FileStamp::of(&meta))))
        })
        .await;
        match read {
            Ok(Ok(found)) => Ok(found.map(|(bytes, stamp)| {
                let bytes = Bytes::from(bytes);
                if let (Some(cache), Some(ticket)) = (&self.cache, ticket)
                    && bytes.len() as u64 == stamp.file_len()
                {
                    cache.insert_read(ticket, path, &bytes, stamp);
                }
                bytes
            })),
            _ => Err(FastRead::NotApplicable),
        }
    }

    /// Tells the cache of a local store about an object just written whole.
    pub fn object_written(&self, path: &Path, bytes: &Bytes) {
        if let (Some(cache), Some(root)) = (&self.cache, &self.local_root) {
            // One `stat` of the file just written (its inode is in the kernel's cache).
            match std::fs::metadata(local_file(root, path)) {
                Ok(meta) if meta.len() == bytes.len() as u64 => cache.insert(path, bytes, FileStamp::of(&meta)),
                _ => cache.forget(path),
            }
        }
    }

    /// Tells the cache of a local store that an object was deleted.
    pub fn object_deleted(&self, path: &Path) {
        if let Some(cache) = &self.cache {
            cache.forget(path);
        }
    }

    /// Read-modify-write of one record. `change` sees the current bytes (or `None`) and decides;
    /// it may run more than once if another replica wins a race, so it must be free of side
    /// effects. Errors from `change` end the update without writing.
    pub async fn update<T, E>(
        &self,
        path: &Path,
        mut change: impl FnMut(Option<&[u8]>) -> Result<Change<T>, E>,
    ) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let _guard = self.lock_for(path).lock().await;
        for attempt in 0..MAX_CAS_ATTEMPTS {
            let current = self.read(path).await?;
            let (bytes, out) = match change(current.as_ref().map(|r| &r.bytes[..]))? {
                Change::Keep(out) => return Ok(out),
                Change::Write(bytes, out) => (bytes, out),
            };
            if self.write_conditionally(path, bytes, current.map(|r| r.version)).await? {
                return Ok(out);
            }
            tokio::time::sleep(backoff(attempt)).await;
        }
        Err(StorageError::Contended(shown_path(path)).into())
    }

    /// Writes `bytes` if the record is still at `expected` (`None`: still absent). Returns whether
    /// it was written. The caller holds the path's lock.
    async fn write_conditionally(
        &self,
        path: &Path,
        bytes: Vec<u8>,
        expected: Option<UpdateVersion>,
    ) -> Result<bool, StorageError> {
        let mode = match (expected, self.kind) {
            (None, _) => PutMode::Create,
            // The path lock serialises every writer of this directory (no other process may use
            // it), so the record is still what was read.
            (Some(_), BackendKind::LocalFs) => PutMode::Overwrite,
            (Some(version), _) => PutMode::Update(version),
        };
        let options = PutOptions { mode, ..Default::default() };
        match self.store.put_opts(path, PutPayload::from(bytes), options).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Serialises operations on one object within this process (a lock set separate from the
    /// record locks, so holding it while updating a record cannot deadlock).
    pub async fn lock_object(&self, path: &Path) -> tokio::sync::MutexGuard<'_, ()> {
        self.object_locks[stripe(path)].lock().await
    }

    fn lock_for(&self, path: &Path) -> &tokio::sync::Mutex<()> {
        &self.locks[stripe(path)]
    }
}

/// Sets the process umask to 077, keeping any stricter bits already set, so that every file and
/// directory the process creates from now on is private to its user (files 0600, directories 0700,
/// when created with the usual 0666 and 0777). The umask is process-wide: this affects every thread
/// of the process. A no-op on platforms without a umask.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        use nix::sys::stat::{Mode, umask};
        let private = Mode::S_IRWXG | Mode::S_IRWXO;
        let previous = umask(private);
        umask(previous | private);
    }
}

/// Restricts an existing directory to its owner (mode 0700) if group or others have any access.
#[cfg(unix)]
fn make_private_dir(dir: &std::path::Path) -> Result<(), StorageError> {
    use std::os::unix::fs::PermissionsExt as _;
    let failed =
        |e: std::io::Error| StorageError::Config(format!("cannot restrict {} to mode 0700: {e}", dir.display()));
    let mode = std::fs::metadata(dir).map_err(failed)?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(failed)?;
        tracing::warn!(
            path = %dir.display(),
            old_mode = format!("{mode:04o}"),
            "the local store was open to other users; its root directory is now 0700"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private_dir(_dir: &std::path::Path) -> Result<(), StorageError> {
    Ok(())
}

fn stripe(path: &Path) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    path.as_ref().hash(&mut hasher);
    // The modulo keeps the index below LOCK_STRIPES, so the conversion cannot truncate.
    (hasher.finish() % LOCK_STRIPES as u64) as usize
}

/// What an S3 store needs to presign URLs: the store (for its credentials), the bucket's URL as
/// the server reaches it, this server's prefix in the bucket and the region.
struct S3Signing {
    s3: Arc<object_store::aws::AmazonS3>,
    bucket_url: String,
    prefix: Path,
    region: String,
}

/// A bucket's URL split into its origin (`scheme://host[:port]`) and the path before the
/// object keys: `/bucket` with path-style requests, empty with virtual-hosted-style ones.
fn split_bucket_url(bucket_url: &str) -> (&str, &str) {
    let after_scheme = bucket_url.find("://").map_or(0, |i| i + 3);
    match bucket_url[after_scheme..].find('/') {
        Some(i) => bucket_url.split_at(after_scheme + i),
        None => (bucket_url, ""),
    }
}

/// The URL under which a bucket's objects live, as `object_store` addresses them: with path-style
/// requests (the default) the endpoint and then the bucket; with virtual-hosted-style requests
/// (`AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`) the bucket in the host name of AWS's endpoint, or a
/// custom endpoint as given (which then names the bucket itself).
fn bucket_url(endpoint: Option<String>, bucket: &str, region: &str, virtual_hosted: bool) -> String {
    match (endpoint, virtual_hosted) {
        (Some(endpoint), true) => endpoint.trim_end_matches('/').to_owned(),
        (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
        (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
    }
}

/// Why [`Storage::read_small_local`] did not answer; the caller falls back to `object_store`.
#[derive(Debug)]
pub enum FastRead {
    /// Not a local store, the object is too large, or the read failed.
    NotApplicable,
}

/// Options for an S3 store beyond the `AWS_*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// A custom endpoint (for S3-compatible servers), e.g. `http://127.0.0.1:8333`.
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint.
    pub allow_http: bool,
}

fn backoff(attempt: u32) -> Duration {
    let mut jitter = [0u8; 1];
    crate::random::fill(&mut jitter);
    Duration::from_millis(10 * u64::from(attempt.min(10) + 1) + u64::from(jitter[0] % 50))
}

/// A path as it may appear in errors and logs: account hashes and object ids only.
pub fn shown_path(path: &Path) -> String {
    path.as_ref().to_owned()
}

/// The file of a local store's object: its path segments joined under the store's root (valid for
/// segments that need no escaping, like account hashes and checked object identifiers).
fn local_file(root: &std::path::Path, path: &Path) -> std::path::PathBuf {
    path.parts().fold(root.to_path_buf(), |p, part| p.join(part.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_address_the_bucket_as_the_store_does() {
        let cases = [
            (Some("http://127.0.0.1:8333/"), false, "http://127.0.0.1:8333", "/b"),
            (Some("https://b.storage.example"), true, "https://b.storage.example", ""),
            (None, false, "https://s3.eu-west-1.amazonaws.com", "/b"),
            (None, true, "https://b.s3.eu-west-1.amazonaws.com", ""),
        ];
        for (endpoint, virtual_hosted, origin, path) in cases {
            let url = bucket_url(endpoint.map(str::to_owned), "b", "eu-west-1", virtual_hosted);
            assert_eq!(split_bucket_url(&url), (origin, path), "{endpoint:?}, virtual hosted: {virtual_hosted}");
        }
    }

    async fn counter_increments(storage: Arc<Storage>, path: Path, times: u32) {
        for _ in 0..times {
            storage
                .update::<(), StorageError>(&path, |current| {
                    let n: u32 = current.map(|b| String::from_utf8_lossy(b).parse().unwrap_or(0)).unwrap_or(0);
                    Ok(Change::Write((n + 1).to_string().into_bytes(), ()))
                })
                .await
                .unwrap();
        }
    }

    async fn concurrent_updates_are_not_lost(storage: Storage) {
        let storage = Arc::new(storage);
        let path = Path::from("counter");
        let tasks: Vec<_> =
            (0..8).map(|_| tokio::spawn(counter_increments(storage.clone(), path.clone(), 25))).collect();
        for task in tasks {
            task.await.unwrap();
        }
        let record = storage.read(&path).await.unwrap().unwrap();
        assert_eq!(&record.bytes[..], b"200");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn memory_updates_are_serialised() {
        concurrent_updates_are_not_lost(Storage::memory()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn local_updates_are_serialised() {
        let dir = tempfile::tempdir().unwrap();
        concurrent_updates_are_not_lost(Storage::local(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn a_stale_version_is_refused_on_memory() {
        let storage = Storage::memory();
        let path = Path::from("r");
        assert!(storage.write_conditionally(&path, b"1".to_vec(), None).await.unwrap());
        assert!(!storage.write_conditionally(&path, b"x".to_vec(), None).await.unwrap(), "create over existing");
        let first = storage.read(&path).await.unwrap().unwrap();
        assert!(storage.write_conditionally(&path, b"2".to_vec(), Some(first.version.clone())).await.unwrap());
        assert!(!storage.write_conditionally(&path, b"3".to_vec(), Some(first.version)).await.unwrap(), "stale");
        assert_eq!(&storage.read(&path).await.unwrap().unwrap().bytes[..], b"2");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_cached_object_changed_or_deleted_behind_the_servers_back_is_read_as_the_disk_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::local(dir.path()).unwrap();
        let path = Path::from("accounts/ab/objects/pack-1");
        storage.store().put(&path, PutPayload::from_static(b"as written")).await.unwrap();
        storage.object_written(&path, &Bytes::from_static(b"as written"));
        let file = dir.path().join("accounts/ab/objects/pack-1");
        let read = || async { storage.read_small_local(&path, 1 << 20).await.unwrap() };
        assert_eq!(read().await.as_deref(), Some(&b"as written"[..]));
        assert_eq!(read().await.as_deref(), Some(&b"as written"[..]), "from the cache");
        // File times move in steps of the kernel's clock tick (a few ms): an in-place change of
        // the same length within one tick of the copy's own write would go unseen.
        std::thread::sleep(std::time::Duration::from_millis(30));
        std::fs::write(&file, b"as altered").unwrap();
        // A copy is served unchecked for RECHECK_AFTER after its file was last found unchanged.
        let recheck = || std::thread::sleep(crate::objcache::RECHECK_AFTER);
        recheck();
        assert_eq!(read().await.as_deref(), Some(&b"as altered"[..]), "same length, altered in place");
        std::fs::write(&file, b"cut").unwrap();
        recheck();
        assert_eq!(read().await.as_deref(), Some(&b"cut"[..]));
        std::fs::remove_file(&file).unwrap();
        recheck();
        assert_eq!(read().await, None, "deleted behind its back");
    }

    #[test]
    fn an_open_local_root_is_restricted_to_its_owner() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("objects");
        std::fs::create_dir(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Storage::local(&root).unwrap();
        assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o7777, 0o700);
        // A root already private is left as it is.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o500)).unwrap();
        Storage::local(&root).unwrap();
        assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o7777, 0o500);
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    }

    #[test]
    fn etags_follow_content() {
        assert_eq!(content_etag(b"a"), content_etag(b"a"));
        assert_ne!(content_etag(b"a"), content_etag(b"b"));
        assert_eq!(content_etag(b"a").len(), 34);
    }
}
