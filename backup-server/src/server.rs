//! Starting and stopping a server: store and setup resolution, the data-directory lock, the
//! plain-HTTP refusal, TLS, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::Handle;
use axum_server::accept::NoDelayAcceptor;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};

use crate::config::Settings;
use crate::secrets::ServerSecrets;
use crate::state::AppState;
use crate::storage::{S3Options, Storage};

/// Why the server could not start. Messages never contain secrets.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// An exclusive lock on a local store directory, held for the life of the process.
pub struct DirLock {
    _file: std::fs::File,
}

/// The name of the lock file at the root of a local store.
pub const LOCK_FILE: &str = ".backup-server.lock";

impl DirLock {
    /// Takes the lock on `dir`, failing at once if another process holds it.
    pub fn acquire(dir: &std::path::Path) -> Result<Self, StartError> {
        Self::try_acquire(dir)?.ok_or_else(|| busy(dir))
    }

    /// Takes the lock on `dir` without waiting: `None` if another process holds it.
    pub fn try_acquire(dir: &std::path::Path) -> Result<Option<Self>, StartError> {
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StartError(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(StartError(format!("cannot lock {}: {e}", path.display()))),
        }
    }
}

fn busy(dir: &std::path::Path) -> StartError {
    StartError(format!(
        "{} is in use by another backup-server process (lock {})",
        dir.display(),
        dir.join(LOCK_FILE).display()
    ))
}

/// Directories a start-up is about to create, removed again unless the start succeeds: a failed
/// start leaves the file system as it found it.
#[derive(Debug, Default)]
pub struct CreatedDirs {
    /// Directories that did not exist when noted, deepest first per note.
    dirs: Vec<std::path::PathBuf>,
    kept: bool,
}

impl CreatedDirs {
    /// Notes `path` and those of its ancestors that do not exist yet.
    pub fn note(&mut self, path: &std::path::Path) {
        let mut current = Some(path);
        while let Some(dir) = current.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            if !self.dirs.iter().any(|d| d == dir) {
                self.dirs.push(dir.to_owned());
            }
            current = dir.parent();
        }
    }

    /// The start succeeded: keep everything.
    pub fn keep(mut self) {
        self.kept = true;
    }

    /// Removes what the start created in the noted directories: the store's lock file and the
    /// directories themselves, deepest first, each only if it is then empty.
    fn remove(&self) {
        let mut dirs = self.dirs.clone();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            let _ = std::fs::remove_file(dir.join(LOCK_FILE));
            let _ = std::fs::remove_dir(&dir);
        }
    }
}

impl Drop for CreatedDirs {
    fn drop(&mut self) {
        if !self.kept {
            self.remove();
        }
    }
}

/// Who opens a store: the server, which creates a missing local store, or a maintenance command,
/// which needs an existing one and cannot run beside a server on a local store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// The server itself.
    Server,
    /// A maintenance command, by its name (`unlock-account`).
    Command(&'static str),
}

/// The root directory of the local store the settings name, if the store is local. Nothing is
/// checked or created.
pub fn local_store_root(settings: &Settings) -> Option<std::path::PathBuf> {
    match settings.store.as_deref() {
        None => Some(settings.data_dir().join("objects")),
        Some(u) => u.strip_prefix("file://").filter(|p| !p.is_empty()).map(std::path::PathBuf::from),
    }
}

/// Opens the store the settings name, creating a missing local store, and takes the directory
/// lock of a local store.
pub fn open_store(settings: &Settings) -> Result<(Storage, Option<DirLock>), StartError> {
    open_store_for(settings, Opener::Server)
}

/// Opens the store the settings name for `opener`: a maintenance command gets a clear refusal
/// when the local store does not exist or a server holds its lock.
pub fn open_store_for(settings: &Settings, opener: Opener) -> Result<(Storage, Option<DirLock>), StartError> {
    let url = settings.store.clone();
    let url = url.as_deref();
    let local = |root: std::path::PathBuf| -> Result<(Storage, Option<DirLock>), StartError> {
        if let Opener::Command(command) = opener
            && !root.is_dir()
        {
            return Err(StartError(format!(
                "no local store at {}: give {command} the server's --data-dir (or --store, or --config)",
                root.display()
            )));
        }
        let storage = Storage::local(&root).map_err(|e| StartError(e.to_string()))?;
        let lock = match (DirLock::try_acquire(&root)?, opener) {
            (Some(lock), _) => lock,
            (None, Opener::Server) => return Err(busy(&root)),
            (None, Opener::Command(command)) => {
                return Err(StartError(format!(
                    "the server is running on this data directory ({} is locked by a backup-server process): \
                     stop it first, then run {command}",
                    root.display()
                )));
            }
        };
        Ok((storage, Some(lock)))
    };
    match url {
        None => local(settings.data_dir().join("objects")),
        Some(u) if u.starts_with("file://") => {
            let path = &u["file://".len()..];
            if path.is_empty() {
                return Err(StartError("the file:// URL names no directory".into()));
            }
            local(std::path::PathBuf::from(path))
        }
        Some(u) if u.starts_with("s3://") => {
            let options = S3Options {
                endpoint: settings.s3_endpoint.clone(),
                region: settings.s3_region.clone(),
                allow_http: settings.s3_allow_http.unwrap_or(false),
            };
            Ok((Storage::s3(u, &options).map_err(|e| StartError(e.to_string()))?, None))
        }
        Some("memory://") => Ok((Storage::memory(), None)),
        Some(other) => {
            Err(StartError(format!("unsupported store URL {other}: use file:///path, s3://bucket/prefix or memory://")))
        }
    }
}

/// Whether a missing setup file may be created: only when a server starts on a local store. A
/// replica on a shared bucket, or a maintenance command, that found no setup would otherwise
/// invent a different one and treat every account as unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingSetup {
    /// Create it (mode 0600).
    Create,
    /// Refuse to start.
    Refuse,
}

/// Loads the setup from `BACKUP_SERVER_SETUP` or the setup file. Returns the secrets and, if a
/// file was created, its path.
pub fn load_secrets(
    settings: &Settings,
    missing: MissingSetup,
) -> Result<(ServerSecrets, Option<std::path::PathBuf>), StartError> {
    if let Ok(value) = std::env::var("BACKUP_SERVER_SETUP") {
        return Ok((ServerSecrets::from_env_value(&value).map_err(|e| StartError(e.to_string()))?, None));
    }
    let path = settings.setup_file();
    if missing == MissingSetup::Refuse && !path.exists() {
        return Err(StartError(format!(
            "no server setup: {} does not exist and BACKUP_SERVER_SETUP is not set; every replica and \
             maintenance command needs the deployment's existing setup",
            path.display()
        )));
    }
    let (secrets, created) = ServerSecrets::load_or_create(&path).map_err(|e| StartError(e.to_string()))?;
    Ok((secrets, created.then_some(path)))
}

/// Refuses plain HTTP on a non-loopback address unless explicitly allowed.
pub fn check_plain_http(addr: SocketAddr, tls: bool, insecure_http: bool) -> Result<(), StartError> {
    if tls || addr.ip().is_loopback() || insecure_http {
        return Ok(());
    }
    Err(StartError(format!(
        "refusing to serve plain HTTP on {addr}, which is not a loopback address: give --tls-cert and --tls-key, \
         or --insecure-http if a TLS-terminating proxy is in front"
    )))
}

/// A short, non-secret fingerprint of the server's OPAQUE public key for operators and users to
/// compare with what clients pinned.
pub fn key_fingerprint(secrets: &ServerSecrets) -> String {
    let hash = blake3::hash(&secrets.public_key());
    let hex = hash.to_hex();
    hex[..32].as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

/// Serves `state` on `listener` until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish for up to `grace`.
pub async fn serve(
    state: Arc<AppState>,
    listener: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let handle: Handle<SocketAddr> = Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        stopper.graceful_shutdown(Some(grace));
    });
    let sweeper = state.clone();
    tokio::spawn(async move {
        let removed = crate::http::sweep_staging(&sweeper, Duration::from_secs(3600)).await;
        if removed > 0 {
            tracing::info!(removed, "removed stale staged uploads");
        }
    });
    let purger = state.clone();
    tokio::spawn(async move {
        // Deleted objects past their grace period: at start, then every hour.
        let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            match crate::http::purge_deleted(&purger, crate::state::now_secs()).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "purged deleted objects past their grace period"),
                Err(error) => tracing::warn!(?error, "purging deleted objects failed; retried in an hour"),
            }
            // Presigned uploads whose URL expired: reservations kept or released.
            match crate::http::sweep_direct_uploads(&purger, crate::state::now_secs()).await {
                Ok(0) => {}
                Ok(settled) => tracing::info!(settled, "settled presigned uploads whose URL expired"),
                Err(error) => tracing::warn!(?error, "settling presigned uploads failed; retried in an hour"),
            }
        }
    });
    let header_timeout = state.limits.header_read_timeout;
    let app = crate::http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    // TCP_NODELAY: responses are written as headers then body; without it, Nagle's algorithm and
    // delayed ACKs stall keep-alive connections by tens of milliseconds per request.
    let mut server = axum_server::from_tcp(listener)?.handle(handle);
    // A client gets this long to send its request headers (slow-header clients cannot hold a
    // connection open indefinitely); bodies are bounded by the request and transfer time limits.
    server.http_builder().http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout);
    match tls {
        Some(config) => {
            let acceptor = RustlsAcceptor::new(config).acceptor(NoDelayAcceptor::new());
            server.acceptor(acceptor).serve(app).await
        }
        None => server.acceptor(NoDelayAcceptor::new()).serve(app).await,
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn termination_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// A server running on its own thread and runtime, for tests and embedding.
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The state it serves (for inspecting metrics or storage in tests).
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningServer {
    /// Starts `state` on 127.0.0.1 at an ephemeral port, plain HTTP.
    pub fn start(state: AppState) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(state);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let served = state.clone();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let shutdown = async move {
                    let _ = stopped.await;
                };
                if let Err(error) = serve(served, listener, None, shutdown, Duration::from_secs(5)).await {
                    tracing::error!(%error, "embedded server failed");
                }
            });
        });
        Ok(Self { addr, state, stop: Some(stop), thread: Some(thread) })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let public: SocketAddr = "0.0.0.0:8371".parse().unwrap();
        let loopback: SocketAddr = "127.0.0.1:8371".parse().unwrap();
        assert!(check_plain_http(loopback, false, false).is_ok());
        assert!(check_plain_http(public, true, false).is_ok());
        assert!(check_plain_http(public, false, true).is_ok());
        let err = check_plain_http(public, false, false).unwrap_err();
        assert!(err.0.contains("--insecure-http"));
    }

    #[test]
    fn created_directories_go_unless_kept_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("data").join("objects");
        let mut created = CreatedDirs::default();
        created.note(&store);
        created.note(dir.path());
        std::fs::create_dir_all(&store).unwrap();
        let lock = DirLock::acquire(&store).unwrap();
        drop(created);
        drop(lock);
        assert!(!dir.path().join("data").exists());
        assert!(dir.path().exists(), "a directory that existed stays");

        let mut created = CreatedDirs::default();
        created.note(&store);
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(dir.path().join("data").join("someone-else"), b"x").unwrap();
        drop(created);
        assert!(!store.exists());
        assert!(dir.path().join("data").join("someone-else").exists(), "a directory not empty stays");

        let mut created = CreatedDirs::default();
        created.note(&dir.path().join("kept"));
        std::fs::create_dir(dir.path().join("kept")).unwrap();
        created.keep();
        assert!(dir.path().join("kept").exists());
    }

    #[test]
    fn a_local_store_is_locked_against_a_second_process() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        assert!(DirLock::acquire(dir.path()).is_err());
        drop(first);
        assert!(DirLock::acquire(dir.path()).is_ok());
    }
}
