//! The `backup-server` binary as a child process.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a server may take to print where it listens before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many of the last stderr lines are kept (for failure messages) when no log file is given.
const STDERR_TAIL: usize = 200;

/// The line the server prints once it listens, before its URL.
const LISTENING: &str = "backup-server listening on ";

/// A running `backup-server`, killed (SIGKILL) when dropped if still alive.
pub struct ServerProcess {
    /// The process.
    pub child: Child,
    /// Base URL from its "listening on" line.
    pub url: String,
    /// Every stdout line so far (more arrive through [`ServerProcess::drain_stdout`]).
    pub stdout: Vec<String>,
    lines: mpsc::Receiver<String>,
    stderr: Stderr,
}

/// Where the server's stderr (its logs) goes.
enum Stderr {
    File(PathBuf),
    Tail(Arc<Mutex<VecDeque<String>>>),
}

impl Stderr {
    fn text(&self) -> String {
        match self {
            Self::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
            Self::Tail(tail) => {
                tail.lock().map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
            }
        }
    }
}

/// Starts `binary` (a `backup-server`) with `args` (and `--listen 127.0.0.1:0` unless they have
/// `--listen`) and the extra environment `envs`, and waits until it prints where it listens.
/// Its stderr goes to `log_file` (appended), or else is kept in memory for failure messages.
///
/// Fails the test, with what the server printed, if it exits first or does not say where it
/// listens within [`START_TIMEOUT`].
pub fn spawn_server(binary: &Path, args: &[&str], envs: &[(&str, &str)], log_file: Option<&Path>) -> ServerProcess {
    let mut command = Command::new(binary);
    if !args.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    command.args(args).envs(envs.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped());
    let stderr = match log_file {
        Some(path) => {
            let log = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
            command.stderr(log);
            Stderr::File(path.to_owned())
        }
        None => {
            command.stderr(Stdio::piped());
            Stderr::Tail(Arc::default())
        }
    };
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    if let Stderr::Tail(tail) = &stderr {
        let tail = Arc::clone(tail);
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || keep_tail(pipe, &tail));
    }
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + START_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let url = line.strip_prefix(LISTENING).map(str::to_owned);
                seen.push(line);
                if let Some(url) = url {
                    // The store and key-fingerprint lines follow at once.
                    for _ in 0..2 {
                        if let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
                            seen.push(line);
                        }
                    }
                    return ServerProcess { child, url, stdout: seen, lines, stderr };
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                // The stderr thread may still be copying the last lines.
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "{} exited with {status} before it listened\nargs: {args:?}\nstdout: {seen:?}\nstderr:\n{}",
                    binary.display(),
                    stderr.text()
                );
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not print where it listens within {} s\nargs: {args:?}\nstdout: {seen:?}\nstderr:\n{}",
                    binary.display(),
                    START_TIMEOUT.as_secs(),
                    stderr.text()
                );
            }
        }
    }
}

fn keep_tail(pipe: impl Read, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(pipe).lines().map_while(Result::ok) {
        let Ok(mut tail) = tail.lock() else { return };
        if tail.len() == STDERR_TAIL {
            tail.pop_front();
        }
        tail.push_back(line);
    }
}

/// Starts the workspace's `backup-server` listening on `listen` (`127.0.0.1:0` for a free port)
/// with its data in `data` and the extra arguments `extra`.
pub fn start_server_on(data: &Path, listen: &str, extra: &[&str]) -> ServerProcess {
    let binary = crate::workspace_binary("backup-server");
    let mut args = vec!["--listen", listen, "--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    spawn_server(&binary, &args, &[], None)
}

/// Starts the workspace's `backup-server` on a free loopback port with its data in `data`.
pub fn start_server(data: &Path, extra: &[&str]) -> ServerProcess {
    start_server_on(data, "127.0.0.1:0", extra)
}

/// Runs `binary` to completion with `args` and the extra environment `envs` (maintenance
/// commands, refusals to start).
pub fn run_server(binary: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(binary)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()))
}

impl ServerProcess {
    /// The socket address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.url.rsplit_once("://").unwrap().1.parse().unwrap()
    }

    /// SIGKILL, and waits for the process.
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

    /// Every stdout line printed so far.
    pub fn drain_stdout(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.stdout.push(line);
        }
        self.stdout.clone()
    }

    /// What it wrote to stderr: its log file, or the last lines kept in memory.
    pub fn stderr(&self) -> String {
        self.stderr.text()
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

/// A free loopback address, for a server that must come back where its clients expect it.
pub fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The workspace's `backup-server` with a fixed address and data directory, stopped (SIGKILL)
/// and restarted at will.
pub struct RestartableServer {
    /// Its data directory.
    pub data: PathBuf,
    /// Where it listens (`127.0.0.1:<port>`).
    pub address: String,
    extra: Vec<String>,
    process: Option<ServerProcess>,
}

impl RestartableServer {
    /// Starts it on a free loopback address with its data in `data` and the extra arguments
    /// `extra` (used on every restart too).
    pub fn start(data: PathBuf, extra: &[&str]) -> Self {
        let extra = extra.iter().map(|s| (*s).to_owned()).collect();
        let mut server = Self { data, address: free_address(), extra, process: None };
        server.restart();
        server
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Kills it (SIGKILL) if it runs.
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Stops it if it runs, and starts it again at the same address on the same data.
    pub fn restart(&mut self) {
        self.stop();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.process = Some(start_server_on(&self.data, &self.address, &extra));
    }
}
