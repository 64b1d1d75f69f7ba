//! The encrypted database: SQLCipher 4 opened with a raw 256-bit key, schema migrations, and the
//! tables of the vault (messages, app secrets, security events). This module never sees the root
//! key or a passphrase, only the derived database key.

use crate::error::DataKind;
pub(crate) mod backup_state;
pub(crate) mod events;
pub(crate) mod export;
pub(crate) mod guardian_events;
pub(crate) mod holders;
pub(crate) mod media_rows;
pub(crate) mod messages;
pub(crate) mod migrations;
pub(crate) mod recovery_state;
pub(crate) mod retention;
pub(crate) mod secrets;

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// The SQLCipher compatibility level the vault pins (SQLCipher 4 defaults: AES-256-CBC pages,
/// HMAC-SHA512 per page, 4096-byte pages).
pub const CIPHER_COMPATIBILITY: u32 = 4;

/// What SQLCipher reports about an open database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CipherInfo {
    /// `PRAGMA cipher_version`, e.g. `4.6.1 community`.
    pub cipher_version: String,
    /// `PRAGMA cipher_provider`, e.g. `openssl`.
    pub cipher_provider: String,
    /// The pinned compatibility level.
    pub compatibility: u32,
}

/// An open, keyed, migrated vault database.
pub(crate) struct Store {
    pub(crate) conn: Connection,
}

/// Applies the raw key and the session pragmas, and proves the key by reading the schema.
/// A build without SQLCipher (plain SQLite linked by mistake) is refused: fail closed.
pub(crate) fn open_keyed(path: &Path, key: &SecretKey, create: bool) -> Result<Connection> {
    open_with(path, create, |conn| {
        apply_key(conn, key)?;
        check_cipher(conn)?;
        conn.execute_batch(&format!("PRAGMA cipher_compatibility = {CIPHER_COMPATIBILITY};"))?;
        Ok(())
    })
}

/// Opens `path`, runs `keying` (which must key the connection, or not for the plain baseline
/// of the benchmarks), forces a first read, then applies the session pragmas.
fn open_with(path: &Path, create: bool, keying: impl FnOnce(&Connection) -> Result<()>) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    // SQLCipher would otherwise print page-level diagnostics to the app's stderr; failures
    // reach the caller as errors instead.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    keying(&conn)?;
    // The first read decrypts page 1: a wrong key or a damaged header fails here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA secure_delete = ON;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -8192;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// `PRAGMA key = "x'…'"`: the raw-key form, so SQLCipher skips its own PBKDF2.
pub(crate) fn apply_key(conn: &Connection, key: &SecretKey) -> Result<()> {
    let mut sql = Zeroizing::new(String::with_capacity(84));
    sql.push_str("PRAGMA key = \"x'");
    sql.push_str(&Zeroizing::new(hex::encode(key.expose_secret())));
    sql.push_str("'\";");
    conn.execute_batch(&sql)?;
    Ok(())
}

/// Refuses to run on a plain SQLite build.
fn check_cipher(conn: &Connection) -> Result<()> {
    let version: Option<String> = conn.query_row("PRAGMA cipher_version", [], |r| r.get(0)).ok();
    match version {
        Some(v) if !v.trim().is_empty() => Ok(()),
        _ => Err(Error::Internal("this build is not linked against SQLCipher; refusing to open")),
    }
}

impl Store {
    /// Creates a new database at `path` (which must not exist) and migrates it.
    pub(crate) fn create(path: &Path, key: &SecretKey, vault_id: &[u8; 16]) -> Result<Store> {
        // Created empty with owner-only permissions first; SQLite gives its -wal and -shm files
        // the same mode.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(Error::io("creating the database file"))?;
        let mut conn = open_keyed(path, key, true)?;
        migrations::migrate(&mut conn)?;
        conn.execute("INSERT INTO meta (name, value) VALUES ('vault_id', ?1)", [vault_id.as_slice()])?;
        Ok(Store { conn })
    }

    /// Opens an existing database, checks it belongs to `vault_id`, and migrates it.
    pub(crate) fn open(path: &Path, key: &SecretKey, vault_id: &[u8; 16]) -> Result<Store> {
        if !path.is_file() {
            return Err(Error::Integrity {
                object: DataKind::Database,
                problem: "the vault database is missing".to_owned(),
            });
        }
        let mut conn = open_keyed(path, key, false)?;
        migrations::migrate(&mut conn)?;
        let stored: Vec<u8> = conn
            .query_row("SELECT value FROM meta WHERE name = 'vault_id'", [], |r| r.get(0))
            .map_err(|_| Error::Integrity {
                object: DataKind::Database,
                problem: "the database has no vault identifier".to_owned(),
            })?;
        if stored.as_slice() != vault_id.as_slice() {
            return Err(Error::Integrity {
                object: DataKind::Database,
                problem: "the database belongs to a different vault".to_owned(),
            });
        }
        Ok(Store { conn })
    }

    /// Re-keys the database with `key` (`PRAGMA rekey`, one transaction). Checkpoint afterwards
    /// so no page under the old key stays in the write-ahead log.
    pub(crate) fn rekey(&self, key: &SecretKey) -> Result<()> {
        let mut sql = Zeroizing::new(String::with_capacity(86));
        sql.push_str("PRAGMA rekey = \"x'");
        sql.push_str(&Zeroizing::new(hex::encode(key.expose_secret())));
        sql.push_str("'\";");
        self.conn.execute_batch(&sql)?;
        Ok(())
    }

    /// Copies the write-ahead log into the database and truncates it, so no old page version
    /// (deleted content, pages under a retired key) stays in it. Waits for readers up to the
    /// busy timeout. Returns whether it completed: another connection holding a read can defer
    /// it, which is not an error (the log stays encrypted, and the next checkpoint finishes).
    pub(crate) fn checkpoint(&self) -> Result<bool> {
        let (busy, _log, _done): (i64, i64, i64) =
            self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(busy == 0)
    }

    /// After deletions: merges the search index (dropping deleted terms from its segments) and
    /// checkpoints the write-ahead log, so deleted content survives nowhere in the files.
    pub(crate) fn scrub(&self) -> Result<bool> {
        self.conn.execute_batch("INSERT INTO messages_fts (messages_fts) VALUES ('optimize');")?;
        self.checkpoint()
    }

    /// What SQLCipher reports about this database.
    pub(crate) fn cipher_info(&self) -> Result<CipherInfo> {
        let text = |pragma: &str| -> Result<String> {
            Ok(self.conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get::<_, String>(0))?)
        };
        Ok(CipherInfo {
            cipher_version: text("cipher_version")?,
            cipher_provider: text("cipher_provider")?,
            compatibility: CIPHER_COMPATIBILITY,
        })
    }

    /// Runs SQLCipher's page authentication over every page and SQLite's integrity check.
    /// Returns a description of each problem (no row contents).
    pub(crate) fn verify(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        let mut stmt = self.conn.prepare("PRAGMA cipher_integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            problems.push(format!("page authentication: {}", row?));
        }
        let mut stmt = self.conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            let row = row?;
            if row != "ok" {
                problems.push(format!("sqlite integrity: {row}"));
            }
        }
        Ok(problems)
    }

    /// Runs the full-text index's own check: every message body indexed, nothing else.
    pub(crate) fn verify_search_index(&self) -> Vec<String> {
        match self.conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')", []) {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        }
    }
}

/// Current time in milliseconds since the Unix epoch.
pub(crate) fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The store's code paths with the key made optional, for the side-by-side benchmarks against
/// plain SQLite and SQLCipher's own passphrase KDF. Not part of the API.
#[doc(hidden)]
pub mod bench_support {
    use std::path::Path;

    pub use rusqlite::Connection;

    use super::messages::{self, MessageId, NewMessage, SearchHit};
    use crate::error::Result;
    use crate::secret::SecretKey;

    /// The vault's own open: raw 256-bit key, pinned compatibility, cipher check, migrations.
    pub fn open_raw_key(path: &Path, key: &[u8; 32]) -> Result<Connection> {
        let mut conn = super::open_keyed(path, &SecretKey::from_bytes(*key), true)?;
        super::migrations::migrate(&mut conn)?;
        Ok(conn)
    }

    /// The same database code with no cipher at all (the plain SQLite baseline).
    pub fn open_plain(path: &Path) -> Result<Connection> {
        let mut conn = super::open_with(path, true, |_| Ok(()))?;
        super::migrations::migrate(&mut conn)?;
        Ok(conn)
    }

    /// SQLCipher keyed with a passphrase, so SQLCipher runs its own PBKDF2-HMAC-SHA512
    /// (256,000 iterations in compatibility 4) on every open: what the vault avoids.
    pub fn open_sqlcipher_passphrase(path: &Path, passphrase: &str) -> Result<Connection> {
        let mut conn = super::open_with(path, true, |conn| {
            conn.pragma_update(None, "key", passphrase)?;
            conn.execute_batch("PRAGMA cipher_compatibility = 4;")?;
            Ok(())
        })?;
        super::migrations::migrate(&mut conn)?;
        Ok(conn)
    }

    /// Inserts messages in one transaction, as [`crate::Messages::add_batch`] does.
    pub fn insert_messages(conn: &mut Connection, batch: &[NewMessage]) -> Result<Vec<MessageId>> {
        messages::insert(conn, batch)
    }

    /// Full-text search, as [`crate::Messages::search`] does.
    pub fn search(conn: &Connection, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        messages::search(conn, query, limit)
    }
}
