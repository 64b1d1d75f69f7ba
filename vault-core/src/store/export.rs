//! The deterministic logical export of the database, and its import: what a backup carries
//! instead of the SQLCipher file (whose per-page random IVs would defeat deduplication).
//!
//! ```text
//! export = "VBAKEXP1" (8) ‖ u32 schema version ‖ row* ‖ 0xFF
//! row    = u8 table tag ‖ u8 column count ‖ value*      (columns in the fixed order below)
//! value  = 0x00                                         NULL
//!        | 0x01 ‖ i64                                   INTEGER
//!        | 0x02 ‖ u32 length ‖ UTF-8 bytes              TEXT
//!        | 0x03 ‖ u32 length ‖ bytes                    BLOB
//! ```
//!
//! Integers are little-endian. Tables come in the order of [`TABLES`], rows in primary-key order,
//! all read inside one read transaction, so the same database content always gives the same bytes
//! and appending messages appends to the stream. Not exported: `meta` (the vault identifier belongs
//! to the vault directory, not its content) and the FTS5 index (rebuilt by the insert triggers on
//! import). `id_high_water` (schema 7) carries the highest message id ever given, so a restored
//! vault never reuses the id of a message purged before the backup. The stream holds message bodies, app secrets and media keys in clear: it is only ever
//! passed, in memory, to the chunker and sealer, never written to disk.

use crate::error::DataKind;
use std::io::{Read, Write};

use rusqlite::Connection;
use rusqlite::types::{Value, ValueRef};

use crate::error::{Error, Result};
use crate::media::MediaId;
use crate::secret::SecretKey;

const MAGIC: &[u8; 8] = b"VBAKEXP1";
const END: u8 = 0xFF;
/// Longest TEXT or BLOB value accepted on import.
const MAX_VALUE_LEN: u32 = 64 << 20;

/// One exported table: tag, name, columns in export order, primary-key order, and the schema
/// version that added it (older exports have no rows of it).
struct Table {
    tag: u8,
    name: &'static str,
    columns: &'static [&'static str],
    order_by: &'static str,
    since: u32,
}

/// The oldest export schema version import reads (the first with backups). Exports of versions
/// 5 and 6 differ from 7 only in lacking `id_high_water`, which their messages' ids rebuild.
const OLDEST_IMPORTED: u32 = 5;

/// Every exported table, in stream order (parents before the rows that reference them).
const TABLES: &[Table] = &[
    Table { tag: 1, name: "settings", columns: &["name", "value"], order_by: "name", since: 4 },
    Table {
        tag: 2,
        name: "conversations",
        columns: &["id", "name", "created_at", "default_expiry_secs"],
        order_by: "id",
        since: 1,
    },
    Table { tag: 3, name: "app_secrets", columns: &["name", "value", "updated_at"], order_by: "name", since: 1 },
    Table { tag: 4, name: "security_events", columns: &["id", "at", "kind", "detail"], order_by: "id", since: 3 },
    Table {
        tag: 5,
        name: "media",
        columns: &["id", "file_key", "length", "created_at", "conversation_id"],
        order_by: "id",
        since: 4,
    },
    Table {
        tag: 6,
        name: "messages",
        columns: &["id", "conversation_id", "sender", "sent_at", "received_at", "body", "status", "expires_at"],
        order_by: "id",
        since: 1,
    },
    Table {
        tag: 7,
        name: "attachments",
        columns: &["message_id", "media_id"],
        order_by: "message_id, media_id",
        since: 4,
    },
    // After the messages: their insert trigger has raised the mark to the largest imported id, and
    // the exported mark (which counts purged ids too) can only raise it further.
    Table { tag: 8, name: "id_high_water", columns: &["name", "value"], order_by: "name", since: 7 },
];

/// Counts of what an export or import carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Rows per table, in [`TABLES`] order, as `(table name, rows)`.
    pub rows: Vec<(&'static str, u64)>,
    /// Bytes of the stream.
    pub bytes: u64,
}

impl ExportStats {
    #[cfg(test)]
    /// Rows of one table.
    pub fn rows_of(&self, table: &str) -> u64 {
        self.rows.iter().find(|(name, _)| *name == table).map_or(0, |(_, n)| *n)
    }
}

struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn io_err(e: std::io::Error) -> Error {
    Error::Io { context: "streaming the database export", source: e }
}

/// Writes the export of `conn`'s content to `out`, from one read transaction.
#[cfg(test)]
pub(crate) fn export<W: Write>(conn: &Connection, out: W) -> Result<ExportStats> {
    let tx = conn.unchecked_transaction()?;
    export_in(&tx, out)
}

/// Writes the export of the content `tx` sees to `out`; the caller holds the read transaction.
pub(crate) fn export_in<W: Write>(tx: &Connection, out: W) -> Result<ExportStats> {
    let mut out = Counting { inner: out, bytes: 0 };
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = u32::try_from(version)
        .map_err(|_| Error::Integrity { object: DataKind::Database, problem: "negative schema version".into() })?;
    out.write_all(MAGIC).map_err(io_err)?;
    out.write_all(&version.to_le_bytes()).map_err(io_err)?;
    let mut stats = ExportStats::default();
    for table in TABLES {
        let sql = format!("SELECT {} FROM {} ORDER BY {}", table.columns.join(", "), table.name, table.order_by);
        let mut statement = tx.prepare(&sql)?;
        let mut rows = statement.query([])?;
        let mut count = 0u64;
        let width = u8::try_from(table.columns.len()).map_err(|_| Error::Internal("too many columns"))?;
        while let Some(row) = rows.next()? {
            out.write_all(&[table.tag, width]).map_err(io_err)?;
            for i in 0..table.columns.len() {
                write_value(&mut out, row.get_ref(i)?)?;
            }
            count += 1;
        }
        stats.rows.push((table.name, count));
    }
    out.write_all(&[END]).map_err(io_err)?;
    out.flush().map_err(io_err)?;
    stats.bytes = out.bytes;
    Ok(stats)
}

fn write_value<W: Write>(out: &mut W, value: ValueRef<'_>) -> Result<()> {
    let len_of = |bytes: &[u8]| u32::try_from(bytes.len()).map_err(|_| Error::Internal("a value over 4 GiB"));
    match value {
        ValueRef::Null => out.write_all(&[0]).map_err(io_err),
        ValueRef::Integer(i) => {
            out.write_all(&[1]).map_err(io_err)?;
            out.write_all(&i.to_le_bytes()).map_err(io_err)
        }
        ValueRef::Text(t) => {
            out.write_all(&[2]).map_err(io_err)?;
            out.write_all(&len_of(t)?.to_le_bytes()).map_err(io_err)?;
            out.write_all(t).map_err(io_err)
        }
        ValueRef::Blob(b) => {
            out.write_all(&[3]).map_err(io_err)?;
            out.write_all(&len_of(b)?.to_le_bytes()).map_err(io_err)?;
            out.write_all(b).map_err(io_err)
        }
        ValueRef::Real(_) => Err(Error::Internal("a REAL value in a table that has none")),
    }
}

fn corrupt(what: &str) -> Error {
    Error::Integrity { object: DataKind::Database, problem: format!("the database export is malformed: {what}") }
}

fn read_exact<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<()> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt("truncated"),
        _ => io_err(e),
    })
}

/// The values of one imported row; its blobs (keys and secret values among them) are wiped when
/// it is dropped, on every path.
struct WipedRow(Vec<Value>);

impl Drop for WipedRow {
    fn drop(&mut self) {
        for value in &mut self.0 {
            if let Value::Blob(bytes) = value {
                zeroize::Zeroize::zeroize(bytes);
            }
        }
    }
}

/// The id, key and length of an inserted media row, found by the names of `table`'s columns;
/// `None` for values of other shapes, whose item then fails verification.
fn imported_media(table: &Table, values: &[Value]) -> Option<ImportedMedia> {
    let column = |name: &str| table.columns.iter().position(|c| *c == name).and_then(|i| values.get(i));
    match (column("id")?, column("file_key")?, column("length")?) {
        (Value::Blob(id), Value::Blob(key), Value::Integer(length)) => Some(ImportedMedia {
            id: MediaId(<[u8; 16]>::try_from(id.as_slice()).ok()?),
            key: SecretKey::try_from_slice(key)?,
            length: u64::try_from(*length).ok()?,
        }),
        _ => None,
    }
}

fn read_value<R: Read>(input: &mut R) -> Result<Value> {
    let mut tag = [0u8; 1];
    read_exact(input, &mut tag)?;
    match tag[0] {
        0 => Ok(Value::Null),
        1 => {
            let mut i = [0u8; 8];
            read_exact(input, &mut i)?;
            Ok(Value::Integer(i64::from_le_bytes(i)))
        }
        2 | 3 => {
            let mut len = [0u8; 4];
            read_exact(input, &mut len)?;
            let len = u32::from_le_bytes(len);
            if len > MAX_VALUE_LEN {
                return Err(corrupt("a value is too long"));
            }
            let mut bytes = vec![0u8; len as usize];
            read_exact(input, &mut bytes)?;
            if tag[0] == 2 {
                String::from_utf8(bytes).map(Value::Text).map_err(|_| corrupt("text that is not UTF-8"))
            } else {
                Ok(Value::Blob(bytes))
            }
        }
        _ => Err(corrupt("an unknown value type")),
    }
}

/// Inserts every row of an export into `conn`, in one transaction: on any error nothing changes.
/// The export's schema version must be at most the database's (and at least
/// [`OLDEST_IMPORTED`]); the database must have no content (no row in any exported table but
/// `security_events` and `id_high_water`). The database's own security events (its creation and unlocks) are kept
/// and renumbered after the imported history. (Restores use [`import_with`].)
#[cfg(any(test, fuzzing))]
pub(crate) fn import<R: Read>(conn: &mut Connection, input: R) -> Result<ExportStats> {
    import_with(conn, input, &mut |_| {})
}

/// A media row as an import inserted it: what authenticating its file takes.
pub(crate) struct ImportedMedia {
    /// The item's id.
    pub(crate) id: MediaId,
    /// The key its file is sealed under.
    pub(crate) key: SecretKey,
    /// The plaintext length its row records.
    pub(crate) length: u64,
}

/// [`import`], handing each media row to `on_media` once inserted (in the export's order, media
/// rows come before the messages, so most of the import is still ahead). The rows are committed
/// only if the whole import succeeds.
pub(crate) fn import_with<R: Read>(
    conn: &mut Connection,
    mut input: R,
    on_media: &mut dyn FnMut(ImportedMedia),
) -> Result<ExportStats> {
    let mut header = [0u8; 12];
    read_exact(&mut input, &mut header)?;
    if &header[..8] != MAGIC {
        return Err(corrupt("not a database export"));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    let ours: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < OLDEST_IMPORTED || i64::from(version) > ours {
        return Err(Error::UnsupportedVersion { what: "database export schema", found: u64::from(version) });
    }
    let tx = conn.transaction()?;
    // The high-water mark may outlive the rows (all messages deleted): it only ever rises.
    for table in TABLES.iter().filter(|t| t.name != "security_events" && t.name != "id_high_water") {
        let rows: i64 = tx.query_row(&format!("SELECT count(*) FROM {}", table.name), [], |r| r.get(0))?;
        if rows != 0 {
            return Err(Error::InvalidInput("a backup can only be restored into an empty vault".into()));
        }
    }
    let own_events: Vec<(i64, String, String)> = {
        let mut statement = tx.prepare("SELECT at, kind, detail FROM security_events ORDER BY id")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    tx.execute("DELETE FROM security_events", [])?;
    // Indexing each message through its trigger makes FTS5 flush at every statement's savepoint
    // (most of a large import's time); the trigger is set aside and the index rebuilt once at the
    // end. Schema changes are transactional: a failed import restores the trigger too.
    let fts_trigger: String = tx.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'messages_fts_insert'",
        [],
        |r| r.get(0),
    )?;
    tx.execute_batch("DROP TRIGGER messages_fts_insert")?;
    let mut stats = ExportStats { rows: TABLES.iter().map(|t| (t.name, 0)).collect(), bytes: 12 };
    let mut last_tag = 0u8;
    loop {
        let mut tag = [0u8; 1];
        read_exact(&mut input, &mut tag)?;
        if tag[0] == END {
            break;
        }
        let position = TABLES.iter().position(|t| t.tag == tag[0]).ok_or_else(|| corrupt("an unknown table"))?;
        if tag[0] < last_tag {
            return Err(corrupt("tables out of order"));
        }
        last_tag = tag[0];
        let table = &TABLES[position];
        if table.since > version {
            return Err(corrupt("a table its schema version does not have"));
        }
        let mut width = [0u8; 1];
        read_exact(&mut input, &mut width)?;
        if usize::from(width[0]) != table.columns.len() {
            return Err(corrupt("a row with the wrong number of columns"));
        }
        let mut values = WipedRow(Vec::with_capacity(table.columns.len()));
        for _ in 0..table.columns.len() {
            values.0.push(read_value(&mut input)?);
        }
        let placeholders = vec!["?"; values.0.len()].join(", ");
        let upsert = if table.name == "id_high_water" {
            " ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)"
        } else {
            ""
        };
        let sql = format!("INSERT INTO {} ({}) VALUES ({placeholders}){upsert}", table.name, table.columns.join(", "));
        tx.prepare_cached(&sql)?
            .execute(rusqlite::params_from_iter(values.0.iter()))
            .map_err(|_| corrupt("a row the schema refuses"))?;
        stats.rows[position].1 += 1;
        if table.name == "media"
            && let Some(media) = imported_media(table, &values.0)
        {
            on_media(media);
        }
    }
    let mut trailing = [0u8; 1];
    if input.read(&mut trailing).map_err(io_err)? != 0 {
        return Err(corrupt("bytes after the end"));
    }
    tx.execute_batch(&fts_trigger)?;
    tx.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')", [])?;
    for (at, kind, detail) in own_events {
        tx.execute("INSERT INTO security_events (at, kind, detail) VALUES (?1, ?2, ?3)", (at, kind, detail))?;
    }
    tx.commit()?;
    Ok(stats)
}
