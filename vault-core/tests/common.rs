//! Helpers shared by the vault-core integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

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
