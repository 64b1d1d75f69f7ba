//! What an operator meets running the real binary: login metrics that count wrong passwords and
//! delays, logs without colour codes off a terminal, settings accepted after the subcommand,
//! failed starts that leave no directories behind, and `unlock-account` refusing plainly while a
//! server holds the local store.
//!
//! Self-contained on purpose (no shared test helpers): it runs the binary and speaks raw HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use backup_api::KsfParams;
use backup_api::client::{BackupClient, ClientError};

const ESCAPE: &str = "\x1b[";

fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backup-server"));
    // Whatever the environment running the tests says about colour, the binary decides alone.
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "BACKUP_SERVER_SETUP", "RUST_LOG"] {
        command.env_remove(var);
    }
    command.env("TERM", "xterm-256color");
    command
}

fn ksf() -> KsfParams {
    KsfParams::new(KsfParams::MIN_MEMORY_KIB, 1, 1).unwrap()
}

/// A server process whose stdout and stderr are both pipes.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: mpsc::Receiver<Vec<u8>>,
}

impl Server {
    fn start(data_dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut command = binary();
        command.args(["--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()]);
        command.args(["--rate-limit-per-ip", "0", "--rate-limit-per-account", "0"]).args(extra);
        command.envs(envs.iter().copied());
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut err_pipe = child.stderr.take().unwrap();
        let (err_tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut all = Vec::new();
            let _ = err_pipe.read_to_end(&mut all);
            let _ = err_tx.send(all);
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Reads to the end even once nobody listens, so the server never writes to a closed pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "the server did not start");
            match lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("backup-server listening on http://") {
                        let addr = url.parse().unwrap();
                        return Self { child, addr, stderr };
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().unwrap();
                    let err = String::from_utf8_lossy(&stderr.recv().unwrap_or_default()).into_owned();
                    panic!("the server exited with {status} before listening: {err}");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGTERM, wait for the exit, and everything it wrote to stderr.
    fn stop(mut self) -> Vec<u8> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the server did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stderr.recv_timeout(Duration::from_secs(10)).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `GET path` over a fresh connection: status and body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The value of an unlabelled counter in a Prometheus exposition.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in {metrics}"))
}

fn run(args: &[&str], cwd: Option<&Path>, envs: &[(&str, &str)]) -> Output {
    let mut command = binary();
    command.args(args).envs(envs.iter().copied());
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Registers `account` and makes `wrong` wrong-password logins, each failing on the client.
fn register_and_fail(client: &BackupClient, account: &str, wrong: usize) {
    client.register(account, b"right password", ksf()).unwrap();
    for _ in 0..wrong {
        assert!(matches!(client.login(account, b"wrong password"), Err(ClientError::LoginFailed)));
    }
}

#[test]
fn wrong_passwords_and_delays_show_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--login-attempt-limit", "3"], &[]);
    let client = BackupClient::new(&server.url()).unwrap();

    // Three wrong passwords spend the free starts (each further one waits); the client fails each
    // on its side and never sends login/finish, so the guesses are counted at login/start.
    register_and_fail(&client, "metrics-victim@example.org", 3);
    let (status, metrics) = get(server.addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(counter(&metrics, "backup_login_attempts_total"), 3, "{metrics}");
    assert_eq!(counter(&metrics, "backup_logins_ok_total"), 0);
    assert_eq!(counter(&metrics, "backup_login_delays_total"), 1);
    assert_eq!(counter(&metrics, "backup_login_finishes_rejected_total"), 0);
    assert!(!metrics.contains("backup_logins_delayed_total"), "no metric tells a delayed account apart");

    // Delayed: wrong and right passwords alike fail (the starts come before the delay ends and
    // are not counted against the account, but the metric counts every start alike).
    for password in [&b"wrong again"[..], b"still wrong", b"right password"] {
        assert!(matches!(client.login("metrics-victim@example.org", password), Err(ClientError::LoginFailed)));
    }
    // A good login elsewhere, and a wrong one that does not delay.
    client.register("metrics-other@example.org", b"pw", ksf()).unwrap();
    client.login("metrics-other@example.org", b"pw").unwrap();
    assert!(client.login("metrics-other@example.org", b"nope").is_err());
    // An unknown account's start counts like any other.
    assert!(client.login("metrics-nobody@example.org", b"pw").is_err());

    let (_, metrics) = get(server.addr, "/metrics");
    let attempts = counter(&metrics, "backup_login_attempts_total");
    let ok = counter(&metrics, "backup_logins_ok_total");
    assert_eq!(attempts, 9, "{metrics}");
    assert_eq!(ok, 1);
    assert_eq!(attempts - ok, 8, "failed logins: 3 free ones, 3 during the delay, 1 elsewhere, 1 unknown");
    assert_eq!(counter(&metrics, "backup_login_delays_total"), 1);
    assert_eq!(counter(&metrics, "backup_login_finishes_rejected_total"), 0);
    assert!(
        metrics.contains("backup_http_requests_total{route=\"/v1/login/start\",method=\"POST\",status=\"200\"} 9"),
        "every login start is answered alike: {metrics}"
    );
}

/// Every metric the operator guide names (in the table and the alert examples) is one the server
/// exports, so the examples work as written.
/// A stranger who knows an account name reads the public /metrics around one login start: the
/// change is the same for an existing, a delayed and an unknown account.
#[test]
fn metrics_do_not_tell_a_stranger_whether_an_account_exists_or_is_delayed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--login-attempt-limit", "3"], &[]);
    let client = BackupClient::new(&server.url()).unwrap();
    register_and_fail(&client, "probe-existing@example.org", 0);
    register_and_fail(&client, "probe-delayed@example.org", 3);
    // The counters (the duration histogram varies with timing, not with the account).
    let counters = || -> Vec<(String, u64)> {
        let (_, metrics) = get(server.addr, "/metrics");
        metrics
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with("backup_http_request_duration_seconds"))
            .filter_map(|l| l.rsplit_once(' ').map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(0))))
            .collect()
    };
    let mut changes = Vec::new();
    for account in ["probe-existing@example.org", "probe-delayed@example.org", "probe-unknown@example.org"] {
        let before = counters();
        assert!(client.login(account, b"a guess").is_err());
        let after = counters();
        let changed: Vec<(String, u64)> = after
            .iter()
            .filter_map(|(k, v)| {
                let old = before.iter().find(|(b, _)| b == k).map_or(0, |(_, o)| *o);
                (*v != old).then(|| (k.clone(), v - old))
            })
            .collect();
        assert!(!changed.is_empty(), "the probe moved some counter (it is a real observation)");
        changes.push((account, changed));
    }
    assert_eq!(changes[0].1, changes[1].1, "existing vs delayed: {changes:?}");
    assert_eq!(changes[0].1, changes[2].1, "existing vs unknown: {changes:?}");
}

#[test]
fn the_operator_guide_names_only_exported_metrics() {
    let guide = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/operator-guide.md")).unwrap();
    let metrics = backup_server::metrics::Metrics::default();
    metrics.observe("/healthz", "GET", 200, Duration::from_millis(1));
    let exported: Vec<String> = metrics
        .render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next().map(str::to_owned))
        .collect();
    let mut named = Vec::new();
    for token in guide.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !token.starts_with("backup_") || token == "backup_server" {
            continue;
        }
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| token.strip_suffix(s)).unwrap_or(token);
        assert!(exported.iter().any(|e| e == base), "the operator guide names {token}, which is not exported");
        named.push(base.to_owned());
    }
    for name in &exported {
        assert!(named.contains(name), "{name} is exported but not documented in the operator guide");
    }
}

#[test]
fn output_to_a_pipe_has_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[("RUST_LOG", "debug")]);
    let client = BackupClient::new(&server.url()).unwrap();
    register_and_fail(&client, "colour@example.org", 1);
    let _ = get(server.addr, "/healthz");
    let logs = String::from_utf8(server.stop()).unwrap();
    assert!(logs.contains("account registered") && logs.contains("shutting down"), "logs were written: {logs}");
    assert!(!logs.contains(ESCAPE), "colour codes in logs written to a pipe: {logs:?}");

    // Refusals and the command-line parser's errors and help neither.
    let refused = run(&["--listen", "0.0.0.0:0", "--data-dir", dir.path().to_str().unwrap()], None, &[]);
    assert!(!refused.status.success());
    let bad_flag = run(&["--no-such-flag"], None, &[]);
    assert!(stderr(&bad_flag).contains("--no-such-flag"), "{}", stderr(&bad_flag));
    let help = run(&["--help"], None, &[]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("--data-dir"));
    for output in [&refused, &bad_flag, &help] {
        let all = [&output.stdout[..], &output.stderr[..]].concat();
        assert!(!String::from_utf8_lossy(&all).contains(ESCAPE), "{:?}", String::from_utf8_lossy(&all));
    }
}

#[test]
fn settings_may_follow_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let account = "after-the-subcommand@example.org";
    let server = Server::start(dir.path(), &["--login-attempt-limit", "2"], &[]);
    let client = BackupClient::new(&server.url()).unwrap();
    register_and_fail(&client, account, 2);
    assert!(client.login(account, b"right password").is_err(), "delayed");
    server.stop();

    let unlocked = run(&["unlock-account", "--account", account, "--data-dir", data], None, &[]);
    assert!(unlocked.status.success(), "{}", stderr(&unlocked));
    assert!(String::from_utf8_lossy(&unlocked.stdout).contains("unlocked"));
    // A config file after the subcommand too, and mixed positions.
    let config = dir.path().join("server.toml");
    std::fs::write(&config, format!("data_dir = {data:?}\n")).unwrap();
    let via_config = run(&["unlock-account", "--account", account, "--config", config.to_str().unwrap()], None, &[]);
    assert!(via_config.status.success(), "{}", stderr(&via_config));
    let mixed = run(&["--log-format", "json", "unlock-account", "--data-dir", data, "--account", account], None, &[]);
    assert!(mixed.status.success(), "{}", stderr(&mixed));

    let server = Server::start(dir.path(), &["--login-attempt-limit", "2"], &[]);
    BackupClient::new(&server.url()).unwrap().login(account, b"right password").unwrap();
}

#[test]
fn unlock_account_refuses_plainly_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let account = "busy@example.org";
    let server = Server::start(dir.path(), &["--login-attempt-limit", "1"], &[]);
    let client = BackupClient::new(&server.url()).unwrap();
    register_and_fail(&client, account, 1);

    let busy = run(&["unlock-account", "--account", account, "--data-dir", data], None, &[]);
    assert!(!busy.status.success());
    let message = stderr(&busy);
    assert!(
        message.contains("the server is running on this data directory")
            && message.contains("stop it first, then run unlock-account"),
        "{message}"
    );
    assert!(!message.contains(account), "{message}");
    // The server is unaffected and the account still delayed.
    assert_eq!(get(server.addr, "/healthz").0, 200);
    assert!(client.login(account, b"right password").is_err());

    server.stop();
    let unlocked = run(&["unlock-account", "--account", account, "--data-dir", data], None, &[]);
    assert!(unlocked.status.success(), "{}", stderr(&unlocked));
}

#[test]
fn a_failed_start_leaves_no_directories() {
    let work = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port_in_use = taken.local_addr().unwrap().to_string();

    // The default ./backup-server-data, with the port in use.
    let failed = run(&["--listen", &port_in_use], Some(work.path()), &[]);
    assert!(!failed.status.success());
    assert!(stderr(&failed).contains("cannot listen"), "{}", stderr(&failed));
    assert!(entries(work.path()).is_empty(), "{:?}", entries(work.path()));

    let fresh = work.path().join("new").join("data");
    let fresh_arg = fresh.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--listen", &port_in_use, "--data-dir", fresh_arg], "cannot listen"),
        (vec!["--listen", "0.0.0.0:0", "--data-dir", fresh_arg], "refusing to serve plain HTTP"),
        (vec!["--listen", "127.0.0.1:0", "--data-dir", fresh_arg, "--tls-cert", "/nonexistent/cert.pem"], "tls-key"),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                fresh_arg,
                "--tls-cert",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "TLS certificate",
        ),
        (vec!["--listen", "127.0.0.1:0", "--data-dir", fresh_arg, "--store", "ftp://x"], "unsupported store URL"),
    ];
    for (args, expected) in &cases {
        let failed = run(args, Some(work.path()), &[]);
        assert!(!failed.status.success(), "{args:?}");
        assert!(stderr(&failed).contains(expected), "{args:?}: {}", stderr(&failed));
        assert!(entries(work.path()).is_empty(), "{args:?} left {:?}", entries(work.path()));
    }

    // A setup file that does not load, found after the store was opened: what was created for
    // the store is removed again.
    let setup = work.path().join("bad-setup.key");
    std::fs::write(&setup, b"not a setup").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&setup, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let failed = run(
        &["--listen", "127.0.0.1:0", "--data-dir", fresh_arg, "--setup-file", setup.to_str().unwrap()],
        Some(work.path()),
        &[],
    );
    assert!(stderr(&failed).contains("does not hold a valid server setup"), "{}", stderr(&failed));
    assert_eq!(entries(work.path()), ["bad-setup.key"]);

    // A maintenance command never creates a store, with or without a setup.
    let no_setup = run(&["unlock-account", "--account", "a", "--data-dir", fresh_arg], Some(work.path()), &[]);
    assert!(stderr(&no_setup).contains("no server setup"), "{}", stderr(&no_setup));
    let with_setup = run(
        &["unlock-account", "--account", "a", "--data-dir", fresh_arg],
        Some(work.path()),
        &[("BACKUP_SERVER_SETUP", &setup_value())],
    );
    assert!(stderr(&with_setup).contains("no local store"), "{}", stderr(&with_setup));
    assert_eq!(entries(work.path()), ["bad-setup.key"]);

    // An existing data directory keeps what it held; only what the start added goes.
    let existing = work.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("keep-me"), b"x").unwrap();
    let failed = run(&["--listen", &port_in_use, "--data-dir", existing.to_str().unwrap()], None, &[]);
    assert!(!failed.status.success());
    assert_eq!(entries(&existing), ["keep-me"]);
    drop(taken);
}

/// A valid setup in its environment-variable form, made by the server itself.
fn setup_value() -> String {
    let dir = tempfile::tempdir().unwrap();
    let setup = dir.path().join("setup.key");
    let server = Server::start(dir.path(), &["--store", "memory://", "--setup-file", setup.to_str().unwrap()], &[]);
    server.stop();
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(std::fs::read(&setup).unwrap())
}
