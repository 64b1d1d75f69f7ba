//! Media rows: each item's random file key, plaintext length, owner conversation, and the
//! attachments that link media to messages.

use crate::error::DataKind;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::media::MediaId;
use crate::secret::SecretKey;
use crate::store::messages::MessageId;

/// What the vault knows about a media item (no key material).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MediaInfo {
    /// The item's id.
    pub id: MediaId,
    /// Plaintext length in bytes.
    pub length: u64,
    /// When it was imported (ms since the epoch).
    pub created_at: i64,
    /// The conversation it belongs to, if any.
    pub conversation: Option<String>,
    /// Messages it is attached to.
    pub messages: Vec<MessageId>,
}

/// A media row with its key, for opening the file.
pub(crate) struct MediaRow {
    pub(crate) key: SecretKey,
    pub(crate) length: u64,
}

pub(crate) fn conversation_id(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM conversations WHERE name = ?1", [name], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound("no such conversation".to_owned()))
}

/// Inserts a media row and its attachment in one transaction.
pub(crate) fn insert(
    conn: &Connection,
    id: &MediaId,
    key: &SecretKey,
    length: u64,
    conversation: Option<&str>,
    message: Option<MessageId>,
    now: i64,
) -> Result<()> {
    let length = i64::try_from(length).map_err(|_| Error::InvalidInput("the media is too large".to_owned()))?;
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let conversation_id = match conversation {
        Some(name) => Some(conversation_id(&tx, name)?),
        None => None,
    };
    if let Some(message) = message {
        let exists: Option<i64> =
            tx.query_row("SELECT id FROM messages WHERE id = ?1", [message.0], |r| r.get(0)).optional()?;
        if exists.is_none() {
            return Err(Error::NotFound("no such message".to_owned()));
        }
    }
    tx.execute(
        "INSERT INTO media (id, file_key, length, created_at, conversation_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id.0.as_slice(), key.expose_secret().as_slice(), length, now, conversation_id],
    )?;
    if let Some(message) = message {
        tx.execute(
            "INSERT INTO attachments (message_id, media_id) VALUES (?1, ?2)",
            params![message.0, id.0.as_slice()],
        )?;
    }
    crate::failpoint::hit("media-import:before-commit");
    tx.commit()?;
    Ok(())
}

/// The key and length of a media item.
pub(crate) fn row(conn: &Connection, id: &MediaId) -> Result<MediaRow> {
    let found: Option<(Vec<u8>, i64)> = conn
        .query_row("SELECT file_key, length FROM media WHERE id = ?1", [id.0.as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (key_bytes, length) = found.ok_or_else(|| Error::NotFound(format!("media {id}")))?;
    let key = SecretKey::try_from_slice(&key_bytes)
        .ok_or_else(|| Error::Integrity { object: DataKind::Media, problem: "a media key is malformed".to_owned() });
    let mut key_bytes = key_bytes;
    zeroize::Zeroize::zeroize(&mut key_bytes);
    Ok(MediaRow {
        key: key?,
        length: u64::try_from(length).map_err(|_| Error::Integrity {
            object: DataKind::Media,
            problem: "a media length is negative".to_owned(),
        })?,
    })
}

/// Links a media item to a message.
pub(crate) fn attach(conn: &Connection, id: &MediaId, message: MessageId) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO attachments (message_id, media_id) VALUES (?1, ?2)",
        params![message.0, id.0.as_slice()],
    )
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ConstraintViolation) => Error::NotFound("no such message or media".to_owned()),
        _ => e.into(),
    })?;
    Ok(())
}

/// Deletes a media row (its attachments go with it). Returns whether it existed.
pub(crate) fn delete(conn: &Connection, id: &MediaId) -> Result<bool> {
    Ok(conn.execute("DELETE FROM media WHERE id = ?1", [id.0.as_slice()])? == 1)
}

fn id_from(bytes: Vec<u8>) -> rusqlite::Result<MediaId> {
    <[u8; 16]>::try_from(bytes.as_slice()).map(MediaId).map_err(|_| rusqlite::Error::InvalidQuery)
}

/// Every media item, oldest first.
pub(crate) fn list(conn: &Connection) -> Result<Vec<MediaInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT m.id, m.length, m.created_at, c.name,
                (SELECT group_concat(a.message_id) FROM attachments a WHERE a.media_id = m.id)
         FROM media m LEFT JOIN conversations c ON c.id = m.conversation_id
         ORDER BY m.created_at, m.id",
    )?;
    let rows = stmt.query_map([], |r| {
        let messages: Option<String> = r.get(4)?;
        Ok(MediaInfo {
            id: id_from(r.get(0)?)?,
            length: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            created_at: r.get(2)?,
            conversation: r.get(3)?,
            messages: messages
                .map(|m| m.split(',').filter_map(|x| x.parse().ok()).map(MessageId).collect())
                .unwrap_or_default(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Number of media items and their total plaintext bytes.
pub(crate) fn totals(conn: &Connection) -> Result<(u64, u64)> {
    let (n, bytes): (i64, i64) =
        conn.query_row("SELECT count(*), coalesce(sum(length), 0) FROM media", [], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((u64::try_from(n).unwrap_or(0), u64::try_from(bytes).unwrap_or(0)))
}

/// Every media id.
pub(crate) fn ids(conn: &Connection) -> Result<std::collections::HashSet<MediaId>> {
    let mut stmt = conn.prepare_cached("SELECT id FROM media")?;
    let rows = stmt.query_map([], |r| id_from(r.get(0)?))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Media attached to any of `messages` and to no message outside that set.
pub(crate) fn only_attached_to(conn: &Connection, messages: &[MessageId]) -> Result<Vec<MediaId>> {
    let set: std::collections::HashSet<i64> = messages.iter().map(|m| m.0).collect();
    let mut attached = conn.prepare_cached("SELECT media_id FROM attachments WHERE message_id = ?1")?;
    let mut holders = conn.prepare_cached("SELECT message_id FROM attachments WHERE media_id = ?1")?;
    let mut out = Vec::new();
    for message in messages {
        let ids: Vec<MediaId> =
            attached.query_map([message.0], |r| id_from(r.get(0)?))?.collect::<rusqlite::Result<_>>()?;
        for id in ids {
            if out.contains(&id) {
                continue;
            }
            let held_by: Vec<i64> =
                holders.query_map([id.0.as_slice()], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            if held_by.iter().all(|h| set.contains(h)) {
                out.push(id);
            }
        }
    }
    Ok(out)
}
