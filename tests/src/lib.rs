//! Workspace-level end-to-end tests (in `tests/`) and their helpers.

/// What the crash harness's writer writes, so the checker can recompute it.
pub mod crash {
    /// Whether item `n` is a media import (else a message).
    pub fn is_media(n: u64) -> bool {
        n % 4 == 3
    }

    /// The body of message `n`.
    pub fn message_body(n: u64) -> String {
        format!("crash message {n} {}", "x".repeat((n % 97) as usize))
    }

    /// The content of media item `n`: up to ~300 KB, crossing segment boundaries.
    pub fn media_content(n: u64) -> Vec<u8> {
        let len = (n.wrapping_mul(7919) % 300_000) as usize;
        (0..len).map(|i| (i as u64).wrapping_mul(31).wrapping_add(n) as u8).collect()
    }
}

/// Running the workspace's binaries from tests: `backup-server` processes and the `vault` CLI.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub mod harness {
    use std::io::{BufRead as _, BufReader, Write as _};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};

    /// A workspace binary next to this test's executable. `cargo test --workspace` builds both
    /// (each is needed by its own package's tests); a test run of this package alone needs
    /// `cargo build --bin vault --bin backup-server` first.
    pub fn binary(name: &str) -> PathBuf {
        let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_owned();
        let path = dir.join(name);
        assert!(
            path.exists(),
            "{} is not built: run `cargo test --workspace`, or `cargo build --bin {name}` first",
            path.display()
        );
        path
    }

    /// A `backup-server` process, killed when dropped.
    pub struct Server {
        /// The process.
        pub child: Child,
        /// Where it listens.
        pub url: String,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts `backup-server` on a free loopback port with its data in `data`.
    pub fn start_server(data: &Path, extra: &[&str]) -> Server {
        start_server_on(data, "127.0.0.1:0", extra)
    }

    /// Starts `backup-server` listening on `listen` with its data in `data`.
    pub fn start_server_on(data: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(binary("backup-server"))
            .args(["--listen", listen, "--data-dir", data.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().expect("the server printed where it listens").unwrap();
            if let Some(url) = line.strip_prefix("backup-server listening on ") {
                break url.to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Server { child, url }
    }

    /// Runs the `vault` CLI on `dir` with `passphrase`, extra environment and stdin.
    pub fn vault(dir: &Path, passphrase: &str, args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Output {
        let mut child = Command::new(binary("vault"))
            .args(args)
            .env("VAULT_DIR", dir)
            .env("VAULT_PASSPHRASE", passphrase)
            .env_remove("VAULT_FAILPOINT")
            .envs(envs.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// The stdout of a command that must have succeeded.
    pub fn ok(output: Output) -> String {
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The JSON stdout of a command that must have succeeded.
    pub fn json(output: Output) -> serde_json::Value {
        serde_json::from_str(&ok(output)).unwrap()
    }

    /// Starts the `vault` CLI on `dir` in the background (output discarded), for killing it.
    pub fn spawn_vault(dir: &Path, passphrase: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
        Command::new(binary("vault"))
            .args(args)
            .env("VAULT_DIR", dir)
            .env("VAULT_PASSPHRASE", passphrase)
            .env_remove("VAULT_FAILPOINT")
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// The S3 test server's endpoint and bucket, or `None` (the test then skips) when none was
    /// started; with `BACKUP_TEST_REQUIRE_S3=1` a missing server fails the test instead.
    pub fn s3_test_server() -> Option<(String, String)> {
        match (std::env::var("BACKUP_TEST_S3_ENDPOINT"), std::env::var("BACKUP_TEST_S3_BUCKET")) {
            (Ok(endpoint), Ok(bucket)) => Some((endpoint, bucket)),
            _ => {
                assert!(
                    std::env::var("BACKUP_TEST_REQUIRE_S3").as_deref() != Ok("1"),
                    "no S3 server although BACKUP_TEST_REQUIRE_S3=1"
                );
                eprintln!("skipped: no S3 test server");
                None
            }
        }
    }

    /// Copies the directory tree `from` to `to` (files and directories only).
    pub fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// Every file under `dir` whose name starts with `prefix`.
    pub fn find_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(find_files(&path, prefix));
            } else if path.file_name().unwrap().to_str().unwrap().starts_with(prefix) {
                out.push(path);
            }
        }
        out
    }
}
