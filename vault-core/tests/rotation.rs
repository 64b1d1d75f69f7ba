//! Root-key rotation (database re-keyed, every slot re-sealed) and key-wrapper rotation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::Read;

use common::{FAST_KDF, pass};
use vault_core::{
    CreateOptions, Error, KEYSLOTS_FILE, MediaImport, NewMessage, SecurityEventKind, SlotId, SlotSecret,
    SoftwareKeyWrapper, Vault,
};

fn setup() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let key = tmp.path().join("device.key");
    let wrapper = SoftwareKeyWrapper::open_or_create(&key).unwrap();
    let mut vault = Vault::create(&dir, &pass("pw"), CreateOptions { kdf: FAST_KDF, wrapper: Some(&wrapper) }).unwrap();
    vault.messages().add(&NewMessage::new("c", "s", "before rotation")).unwrap();
    vault.media().import(&mut &b"photo bytes"[..], MediaImport::default()).unwrap();
    (tmp, dir, key)
}

#[test]
fn rotation_needs_every_slot_secret_and_changes_nothing_without_them() {
    let (_tmp, dir, _key) = setup();
    let before = std::fs::read(dir.join(KEYSLOTS_FILE)).unwrap();
    let mut vault = Vault::unlock_with_passphrase(&dir, &pass("pw")).unwrap();
    match vault.keys().rotate_root_key(&[]) {
        Err(Error::InvalidInput(message)) => assert!(message.contains("slot(s) 1"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(dir.join(KEYSLOTS_FILE)).unwrap(), before);
    vault.lock();
    assert!(Vault::unlock_with_passphrase(&dir, &pass("pw")).is_ok());
}

#[test]
fn rotation_keeps_data_and_every_slot_and_retires_the_old_root_key() {
    let (_tmp, dir, key) = setup();
    let old_slots = std::fs::read(dir.join(KEYSLOTS_FILE)).unwrap();
    let wrapper = SoftwareKeyWrapper::open(&key).unwrap();
    let mut vault = Vault::unlock_with_passphrase(&dir, &pass("pw")).unwrap();
    let old_db_key = *vault.dangerous_export_database_key().expose_secret();
    vault.keys().rotate_root_key(&[SlotSecret::Wrapper(&wrapper)]).unwrap();
    assert_ne!(vault.dangerous_export_database_key().expose_secret(), &old_db_key);
    // The same session keeps working, and can rotate again without other secrets being stale.
    vault.messages().add(&NewMessage::new("c", "s", "after rotation")).unwrap();
    vault.keys().rotate_root_key(&[SlotSecret::Wrapper(&wrapper)]).unwrap();
    vault.lock();

    for mut vault in
        [Vault::unlock_with_passphrase(&dir, &pass("pw")).unwrap(), Vault::unlock_with_wrapper(&dir, &wrapper).unwrap()]
    {
        let bodies: Vec<_> = vault.messages().list("c", 10).unwrap().into_iter().map(|m| m.body).collect();
        assert_eq!(bodies, ["before rotation", "after rotation"]);
        let media = vault.media().list().unwrap();
        let mut data = Vec::new();
        vault.media().open(&media[0].id).unwrap().read_to_end(&mut data).unwrap();
        assert_eq!(data, b"photo bytes");
        assert!(vault.verify().unwrap().is_ok());
        let rotations =
            vault.security_events(100).unwrap().iter().filter(|e| e.kind == SecurityEventKind::RootKeyRotated).count();
        assert_eq!(rotations, 2);
    }
    // The old slot file still opens the old root key, which no longer opens the database.
    std::fs::write(dir.join(KEYSLOTS_FILE), &old_slots).unwrap();
    assert!(matches!(Vault::unlock_with_passphrase(&dir, &pass("pw")), Err(Error::Integrity { .. })));
}

#[test]
fn rotation_after_changing_the_unlocking_passphrase_uses_the_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let mut vault = Vault::create(&dir, &pass("one"), CreateOptions { kdf: FAST_KDF, wrapper: None }).unwrap();
    vault.keys().change_passphrase(SlotId(0), &pass("two"), FAST_KDF).unwrap();
    vault.keys().rotate_root_key(&[]).unwrap();
    vault.lock();
    assert!(Vault::unlock_with_passphrase(&dir, &pass("two")).is_ok());
    assert!(Vault::unlock_with_passphrase(&dir, &pass("one")).is_err());
}

#[test]
fn device_key_rotation_rewraps_only_its_slot() {
    let (_tmp, dir, key) = setup();
    let old_key_copy = std::fs::read(&key).unwrap();
    let wrapper = SoftwareKeyWrapper::open(&key).unwrap();
    let mut vault = Vault::unlock_with_wrapper(&dir, &wrapper).unwrap();
    let db_key = *vault.dangerous_export_database_key().expose_secret();
    let next = SoftwareKeyWrapper::prepare_rotation(&key).unwrap();
    let slot = vault.unlocked_by();
    vault.keys().rewrap(slot, &next).unwrap();
    SoftwareKeyWrapper::complete_rotation(&key).unwrap();
    assert_eq!(vault.dangerous_export_database_key().expose_secret(), &db_key, "root key unchanged");
    assert!(vault.security_events(5).unwrap().iter().any(|e| e.kind == SecurityEventKind::WrapperKeyRotated));
    vault.lock();
    assert!(Vault::unlock_with_wrapper(&dir, &SoftwareKeyWrapper::open(&key).unwrap()).is_ok());
    let old = tempfile::tempdir().unwrap();
    let old_path = old.path().join("old.key");
    std::fs::write(&old_path, &old_key_copy).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&old_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        Vault::unlock_with_wrapper(&dir, &SoftwareKeyWrapper::open(&old_path).unwrap()),
        Err(Error::AuthenticationFailed)
    ));
    assert!(Vault::unlock_with_passphrase(&dir, &pass("pw")).is_ok());
}

#[test]
fn a_failed_rekey_leaves_the_session_and_the_vault_working() {
    let (_tmp, dir, key) = setup();
    let wrapper = SoftwareKeyWrapper::open(&key).unwrap();
    let mut vault = Vault::unlock_with_passphrase(&dir, &pass("pw")).unwrap();
    let db_key = hex::encode(vault.dangerous_export_database_key().expose_secret());
    // Another connection holds the write lock past the busy timeout: the re-key fails.
    let blocker = vault_core::bench_support::Connection::open(dir.join(vault_core::DATABASE_FILE)).unwrap();
    blocker.execute_batch(&format!("PRAGMA key = \"x'{db_key}'\"; BEGIN IMMEDIATE;")).unwrap();
    assert!(vault.keys().rotate_root_key(&[SlotSecret::Wrapper(&wrapper)]).is_err());
    blocker.execute_batch("ROLLBACK;").unwrap();
    drop(blocker);
    assert!(!dir.join(vault_core::KEYSLOTS_NEXT_FILE).exists(), "journal discarded");
    // The same session still reads and writes under the old key, and a new unlock agrees.
    vault.messages().add(&NewMessage::new("c", "s", "after the failed rotation")).unwrap();
    assert_eq!(vault.messages().list("c", 10).unwrap().len(), 2);
    vault.lock();
    let mut vault = Vault::unlock_with_passphrase(&dir, &pass("pw")).unwrap();
    assert_eq!(vault.messages().list("c", 10).unwrap().len(), 2);
    assert!(vault.verify().unwrap().is_ok());
    assert_eq!(hex::encode(vault.dangerous_export_database_key().expose_secret()), db_key);
}

#[test]
fn a_session_whose_keys_changed_elsewhere_cannot_reseal_anything() {
    let (_tmp, dir, key) = setup();
    let wrapper = SoftwareKeyWrapper::open(&key).unwrap();
    let mut first = Vault::unlock_with_passphrase(&dir, &pass("pw")).unwrap();
    let mut second = Vault::unlock_with_wrapper(&dir, &wrapper).unwrap();
    first.keys().rotate_root_key(&[SlotSecret::Wrapper(&wrapper)]).unwrap();
    let before = std::fs::read(dir.join(KEYSLOTS_FILE)).unwrap();
    assert!(matches!(second.keys().add_passphrase(&pass("other"), FAST_KDF), Err(Error::KeysChanged)));
    assert!(matches!(second.keys().rotate_root_key(&[SlotSecret::Passphrase(&pass("pw"))]), Err(Error::KeysChanged)));
    assert!(matches!(second.keys().remove(SlotId(0)), Err(Error::KeysChanged)));
    assert_eq!(std::fs::read(dir.join(KEYSLOTS_FILE)).unwrap(), before, "nothing re-sealed under a stale key");
    drop(second);
    first.lock();
    assert!(Vault::unlock_with_wrapper(&dir, &wrapper).unwrap().verify().unwrap().is_ok());
}

#[test]
fn a_session_left_open_across_a_rotation_elsewhere_cannot_write_or_read_stale_data() {
    let (_tmp, dir, key) = setup();
    let wrapper = SoftwareKeyWrapper::open(&key).unwrap();
    let mut stale = Vault::unlock_with_passphrase(&dir, &pass("pw")).unwrap();
    let mut rotating = Vault::unlock_with_wrapper(&dir, &wrapper).unwrap();
    rotating.keys().rotate_root_key(&[SlotSecret::Passphrase(&pass("pw"))]).unwrap();
    rotating.messages().add(&NewMessage::new("c", "s", "written after the rotation")).unwrap();
    // The stale connection holds the old key: its writes and reads fail instead of mixing keys.
    assert!(stale.messages().add(&NewMessage::new("c", "s", "from the stale session")).is_err());
    assert!(stale.messages().list("c", 10).is_err());
    drop(stale);
    let bodies: Vec<_> = rotating.messages().list("c", 10).unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["before rotation", "written after the rotation"]);
    assert!(rotating.verify().unwrap().is_ok());
}
