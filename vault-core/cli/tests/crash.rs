//! Crash safety of key rotation: the `vault` binary (a debug build, where crash points are
//! compiled in) aborts at each step of a rotation; afterwards the vault opens with its
//! passphrase and device key, every message and media item is intact, and verify passes.
//!
//! Compiled only with debug assertions: release builds have no crash points.
#![cfg(debug_assertions)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;
use std::process::Output;

use test_support::cli::{VaultCommand, ok};

const PASS: &str = "PASS-crash-test";

fn vault(dir: &Path, failpoint: Option<&str>, args: &[&str]) -> Output {
    let command = VaultCommand::new(env!("CARGO_BIN_EXE_vault")).arg("--vault").arg(dir).args(args).passphrase(PASS);
    match failpoint {
        Some(point) => command.envs(&[("VAULT_FAILPOINT", point)]).output(),
        None => command.output(),
    }
}

/// A fresh vault (fast KDF) with a passphrase slot and a device-key slot: (tempdir, vault, key).
fn new_vault_with_device_key() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let key = tmp.path().join("device.key");
    let init = ["--device-key", key.to_str().unwrap(), "init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"];
    ok(vault(&dir, None, &[&init[..], &["--kdf-parallelism", "1"]].concat()));
    (tmp, dir, key)
}

#[test]
fn a_crash_at_any_step_of_a_root_rotation_leaves_a_working_vault() {
    let points = ["rotate:after-next-written", "rotate:after-rekey", "rotate:after-install"];
    for point in points {
        let (tmp, dir, key) = new_vault_with_device_key();
        let key_arg = key.to_str().unwrap();
        ok(vault(&dir, None, &["msg", "add", "--conversation", "c", "--sender", "s", "--body", "survives the crash"]));
        let photo = tmp.path().join("photo");
        std::fs::write(&photo, vec![7u8; 200_000]).unwrap();
        let id = ok(vault(&dir, None, &["media", "add", photo.to_str().unwrap()])).trim().to_owned();

        let crashed = vault(&dir, Some(point), &["--device-key", key_arg, "key", "rotate", "--root"]);
        assert_eq!(crashed.status.code(), None, "{point}: the process must have died (signal)");

        // Both unlock methods still work, the data is intact, and the vault verifies.
        for unlock in [vec![], vec!["--device-key", key_arg]] {
            let mut args = unlock.clone();
            args.extend(["msg", "list", "--conversation", "c"]);
            assert!(ok(vault(&dir, None, &args)).contains("survives the crash"), "{point}");
            let mut args = unlock.clone();
            args.push("verify");
            ok(vault(&dir, None, &args));
        }
        let out = tmp.path().join("out");
        ok(vault(&dir, None, &["media", "get", &id, out.to_str().unwrap()]));
        assert_eq!(std::fs::read(&out).unwrap(), vec![7u8; 200_000]);
        assert!(!dir.join("keyslots.next").exists(), "{point}: rotation resolved");
        // And a later rotation completes.
        ok(vault(&dir, None, &["--device-key", key_arg, "key", "rotate", "--root"]));
        ok(vault(&dir, None, &["verify"]));
    }
}

#[test]
fn a_crash_during_device_key_rotation_keeps_the_device_key_working() {
    for point in ["wrapper-rotate:before-slots-written", "wrapper-rotate:after-slots-written"] {
        let (tmp, dir, key) = new_vault_with_device_key();
        let key_arg = key.to_str().unwrap();
        let old_key = std::fs::read(&key).unwrap();
        let crashed = vault(&dir, Some(point), &["--device-key", key_arg, "key", "rotate"]);
        assert_eq!(crashed.status.code(), None, "{point}: died");
        assert!(tmp.path().join("device.key.next").exists(), "{point}: the next key was written");
        // The device key still unlocks; after the slot was re-wrapped, unlocking finishes the
        // rotation (the next key is installed).
        ok(vault(&dir, None, &["--device-key", key_arg, "verify"]));
        let finished = point.ends_with("after-slots-written");
        assert_eq!(tmp.path().join("device.key.next").exists(), !finished, "{point}");
        assert_eq!(std::fs::read(&key).unwrap() != old_key, finished, "{point}");
        // A new rotation completes either way, and the passphrase slot was never touched.
        ok(vault(&dir, None, &["--device-key", key_arg, "key", "rotate"]));
        assert!(!tmp.path().join("device.key.next").exists());
        ok(vault(&dir, None, &["--device-key", key_arg, "verify"]));
        ok(vault(&dir, None, &["verify"]));
    }
}

#[test]
fn a_crash_during_media_import_leaves_no_item_and_no_orphan() {
    for point in ["media-import:before-sync", "media-import:before-commit"] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("v");
        ok(vault(&dir, None, &["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1", "--kdf-parallelism", "1"]));
        let photo = tmp.path().join("photo");
        std::fs::write(&photo, vec![3u8; 300_000]).unwrap();
        let crashed = vault(&dir, Some(point), &["media", "add", photo.to_str().unwrap()]);
        assert_eq!(crashed.status.code(), None, "{point}: died");
        assert_eq!(std::fs::read_dir(dir.join("media")).unwrap().count(), 1, "{point}: a file was left by the crash");
        assert_eq!(ok(vault(&dir, None, &["media", "list"])), "", "{point}: nothing visible");
        assert_eq!(std::fs::read_dir(dir.join("media")).unwrap().count(), 0, "{point}: clean-up at unlock");
        ok(vault(&dir, None, &["verify"]));
    }
}
