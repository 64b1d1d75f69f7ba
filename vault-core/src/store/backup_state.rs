//! The vault's own backup state (migration 5): the Backup Root Key (the current key epoch's key;
//! migration 8 adds the keyring of earlier epochs and a rotation under way), the newest
//! generation and manifest hash this device wrote or restored, and the packs of an unfinished run
//! (migration 11 adds the token it drew for its generation).

use crate::error::DataKind;
use rusqlite::{Connection, OptionalExtension};
use zeroize::{Zeroize, Zeroizing};

use crate::backup::BackupKeys;
use crate::backup::keys::{GenerationToken, Keyring};
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

/// Stores a restored backup's current key and keyring, with no generation yet; fails if a key
/// exists.
pub(crate) fn set_keys(conn: &Connection, key: &SecretKey, keyring: Option<&Keyring>) -> Result<()> {
    let keyring = keyring.map(Keyring::encode);
    conn.execute(
        "INSERT INTO backup_state (id, root_key, keyring) VALUES (1, ?1, ?2)",
        (&key.expose_secret()[..], keyring.as_ref().map(|k| &k[..])),
    )?;
    Ok(())
}

/// The keyring of the current epoch (`None` in a backup's first epoch).
pub(crate) fn keyring(conn: &Connection) -> Result<Option<Keyring>> {
    let bytes: Option<Option<Zeroizing<Vec<u8>>>> = conn
        .query_row("SELECT keyring FROM backup_state WHERE id = 1", [], |r| {
            r.get::<_, Option<Vec<u8>>>(0).map(|k| k.map(Zeroizing::new))
        })
        .optional()?;
    bytes.flatten().map(|b| Keyring::decode(&b)).transpose()
}

/// Every key the backup needs (current epoch and keyring), with the token of the newest
/// generation this device wrote or restored, if a key exists.
pub(crate) fn keys(conn: &Connection) -> Result<Option<BackupKeys>> {
    let Some(key) = root_key(conn)? else { return Ok(None) };
    let keys = BackupKeys::with_keyring(&key, keyring(conn)?.as_ref());
    Ok(Some(match token_row(conn, "token_generation", "token")? {
        Some((generation, token)) => keys.with_known_token(generation, token),
        None => keys,
    }))
}

/// A `backup_rotation` row as stored: the key and the keyring's plaintext.
type RotationRow = (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>);

/// The next epoch's key and keyring while a rotation is under way.
pub(crate) fn pending_rotation(conn: &Connection) -> Result<Option<(SecretKey, Keyring)>> {
    let row: Option<RotationRow> = conn
        .query_row("SELECT root_key, keyring FROM backup_rotation WHERE id = 1", [], |r| {
            Ok((Zeroizing::new(r.get::<_, Vec<u8>>(0)?), Zeroizing::new(r.get::<_, Vec<u8>>(1)?)))
        })
        .optional()?;
    let Some((key, keyring)) = row else { return Ok(None) };
    let key = SecretKey::try_from_slice(&key).ok_or_else(|| Error::Integrity {
        object: DataKind::Database,
        problem: "the next backup key has the wrong length".into(),
    })?;
    Ok(Some((key, Keyring::decode(&keyring)?)))
}

/// Records a rotation under way to `key` with `keyring` (before any guardian learns of it).
pub(crate) fn begin_rotation(conn: &Connection, key: &SecretKey, keyring: &Keyring) -> Result<()> {
    conn.execute(
        "INSERT INTO backup_rotation (id, root_key, keyring) VALUES (1, ?1, ?2)",
        (&key.expose_secret()[..], &keyring.encode()[..]),
    )?;
    Ok(())
}

/// Ends the rotation under way: its key and keyring become current, in one transaction with
/// `also` (the recovery enrolment's new shares). The packs of an unfinished run, sealed under the
/// old epoch, are forgotten (the next run uploads their chunks again).
pub(crate) fn commit_rotation(conn: &Connection, also: &dyn Fn(&Connection) -> Result<()>) -> Result<()> {
    let tx = conn.unchecked_transaction()?;
    let changed = tx.execute(
        "UPDATE backup_state SET root_key = (SELECT root_key FROM backup_rotation WHERE id = 1),
                                 keyring = (SELECT keyring FROM backup_rotation WHERE id = 1)
         WHERE id = 1 AND EXISTS (SELECT 1 FROM backup_rotation WHERE id = 1)",
        [],
    )?;
    if changed != 1 {
        return Err(Error::Internal("no backup key rotation to finish"));
    }
    tx.execute("DELETE FROM backup_rotation", [])?;
    tx.execute("DELETE FROM backup_pending_packs", [])?;
    also(&tx)?;
    tx.commit()?;
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

/// Records the newest generation, its manifest hash and its token (overwriting the previous
/// generation's: the device keeps no older token), and forgets the finished run's packs.
pub(crate) fn advance(
    conn: &Connection,
    generation: u64,
    hash: &[u8; 32],
    token: Option<&GenerationToken>,
) -> Result<()> {
    let generation = i64::try_from(generation).map_err(|_| Error::Internal("generation overflow"))?;
    let tx = conn.unchecked_transaction()?;
    let token_generation = token.map(|_| generation);
    let changed = tx.execute(
        "UPDATE backup_state SET generation = ?1, manifest_hash = ?2, token_generation = ?3, token = ?4 WHERE id = 1",
        (generation, &hash[..], token_generation, token.map(|t| &t.0[..])),
    )?;
    if changed != 1 {
        return Err(Error::Internal("no backup key to record a generation for"));
    }
    tx.execute("DELETE FROM backup_pending_packs", [])?;
    tx.execute("UPDATE backup_state SET pending_generation = NULL, pending_token = NULL WHERE id = 1", [])?;
    tx.commit()?;
    Ok(())
}

/// Remembers the token a run drew for `generation`, before its manifest is written.
pub(crate) fn set_pending_token(conn: &Connection, generation: u64, token: &GenerationToken) -> Result<()> {
    let generation = i64::try_from(generation).map_err(|_| Error::Internal("generation overflow"))?;
    let changed = conn.execute(
        "UPDATE backup_state SET pending_generation = ?1, pending_token = ?2 WHERE id = 1",
        (generation, &token.0[..]),
    )?;
    if changed != 1 {
        return Err(Error::Internal("no backup key to record a token for"));
    }
    Ok(())
}

/// The token an unfinished run drew, and the generation it was for.
pub(crate) fn pending_token(conn: &Connection) -> Result<Option<(u64, GenerationToken)>> {
    token_row(conn, "pending_generation", "pending_token")
}

/// A (generation, token) pair of `backup_state`'s columns.
fn token_row(conn: &Connection, generation: &str, token: &str) -> Result<Option<(u64, GenerationToken)>> {
    let row: Option<(Option<i64>, Option<Vec<u8>>)> = conn
        .query_row(&format!("SELECT {generation}, {token} FROM backup_state WHERE id = 1"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((Some(generation), Some(mut token))) = row else { return Ok(None) };
    let malformed = || Error::Integrity { object: DataKind::Database, problem: "malformed backup token".into() };
    let bytes = <[u8; 32]>::try_from(token.as_slice()).map_err(|_| malformed());
    token.zeroize();
    Ok(Some((u64::try_from(generation).map_err(|_| malformed())?, GenerationToken(bytes?))))
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
