//! The real binary: kill -9 during uploads, graceful shutdown, the plain-HTTP refusal, TLS, the
//! setup file, the data-directory lock, operator unlock, logs free of secrets, and a local store
//! private to the server's user.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use backup_api::client::{BackupClient, BearerToken, ClientError, ClientOptions};
use support::{ServerProcess, ksf, run, spawn, unique};

fn local_server(dir: &std::path::Path, extra: &[&str]) -> ServerProcess {
    let data = dir.to_str().unwrap();
    let mut args = vec!["--data-dir", data, "--rate-limit-per-ip", "0", "--rate-limit-per-account", "0"];
    args.extend_from_slice(extra);
    spawn(&args, &[], &dir.join("server.log"))
}

fn session(client: &BackupClient) -> BearerToken {
    let account = unique("proc");
    client.register(&account, b"pw", ksf()).unwrap();
    client.login(&account, b"pw").unwrap().token
}

/// Starts an upload of `len` bytes and sends only `sent` of them; returns the open connection.
fn partial_upload(addr: std::net::SocketAddr, token: &BearerToken, id: &str, len: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    let head = format!(
        "PUT /v1/objects/{id} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {len}\r\n\r\n",
        token.expose()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![0x5au8; 1 << 20];
    let mut left = sent;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    stream.flush().unwrap();
    stream
}

#[test]
fn kill_9_during_uploads_never_leaves_a_partial_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = local_server(dir.path(), &[]);
    let client = BackupClient::new(&server.url).unwrap();
    let token = session(&client);
    // Single-put (buffered) and staged (multipart) uploads, cut at several points.
    let cases = [
        ("small-a", 4 << 20, 1 << 20),
        ("small-b", 6 << 20, (6 << 20) - 1),
        ("large-a", 64 << 20, 20 << 20),
        ("large-b", 40 << 20, (40 << 20) - 1),
    ];
    for (id, len, sent) in cases {
        let _connection = partial_upload(server.addr(), &token, id, len, sent);
        std::thread::sleep(Duration::from_millis(300));
        server.kill_9();
        server = local_server(dir.path(), &[]);
        let client = BackupClient::new(&server.url).unwrap();
        // Session tokens are stateless and the setup file persists, so the token still works.
        assert_eq!(client.head_object(&token, id).unwrap(), None, "{id} is not served");
        assert!(
            client.list_objects(&token, None, None).unwrap().objects.iter().all(|o| o.id != id),
            "{id} is not listed"
        );
        assert_eq!(client.get_object(&token, id, 10).unwrap_err().code(), Some(backup_api::ErrorCode::NotFound));
    }
    // The same identifiers upload cleanly after the crashes.
    let client = BackupClient::new(&server.url).unwrap();
    for (id, len, _) in cases {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        client.put_object(&token, id, &data).unwrap();
        assert!(client.get_object(&token, id, len as u64).unwrap() == data, "{id}");
    }
}

#[test]
fn graceful_shutdown_finishes_an_upload_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = local_server(dir.path(), &["--shutdown-grace-secs", "20"]);
    let client = BackupClient::new(&server.url).unwrap();
    let token = session(&client);
    let len = 24 << 20;
    let mut connection = partial_upload(server.addr(), &token, "in-flight", len, 8 << 20);
    server.terminate();
    std::thread::sleep(Duration::from_millis(300));
    // New connections are no longer served...
    let refused = TcpStream::connect(server.addr())
        .and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut buf = [0u8; 64];
            s.read(&mut buf)
        })
        .map_or(true, |n| n == 0);
    assert!(refused, "a new connection was served after SIGTERM");
    // ...but the upload in flight completes.
    let rest = vec![0x5au8; len - (8 << 20)];
    connection.write_all(&rest).unwrap();
    let mut response = String::new();
    connection.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = connection.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    // The object is there after a restart.
    let server = local_server(dir.path(), &[]);
    let client = BackupClient::new(&server.url).unwrap();
    assert_eq!(client.head_object(&token, "in-flight").unwrap(), Some(len as u64));
}

#[test]
fn plain_http_is_refused_on_a_public_address_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = run(&["--listen", "0.0.0.0:0", "--data-dir", data], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("refusing to serve plain HTTP") && stderr.contains("--insecure-http"), "{stderr}");
    let server = spawn(&["--listen", "0.0.0.0:0", "--data-dir", data, "--insecure-http"], &[], &dir.path().join("log"));
    assert!(server.url.starts_with("http://0.0.0.0:"), "{}", server.url);
}

#[test]
fn tls_is_built_in() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = (dir.path().join("cert.pem"), dir.path().join("key.pem"), dir.path().join("cert.der"));
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl is a system dependency of the tests");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    openssl(&["x509", "-in", cert.to_str().unwrap(), "-outform", "der", "-out", der.to_str().unwrap()]);
    let server = local_server(dir.path(), &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    assert!(server.url.starts_with("https://127.0.0.1:"), "{}", server.url);
    let options = ClientOptions { root_certificates: vec![std::fs::read(&der).unwrap()], ..Default::default() };
    let client = BackupClient::with_options(&server.url, options).unwrap();
    let token = session(&client);
    client.put_object(&token, "over-tls", b"bytes").unwrap();
    assert_eq!(client.get_object(&token, "over-tls", 10).unwrap(), b"bytes");
    // Without the certificate trusted, the client refuses the connection.
    let untrusted = BackupClient::new(&server.url).unwrap();
    assert!(matches!(untrusted.login("x", b"y"), Err(ClientError::Transport(_))));
    // Plain HTTP to the TLS port gets nothing useful.
    let (status, _) = support::raw(server.addr(), "GET /healthz HTTP/1.1", b"");
    assert_ne!(status, 200);
}

#[test]
fn setup_file_is_private_persistent_and_replaceable_by_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let first = local_server(dir.path(), &[]);
    let setup = dir.path().join("opaque-setup.key");
    assert!(first.stdout.iter().any(|l| l.starts_with("created a new OPAQUE server setup")), "{:?}", first.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&setup).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let fingerprint =
        |p: &ServerProcess| p.stdout.iter().find(|l| l.starts_with("OPAQUE server key fingerprint")).cloned().unwrap();
    let printed = fingerprint(&first);
    drop(first);
    let second = local_server(dir.path(), &[]);
    assert_eq!(fingerprint(&second), printed, "the setup persists across restarts");
    drop(second);
    use base64::Engine as _;
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(std::fs::read(&setup).unwrap());
    let other = tempfile::tempdir().unwrap();
    let from_env = spawn(
        &["--data-dir", other.path().to_str().unwrap()],
        &[("BACKUP_SERVER_SETUP", &value)],
        &other.path().join("log"),
    );
    assert_eq!(fingerprint(&from_env), printed, "BACKUP_SERVER_SETUP carries the same setup");
    assert!(!other.path().join("opaque-setup.key").exists(), "no setup file is written when the variable is set");
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    assert!(!log.contains(&value) && !from_env.stdout.concat().contains(&value), "the setup is never printed");
}

#[test]
fn a_replica_on_a_bucket_never_invents_a_setup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let output = run(&["--listen", "127.0.0.1:0", "--store", "s3://some-bucket/prefix", "--data-dir", data], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no server setup"), "{stderr}");
    assert!(!dir.path().join("opaque-setup.key").exists());
}

#[test]
fn a_second_process_cannot_use_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _first = local_server(dir.path(), &[]);
    let output = run(&["--listen", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("in use by another backup-server process"), "{stderr}");
}

#[test]
fn operator_unlocks_a_delayed_account() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut server = local_server(dir.path(), &["--login-attempt-limit", "2"]);
    let client = BackupClient::new(&server.url).unwrap();
    let account = unique("forgetful");
    client.register(&account, b"right", ksf()).unwrap();
    for _ in 0..2 {
        assert!(matches!(client.login(&account, b"wrong"), Err(ClientError::LoginFailed)));
    }
    assert!(matches!(client.login(&account, b"right"), Err(ClientError::LoginFailed)), "delayed");
    let busy = run(&["--data-dir", data, "unlock-account", "--account", &account], &[]);
    assert!(!busy.status.success(), "the running server holds the directory");
    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let unknown = run(&["--data-dir", data, "unlock-account", "--account", "nobody"], &[]);
    assert!(!unknown.status.success());
    let elsewhere = tempfile::tempdir().unwrap();
    let no_setup =
        run(&["--data-dir", elsewhere.path().to_str().unwrap(), "unlock-account", "--account", &account], &[]);
    assert!(
        String::from_utf8_lossy(&no_setup.stderr).contains("no server setup"),
        "a maintenance command never invents a setup"
    );
    assert!(!elsewhere.path().join("opaque-setup.key").exists());
    let unlocked = run(&["--data-dir", data, "unlock-account", "--account", &account], &[]);
    assert!(unlocked.status.success(), "{}", String::from_utf8_lossy(&unlocked.stderr));
    assert!(!String::from_utf8_lossy(&unlocked.stdout).contains(&account), "the account name is not printed");
    let server = local_server(dir.path(), &["--login-attempt-limit", "2"]);
    let client = BackupClient::new(&server.url).unwrap();
    client.login(&account, b"right").unwrap();
}

#[test]
fn logs_and_output_carry_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let log_file = dir.path().join("server.log");
    let envs = [("RUST_LOG", "debug")];
    let mut server = spawn(&["--data-dir", data, "--log-format", "json", "--rate-limit-per-ip", "0"], &envs, &log_file);
    let client = BackupClient::new(&server.url).unwrap();
    let account = "canary-account-7f3a9c@example.org";
    let password = b"canary-password-51d2";
    client.register(account, password, ksf()).unwrap();
    assert!(client.login(account, b"wrong").is_err());
    let session = client.login(account, password).unwrap();
    let (_, device) = client.enrol_device(&session.token, "canary-device-name").unwrap();
    client.put_escrow(&session.token, b"canary-escrow-bytes", None).unwrap();
    client.put_object(&device, "pack-1", b"canary-object-bytes").unwrap();
    let _ = client.get_object(&device, "pack-1", 100).unwrap();
    let _ = client.login("canary-unknown-account", b"x");
    server.terminate();
    server.wait_exit(Duration::from_secs(10));
    let mut output = std::fs::read_to_string(&log_file).unwrap();
    output.push_str(&server.drain_stdout().join("\n"));
    assert!(output.contains("login succeeded"), "debug logs were produced: {output}");
    for secret in [
        account,
        "canary-password",
        "canary-unknown-account",
        session.token.expose(),
        device.expose(),
        "canary-escrow-bytes",
        "canary-object-bytes",
    ] {
        assert!(!output.contains(secret), "{secret:?} appears in the server's output");
    }
    // The stored files hold neither the account name nor the tokens either.
    let needles: [(&str, &[u8]); 4] = [
        ("account name", account.as_bytes()),
        ("session token", session.token.expose().as_bytes()),
        ("device token", device.expose().as_bytes()),
        ("password", password),
    ];
    let scanned = test_support::canary::assert_absent(&dir.path().join("objects"), &needles);
    assert!(scanned.files > 0, "the scan covered the stored objects");
}

/// Every file and directory of a local store, as `(path, is_dir, permission bits)`, the root
/// included; symbolic links are reported as files and not followed.
#[cfg(unix)]
fn walk_modes(root: &std::path::Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
        found.push((path, meta.is_dir(), meta.permissions().mode() & 0o7777));
    }
    found
}

#[cfg(unix)]
#[test]
fn the_local_store_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let probe = dir.path().join("umask-probe");
    // The server runs under a shell that sets a permissive umask first, and proves it with a probe
    // file created under that umask.
    let script = r#"umask 022 && : > "$UMASK_PROBE" && exec "$0" "$@""#;
    let binary = env!("CARGO_BIN_EXE_backup-server");
    let data_arg = data.to_str().unwrap();
    let args = [
        "-c",
        script,
        binary,
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data_arg,
        "--rate-limit-per-ip",
        "0",
        "--rate-limit-per-account",
        "0",
    ];
    let envs = [("UMASK_PROBE", probe.to_str().unwrap())];
    let server = test_support::server::spawn_server(
        std::path::Path::new("/bin/sh"),
        &args,
        &envs,
        Some(&dir.path().join("server.log")),
    );
    assert_eq!(std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777, 0o644, "the umask was 022");

    let client = BackupClient::new(&server.url).unwrap();
    let token = session(&client);
    client.put_escrow(&token, b"escrow", None).unwrap();
    client.put_object(&token, "small", b"small object").unwrap();
    let large: Vec<u8> = (0..(9usize << 20)).map(|i| (i % 251) as u8).collect();
    client.put_object(&token, "large", &large).unwrap();
    let _ = client.login(&unique("nobody"), b"x");
    // A large upload held open mid-body, so its staged file is in the store during the walk.
    let _connection = partial_upload(server.addr(), &token, "staged", 32 << 20, 9 << 20);
    let staging = data.join("objects").join("staging");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none()) {
        assert!(std::time::Instant::now() < deadline, "no staged upload appeared");
        std::thread::sleep(Duration::from_millis(50));
    }

    let found = walk_modes(&data);
    let has = |what: &dyn Fn(&str) -> bool| found.iter().any(|(p, dir, _)| !dir && what(p.to_str().unwrap()));
    assert!(has(&|p| p.ends_with("/record")), "an account record");
    assert!(has(&|p| p.ends_with("/usage")), "a usage record");
    assert!(has(&|p| p.ends_with("/escrow")), "an escrow record");
    assert!(has(&|p| p.ends_with("/objects/small") || p.ends_with("/objects/large")), "objects");
    assert!(has(&|p| p.contains("/staging/")), "a staged upload");
    assert!(has(&|p| p.contains("/decoy/")), "a decoy scratch file");
    assert!(has(&|p| p.ends_with("opaque-setup.key")), "the setup file");
    assert!(has(&|p| p.ends_with(backup_server::server::LOCK_FILE)), "the lock file");
    let open: Vec<_> = found
        .iter()
        .filter(|(_, is_dir, mode)| *mode != if *is_dir { 0o700 } else { 0o600 })
        .map(|(path, is_dir, mode)| format!("{} {} {mode:04o}", if *is_dir { "dir" } else { "file" }, path.display()))
        .collect();
    assert!(open.is_empty(), "not private to the server's user:\n{}", open.join("\n"));
    assert!(found.len() > 15, "the walk covered the store: {found:?}");
}

/// The operator lists an account's deleted objects in their grace period, with when each is
/// purged (`list-deleted`); the account name is not printed.
#[test]
fn the_operator_lists_deleted_objects_in_their_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let mut server = local_server(dir.path(), &["--deletion-grace-days", "3"]);
    let client = BackupClient::new(&server.url).unwrap();
    let account = unique("pruner");
    client.register(&account, b"pw", ksf()).unwrap();
    let session = client.login(&account, b"pw").unwrap().token;
    let (_, device) = client.enrol_device(&session, "phone").unwrap();
    client.put_object(&device, "pack-deleted", b"0123456789").unwrap();
    client.put_object(&device, "pack-kept", b"kept").unwrap();
    client.delete_object(&session, "pack-deleted").unwrap();
    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));

    let listed = run(&["--data-dir", data, "--deletion-grace-days", "3", "list-deleted", "--account", &account], &[]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.contains("1 deleted objects in their grace period"), "{text}");
    let line = text.lines().find(|l| l.starts_with("pack-deleted\t")).unwrap_or_else(|| panic!("{text}"));
    let times: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(times.len(), 3, "{line}");
    assert_eq!(times[2], times[1] + 3 * 86_400, "purged after the grace period: {line}");
    assert!(!text.contains("pack-kept") && !text.contains(&account), "{text}");
    let unknown = run(&["--data-dir", data, "list-deleted", "--account", "nobody"], &[]);
    assert!(!unknown.status.success());
}
