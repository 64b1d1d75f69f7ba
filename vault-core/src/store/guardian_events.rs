//! How far this device has read each guardian's account event log (`guardian_event_cursors`,
//! migration 9). Device-local state, never exported.

use rusqlite::{Connection, OptionalExtension as _, params};

use crate::error::Result;

/// The last event position read from the guardian at `url` with this device's enrolment
/// `device_id` there; 0 before the first read.
pub(crate) fn seen(conn: &Connection, url: &str, device_id: &str) -> Result<u64> {
    let seen: Option<i64> = conn
        .query_row(
            "SELECT seen FROM guardian_event_cursors WHERE url = ?1 AND device_id = ?2",
            params![url, device_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seen.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

/// Records that events up to `seen` were read (never moves backwards).
pub(crate) fn set_seen(conn: &Connection, url: &str, device_id: &str, seen: u64) -> Result<()> {
    let seen = i64::try_from(seen).unwrap_or(i64::MAX);
    conn.execute(
        "INSERT INTO guardian_event_cursors (url, device_id, seen) VALUES (?1, ?2, ?3)
         ON CONFLICT (url, device_id) DO UPDATE SET seen = max(seen, excluded.seen)",
        params![url, device_id, seen],
    )?;
    Ok(())
}
