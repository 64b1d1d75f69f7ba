//! What the last backup run found at the backup's holders (`backup_holders`, migration 10): per
//! server, the newest generation it fully held. Device-local, never exported; `vault status`
//! shows it without going online.

use rusqlite::{Connection, params};

use crate::error::Result;
use crate::recovery::HolderState;

/// One holder as last checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HolderRecord {
    /// The server.
    pub server: String,
    /// The newest generation it fully held, if any.
    pub generation: Option<u64>,
    /// Objects it lacked.
    pub missing: u64,
    /// When it was checked (ms since the epoch).
    pub checked_at: i64,
}

/// Replaces the stored report with `holders`, checked now.
pub(crate) fn save(conn: &Connection, holders: &[HolderState]) -> Result<()> {
    let tx = conn.unchecked_transaction()?;
    tx.execute("DELETE FROM backup_holders", [])?;
    let now = crate::store::now_millis();
    for holder in holders {
        let generation = holder.generation.map(|g| i64::try_from(g).unwrap_or(i64::MAX));
        let missing = i64::try_from(holder.missing).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO backup_holders (url, generation, missing, checked_at) VALUES (?1, ?2, ?3, ?4)",
            params![holder.server, generation, missing, now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// The stored report, data server first.
pub(crate) fn load(conn: &Connection) -> Result<Vec<HolderRecord>> {
    let mut statement =
        conn.prepare("SELECT url, generation, missing, checked_at FROM backup_holders ORDER BY position")?;
    let rows = statement.query_map([], |r| {
        let generation: Option<i64> = r.get(1)?;
        let missing: i64 = r.get(2)?;
        Ok(HolderRecord {
            server: r.get(0)?,
            generation: generation.and_then(|g| u64::try_from(g).ok()),
            missing: u64::try_from(missing).unwrap_or(0),
            checked_at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
