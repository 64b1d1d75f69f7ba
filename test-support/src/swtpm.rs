//! Software TPMs for the TPM tests: each [`Swtpm`] is a `swtpm socket` process with its own fresh
//! state directory, listening on loopback, stopped when dropped. Tests that need a TPM start their
//! own, so one test's lockout or clear never reaches another's.
//!
//! The tests that use it are compiled to run when the build sees `VAULT_TEST_SWTPM` (set by
//! `scripts/test.sh` after it has installed `swtpm`; the crates' build scripts turn it into
//! `cfg(swtpm_available)`) and reported as ignored elsewhere.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started swtpm has to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running software TPM 2.0 on loopback.
pub struct Swtpm {
    child: Option<Child>,
    port: u16,
    state: tempfile::TempDir,
}

impl Swtpm {
    /// Starts a TPM with fresh state (as if new from the factory: empty owner password, no
    /// PCR extended), already started up (`TPM2_Startup(CLEAR)`).
    pub fn start() -> Self {
        let state = tempfile::tempdir().unwrap();
        for _ in 0..20 {
            let port = free_port_pair();
            if let Some(child) = spawn(state.path(), port) {
                return Self { child: Some(child), port, state };
            }
        }
        panic!("could not start swtpm on a free loopback port (is swtpm installed?)");
    }

    /// The TCTI string that reaches this TPM: `swtpm:host=127.0.0.1,port=P`.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Replaces the TPM with a new one at the same address: its state is wiped, as after a
    /// `TPM2_Clear` by the platform (new storage seed, so nothing sealed before loads again).
    pub fn replace_with_fresh_state(&mut self) {
        self.stop();
        for entry in std::fs::read_dir(self.state.path()).unwrap() {
            let path = entry.unwrap().path();
            std::fs::remove_file(&path).unwrap();
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // The old process's port may take a moment to be free again.
            if let Some(child) = spawn(self.state.path(), self.port) {
                self.child = Some(child);
                return;
            }
            assert!(Instant::now() < deadline, "swtpm did not restart on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port P such that P and P + 1 (swtpm's control channel) are free on loopback just now.
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// Starts swtpm on `port` and waits until it accepts connections; `None` if it exits first (the
/// port was taken in the meantime).
fn spawn(state: &Path, port: u16) -> Option<Child> {
    let log: PathBuf = state.join("swtpm.log");
    let mut child = Command::new("swtpm")
        .arg("socket")
        .arg("--tpm2")
        .arg("--tpmstate")
        .arg(format!("dir={}", state.display()))
        .arg("--server")
        .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
        .arg("--ctrl")
        .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
        .arg("--flags")
        .arg("not-need-init,startup-clear")
        .arg("--log")
        .arg(format!("file={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        // The control channel answers once the TPM is up; probing it leaves the TPM's own
        // channel free for the test's one connection at a time.
        if TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port + 1)), Duration::from_millis(200)).is_ok()
            && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}
