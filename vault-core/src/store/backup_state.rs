//! The vault's own backup state (migration 5): the Backup Root Key, the newest generation and
//! manifest hash this device wrote or restored, and the packs of an unfinished run.

use crate::error::DataKind;
use rusqlite::{Connection, OptionalExtension};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// The newest generation a device knows of and its manifest hash (0 and `None` before any).
pub(crate) type Position = (u64, Option<[u8; 32]>);

/// The Backup Root Key, if one was made or restored.
pub(crate) fn root_key(conn: &Connection) -> Result<Option<SecretKey>> {
    let key: Option<Zeroizing<Vec<u8>>> = conn
        .query_row("SELECT root_key FROM backup_state WHERE id = 1", [], |r| r.get::<_, Vec<u8>>(0).map(Zeroizing::new))
        .optional()?;
    key.map(|k| {
        SecretKey::try_from_slice(&k).ok_or_else(|| Error::Integrity {
            object: DataKind::Database,
            problem: "the backup key has the wrong length".into(),
        })
    })
    .transpose()
}

/// Stores the Backup Root Key with no generation yet; fails if one exists.
pub(crate) fn set_root_key(conn: &Connection, key: &SecretKey) -> Result<()> {
    conn.execute("INSERT INTO backup_state (id, root_key) VALUES (1, ?1)", [&key.expose_secret()[..]])?;
    Ok(())
}

/// The newest generation this device knows of and its manifest hash (0 and `None` before any).
pub(crate) fn position(conn: &Connection) -> Result<Position> {
    let row: Option<(i64, Option<Vec<u8>>)> = conn
        .query_row("SELECT generation, manifest_hash FROM backup_state WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((generation, hash)) = row else { return Ok((0, None)) };
    let generation = u64::try_from(generation)
        .map_err(|_| Error::Integrity { object: DataKind::Database, problem: "negative backup generation".into() })?;
    let hash = hash
        .map(|h| {
            <[u8; 32]>::try_from(h.as_slice())
                .map_err(|_| Error::Integrity { object: DataKind::Database, problem: "malformed manifest hash".into() })
        })
        .transpose()?;
    Ok((generation, hash))
}

/// Records the newest generation and its manifest hash, and forgets the finished run's packs.
pub(crate) fn advance(conn: &Connection, generation: u64, hash: &[u8; 32]) -> Result<()> {
    let generation = i64::try_from(generation).map_err(|_| Error::Internal("generation overflow"))?;
    let tx = conn.unchecked_transaction()?;
    let changed = tx
        .execute("UPDATE backup_state SET generation = ?1, manifest_hash = ?2 WHERE id = 1", (generation, &hash[..]))?;
    if changed != 1 {
        return Err(Error::Internal("no backup key to record a generation for"));
    }
    tx.execute("DELETE FROM backup_pending_packs", [])?;
    tx.commit()?;
    Ok(())
}

/// Remembers a pack an unfinished run uploaded, with its encoded chunk entries (the backup
/// module owns the encoding).
pub(crate) fn add_pending(conn: &Connection, pack: &[u8], entries: &[u8]) -> Result<()> {
    conn.execute("INSERT OR REPLACE INTO backup_pending_packs (pack, entries) VALUES (?1, ?2)", (pack, entries))?;
    Ok(())
}

/// Packs uploaded by unfinished runs, with their encoded chunk entries, in pack order.
pub(crate) fn pending(conn: &Connection) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut statement = conn.prepare("SELECT pack, entries FROM backup_pending_packs ORDER BY pack")?;
    let rows = statement.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
