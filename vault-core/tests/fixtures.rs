//! Golden files: a vault written by the first release of every format (key slots v1, database
//! schema, media v1) must keep opening, with the same content, in every later build; and the
//! `fail_*` key-slot files must keep failing with their documented errors.
//!
//! `cargo test -p vault-core --test fixtures -- --ignored regenerate` rewrites the files; do it
//! only when adding a new format version (and keep the old fixtures).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use test_support::fs::copy_dir;

use common::{FAST_KDF, pass};
use vault_core::{CreateOptions, Error, MediaImport, NewMessage, SlotFileError, SoftwareKeyWrapper, Vault};

const PASSPHRASE: &str = "golden passphrase v1";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn golden_media() -> Vec<u8> {
    (0..150_000u32).map(|i| (i % 241) as u8).collect()
}

/// Copies the golden vault to a temp dir (opening it writes events and may migrate).
fn golden_copy() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vault");
    copy_dir(&fixtures().join("vault-v1"), &dir);
    let key = tmp.path().join("device.key");
    std::fs::copy(fixtures().join("device-v1.key"), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    (tmp, dir, key)
}

#[test]
fn the_version_1_vault_still_opens_with_its_passphrase_and_device_key() {
    let (_tmp, dir, key) = golden_copy();
    let wrapper = SoftwareKeyWrapper::open(&key).unwrap();
    for mut vault in [
        Vault::unlock_with_passphrase(&dir, &pass(PASSPHRASE)).unwrap(),
        Vault::unlock_with_wrapper(&dir, &wrapper).unwrap(),
    ] {
        let bodies: Vec<_> = vault.messages().list("golden", 10).unwrap().into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, ["first golden message", "second, with ünïcödé"]);
        assert_eq!(vault.messages().search("unicode", 5).unwrap().len(), 1);
        assert_eq!(vault.secrets().get("token").unwrap().unwrap().expose_secret(), b"golden secret");
        let media = vault.media().list().unwrap();
        assert_eq!(media.len(), 1);
        let mut data = Vec::new();
        vault.media().open(&media[0].id).unwrap().read_to_end(&mut data).unwrap();
        assert!(data == golden_media());
        assert!(vault.verify().unwrap().is_ok());
    }
    assert!(matches!(Vault::unlock_with_passphrase(&dir, &pass("wrong")), Err(Error::AuthenticationFailed)));
}

#[test]
fn fail_fixtures_fail_as_documented() {
    let cases: [(&str, SlotFileError); 6] = [
        ("fail_truncated.keyslots", SlotFileError::BadLength),
        ("fail_trailing_bytes.keyslots", SlotFileError::BadLength),
        ("fail_bad_magic.keyslots", SlotFileError::BadMagic),
        ("fail_version_2.keyslots", SlotFileError::UnsupportedVersion(2)),
        ("fail_kdf_memory_4tib.keyslots", SlotFileError::InvalidField("kdf parameters")),
        ("fail_nine_passphrase_slots.keyslots", SlotFileError::InvalidField("too many passphrase slots")),
    ];
    for (name, expected) in cases {
        let (_tmp, dir, _) = golden_copy();
        std::fs::copy(fixtures().join(name), dir.join(vault_core::KEYSLOTS_FILE)).unwrap();
        match (Vault::check_slot_file(&dir), &expected) {
            (Err(Error::UnsupportedVersion { found, .. }), SlotFileError::UnsupportedVersion(v)) => {
                assert_eq!(found, u64::from(*v), "{name}")
            }
            (Err(Error::Integrity { problem: message, .. }), _) => {
                assert!(message.contains(&expected.to_string()), "{name}: {message}")
            }
            (other, _) => panic!("{name}: {other:?}"),
        }
        let unlock = Vault::unlock_with_passphrase(&dir, &pass(PASSPHRASE));
        match expected {
            SlotFileError::UnsupportedVersion(v) => {
                assert!(
                    matches!(unlock, Err(Error::UnsupportedVersion { found, .. }) if found == u64::from(v)),
                    "{name}"
                )
            }
            _ => assert!(matches!(unlock, Err(Error::AuthenticationFailed)), "{name}"),
        }
    }
}

/// Regenerates the fixtures (ignored: run by hand when a new format version is added).
#[test]
#[ignore]
fn regenerate() {
    let root = fixtures();
    let dir = root.join("vault-v1");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(root.join("device-v1.key"));
    std::fs::create_dir_all(&root).unwrap();
    let wrapper = SoftwareKeyWrapper::open_or_create(&root.join("device-v1.key")).unwrap();
    let mut vault =
        Vault::create(&dir, &pass(PASSPHRASE), CreateOptions { kdf: FAST_KDF, wrapper: Some(&wrapper) }).unwrap();
    let first = vault
        .messages()
        .add(&NewMessage { sent_at: 1_000, ..NewMessage::new("golden", "alice", "first golden message") })
        .unwrap();
    vault
        .messages()
        .add(&NewMessage { sent_at: 2_000, ..NewMessage::new("golden", "bob", "second, with ünïcödé") })
        .unwrap();
    vault.secrets().put("token", b"golden secret").unwrap();
    vault
        .media()
        .import(&mut &golden_media()[..], MediaImport { conversation: Some("golden"), message: Some(first) })
        .unwrap();
    vault.lock();
    let _ = std::fs::remove_file(dir.join("keyslots.lock"));
    let _ = std::fs::remove_file(dir.join("media.lock"));

    let valid = std::fs::read(dir.join(vault_core::KEYSLOTS_FILE)).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(root.join(name), bytes).unwrap();
    write("fail_truncated.keyslots", &valid[..valid.len() - 1]);
    write("fail_trailing_bytes.keyslots", &[valid.as_slice(), b"x"].concat());
    let mut bad = valid.clone();
    bad[0] = b'X';
    write("fail_bad_magic.keyslots", &bad);
    let mut bad = valid.clone();
    bad[8] = 2;
    write("fail_version_2.keyslots", &bad);
    // Header: magic 8, version 2, vault id 16, next id 4, count 1 = 31; slot 0 record: id 4,
    // kind 1, created 8, body length 2, then the body: kdf algorithm 1, memory 4, ...
    let mut bad = valid.clone();
    bad[31 + 15 + 1..31 + 15 + 5].copy_from_slice(&u32::MAX.to_le_bytes());
    write("fail_kdf_memory_4tib.keyslots", &bad);
    let body_len = usize::from(u16::from_le_bytes([valid[31 + 13], valid[31 + 14]]));
    let record = &valid[31..31 + 15 + body_len];
    let mut many = valid[..31].to_vec();
    many[26..30].copy_from_slice(&9u32.to_le_bytes());
    many[30] = 9;
    for id in 0u32..9 {
        let mut r = record.to_vec();
        r[..4].copy_from_slice(&id.to_le_bytes());
        many.extend_from_slice(&r);
    }
    write("fail_nine_passphrase_slots.keyslots", &many);
}
