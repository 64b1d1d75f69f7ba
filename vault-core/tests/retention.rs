//! Disappearing messages and retention limits: purged on demand and at unlock, with their
//! search entries and media, and gone from every decrypted page of the database file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{new_vault, pass};
use test_support::canary::contains;
use vault_core::bench_support::Connection;
use vault_core::{DATABASE_FILE, MEDIA_DIR, MediaImport, NewMessage, RetentionPolicy, Vault};

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
