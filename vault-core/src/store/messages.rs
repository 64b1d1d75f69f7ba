//! Conversations, messages and full-text search over message bodies.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::error::{Error, Result};

/// Longest conversation name or sender, in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// Longest message body, in bytes.
pub const MAX_BODY_LEN: usize = 1 << 20;
/// Most results a search or listing returns in one call.
pub const MAX_LIMIT: usize = 10_000;

/// A message's row id, stable for the life of the vault and never given to another message, even
/// after this one is deleted or purged (nor after a backup and restore).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct MessageId(pub i64);

/// Delivery status of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageStatus {
    /// Composed here, not yet sent.
    Pending,
    /// Sent by this device.
    Sent,
    /// Delivered to the recipient's device.
    Delivered,
    /// Read by the recipient.
    Read,
    /// Sending failed.
    Failed,
    /// Received from someone else.
    Received,
}

impl MessageStatus {
    /// The stored name of the status.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Sent => "sent",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Read => "read",
            MessageStatus::Failed => "failed",
            MessageStatus::Received => "received",
        }
    }
}

impl std::str::FromStr for MessageStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => MessageStatus::Pending,
            "sent" => MessageStatus::Sent,
            "delivered" => MessageStatus::Delivered,
            "read" => MessageStatus::Read,
            "failed" => MessageStatus::Failed,
            "received" => MessageStatus::Received,
            _ => return Err(Error::InvalidInput("unknown message status".to_owned())),
        })
    }
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Conversation name; the conversation is created on first use.
    pub conversation: String,
    /// Who sent it.
    pub sender: String,
    /// The text.
    pub body: String,
    /// When it was sent, in milliseconds since the Unix epoch.
    pub sent_at: i64,
    /// Delivery status.
    pub status: MessageStatus,
    /// When it disappears, in milliseconds since the Unix epoch; `None` for the
    /// conversation's default (if any).
    pub expires_at: Option<i64>,
}

impl NewMessage {
    /// A received message sent now, with no expiry.
    pub fn new(conversation: impl Into<String>, sender: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            conversation: conversation.into(),
            sender: sender.into(),
            body: body.into(),
            sent_at: super::now_millis(),
            status: MessageStatus::Received,
            expires_at: None,
        }
    }

    fn validate(&self) -> Result<()> {
        check_name("conversation", &self.conversation)?;
        check_name("sender", &self.sender)?;
        if self.body.len() > MAX_BODY_LEN {
            return Err(Error::InvalidInput(format!("message body is longer than {MAX_BODY_LEN} bytes")));
        }
        Ok(())
    }
}

fn check_name(what: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.len() > MAX_NAME_LEN {
        return Err(Error::InvalidInput(format!("{what} must be 1 to {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

pub(crate) fn check_limit(limit: usize) -> Result<i64> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::InvalidInput(format!("limit must be 1 to {MAX_LIMIT}")));
    }
    i64::try_from(limit).map_err(|_| Error::internal("limit"))
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Message {
    /// Row id.
    pub id: MessageId,
    /// Conversation name.
    pub conversation: String,
    /// Who sent it.
    pub sender: String,
    /// When it was sent (ms since the epoch).
    pub sent_at: i64,
    /// When this vault stored it (ms since the epoch).
    pub received_at: i64,
    /// The text.
    pub body: String,
    /// Delivery status.
    pub status: MessageStatus,
    /// When it disappears (ms since the epoch), if it does.
    pub expires_at: Option<i64>,
}

/// A search result: the message and its BM25 rank (lower is a better match).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchHit {
    /// The matching message.
    pub message: Message,
    /// BM25 score from FTS5; lower is better.
    pub rank: f64,
}

/// A conversation with its message count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConversationSummary {
    /// Conversation name.
    pub name: String,
    /// Number of messages.
    pub message_count: u64,
    /// Send time of the newest message, if any.
    pub last_message_at: Option<i64>,
}

const MESSAGE_COLUMNS: &str = "m.id, c.name, m.sender, m.sent_at, m.received_at, m.body, m.status, m.expires_at";

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    let status: String = row.get(6)?;
    Ok(Message {
        id: MessageId(row.get(0)?),
        conversation: row.get(1)?,
        sender: row.get(2)?,
        sent_at: row.get(3)?,
        received_at: row.get(4)?,
        body: row.get(5)?,
        status: status.parse().unwrap_or(MessageStatus::Received),
        expires_at: row.get(7)?,
    })
}

/// Inserts messages in one transaction; returns their ids in input order.
pub(crate) fn insert(conn: &mut Connection, messages: &[NewMessage]) -> Result<Vec<MessageId>> {
    for m in messages {
        m.validate()?;
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut ids = Vec::with_capacity(messages.len());
    {
        let mut conversation_ids: HashMap<&str, (i64, Option<i64>)> = HashMap::new();
        let mut find = tx.prepare_cached("SELECT id, default_expiry_secs FROM conversations WHERE name = ?1")?;
        let mut create = tx.prepare_cached("INSERT INTO conversations (name, created_at) VALUES (?1, ?2)")?;
        let mut insert = tx.prepare_cached(
            // The next id above any ever given (the high-water mark outlives deleted rows; SQLite's
            // own choice, one past the largest present, would reuse a purged newest id).
            "INSERT INTO messages (id, conversation_id, sender, sent_at, received_at, body, status, expires_at)
             VALUES (
                 max(coalesce((SELECT value FROM id_high_water WHERE name = 'messages'), 0),
                     coalesce((SELECT max(id) FROM messages), 0)) + 1,
                 ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        let now = super::now_millis();
        for m in messages {
            let (conversation_id, default_expiry) = match conversation_ids.get(m.conversation.as_str()) {
                Some(found) => *found,
                None => {
                    let found = find.query_row([&m.conversation], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                    let found = match found {
                        Some(found) => found,
                        None => {
                            create.execute(params![m.conversation, now])?;
                            (tx.last_insert_rowid(), None)
                        }
                    };
                    conversation_ids.insert(&m.conversation, found);
                    found
                }
            };
            // A conversation's disappearing timer runs from the earlier of send and receipt, so a
            // future-dated message cannot outlive it.
            let expires_at = m.expires_at.or_else(|| {
                default_expiry.map(|secs: i64| m.sent_at.min(now).saturating_add(secs.saturating_mul(1000)))
            });
            insert.execute(params![
                conversation_id,
                m.sender,
                m.sent_at,
                now,
                m.body,
                m.status.as_str(),
                expires_at
            ])?;
            ids.push(MessageId(tx.last_insert_rowid()));
        }
    }
    tx.commit()?;
    Ok(ids)
}

/// The newest `limit` messages of a conversation, oldest first; with `before`, the newest
/// `limit` that come before that message (in the listing order: send time, then id), so that
/// passing the first message of one page gives the page before it. `before` must be a message of
/// the conversation.
pub(crate) fn list(
    conn: &Connection,
    conversation: &str,
    limit: usize,
    before: Option<MessageId>,
) -> Result<Vec<Message>> {
    let limit = check_limit(limit)?;
    // (sent_at, id) of the message to page before; past every message without one.
    let (sent_at, id) = match before {
        None => (i64::MAX, i64::MAX),
        Some(before) => {
            let mut find = conn.prepare_cached(
                "SELECT m.sent_at FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.id = ?1 AND c.name = ?2",
            )?;
            let sent_at: Option<i64> = find.query_row(params![before.0, conversation], |r| r.get(0)).optional()?;
            let sent_at =
                sent_at.ok_or_else(|| Error::NotFound(format!("message {} in this conversation", before.0)))?;
            (sent_at, before.0)
        }
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT * FROM (
             SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id
             WHERE c.name = ?1 AND (m.sent_at, m.id) < (?3, ?4)
             ORDER BY m.sent_at DESC, m.id DESC LIMIT ?2
         ) ORDER BY sent_at ASC, id ASC"
    ))?;
    let rows = stmt.query_map(params![conversation, limit, sent_at, id], message_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One message by id.
pub(crate) fn get(conn: &Connection, id: MessageId) -> Result<Option<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?1"
    ))?;
    Ok(stmt.query_row([id.0], message_from_row).optional()?)
}

/// Deletes one message (its search entry goes with it). Returns whether it existed.
pub(crate) fn delete(conn: &Connection, id: MessageId) -> Result<bool> {
    Ok(conn.execute("DELETE FROM messages WHERE id = ?1", [id.0])? == 1)
}

/// Updates a message's delivery status. Returns whether it existed.
pub(crate) fn set_status(conn: &Connection, id: MessageId, status: MessageStatus) -> Result<bool> {
    Ok(conn.execute("UPDATE messages SET status = ?2 WHERE id = ?1", params![id.0, status.as_str()])? == 1)
}

/// All conversations, by name.
pub(crate) fn conversations(conn: &Connection) -> Result<Vec<ConversationSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.name, count(m.id), max(m.sent_at) FROM conversations c
         LEFT JOIN messages m ON m.conversation_id = c.id GROUP BY c.id ORDER BY c.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ConversationSummary {
            name: r.get(0)?,
            message_count: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            last_message_at: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Number of conversations.
pub(crate) fn conversation_count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM conversations", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Number of stored messages.
pub(crate) fn count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Turns what a user typed into an FTS5 query that cannot be a syntax error: each
/// whitespace-separated word becomes a quoted phrase (all must match); a trailing `*` keeps
/// prefix matching.
pub(crate) fn fts_query(text: &str) -> Result<String> {
    let terms: Vec<String> = text
        .split_whitespace()
        .filter_map(|word| {
            let (word, prefix) = match word.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (word, false),
            };
            if word.is_empty() {
                return None;
            }
            let quoted = format!("\"{}\"", word.replace('"', "\"\""));
            Some(if prefix { format!("{quoted}*") } else { quoted })
        })
        .collect();
    if terms.is_empty() {
        return Err(Error::InvalidInput("the search query is empty".to_owned()));
    }
    Ok(terms.join(" "))
}

/// Full-text search over message bodies, best matches first.
pub(crate) fn search(conn: &Connection, text: &str, limit: usize) -> Result<Vec<SearchHit>> {
    let limit = check_limit(limit)?;
    let query = fts_query(text)?;
    // Rank inside the index and join only the top hits: joining every match first would read
    // (and, encrypted, decrypt) every matching row for a common word.
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS}, f.rank
         FROM (SELECT rowid, bm25(messages_fts) AS rank FROM messages_fts
               WHERE messages_fts MATCH ?1 ORDER BY rank, rowid LIMIT ?2) f
         JOIN messages m ON m.id = f.rowid
         JOIN conversations c ON c.id = m.conversation_id
         ORDER BY f.rank, m.id"
    ))?;
    let rows =
        stmt.query_map(params![query, limit], |r| Ok(SearchHit { message: message_from_row(r)?, rank: r.get(8)? }))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_becomes_a_safe_fts_query() {
        assert_eq!(fts_query("hello world").ok().as_deref(), Some("\"hello\" \"world\""));
        assert_eq!(fts_query("pre*").ok().as_deref(), Some("\"pre\"*"));
        assert_eq!(fts_query("say \"hi").ok().as_deref(), Some("\"say\" \"\"\"hi\""));
        assert!(fts_query("   ").is_err());
        assert!(fts_query("*").is_err());
    }
}
