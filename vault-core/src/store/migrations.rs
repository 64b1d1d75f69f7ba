//! Numbered schema migrations. Migration `i` takes a database from `user_version = i` to `i + 1`
//! in one transaction. Never edit a shipped migration: add a new one.

use crate::error::DataKind;
use rusqlite::Connection;

use crate::error::{Error, Result};

/// The schema migrations, in order.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: conversations, messages, app secrets, and the vault identifier.
    "CREATE TABLE meta (
         name  TEXT PRIMARY KEY NOT NULL,
         value BLOB NOT NULL
     ) STRICT;
     CREATE TABLE conversations (
         id                  INTEGER PRIMARY KEY,
         name                TEXT NOT NULL UNIQUE,
         created_at          INTEGER NOT NULL,
         default_expiry_secs INTEGER
     ) STRICT;
     CREATE TABLE messages (
         id              INTEGER PRIMARY KEY,
         conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
         sender          TEXT NOT NULL,
         sent_at         INTEGER NOT NULL,
         received_at     INTEGER NOT NULL,
         body            TEXT NOT NULL,
         status          TEXT NOT NULL,
         expires_at      INTEGER
     ) STRICT;
     CREATE INDEX messages_by_conversation ON messages (conversation_id, sent_at, id);
     CREATE INDEX messages_by_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL;
     CREATE TABLE app_secrets (
         name       TEXT PRIMARY KEY NOT NULL,
         value      BLOB NOT NULL,
         updated_at INTEGER NOT NULL
     ) STRICT;",
    // 2: full-text search over message bodies, kept in step by triggers, filled from old rows.
    "CREATE VIRTUAL TABLE messages_fts USING fts5 (
         body,
         content = 'messages',
         content_rowid = 'id',
         tokenize = 'unicode61 remove_diacritics 2'
     );
     CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
         INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
     END;
     CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
         INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
     END;
     CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
         INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.id, old.body);
         INSERT INTO messages_fts (rowid, body) VALUES (new.id, new.body);
     END;
     INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');",
    // 3: the security-event log.
    "CREATE TABLE security_events (
         id     INTEGER PRIMARY KEY,
         at     INTEGER NOT NULL,
         kind   TEXT NOT NULL,
         detail TEXT NOT NULL
     ) STRICT;",
    // 4: media items (with their per-file keys), attachments, and vault-wide settings.
    "CREATE TABLE media (
         id              BLOB PRIMARY KEY NOT NULL CHECK (length(id) = 16),
         file_key        BLOB NOT NULL CHECK (length(file_key) = 32),
         length          INTEGER NOT NULL CHECK (length >= 0),
         created_at      INTEGER NOT NULL,
         conversation_id INTEGER REFERENCES conversations(id) ON DELETE SET NULL
     ) STRICT;
     CREATE TABLE attachments (
         message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
         media_id   BLOB NOT NULL REFERENCES media(id) ON DELETE CASCADE,
         PRIMARY KEY (message_id, media_id)
     ) STRICT;
     CREATE INDEX attachments_by_media ON attachments (media_id);
     CREATE TABLE settings (
         name  TEXT PRIMARY KEY NOT NULL,
         value INTEGER
     ) STRICT;",
    // 5: backups: the Backup Root Key, the newest generation this device wrote or restored (for
    // anti-rollback), and packs uploaded by a run that has not finished (for resuming it).
    "CREATE TABLE backup_state (
         id            INTEGER PRIMARY KEY CHECK (id = 1),
         root_key      BLOB NOT NULL CHECK (length(root_key) = 32),
         generation    INTEGER NOT NULL DEFAULT 0 CHECK (generation >= 0),
         manifest_hash BLOB CHECK (manifest_hash IS NULL OR length(manifest_hash) = 32)
     ) STRICT;
     CREATE TABLE backup_pending_packs (
         pack    BLOB PRIMARY KEY NOT NULL CHECK (length(pack) = 16),
         entries BLOB NOT NULL
     ) STRICT;",
    // 6: recovery enrolment: the account, the share policy, and per guardian server its pinned
    // key, this device's token and this server's share (position 0 holds the backup data).
    "CREATE TABLE recovery_enrolment (
         id                      INTEGER PRIMARY KEY CHECK (id = 1),
         account                 TEXT NOT NULL,
         threshold               INTEGER NOT NULL CHECK (threshold BETWEEN 1 AND 9),
         servers                 INTEGER NOT NULL CHECK (servers BETWEEN 1 AND 8),
         recovery_code           INTEGER NOT NULL CHECK (recovery_code IN (0, 1)),
         single_provider_allowed INTEGER NOT NULL CHECK (single_provider_allowed IN (0, 1)),
         share_set               BLOB NOT NULL CHECK (length(share_set) = 16)
     ) STRICT;
     CREATE TABLE recovery_guardians (
         position     INTEGER PRIMARY KEY CHECK (position BETWEEN 0 AND 7),
         url          TEXT NOT NULL,
         server_key   BLOB NOT NULL,
         device_id    TEXT NOT NULL,
         device_token TEXT NOT NULL,
         share        BLOB CHECK (share IS NULL OR length(share) = 32)
     ) STRICT;",
    // 7: message ids are never reused: the highest id ever given, kept by a trigger on every
    // insert (whatever assigns the id) and never lowered by a delete; new messages take the next
    // one. Seeded from the rows there are (an id reused before this migration cannot be undone).
    "CREATE TABLE id_high_water (
         name  TEXT PRIMARY KEY NOT NULL,
         value INTEGER NOT NULL CHECK (value >= 0)
     ) STRICT;
     INSERT INTO id_high_water (name, value) SELECT 'messages', max(id) FROM messages HAVING count(*) > 0;
     CREATE TRIGGER messages_high_water AFTER INSERT ON messages BEGIN
         INSERT INTO id_high_water (name, value) VALUES ('messages', new.id)
         ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value);
     END;",
    // 8: backup key epochs. `keyring` holds the earlier epochs' keys and the rotation point
    // (`backup::keys::Keyring`), NULL in a backup's first epoch; `backup_rotation` the next
    // epoch's key and keyring while a rotation is under way.
    "ALTER TABLE backup_state ADD COLUMN keyring BLOB;
     CREATE TABLE backup_rotation (
         id       INTEGER PRIMARY KEY CHECK (id = 1),
         root_key BLOB NOT NULL CHECK (length(root_key) = 32),
         keyring  BLOB NOT NULL
     ) STRICT;",
    // 9: recovery-attempt alerts: per guardian enrolment (URL and this device's id there), the
    // position in the guardian's account event log up to which events were added to the
    // security-event log. Device-local: never in the backup export.
    "CREATE TABLE guardian_event_cursors (
         url       TEXT NOT NULL,
         device_id TEXT NOT NULL,
         seen      INTEGER NOT NULL CHECK (seen >= 0),
         PRIMARY KEY (url, device_id)
     ) STRICT, WITHOUT ROWID;",
    // 10: the backup's holders (the data server and its mirror) as the last backup run found
    // them: per server, the newest generation it fully held. Device-local: never exported.
    "CREATE TABLE backup_holders (
         position   INTEGER PRIMARY KEY,
         url        TEXT NOT NULL,
         generation INTEGER,
         missing    INTEGER NOT NULL CHECK (missing >= 0),
         checked_at INTEGER NOT NULL
     ) STRICT;",
    // 11: forward-secret backups: the token of the newest generation this device wrote or
    // restored (overwritten by the next: the device keeps no older token), and the token a run
    // drew for the generation it is writing, kept from before its manifest is written until its
    // head record is (so an interrupted run's manifest can still be opened and published). Pending
    // packs of earlier builds name no chunk keys: they are dropped (their chunks are uploaded
    // again; a prune removes the packs).
    "ALTER TABLE backup_state ADD COLUMN token_generation INTEGER CHECK (token_generation IS NULL OR token_generation > 0);
     ALTER TABLE backup_state ADD COLUMN token BLOB CHECK (token IS NULL OR length(token) = 32);
     ALTER TABLE backup_state ADD COLUMN pending_generation INTEGER CHECK (pending_generation IS NULL OR pending_generation > 0);
     ALTER TABLE backup_state ADD COLUMN pending_token BLOB CHECK (pending_token IS NULL OR length(pending_token) = 32);
     DELETE FROM backup_pending_packs;",
];

/// The schema version this build writes.
pub(crate) fn latest_version() -> u32 {
    u32::try_from(MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// The database's current schema version.
pub(crate) fn current_version(conn: &Connection) -> Result<u32> {
    let v: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    u32::try_from(v)
        .map_err(|_| Error::Integrity { object: DataKind::Database, problem: "negative schema version".to_owned() })
}

/// Brings the database up to the latest schema; refuses one newer than this build.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, latest_version())
}

/// Applies migrations up to `target` (tests use it to build every past schema).
pub(crate) fn migrate_to(conn: &mut Connection, target: u32) -> Result<()> {
    let current = current_version(conn)?;
    if current > latest_version() {
        return Err(Error::UnsupportedVersion { what: "database schema", found: u64::from(current) });
    }
    for version in current..target.min(latest_version()) {
        let sql = MIGRATIONS.get(version as usize).ok_or(Error::internal("migration index"))?;
        // Immediate, and the version re-read inside: a second process upgrading at the same
        // moment waits, then finds the step done.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if current_version(&tx)? != version {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretKey;

    fn schema(conn: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut stmt = conn
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
            .unwrap_or_else(|e| panic!("{e}"));
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn open(dir: &std::path::Path, name: &str) -> Connection {
        crate::store::open_keyed(&dir.join(name), &SecretKey::from_bytes([4; 32]), true)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A database left at every past schema version upgrades to exactly the fresh schema, and
    /// keeps (and indexes) the rows it had.
    #[test]
    fn upgrades_from_every_past_version() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut fresh = open(dir.path(), "fresh.db");
        migrate(&mut fresh).unwrap_or_else(|e| panic!("{e}"));
        let expected = schema(&fresh);
        assert_eq!(current_version(&fresh).ok(), Some(latest_version()));

        for start in 0..=latest_version() {
            let mut conn = open(dir.path(), &format!("from-{start}.db"));
            migrate_to(&mut conn, start).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(current_version(&conn).ok(), Some(start));
            if start >= 1 {
                conn.execute_batch(
                    "INSERT INTO conversations (id, name, created_at) VALUES (1, 'old', 0);
                     INSERT INTO messages (conversation_id, sender, sent_at, received_at, body, status)
                     VALUES (1, 'a', 0, 0, 'written before the upgrade', 'read');",
                )
                .unwrap_or_else(|e| panic!("{e}"));
            }
            migrate(&mut conn).unwrap_or_else(|e| panic!("from {start}: {e}"));
            assert_eq!(schema(&conn), expected, "schema after upgrading from {start}");
            if start >= 1 {
                let hits = crate::store::messages::search(&conn, "upgrade", 5).unwrap_or_default();
                assert_eq!(hits.len(), 1, "old rows searchable after upgrading from {start}");
                // The newest message purged: its id is not given again.
                let first = hits[0].message.id;
                assert!(crate::store::messages::delete(&conn, first).unwrap_or(false));
                let new = crate::store::messages::NewMessage::new("old", "b", "after the upgrade");
                let ids = crate::store::messages::insert(&mut conn, &[new]).unwrap_or_else(|e| panic!("{e}"));
                assert!(ids[0] > first, "from {start}: {:?} reuses {first:?}", ids[0]);
            }
        }
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut conn = open(dir.path(), "future.db");
        conn.pragma_update(None, "user_version", latest_version() + 1).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(migrate(&mut conn), Err(Error::UnsupportedVersion { .. })));
    }
}
