//! Shared by the backup-server integration tests: backends, an embedded server with a client,
//! raw HTTP, and this package's binary as a child process (through the workspace's
//! `test-support`).
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use backup_api::KsfParams;
use backup_api::client::BackupClient;
use backup_server::guesses::{LoginDelays, LoginPolicy};
use backup_server::storage::S3Options;
use backup_server::{AppState, Limits, RunningServer, ServerSecrets, Storage};
pub use test_support::server::ServerProcess;
pub use test_support::unique;

/// Starts this package's `backup-server` with `args` (on a free loopback port unless they have
/// `--listen`) and waits until it listens; its stderr goes to `log_file`.
pub fn spawn(args: &[&str], envs: &[(&str, &str)], log_file: &Path) -> ServerProcess {
    test_support::server::spawn_server(Path::new(env!("CARGO_BIN_EXE_backup-server")), args, envs, Some(log_file))
}

/// Runs this package's `backup-server` to completion (maintenance commands and refusals).
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    test_support::server::run_server(Path::new(env!("CARGO_BIN_EXE_backup-server")), args, envs)
}

/// Cheap key stretching so tests run quickly (the server's cost does not depend on it).
pub fn ksf() -> KsfParams {
    KsfParams::new(KsfParams::MIN_MEMORY_KIB, 1, 1).unwrap()
}

/// The storage backends the conformance suite runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    LocalFs,
    S3,
}

/// A fresh, empty store of the given kind (a unique prefix on S3, which fails the test when the
/// S3 test server is missing). The temp dir lives as long as the returned guard.
pub fn storage(backend: Backend) -> (Storage, Option<tempfile::TempDir>) {
    match backend {
        Backend::Memory => (Storage::memory(), None),
        Backend::LocalFs => {
            let dir = tempfile::tempdir().unwrap();
            (Storage::local(dir.path()).unwrap(), Some(dir))
        }
        Backend::S3 => {
            let env = test_support::s3::s3_env();
            let url = format!("s3://{}/{}", env.bucket, unique("conformance"));
            let options = S3Options { endpoint: Some(env.endpoint), region: None, allow_http: true };
            (Storage::s3(&url, &options).unwrap(), None)
        }
    }
}

/// An embedded server and a client for it.
pub struct Harness {
    pub server: RunningServer,
    pub client: BackupClient,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    pub fn start(backend: Backend, limits: Limits) -> Self {
        let (storage, dir) = storage(backend);
        let server = RunningServer::start(AppState::new(ServerSecrets::generate(), storage, limits)).unwrap();
        let client = BackupClient::new(&server.url()).unwrap();
        Self { server, client, _dir: dir }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

/// Limits for tests: no rate limiting unless a test asks for it.
pub fn test_limits() -> Limits {
    let login = LoginPolicy { starts_per_ip_minute: (0, 0), ..LoginPolicy::default() };
    Limits { login, per_ip_rate: (0, 0), per_account_rate: (0, 0), ..Limits::default() }
}

/// Test limits with this delay schedule.
pub fn limits_with_delays(free: u32, base_secs: u64, max_secs: u64) -> Limits {
    let mut limits = test_limits();
    limits.login.delays = LoginDelays { free, base_secs, max_secs };
    limits
}

/// A raw HTTP/1.1 exchange: sends `head` (request line and headers, without the blank line),
/// `Connection: close` and `body`; returns the status and the response body.
pub fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    exchange(addr, head, body, false)
}

/// Like [`raw`], but closes the sending side after `body`, as a client that dies mid-upload.
pub fn raw_then_close(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    exchange(addr, head, body, true)
}

fn exchange(addr: SocketAddr, head: &str, body: &[u8], close: bool) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The server may answer and close before reading a refused body.
    let _ = stream.write_all(body);
    if close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// Like [`raw`], but returns the response head (status line and headers) instead of the body.
pub fn raw_head(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split_once("\r\n\r\n").map(|(h, _)| h.to_owned()).unwrap_or(text)
}

/// The `error` code of a JSON error body.
pub fn error_code(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| format!("<no error code in {body:?}>"))
}
