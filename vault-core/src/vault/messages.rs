//! Messages and conversations: the [`Messages`] handle.

use super::{Error, Result, Vault};
use crate::store::messages;
use crate::store::messages::{ConversationSummary, Message, MessageId, MessageStatus, NewMessage, SearchHit};

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

    /// Deletes a message, its search entry, and media attached only to it. Returns whether the
    /// message existed.
    pub fn delete(&mut self, id: MessageId) -> Result<bool> {
        let report = self.vault.delete_messages(&[id])?;
        Ok(report.messages == 1)
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
