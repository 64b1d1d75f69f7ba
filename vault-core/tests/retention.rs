//! Disappearing messages and retention limits: purged on demand and at unlock, with their
//! search entries and media, and gone from every decrypted page of the database file. Deleting
//! chosen messages (`Messages::delete`, `Messages::delete_batch`) goes through the same secure
//! deletion and is checked the same way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{new_vault, pass};
use test_support::canary::contains;
use vault_core::bench_support::Connection;
use vault_core::{DATABASE_FILE, Error, MEDIA_DIR, MediaImport, MessageId, NewMessage, RetentionPolicy, Vault};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

fn at(conversation: &str, body: &str, sent_at: i64, expires_at: Option<i64>) -> NewMessage {
    NewMessage { sent_at, expires_at, ..NewMessage::new(conversation, "s", body) }
}

/// Every decrypted page of the database (freelist pages included), via `sqlite_dbpage`.
fn decrypted_pages(dir: &std::path::Path, key_hex: &str) -> Vec<u8> {
    let conn = Connection::open(dir.join(DATABASE_FILE)).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{key_hex}'\";")).unwrap();
    let mut stmt = conn.prepare("SELECT data FROM sqlite_dbpage ORDER BY pgno").unwrap();
    let pages: Vec<Vec<u8>> = stmt.query_map([], |r| r.get(0)).unwrap().map(|p| p.unwrap()).collect();
    assert!(pages.len() > 3);
    pages.concat()
}

/// How often `needle` occurs in `haystack`.
fn occurrences(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn expired_messages_and_their_media_are_purged_and_unrecoverable() {
    let (tv, mut vault) = new_vault("pw");
    let now = now_ms();
    let canary = "ERASEME-7f3a9c";
    let mut batch: Vec<_> = (0..200).map(|i| at("c", &format!("keep {i} ordinary text"), now, None)).collect();
    batch.extend((0..50).map(|i| at("c", &format!("gone {i} {canary} secret words"), now - 10_000, Some(now - 1))));
    let ids = vault.messages().add_batch(&batch).unwrap();
    let doomed = ids[200];
    let photo = vault
        .media()
        .import(&mut &b"doomed photo"[..], MediaImport { message: Some(doomed), ..Default::default() })
        .unwrap();
    let key_hex = hex::encode(vault.dangerous_export_database_key().expose_secret());
    vault.lock();
    // The scan can see the canary while it is stored (so its absence later means something).
    assert!(contains(&decrypted_pages(&tv.dir, &key_hex), canary.as_bytes()));

    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap();
    let report = vault.open_report().purged;
    assert_eq!((report.messages, report.media), (50, 1), "purged at unlock");
    assert_eq!(vault.messages().list("c", 1000).unwrap().len(), 200);
    assert!(vault.messages().search(&canary.to_lowercase(), 10).unwrap().is_empty());
    assert!(!tv.dir.join(MEDIA_DIR).join(photo.to_string()).exists());
    assert_eq!(vault.retention().purge().unwrap().messages, 0);
    assert!(vault.verify().unwrap().is_ok());
    vault.lock();
    let wal = tv.dir.join(format!("{DATABASE_FILE}-wal"));
    assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    let pages = decrypted_pages(&tv.dir, &key_hex);
    assert!(!contains(&pages, canary.as_bytes()), "deleted text survives in a page");
    assert!(!contains(&pages, canary.to_lowercase().as_bytes()), "deleted terms survive in the search index");
    assert!(contains(&pages, b"keep 199 ordinary text"));
}

#[test]
fn conversation_default_expiry_applies_to_new_messages() {
    let (_tv, mut vault) = new_vault("pw");
    vault.messages().add(&at("chat", "before", now_ms(), None)).unwrap();
    vault.retention().set_conversation_expiry("chat", Some(5)).unwrap();
    let sent = now_ms() - 60_000;
    let id = vault.messages().add(&at("chat", "disappears", sent, None)).unwrap();
    assert_eq!(vault.messages().get(id).unwrap().unwrap().expires_at, Some(sent + 5_000));
    let report = vault.retention().purge().unwrap();
    assert_eq!(report.messages, 1);
    let left: Vec<_> = vault.messages().list("chat", 10).unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(left, ["before"]);
    assert!(vault.retention().set_conversation_expiry("nobody", Some(1)).is_err());
}

#[test]
fn retention_limits_by_age_and_count() {
    let (tv, mut vault) = new_vault("pw");
    let now = now_ms();
    let batch: Vec<_> = (0..10).map(|i| at("c", &format!("m{i}"), now - (10 - i) * 86_400_000, None)).collect();
    vault.messages().add_batch(&batch).unwrap();
    vault.retention().set_policy(&RetentionPolicy { max_age_secs: Some(5 * 86_400 + 60), max_messages: None }).unwrap();
    assert_eq!(vault.retention().purge().unwrap().messages, 5);
    vault.retention().set_policy(&RetentionPolicy { max_age_secs: None, max_messages: Some(2) }).unwrap();
    vault.lock();
    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap();
    assert_eq!(vault.open_report().purged.messages, 3);
    let left: Vec<_> = vault.messages().list("c", 10).unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(left, ["m8", "m9"]);
    assert_eq!(vault.retention().policy().unwrap().max_messages, Some(2));
}

#[test]
fn a_future_dated_message_neither_outlives_its_timer_nor_crowds_out_newer_ones() {
    let (_tv, mut vault) = new_vault("pw");
    let ten_years = 10 * 365 * 86_400_000;
    vault.messages().add(&at("chat", "from the future", now_ms() + ten_years, None)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    for i in 0..3 {
        vault.messages().add(&at("chat", &format!("real {i}"), now_ms(), None)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    vault.retention().set_policy(&RetentionPolicy { max_age_secs: None, max_messages: Some(3) }).unwrap();
    vault.retention().purge().unwrap();
    let left: Vec<_> = vault.messages().list("chat", 10).unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(left, ["real 0", "real 1", "real 2"], "the future date does not keep it among the newest");

    vault.retention().set_policy(&RetentionPolicy::default()).unwrap();
    vault.retention().set_conversation_expiry("chat", Some(1)).unwrap();
    let id = vault.messages().add(&at("chat", "future, disappearing", now_ms() + ten_years, None)).unwrap();
    let expires = vault.messages().get(id).unwrap().unwrap().expires_at.unwrap();
    assert!(expires <= now_ms() + 1_000, "the timer runs from receipt, not from the sender's clock");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    assert_eq!(vault.retention().purge().unwrap().messages, 1);
}

#[test]
fn deleting_one_message_removes_its_row_search_terms_and_media_and_scrubs_its_pages() {
    let (tv, mut vault) = new_vault("pw");
    let now = now_ms();
    // One token, so the search index stores it whole as a term (the external-content index keeps
    // no copy of the body: the row holds the text, the index its terms).
    let term = "qqzjcanary4b81";
    let keep: Vec<_> = (0..200).map(|i| at("c", &format!("keep {i} ordinary text"), now, None)).collect();
    let kept = vault.messages().add_batch(&keep).unwrap();
    let doomed = vault.messages().add(&at("c", &format!("meet {term} by the watermill"), now, None)).unwrap();
    let after = vault.messages().add(&at("c", "keep after the deleted one", now, None)).unwrap();
    let photo = vault
        .media()
        .import(&mut &b"doomed photo"[..], MediaImport { message: Some(doomed), ..Default::default() })
        .unwrap();
    let kept_photo = vault
        .media()
        .import(&mut &b"kept photo"[..], MediaImport { message: Some(kept[0]), ..Default::default() })
        .unwrap();
    let key_hex = hex::encode(vault.dangerous_export_database_key().expose_secret());
    let wal = tv.dir.join(format!("{DATABASE_FILE}-wal"));
    // The scans see the canary while it is stored, in its row and as an index term, and the WAL
    // holds pages: their absence later means something.
    assert!(occurrences(&decrypted_pages(&tv.dir, &key_hex), term.as_bytes()) >= 2, "row and index term");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);

    assert!(vault.messages().delete(doomed).unwrap());
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0, "the WAL was checkpointed and truncated");
    let pages = decrypted_pages(&tv.dir, &key_hex);
    assert!(!contains(&pages, term.as_bytes()), "the deleted text or its index term survives in a page");
    assert!(!contains(&pages, b"watermill"), "the deleted text survives in a page");
    assert!(contains(&pages, b"keep 199 ordinary text"));

    assert_eq!(vault.messages().get(doomed).unwrap(), None);
    assert!(vault.messages().search(term, 10).unwrap().is_empty());
    assert!(vault.messages().search("watermill", 10).unwrap().is_empty());
    assert!(!tv.dir.join(MEDIA_DIR).join(photo.to_string()).exists());
    // Everything else is intact: the other messages, their search entries, their media.
    let left: Vec<_> = vault.messages().list("c", 1000).unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(left, kept.iter().copied().chain([after]).collect::<Vec<_>>());
    assert_eq!(vault.messages().search("ordinary", 500).unwrap().len(), 200);
    assert_eq!(vault.media().list().unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>(), [kept_photo]);
    assert_eq!(vault.status().unwrap().messages, 201);
    assert!(vault.verify().unwrap().is_ok());
    vault.lock();
    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap();
    assert_eq!(vault.messages().get(doomed).unwrap(), None, "still gone after unlocking again");
}

#[test]
fn deleting_a_missing_message_is_refused_or_reported_and_changes_nothing() {
    let (_tv, mut vault) = new_vault("pw");
    let now = now_ms();
    let batch: Vec<_> = (0..3).map(|i| at("c", &format!("word{i} stays"), now, None)).collect();
    let ids = vault.messages().add_batch(&batch).unwrap();
    assert!(vault.messages().delete(ids[1]).unwrap());
    let missing = MessageId(ids[2].0 + 1000);
    let snapshot = |vault: &mut Vault| {
        (
            vault.messages().list("c", 10).unwrap(),
            vault.messages().search("stays", 10).unwrap().len(),
            vault.status().unwrap().security_events,
        )
    };
    let before = snapshot(&mut vault);
    assert_eq!(before.0.len(), 2);

    // One by one: `false`, as for media and secrets.
    assert!(!vault.messages().delete(missing).unwrap());
    assert!(!vault.messages().delete(ids[1]).unwrap(), "already deleted");
    assert_eq!(snapshot(&mut vault), before);
    // A batch naming one missing id is refused whole, naming the id: the existing one stays.
    for (ids, named) in [(vec![ids[0], missing], missing), (vec![ids[2], ids[1], ids[0]], ids[1])] {
        match vault.messages().delete_batch(&ids) {
            Err(Error::NotFound(what)) => assert_eq!(what, format!("message {}", named.0)),
            other => panic!("expected NotFound, got {other:?}"),
        }
        assert_eq!(snapshot(&mut vault), before);
    }
    assert!(vault.verify().unwrap().is_ok());
}

#[test]
fn deleting_several_messages_is_one_call_with_one_report() {
    let (tv, mut vault) = new_vault("pw");
    let now = now_ms();
    let batch: Vec<_> = (0..6).map(|i| at("c", &format!("note{i} qqzjbatch{i}"), now, None)).collect();
    let ids = vault.messages().add_batch(&batch).unwrap();
    let photo = vault
        .media()
        .import(&mut &b"photo of note 1"[..], MediaImport { message: Some(ids[1]), ..Default::default() })
        .unwrap();
    // Attached to a deleted and a kept message: it stays.
    let shared = vault
        .media()
        .import(&mut &b"photo of notes 3 and 4"[..], MediaImport { message: Some(ids[3]), ..Default::default() })
        .unwrap();
    vault.media().attach(&shared, ids[4]).unwrap();
    let key_hex = hex::encode(vault.dangerous_export_database_key().expose_secret());

    assert_eq!(vault.messages().delete_batch(&[]).unwrap().messages, 0);
    let report = vault.messages().delete_batch(&[ids[1], ids[3], ids[1], ids[5]]).unwrap();
    assert_eq!((report.messages, report.media, report.checkpoint_deferred), (3, 1, false));
    let left: Vec<_> = vault.messages().list("c", 10).unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(left, [ids[0], ids[2], ids[4]]);
    for gone in [1, 3, 5] {
        assert!(vault.messages().search(&format!("qqzjbatch{gone}"), 10).unwrap().is_empty());
    }
    assert_eq!(vault.messages().search("qqzjbatch4", 10).unwrap().len(), 1);
    assert!(!tv.dir.join(MEDIA_DIR).join(photo.to_string()).exists());
    assert_eq!(vault.media().list().unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>(), [shared]);
    let pages = decrypted_pages(&tv.dir, &key_hex);
    for gone in [1, 3, 5] {
        assert!(!contains(&pages, format!("qqzjbatch{gone}").as_bytes()), "note {gone} survives in a page");
    }
    assert!(contains(&pages, b"qqzjbatch4"));
    assert!(vault.verify().unwrap().is_ok());
}
