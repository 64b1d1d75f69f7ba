//! The real `backup-server` binary as a child process.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server process; killed on drop if still alive.
pub struct ServerProcess {
    pub child: Child,
    /// Base URL parsed from its "listening on" line.
    pub url: String,
    /// Every stdout line so far (more arrive on `lines`).
    pub stdout: Vec<String>,
    lines: mpsc::Receiver<String>,
    /// Where its stderr (the logs) goes.
    pub log_file: PathBuf,
}

/// Starts the binary with `args` (and `--listen 127.0.0.1:0` unless given) and waits until it
/// prints where it listens. `log_file` receives stderr.
pub fn spawn(args: &[&str], envs: &[(&str, &str)], log_file: &Path) -> Result<ServerProcess, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backup-server"));
    if !args.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_file).unwrap();
    let mut child = command.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let url = line.strip_prefix("backup-server listening on ").map(str::to_owned);
                seen.push(line);
                if let Some(url) = url {
                    // The store and fingerprint lines follow at once.
                    for _ in 0..2 {
                        if let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
                            seen.push(line);
                        }
                    }
                    return Ok(ServerProcess { child, url, stdout: seen, lines, log_file: log_file.to_owned() });
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                let log = std::fs::read_to_string(log_file).unwrap_or_default();
                return Err(format!("exited with {status} before listening; stdout {seen:?}; stderr {log}"));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(Instant::now() < deadline, "server did not start: {seen:?}");
            }
        }
    }
}

impl ServerProcess {
    /// The socket address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.url.rsplit_once("://").unwrap().1.parse().unwrap()
    }

    /// kill -9.
    pub fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Remaining stdout lines printed so far.
    pub fn drain_stdout(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.stdout.push(line);
        }
        self.stdout.clone()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary to completion (for maintenance commands and refusals).
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_backup-server"));
    command.args(args);
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().unwrap()
}
