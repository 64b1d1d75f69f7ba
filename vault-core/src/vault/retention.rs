//! Retention rules and the purge that applies them: the [`Retention`] handle.

use super::{Error, Result, Vault, media_rows};
use crate::store::messages;
use crate::store::messages::MessageId;
use crate::store::retention::{self, ConversationExpiry, PurgeReport, RetentionPolicy};
use crate::store::{self};

/// The retention rules of a vault (a vault-wide limit, disappearing messages per conversation)
/// and the purge that applies them. Get one with [`Vault::retention`].
#[derive(Debug)]
pub struct Retention<'a> {
    vault: &'a mut Vault,
}

impl Vault {
    /// The retention rules (see [`Retention`]).
    pub fn retention(&mut self) -> Retention<'_> {
        Retention { vault: self }
    }
}

impl Retention<'_> {
    /// The vault-wide retention limit.
    pub fn policy(&self) -> Result<RetentionPolicy> {
        retention::policy(&self.vault.store.conn)
    }

    /// Sets the vault-wide retention limit (applied at the next purge).
    pub fn set_policy(&mut self, policy: &RetentionPolicy) -> Result<()> {
        retention::set_policy(&self.vault.store.conn, policy)
    }

    /// Sets (or clears) the default expiry of new messages in a conversation (disappearing
    /// messages).
    pub fn set_conversation_expiry(&mut self, conversation: &str, secs: Option<u64>) -> Result<()> {
        retention::set_conversation_expiry(&self.vault.store.conn, conversation, secs)
    }

    /// The conversations whose new messages disappear, with their lifetimes, by name.
    pub fn conversation_expiries(&self) -> Result<Vec<ConversationExpiry>> {
        retention::conversation_expiries(&self.vault.store.conn)
    }

    /// Purges messages whose expiry has passed or that fall outside the retention limit, with
    /// their search entries and the media attached only to them. Deleted content is
    /// overwritten in the database (`secure_delete`), merged out of the search index, and
    /// flushed from the write-ahead log. The app calls this on its own schedule; unlock calls
    /// it too.
    pub fn purge(&mut self) -> Result<PurgeReport> {
        let policy = retention::policy(&self.vault.store.conn)?;
        let due = retention::due(&self.vault.store.conn, store::now_millis(), &policy)?;
        self.vault.delete_messages(&due, IfMissing::Skip)
    }
}

/// What [`Vault::delete_messages`] does with an id that names no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IfMissing {
    /// Pass over it (a purge, whose ids were just read; [`super::Messages::delete`], which
    /// reports it as `false`).
    Skip,
    /// Fail the whole call with [`Error::NotFound`], deleting nothing
    /// ([`super::Messages::delete_batch`]).
    Refuse,
}

impl Vault {
    /// The one deletion path for messages (a purge, [`super::Messages::delete`] and
    /// [`super::Messages::delete_batch`]): deletes the messages with their search entries and the
    /// media attached only to them in one `IMMEDIATE` transaction, removes those media files,
    /// then scrubs the database (`secure_delete` has overwritten the freed cells; the search
    /// index is merged so the deleted terms leave it; the write-ahead log is checkpointed).
    /// An id given twice counts once.
    pub(super) fn delete_messages(&mut self, ids: &[MessageId], if_missing: IfMissing) -> Result<PurgeReport> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(PurgeReport::default());
        }
        let tx = self.store.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let media = media_rows::only_attached_to(&tx, &ids)?;
        let mut deleted = 0u64;
        for id in &ids {
            if messages::delete(&tx, *id)? {
                deleted += 1;
            } else if if_missing == IfMissing::Refuse {
                // Dropping the transaction rolls back the deletions made so far.
                return Err(Error::NotFound(format!("message {}", id.0)));
            }
        }
        for id in &media {
            media_rows::delete(&tx, id)?;
        }
        tx.commit()?;
        for id in &media {
            self.media.remove(id)?;
        }
        let complete = self.store.scrub()?;
        Ok(PurgeReport {
            messages: deleted,
            media: u64::try_from(media.len()).unwrap_or(0),
            checkpoint_deferred: !complete,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConversationExpiry, CreateOptions, KdfParams, NewMessage, Passphrase, Vault};

    #[test]
    fn lists_the_conversations_that_have_an_expiry() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kdf = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };
        let mut v =
            Vault::create(&dir.path().join("v"), &Passphrase::new("pw".into()), CreateOptions { kdf, wrapper: None })
                .unwrap_or_else(|e| panic!("{e}"));
        for chat in ["work", "family", "news"] {
            v.messages().add(&NewMessage::new(chat, "alice", "hi")).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(v.retention().conversation_expiries().ok(), Some(Vec::new()));
        v.retention().set_conversation_expiry("work", Some(3600)).unwrap_or_else(|e| panic!("{e}"));
        v.retention().set_conversation_expiry("family", Some(86_400)).unwrap_or_else(|e| panic!("{e}"));
        v.retention().set_conversation_expiry("news", Some(60)).unwrap_or_else(|e| panic!("{e}"));
        v.retention().set_conversation_expiry("news", None).unwrap_or_else(|e| panic!("{e}"));
        let expiry = |name: &str, secs| ConversationExpiry { conversation: name.to_owned(), expiry_secs: secs };
        assert_eq!(
            v.retention().conversation_expiries().ok(),
            Some(vec![expiry("family", 86_400), expiry("work", 3600)])
        );
    }
}
