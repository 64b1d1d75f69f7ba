//! Helpers shared by the workspace's test suites (`backup-server/tests`, `vault-core/cli/tests`,
//! `vault-core/tests` and the end-to-end suites in `tests/`): the `backup-server` and `vault`
//! binaries as child processes (a server that does not say where it listens within
//! [`server::START_TIMEOUT`] fails the test), canary scans, directory copies and the S3 test
//! server's environment.
//!
//! A dev-dependency only. It does not depend on vault-core, so the server's tests never build
//! SQLCipher.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod canary;
pub mod cli;
pub mod fs;
pub mod s3;
pub mod server;
pub mod swtpm;

use std::path::PathBuf;

/// A workspace binary in the target directory of the running test (`target/<profile>/<name>`).
///
/// A package's own binaries are built before its integration tests (`CARGO_BIN_EXE_<name>` names
/// the same file); a suite that runs another package's binary needs it built first:
/// `cargo test --workspace` does, or `cargo build --bin <name>`.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo test --workspace`, or `cargo build --bin {name}` first",
        path.display()
    );
    path
}

/// A name no other test (or earlier run on the same bucket) uses: `prefix-<16 hex digits>`.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    format!("{prefix}-{}", hex::encode(bytes))
}
