//! Creating, unlocking, filling, searching and re-keying slots of a real vault on disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{FAST_KDF, new_vault, pass};
use vault_core::{
    CreateOptions, Error, MessageStatus, NewMessage, SecurityEventKind, SlotMethod, SoftwareKeyWrapper, Vault,
};

#[test]
fn messages_survive_lock_and_unlock() {
    let (tv, mut vault) = new_vault("pw one");
    let mut m = NewMessage::new("family", "alice", "dinner at eight");
    m.sent_at = 1_000;
    m.status = MessageStatus::Sent;
    m.expires_at = Some(i64::MAX - 1);
    let id = vault.messages().add(&m).unwrap();
    vault.messages().add_batch(&[NewMessage { sent_at: 2_000, ..NewMessage::new("family", "bob", "ok") }]).unwrap();
    vault.lock();

    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw one")).unwrap();
    let listed = vault.messages().list("family", 10).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].body, "dinner at eight");
    assert_eq!(listed[0].sender, "alice");
    assert_eq!(listed[0].sent_at, 1_000);
    assert_eq!(listed[0].status, MessageStatus::Sent);
    assert_eq!(listed[0].expires_at, Some(i64::MAX - 1));
    assert_eq!(listed[1].body, "ok");
    assert_eq!(vault.messages().get(id).unwrap().unwrap().body, "dinner at eight");
    let conversations = vault.messages().conversations().unwrap();
    assert_eq!(conversations.len(), 1);
    assert_eq!(conversations[0].message_count, 2);
}

#[test]
fn listing_returns_the_newest_in_order() {
    let (_tv, mut vault) = new_vault("pw");
    let batch: Vec<_> =
        (0..10).map(|i| NewMessage { sent_at: i * 10, ..NewMessage::new("c", "s", format!("m{i}")) }).collect();
    vault.messages().add_batch(&batch).unwrap();
    let bodies: Vec<_> = vault.messages().list("c", 3).unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["m7", "m8", "m9"]);
    assert!(vault.messages().list("other", 3).unwrap().is_empty());
    assert!(matches!(vault.messages().list("c", 0), Err(Error::InvalidInput(_))));
}

#[test]
fn a_batch_with_one_invalid_message_stores_nothing() {
    let (_tv, mut vault) = new_vault("pw");
    let batch = vec![NewMessage::new("c", "s", "fine"), NewMessage::new("c", "", "no sender")];
    assert!(matches!(vault.messages().add_batch(&batch), Err(Error::InvalidInput(_))));
    let too_long = NewMessage::new("c", "s", "x".repeat(vault_core::MAX_BODY_LEN + 1));
    assert!(matches!(vault.messages().add(&too_long), Err(Error::InvalidInput(_))));
    assert!(vault.messages().list("c", 10).unwrap().is_empty());
}

#[test]
fn search_ranks_limits_and_tolerates_any_input() {
    let (_tv, mut vault) = new_vault("pw");
    vault
        .messages()
        .add_batch(&[
            NewMessage::new("a", "x", "the quick brown fox"),
            NewMessage::new("a", "x", "fox fox fox, a fox den full of foxes"),
            NewMessage::new("b", "y", "nothing to see here"),
            NewMessage::new("b", "y", "Crème brûlée for dessert"),
        ])
        .unwrap();
    let hits = vault.messages().search("fox", 10).unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits[0].message.body.starts_with("fox fox fox"), "denser match ranks first");
    assert!(hits[0].rank <= hits[1].rank);
    assert_eq!(vault.messages().search("fox", 1).unwrap().len(), 1);
    assert_eq!(vault.messages().search("quick fox", 10).unwrap().len(), 1, "all words must match");
    assert_eq!(vault.messages().search("fox*", 10).unwrap().len(), 2, "prefix");
    assert_eq!(vault.messages().search("creme brulee", 10).unwrap().len(), 1, "diacritics folded");
    for hostile in ["\"", "fox\" OR", "NEAR(", "a AND", "*", "'); DROP TABLE messages; --", "^fox"] {
        match vault.messages().search(hostile, 10) {
            Ok(_) | Err(Error::InvalidInput(_)) => {}
            Err(other) => panic!("query {hostile:?} gave {other}"),
        }
    }
    assert_eq!(vault.messages().list("a", 10).unwrap().len(), 2);
}

#[test]
fn deleting_a_message_removes_it_from_search() {
    let (_tv, mut vault) = new_vault("pw");
    let id = vault.messages().add(&NewMessage::new("a", "x", "ephemeral secret plan")).unwrap();
    assert_eq!(vault.messages().search("ephemeral", 10).unwrap().len(), 1);
    assert!(vault.messages().set_status(id, MessageStatus::Read).unwrap());
    assert!(vault.messages().delete(id).unwrap());
    assert!(!vault.messages().delete(id).unwrap());
    assert!(vault.messages().search("ephemeral", 10).unwrap().is_empty());
    assert!(vault.verify().unwrap().is_ok());
}

#[test]
fn app_secrets_round_trip() {
    let (tv, mut vault) = new_vault("pw");
    vault.secrets().put("identity-key", &[1, 2, 3]).unwrap();
    vault.secrets().put("identity-key", &[4, 5]).unwrap();
    vault.secrets().put("token", b"t").unwrap();
    vault.lock();
    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap();
    assert_eq!(vault.secrets().get("identity-key").unwrap().unwrap().expose_secret(), &[4, 5]);
    assert_eq!(vault.secrets().names().unwrap(), ["identity-key", "token"]);
    assert!(vault.secrets().delete("token").unwrap());
    assert!(vault.secrets().get("token").unwrap().is_none());
    assert!(matches!(vault.secrets().put("", b"x"), Err(Error::InvalidInput(_))));
    let big = vec![0u8; vault_core::MAX_SECRET_LEN + 1];
    assert!(matches!(vault.secrets().put("big", &big), Err(Error::InvalidInput(_))));
}

#[test]
fn wrong_passphrase_is_refused_and_logged_at_next_unlock() {
    let (tv, vault) = new_vault("right");
    vault.lock();
    for _ in 0..2 {
        assert!(matches!(Vault::unlock_with_passphrase(&tv.dir, &pass("wrong")), Err(Error::AuthenticationFailed)));
    }
    let vault = Vault::unlock_with_passphrase(&tv.dir, &pass("right")).unwrap();
    let events = vault.security_events(50).unwrap();
    let failed = events.iter().filter(|e| e.kind == SecurityEventKind::UnlockFailed).count();
    assert_eq!(failed, 2);
    assert!(events.iter().any(|e| e.kind == SecurityEventKind::VaultCreated));
    assert!(!tv.dir.join(vault_core::UNLOCK_FAILURES_FILE).exists(), "pending record is cleared");
}

#[test]
fn slots_can_be_added_changed_and_removed_but_never_the_last() {
    let (tv, mut vault) = new_vault("first");
    let database_before = std::fs::metadata(tv.dir.join(vault_core::DATABASE_FILE)).unwrap().len();
    let second = vault.keys().add_passphrase(&pass("second"), FAST_KDF).unwrap();
    vault.lock();

    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass("second")).unwrap();
    assert_eq!(vault.unlocked_by(), second);
    vault.keys().change_passphrase(second, &pass("second-changed"), FAST_KDF).unwrap();
    vault.keys().remove(vault_core::SlotId(0)).unwrap();
    assert!(matches!(vault.keys().remove(second), Err(Error::LastSlot)));
    assert!(matches!(vault.keys().remove(vault_core::SlotId(77)), Err(Error::NotFound(_))));
    vault.lock();

    for old in ["first", "second"] {
        assert!(matches!(Vault::unlock_with_passphrase(&tv.dir, &pass(old)), Err(Error::AuthenticationFailed)));
    }
    let vault = Vault::unlock_with_passphrase(&tv.dir, &pass("second-changed")).unwrap();
    let kinds: Vec<_> = vault.security_events(50).unwrap().iter().map(|e| e.kind).collect();
    for expected in [SecurityEventKind::SlotAdded, SecurityEventKind::SlotChanged, SecurityEventKind::SlotRemoved] {
        assert!(kinds.contains(&expected), "{expected:?} logged");
    }
    let slots = Vault::inspect_slots(&tv.dir).unwrap();
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].id, second);
    // Slot changes rewrite only the slot file: the database did not grow from them.
    let database_after = std::fs::metadata(tv.dir.join(vault_core::DATABASE_FILE)).unwrap().len();
    assert!(database_after <= database_before + 4096 * 4);
}

#[test]
fn device_key_slot_unlocks_and_is_reported_as_software() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let wrapper = SoftwareKeyWrapper::open_or_create(&tmp.path().join("device.key")).unwrap();
    let mut vault = Vault::create(&dir, &pass("pw"), CreateOptions { kdf: FAST_KDF, wrapper: Some(&wrapper) }).unwrap();
    vault.messages().add(&NewMessage::new("c", "s", "hello")).unwrap();
    vault.lock();

    let mut vault = Vault::unlock_with_wrapper(&dir, &wrapper).unwrap();
    assert_eq!(vault.messages().list("c", 5).unwrap().len(), 1);
    let status = vault.status().unwrap();
    assert!(status.slots.iter().any(|s| matches!(
        &s.method,
        SlotMethod::KeyWrapper { hardware_backed: false, label } if label == vault_core::SOFTWARE_WRAPPER_LABEL
    )));
    assert!(!status.cipher.cipher_version.is_empty());
    assert_eq!(status.messages, 1);
    vault.lock();

    let other = SoftwareKeyWrapper::open_or_create(&tmp.path().join("other.key")).unwrap();
    assert!(matches!(Vault::unlock_with_wrapper(&dir, &other), Err(Error::AuthenticationFailed)));
}

#[test]
fn create_refuses_a_non_empty_directory_and_unlock_a_missing_vault() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("something"), b"x").unwrap();
    let result = Vault::create(tmp.path(), &pass("pw"), CreateOptions { kdf: FAST_KDF, wrapper: None });
    assert!(matches!(result, Err(Error::AlreadyExists(_))));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "nothing left behind");
    assert!(matches!(Vault::unlock_with_passphrase(&tmp.path().join("none"), &pass("pw")), Err(Error::NotFound(_))));
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(Vault::create(&empty, &pass("pw"), CreateOptions { kdf: FAST_KDF, wrapper: None }).is_ok());
    assert!(matches!(
        Vault::create(&tmp.path().join("weak"), &pass(""), CreateOptions { kdf: FAST_KDF, wrapper: None }),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn default_kdf_parameters_unlock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    Vault::create(&dir, &pass("pw"), CreateOptions::default()).unwrap().lock();
    let slots = Vault::inspect_slots(&dir).unwrap();
    assert_eq!(slots[0].method, SlotMethod::Passphrase { kdf: vault_core::KdfParams::DEFAULT });
    assert!(Vault::unlock_with_passphrase(&dir, &pass("pw")).is_ok());
}

#[test]
fn files_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let (tv, _vault) = new_vault("pw");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&tv.dir), 0o700);
    for path in test_support::fs::find_files(&tv.dir, "") {
        assert_eq!(mode(&path) & 0o077, 0, "{} is private", path.display());
    }
}

#[test]
fn a_passphrase_slot_over_the_work_budget_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v");
    let heavy = vault_core::KdfParams { memory_kib: 2 * 1024 * 1024, iterations: 3, parallelism: 4 };
    let result = Vault::create(&dir, &pass("pw"), CreateOptions { kdf: heavy, wrapper: None });
    assert!(matches!(result, Err(Error::InvalidInput(_))), "{result:?}");
    assert!(!dir.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "no staging directory left");
}

/// Past `MAX_LIMIT` messages, `list_before` pages back: the first message of a page gives the
/// page before it (by send time, then id), oldest first, down to an empty page.
#[test]
fn listing_pages_back_past_the_limit_with_before() {
    let (_tv, mut vault) = new_vault("pw");
    let total = vault_core::MAX_LIMIT + 50;
    // Send times in id order, but for one late-stored message sent first: it sorts first.
    let mut batch: Vec<NewMessage> = (0..total)
        .map(|i| NewMessage { sent_at: 10_000 + i as i64, ..NewMessage::new("big", "alice", format!("m{i}")) })
        .collect();
    batch.push(NewMessage { sent_at: 1, ..NewMessage::new("big", "bob", "sent first, stored last") });
    vault.messages().add_batch(&batch).unwrap();
    vault.messages().add(&NewMessage::new("other", "carol", "not in big")).unwrap();

    let newest = vault.messages().list("big", vault_core::MAX_LIMIT).unwrap();
    assert_eq!(newest, vault.messages().list_before("big", vault_core::MAX_LIMIT, None).unwrap());
    assert_eq!(newest.len(), vault_core::MAX_LIMIT);
    assert_eq!(newest.last().unwrap().body, format!("m{}", total - 1));
    let older = vault.messages().list_before("big", vault_core::MAX_LIMIT, Some(newest[0].id)).unwrap();
    assert_eq!(older.len(), 51);
    assert_eq!(older[0].body, "sent first, stored last");
    assert_eq!(older.last().unwrap().body, "m49");
    assert!(vault.messages().list_before("big", 10, Some(older[0].id)).unwrap().is_empty());

    // Small pages cover every message exactly once.
    let mut seen = Vec::new();
    let mut page = vault.messages().list("big", 3_000).unwrap();
    while let Some(first) = page.first().map(|m| m.id) {
        seen.splice(0..0, page.iter().map(|m| m.id));
        page = vault.messages().list_before("big", 3_000, Some(first)).unwrap();
    }
    assert_eq!(seen.len(), total + 1);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len());

    // The limit still holds, and `before` must be a message of this conversation.
    assert!(matches!(
        vault.messages().list_before("big", vault_core::MAX_LIMIT + 1, None),
        Err(Error::InvalidInput(_))
    ));
    let elsewhere = vault.messages().list("other", 1).unwrap()[0].id;
    assert!(matches!(vault.messages().list_before("big", 10, Some(elsewhere)), Err(Error::NotFound(_))));
}
