//! Helpers shared by the vault-core integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};

use vault_core::{CreateOptions, KdfParams, Passphrase, Vault};

/// Cheap Argon2id parameters so tests stay fast (the default is exercised separately).
pub const FAST_KDF: KdfParams = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };

pub fn pass(text: &str) -> Passphrase {
    Passphrase::new(text.to_owned())
}

pub struct TestVault {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

pub fn new_vault(passphrase: &str) -> (TestVault, Vault) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let vault = Vault::create(&dir, &pass(passphrase), CreateOptions { kdf: FAST_KDF, wrapper: None }).unwrap();
    (TestVault { tmp, dir }, vault)
}

/// Every file under `dir`, recursively, with its bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
