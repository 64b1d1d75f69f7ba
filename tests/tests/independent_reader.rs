//! The vault database is standard SQLCipher 4: an independent implementation (the Python
//! `sqlcipher3` wheel, which bundles its own SQLCipher build) reads it given the raw key, and
//! cannot read it without the key or with another key.
//!
//! Needs `VAULT_TEST_PYTHON`, the test venv's interpreter; `scripts/test.sh` sets it up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use vault_core::{CreateOptions, KdfParams, NewMessage, Passphrase, Vault};

fn python() -> PathBuf {
    match std::env::var_os("VAULT_TEST_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => panic!("VAULT_TEST_PYTHON is not set: run the tests through scripts/test.sh, which creates the venv"),
    }
}

fn read_with_python(db: &Path, mode: &str, key_hex: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/read_vault_db.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(db)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(key_hex.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_independent_sqlcipher_reads_the_database_with_the_raw_key_only() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    let kdf = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };
    let mut vault = Vault::create(&dir, &Passphrase::new("pw".into()), CreateOptions { kdf, wrapper: None }).unwrap();
    let bodies: Vec<String> = (0..50).map(|i| format!("interop message {i} ✓")).collect();
    let batch: Vec<_> = bodies.iter().map(|b| NewMessage::new("c", "s", b.clone())).collect();
    vault.messages().add_batch(&batch).unwrap();
    let our_version = vault.status().unwrap().cipher.cipher_version;
    let key_hex = hex::encode(vault.dangerous_export_database_key().expose_secret());
    vault.lock();
    let db = dir.join(vault_core::DATABASE_FILE);

    let read = read_with_python(&db, "raw-key", &key_hex);
    assert_eq!(read["ok"], true, "{read}");
    let got: Vec<String> = read["bodies"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_owned()).collect();
    assert_eq!(got, bodies);
    let their_version = read["cipher_version"].as_str().unwrap();
    assert!(their_version.starts_with('4'), "SQLCipher 4 reader: {their_version}");
    eprintln!("vault SQLCipher {our_version}; independent reader SQLCipher {their_version}");

    let no_key = read_with_python(&db, "no-key", "");
    assert_eq!(no_key["ok"], false, "{no_key}");
    let wrong = read_with_python(&db, "raw-key", &"ab".repeat(32));
    assert_eq!(wrong["ok"], false, "{wrong}");
    assert!(wrong["error"].as_str().unwrap().contains("not a database"), "{wrong}");

    // The vault still opens and is intact after the foreign reads.
    let vault = Vault::unlock_with_passphrase(&dir, &Passphrase::new("pw".into())).unwrap();
    assert!(vault.verify().unwrap().is_ok());
}
