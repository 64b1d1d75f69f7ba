//! Disappearing messages and retention limits: which messages are due for deletion.

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Error, Result};
use crate::store::messages::MessageId;

const MAX_AGE_SETTING: &str = "retention_max_age_secs";
const MAX_MESSAGES_SETTING: &str = "retention_max_messages";

/// A vault-wide retention limit. Messages beyond either limit are purged (with their search
/// entries and the media attached only to them) whenever the vault purges: on unlock and when
/// the app calls [`crate::Retention::purge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionPolicy {
    /// Messages older than this many seconds (by the earlier of send and receipt) are purged.
    pub max_age_secs: Option<u64>,
    /// Only the newest this many messages are kept.
    pub max_messages: Option<u64>,
}

/// What a purge, or a deletion of messages, removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PurgeReport {
    /// Messages deleted.
    pub messages: u64,
    /// Media items deleted (crypto-shredded).
    pub media: u64,
    /// Whether the write-ahead-log checkpoint after the deletion was held back by another
    /// connection's read: the deleted pages then stay in the (encrypted) log until the next
    /// checkpoint, which the next purge or unlock attempts.
    pub checkpoint_deferred: bool,
}

fn setting(conn: &Connection, name: &str) -> Result<Option<u64>> {
    let value: Option<Option<i64>> =
        conn.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0)).optional()?;
    Ok(value.flatten().and_then(|v| u64::try_from(v).ok()))
}

fn set_setting(conn: &Connection, name: &str, value: Option<u64>) -> Result<()> {
    let value = value
        .map(i64::try_from)
        .transpose()
        .map_err(|_| Error::InvalidInput("retention limit is too large".to_owned()))?;
    conn.execute(
        "INSERT INTO settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )?;
    Ok(())
}

/// The current policy.
pub(crate) fn policy(conn: &Connection) -> Result<RetentionPolicy> {
    Ok(RetentionPolicy {
        max_age_secs: setting(conn, MAX_AGE_SETTING)?,
        max_messages: setting(conn, MAX_MESSAGES_SETTING)?,
    })
}

/// Replaces the policy.
pub(crate) fn set_policy(conn: &Connection, policy: &RetentionPolicy) -> Result<()> {
    set_setting(conn, MAX_AGE_SETTING, policy.max_age_secs)?;
    set_setting(conn, MAX_MESSAGES_SETTING, policy.max_messages)
}

/// Sets (or clears) a conversation's default expiry for new messages.
pub(crate) fn set_conversation_expiry(conn: &Connection, conversation: &str, secs: Option<u64>) -> Result<()> {
    let secs =
        secs.map(i64::try_from).transpose().map_err(|_| Error::InvalidInput("expiry is too large".to_owned()))?;
    let changed =
        conn.execute("UPDATE conversations SET default_expiry_secs = ?2 WHERE name = ?1", params![conversation, secs])?;
    if changed == 0 {
        return Err(Error::NotFound("no such conversation".to_owned()));
    }
    Ok(())
}

/// A conversation whose new messages disappear after a set time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConversationExpiry {
    /// The conversation's name.
    pub conversation: String,
    /// Lifetime of its new messages, in seconds.
    pub expiry_secs: u64,
}

/// Every conversation with a default expiry, by name.
pub(crate) fn conversation_expiries(conn: &Connection) -> Result<Vec<ConversationExpiry>> {
    let mut stmt = conn.prepare(
        "SELECT name, default_expiry_secs FROM conversations WHERE default_expiry_secs IS NOT NULL ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ConversationExpiry { conversation: r.get(0)?, expiry_secs: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0) })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Messages due for deletion at `now` (ms since the epoch) under `policy` and their own expiry.
///
/// Age and "newest N" use `min(sent_at, received_at)`: a sender's clock can make its message
/// look older (it then goes sooner), never younger, so a future-dated message cannot escape the
/// age limit or crowd real messages out of the newest N.
pub(crate) fn due(conn: &Connection, now: i64, policy: &RetentionPolicy) -> Result<Vec<MessageId>> {
    let mut ids = std::collections::BTreeSet::new();
    let mut collect = |sql: &str, param: i64| -> Result<()> {
        let mut stmt = conn.prepare_cached(sql)?;
        for id in stmt.query_map([param], |r| r.get::<_, i64>(0))? {
            ids.insert(id?);
        }
        Ok(())
    };
    collect("SELECT id FROM messages WHERE expires_at IS NOT NULL AND expires_at <= ?1", now)?;
    if let Some(age) = policy.max_age_secs {
        let age_ms = i64::try_from(age).unwrap_or(i64::MAX).saturating_mul(1000);
        collect("SELECT id FROM messages WHERE min(sent_at, received_at) < ?1", now.saturating_sub(age_ms))?;
    }
    if let Some(max) = policy.max_messages {
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        collect("SELECT id FROM messages ORDER BY min(sent_at, received_at) DESC, id DESC LIMIT -1 OFFSET ?1", keep)?;
    }
    Ok(ids.into_iter().map(MessageId).collect())
}
