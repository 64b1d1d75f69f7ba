//! Messages and conversations: the [`Messages`] handle.

use super::retention::IfMissing;
use super::{Error, Result, Vault};
use crate::store::messages;
use crate::store::messages::{ConversationSummary, Message, MessageId, MessageStatus, NewMessage, SearchHit};
use crate::store::retention::PurgeReport;

/// The messages and conversations of a vault. Get one with [`Vault::messages`].
#[derive(Debug)]
pub struct Messages<'a> {
    vault: &'a mut Vault,
}

impl Vault {
    /// The messages and conversations (see [`Messages`]).
    pub fn messages(&mut self) -> Messages<'_> {
        Messages { vault: self }
    }
}

impl Messages<'_> {
    /// Stores one message.
    pub fn add(&mut self, message: &NewMessage) -> Result<MessageId> {
        let ids = messages::insert(&mut self.vault.store.conn, std::slice::from_ref(message))?;
        ids.first().copied().ok_or(Error::internal("insert returned no id"))
    }

    /// Stores many messages in one transaction (all or nothing).
    pub fn add_batch(&mut self, batch: &[NewMessage]) -> Result<Vec<MessageId>> {
        messages::insert(&mut self.vault.store.conn, batch)
    }

    /// The newest `limit` messages of a conversation, oldest first (`limit` at most
    /// [`MAX_LIMIT`](crate::store::messages::MAX_LIMIT); page further back with
    /// [`list_before`](Self::list_before)).
    pub fn list(&self, conversation: &str, limit: usize) -> Result<Vec<Message>> {
        self.list_before(conversation, limit, None)
    }

    /// The newest `limit` messages of a conversation that come before the message `before`
    /// (messages are ordered by send time, then id), oldest first; with `None`, as [`list`](Self::list).
    /// Pass the first message of a page to get the page before it; an empty page is the start.
    /// `before` must be a message of the conversation ([`Error::NotFound`] otherwise).
    pub fn list_before(&self, conversation: &str, limit: usize, before: Option<MessageId>) -> Result<Vec<Message>> {
        messages::list(&self.vault.store.conn, conversation, limit, before)
    }

    /// One message.
    pub fn get(&self, id: MessageId) -> Result<Option<Message>> {
        messages::get(&self.vault.store.conn, id)
    }

    /// Deletes a message, its search entry, and the media attached only to it, with the same
    /// secure deletion as a [purge](super::Retention::purge): the freed database cells are
    /// overwritten (`secure_delete`), the search index is merged so the message's words leave
    /// it, and the write-ahead log is checkpointed. Returns whether the message existed; for an
    /// id that names no message it returns `false` and changes nothing (as
    /// [`Media::delete`](super::Media::delete) and [`Secrets::delete`](super::Secrets::delete)
    /// do). [`delete_batch`](Self::delete_batch) fails on such an id instead.
    pub fn delete(&mut self, id: MessageId) -> Result<bool> {
        let report = self.vault.delete_messages(&[id], IfMissing::Skip)?;
        Ok(report.messages == 1)
    }

    /// Deletes several messages as [`delete`](Self::delete) deletes one, all in one transaction
    /// and with one scrub at the end: cheaper than one call per message. All or nothing: an id
    /// that names no message fails the call with [`Error::NotFound`] (naming the id) and deletes
    /// nothing. An id given twice counts once. The report says how many messages and media
    /// items went, and whether the write-ahead-log checkpoint was held back by another
    /// connection's read ([`PurgeReport::checkpoint_deferred`]).
    pub fn delete_batch(&mut self, ids: &[MessageId]) -> Result<PurgeReport> {
        self.vault.delete_messages(ids, IfMissing::Refuse)
    }

    /// Updates a message's delivery status; returns whether it existed.
    pub fn set_status(&mut self, id: MessageId, status: MessageStatus) -> Result<bool> {
        messages::set_status(&self.vault.store.conn, id, status)
    }

    /// All conversations.
    pub fn conversations(&self) -> Result<Vec<ConversationSummary>> {
        messages::conversations(&self.vault.store.conn)
    }

    /// Full-text search over message bodies, best match first. Every word must match; a word
    /// ending in `*` matches as a prefix.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        messages::search(&self.vault.store.conn, query, limit)
    }
}
