//! Small key–value secrets for the embedding app (tokens, identity keys), inside the encrypted
//! database.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::secret::SecretBytes;

/// Longest secret name, in bytes.
pub const MAX_SECRET_NAME_LEN: usize = 128;
/// Largest secret value, in bytes.
pub const MAX_SECRET_LEN: usize = 64 * 1024;

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_SECRET_NAME_LEN {
        return Err(Error::InvalidInput(format!("secret name must be 1 to {MAX_SECRET_NAME_LEN} bytes")));
    }
    Ok(())
}

/// Stores or replaces a secret.
pub(crate) fn put(conn: &Connection, name: &str, value: &[u8], now: i64) -> Result<()> {
    check_name(name)?;
    if value.len() > MAX_SECRET_LEN {
        return Err(Error::InvalidInput(format!("secret is larger than {MAX_SECRET_LEN} bytes")));
    }
    conn.execute(
        "INSERT INTO app_secrets (name, value, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![name, value, now],
    )?;
    Ok(())
}

/// Reads a secret.
pub(crate) fn get(conn: &Connection, name: &str) -> Result<Option<SecretBytes>> {
    check_name(name)?;
    let value: Option<Vec<u8>> =
        conn.query_row("SELECT value FROM app_secrets WHERE name = ?1", [name], |r| r.get(0)).optional()?;
    Ok(value.map(SecretBytes::new))
}

/// Deletes a secret; returns whether it existed.
pub(crate) fn delete(conn: &Connection, name: &str) -> Result<bool> {
    check_name(name)?;
    Ok(conn.execute("DELETE FROM app_secrets WHERE name = ?1", [name])? == 1)
}

/// Number of secrets.
pub(crate) fn count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM app_secrets", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The names of all secrets, sorted.
pub(crate) fn names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM app_secrets ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
