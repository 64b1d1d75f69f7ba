//! The `vault` CLI as a child process, and checks of what a command printed.

use std::borrow::Borrow;
use std::ffi::OsStr;
use std::io::{Read, Write as _};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one CLI command may run before the test fails (a hung command, e.g. one waiting for
/// input, must not hang the suite).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// A marker for argument lists built by tests (`restore_args` helpers): followed by a recovery
/// code, it makes [`VaultCommand::args`] pass the code through `VAULT_RECOVERY_CODE` instead of
/// the command line.
pub const RECOVERY_CODE: &str = "\u{0}recovery code through VAULT_RECOVERY_CODE";

/// One command of the `vault` CLI. The caller's own `VAULT_*` variables never reach it: only
/// what the test sets does.
pub struct VaultCommand {
    command: Command,
    stdin: Vec<u8>,
}

impl VaultCommand {
    /// A command of the `vault` binary at `binary`.
    pub fn new(binary: impl AsRef<Path>) -> Self {
        let mut command = Command::new(binary.as_ref());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("VAULT_") {
                command.env_remove(name);
            }
        }
        Self { command, stdin: Vec::new() }
    }

    /// The workspace's `vault` binary (see [`crate::workspace_binary`]).
    pub fn workspace() -> Self {
        Self::new(crate::workspace_binary("vault"))
    }

    /// The vault directory, through `VAULT_DIR`.
    pub fn dir(mut self, dir: &Path) -> Self {
        self.command.env("VAULT_DIR", dir);
        self
    }

    /// The passphrase, through `VAULT_PASSPHRASE`.
    pub fn passphrase(mut self, passphrase: &str) -> Self {
        self.command.env("VAULT_PASSPHRASE", passphrase);
        self
    }

    /// A command-line argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// Command-line arguments. The pair [`RECOVERY_CODE`], `code` is not passed as arguments: the
    /// code goes to `VAULT_RECOVERY_CODE`, as users are told to pass it.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg.as_ref() == OsStr::new(RECOVERY_CODE) {
                let code = args.next().expect("a recovery code after RECOVERY_CODE");
                self.command.env("VAULT_RECOVERY_CODE", code.as_ref());
            } else {
                self.command.arg(arg);
            }
        }
        self
    }

    /// The recovery code, through `VAULT_RECOVERY_CODE` (never the command line, where other
    /// users and the shell history see it).
    pub fn recovery_code(mut self, code: &str) -> Self {
        self.command.env("VAULT_RECOVERY_CODE", code);
        self
    }

    /// Environment variables.
    pub fn envs(mut self, envs: &[(&str, &str)]) -> Self {
        self.command.envs(envs.iter().copied());
        self
    }

    /// What it reads on stdin (else an empty, closed stdin).
    pub fn stdin(mut self, text: impl AsRef<[u8]>) -> Self {
        self.stdin = text.as_ref().to_vec();
        self
    }

    /// Runs it to completion; fails the test if it runs longer than [`RUN_TIMEOUT`].
    pub fn output(mut self) -> Output {
        // Not `{:?}` of the command: it prints the environment, passphrases included.
        let description = describe(&self.command);
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {description}: {e}"));
        let mut input = child.stdin.take().unwrap();
        let stdin = std::mem::take(&mut self.stdin);
        // A command that exits without reading all of its input closes the pipe: not an error.
        let writer = std::thread::spawn(move || drop(input.write_all(&stdin)));
        let stdout = read_in_background(child.stdout.take().unwrap());
        let stderr = read_in_background(child.stderr.take().unwrap());
        let status = wait_with_timeout(&mut child, RUN_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{description} did not finish within {} s", RUN_TIMEOUT.as_secs())
        });
        writer.join().unwrap();
        Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
    }

    /// Starts it in the background with its output discarded (for killing it).
    pub fn spawn(mut self) -> Child {
        self.command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs the workspace's `vault` on `dir` with `passphrase`, extra environment and stdin.
pub fn vault(dir: &Path, passphrase: &str, args: &[&str], envs: &[(&str, &str)], stdin: &str) -> Output {
    VaultCommand::workspace().dir(dir).passphrase(passphrase).args(args).envs(envs).stdin(stdin).output()
}

/// Starts the workspace's `vault` on `dir` in the background (output discarded), for killing it.
pub fn spawn_vault(dir: &Path, passphrase: &str, args: &[&str], envs: &[(&str, &str)]) -> Child {
    VaultCommand::workspace().dir(dir).passphrase(passphrase).args(args).envs(envs).spawn()
}

/// The stdout of a command that must have exited with 0 (else the test fails with its output).
pub fn ok(output: impl Borrow<Output>) -> String {
    let output = output.borrow();
    assert!(
        output.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The JSON stdout of a command that must have exited with 0.
pub fn json(output: impl Borrow<Output>) -> serde_json::Value {
    let text = ok(output);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The program and its arguments, and the names (never the values) of the variables set.
fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    let names: Vec<String> =
        command.get_envs().filter(|(_, v)| v.is_some()).map(|(k, _)| k.to_string_lossy().into_owned()).collect();
    if !names.is_empty() {
        text.push_str(&format!(" (environment: {})", names.join(", ")));
    }
    text
}
