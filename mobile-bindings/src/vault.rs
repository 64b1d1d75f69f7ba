//! The `Vault` object: one-line delegations to `vault_core::Vault`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use vault_core::{
    CreateOptions, KdfParams, MediaId, MediaImport as Place, MessageId, NewMessage, Passphrase, SlotId, SlotSecret,
};

use crate::blocking;
use crate::error::VaultError;
use crate::media::{MediaImport, MediaReader};
use crate::progress::{Adapter, CancelToken, ProgressListener};
use crate::records::{Message, RetentionPolicy, SearchHit, SecurityEvent, Slot, VaultStatus, VerifyCheck};
use crate::wrapper::{ForeignWrapper, PlatformKeyWrapper};

/// An unlocked vault. `lock` (or dropping the last reference) closes it and zeroizes its keys.
#[derive(uniffi::Object)]
pub struct Vault {
    inner: Mutex<Option<vault_core::Vault>>,
}

impl Vault {
    fn wrap(vault: vault_core::Vault) -> Arc<Self> {
        Arc::new(Self { inner: Mutex::new(Some(vault)) })
    }

    /// Runs `f` on the open vault, keeping vault-core's error.
    pub(crate) fn with_core<T>(
        &self,
        f: impl FnOnce(&mut vault_core::Vault) -> Result<T, vault_core::Error>,
    ) -> Result<T, vault_core::Error> {
        // A panic in an app callback poisons the lock; the vault's own state is transactional,
        // so the session carries on.
        let mut guard = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let vault = guard.as_mut().ok_or_else(|| vault_core::Error::InvalidInput("the vault is locked".into()))?;
        f(vault)
    }

    /// Runs `f` on the open vault.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut vault_core::Vault) -> Result<T, vault_core::Error>,
    ) -> Result<T, VaultError> {
        self.with_core(f).map_err(Into::into)
    }
}

fn media_id(id: &str) -> Result<MediaId, vault_core::Error> {
    MediaId::parse(id)
}

#[uniffi::export]
impl Vault {
    /// Creates a vault in `dir` with a passphrase slot (default Argon2id) and, if `wrapper` is
    /// given, a platform-key slot.
    #[uniffi::constructor(default(wrapper = None))]
    pub fn create(
        dir: String,
        passphrase: String,
        wrapper: Option<Arc<dyn PlatformKeyWrapper>>,
    ) -> Result<Arc<Self>, VaultError> {
        let foreign = wrapper.map(ForeignWrapper);
        let options = CreateOptions {
            kdf: KdfParams::DEFAULT,
            wrapper: foreign.as_ref().map(|w| w as &dyn vault_core::KeyWrapper),
        };
        Ok(Self::wrap(vault_core::Vault::create(&PathBuf::from(dir), &Passphrase::new(passphrase), options)?))
    }

    /// Unlocks with the passphrase.
    #[uniffi::constructor]
    pub fn unlock_with_passphrase(dir: String, passphrase: String) -> Result<Arc<Self>, VaultError> {
        Ok(Self::wrap(vault_core::Vault::unlock_with_passphrase(&PathBuf::from(dir), &Passphrase::new(passphrase))?))
    }

    /// Unlocks with the platform key wrapper.
    #[uniffi::constructor]
    pub fn unlock_with_wrapper(dir: String, wrapper: Arc<dyn PlatformKeyWrapper>) -> Result<Arc<Self>, VaultError> {
        Ok(Self::wrap(vault_core::Vault::unlock_with_wrapper(&PathBuf::from(dir), &ForeignWrapper(wrapper))?))
    }

    /// Locks: closes the database and zeroizes the keys. Later calls fail with `InvalidInput`.
    pub fn lock(&self) {
        // Also after a panic in an app callback poisoned the mutex: the keys must go.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    }

    /// Stores a message; `expires_in_secs` makes it disappear.
    #[uniffi::method(default(expires_in_secs = None))]
    pub fn add_message(
        &self,
        conversation: String,
        sender: String,
        body: String,
        expires_in_secs: Option<u64>,
    ) -> Result<i64, VaultError> {
        let mut message = NewMessage::new(conversation, sender, body);
        message.expires_at = expires_in_secs
            .map(|s| message.sent_at.saturating_add(i64::try_from(s).unwrap_or(i64::MAX / 1000).saturating_mul(1000)));
        self.with(|v| v.messages().add(&message)).map(|id| id.0)
    }

    /// The newest `limit` messages of a conversation, oldest first (`limit` at most 10,000). With
    /// `before` (a message id of the conversation), the newest `limit` before that message: pass
    /// the first id of a page to get the page before it; an empty page is the start.
    #[uniffi::method(default(before = None))]
    pub fn messages(&self, conversation: String, limit: u32, before: Option<i64>) -> Result<Vec<Message>, VaultError> {
        self.with(|v| v.messages().list_before(&conversation, limit as usize, before.map(MessageId)))
            .map(|m| m.into_iter().map(Into::into).collect())
    }

    /// Full-text search, best match first.
    pub fn search(&self, query: String, limit: u32) -> Result<Vec<SearchHit>, VaultError> {
        self.with(|v| v.messages().search(&query, limit as usize))
            .map(|hits| hits.into_iter().map(|h| SearchHit { message: h.message.into(), rank: h.rank }).collect())
    }

    /// Deletes a message, its search entry and the media attached only to it, securely as
    /// expiry does (freed pages overwritten, search index merged, write-ahead log checkpointed).
    /// Returns `false`, changing nothing, when no message has that id.
    pub fn delete_message(&self, id: i64) -> Result<bool, VaultError> {
        self.with(|v| v.messages().delete(MessageId(id)))
    }

    /// Stores a small app secret.
    pub fn put_secret(&self, name: String, value: Vec<u8>) -> Result<(), VaultError> {
        self.with(|v| v.secrets().put(&name, &value))
    }

    /// Reads an app secret.
    pub fn secret(&self, name: String) -> Result<Option<Vec<u8>>, VaultError> {
        self.with(|v| v.secrets().get(&name)).map(|s| s.map(|s| s.expose_secret().to_vec()))
    }

    /// Imports the file at `path` (streaming); returns the media id. `conversation` and
    /// `message` attach it; `listener` hears progress; cancelling `cancel` stops the import and
    /// stores nothing.
    #[uniffi::method(default(conversation = None, message = None, listener = None, cancel = None))]
    pub async fn import_media_file(
        self: Arc<Self>,
        path: String,
        conversation: Option<String>,
        message: Option<i64>,
        listener: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<String, VaultError> {
        blocking::run(move || {
            let progress = Adapter { listener, cancel };
            let place = Place { conversation: conversation.as_deref(), message: message.map(MessageId) };
            // The vault is held only while the transfer handle is made: the import runs beside it.
            let mut transfers = self.with(|v| v.media_transfers())?;
            Ok(transfers.import_file(&PathBuf::from(path), place, Some(&progress))?.to_string())
        })
        .await
    }

    /// Starts a chunked import: `write` chunks to the returned object, then `finish`.
    /// `conversation` and `message` attach the item.
    #[uniffi::method(default(conversation = None, message = None))]
    pub fn begin_media_import(self: Arc<Self>, conversation: Option<String>, message: Option<i64>) -> Arc<MediaImport> {
        Arc::new(MediaImport::start(move |reader| {
            let mut transfers = self.with(|v| v.media_transfers())?;
            let place = Place { conversation: conversation.as_deref(), message: message.map(MessageId) };
            Ok(transfers.import(reader, place, None)?.to_string())
        }))
    }

    /// Decrypts a media item (or the range of `length` bytes from `offset`) into a new file at
    /// `path`; returns the bytes written. `listener` hears progress; cancelling `cancel` stops
    /// the export and leaves no file.
    #[uniffi::method(default(offset = 0, length = None, listener = None, cancel = None))]
    pub async fn export_media(
        self: Arc<Self>,
        id: String,
        path: String,
        offset: u64,
        length: Option<u64>,
        listener: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<u64, VaultError> {
        blocking::run(move || {
            let progress = Adapter { listener, cancel };
            let transfers = self.with(|v| v.media_transfers())?;
            Ok(transfers.export(&media_id(&id)?, &PathBuf::from(path), offset, length, Some(&progress))?)
        })
        .await
    }

    /// Opens a media item for random-access reads.
    pub fn open_media(&self, id: String) -> Result<Arc<MediaReader>, VaultError> {
        self.with(|v| v.media().open(&media_id(&id)?)).map(|reader| Arc::new(MediaReader::new(reader)))
    }

    /// Deletes a media item (crypto-shredded).
    pub fn delete_media(&self, id: String) -> Result<bool, VaultError> {
        self.with(|v| v.media().delete(&media_id(&id)?))
    }

    /// The key slots.
    pub fn slots(&self) -> Result<Vec<Slot>, VaultError> {
        self.with(|v| Ok(v.keys().list().into_iter().map(Into::into).collect()))
    }

    /// Adds a passphrase slot (default Argon2id).
    pub fn add_passphrase_slot(&self, passphrase: String) -> Result<u32, VaultError> {
        self.with(|v| v.keys().add_passphrase(&Passphrase::new(passphrase), KdfParams::DEFAULT)).map(|id| id.0)
    }

    /// Adds a platform-key slot.
    pub fn add_wrapper_slot(&self, wrapper: Arc<dyn PlatformKeyWrapper>) -> Result<u32, VaultError> {
        self.with(|v| v.keys().add_wrapper(&ForeignWrapper(wrapper))).map(|id| id.0)
    }

    /// Removes a slot (never the last).
    pub fn remove_slot(&self, id: u32) -> Result<(), VaultError> {
        self.with(|v| v.keys().remove(SlotId(id)))
    }

    /// Rotates the vault root key; the secrets of every slot other than the unlocking one must
    /// be given.
    pub async fn rotate_root_key(
        self: Arc<Self>,
        passphrases: Vec<String>,
        wrappers: Vec<Arc<dyn PlatformKeyWrapper>>,
    ) -> Result<(), VaultError> {
        blocking::run(move || {
            let passphrases: Vec<Passphrase> = passphrases.into_iter().map(Passphrase::new).collect();
            let wrappers: Vec<ForeignWrapper> = wrappers.into_iter().map(ForeignWrapper).collect();
            let mut secrets: Vec<SlotSecret<'_>> = passphrases.iter().map(SlotSecret::Passphrase).collect();
            secrets.extend(wrappers.iter().map(|w| SlotSecret::Wrapper(w)));
            self.with(|v| v.keys().rotate_root_key(&secrets))
        })
        .await
    }

    /// Re-wraps slot `id` with a new platform key (after `KeyInvalidated`, unlock another way and
    /// call this); the old key can then be deleted.
    pub fn rewrap_slot(&self, id: u32, wrapper: Arc<dyn PlatformKeyWrapper>) -> Result<(), VaultError> {
        self.with(|v| v.keys().rewrap(SlotId(id), &ForeignWrapper(wrapper)))
    }

    /// Re-wraps the slots of a rotated platform key; returns the slots re-wrapped.
    pub fn rotate_wrapper_key(
        &self,
        old: Arc<dyn PlatformKeyWrapper>,
        new: Arc<dyn PlatformKeyWrapper>,
    ) -> Result<Vec<u32>, VaultError> {
        self.with(|v| v.keys().rotate_wrapper_key(&ForeignWrapper(old), &ForeignWrapper(new)))
            .map(|ids| ids.into_iter().map(|id| id.0).collect())
    }

    /// The privacy dashboard.
    pub fn status(&self) -> Result<VaultStatus, VaultError> {
        self.with(|v| v.status()).map(|s| VaultStatus {
            cipher_version: s.cipher.cipher_version,
            slots: s.slots.into_iter().map(Into::into).collect(),
            unlocked_by: s.unlocked_by.0,
            messages: s.messages,
            media_items: s.media_items,
            recent_events: s.recent_events.into_iter().map(SecurityEvent::from).collect(),
        })
    }

    /// Checks everything; an empty `problems` list on every check means the vault is intact.
    pub async fn verify(self: Arc<Self>) -> Result<Vec<VerifyCheck>, VaultError> {
        blocking::run(move || {
            self.with(|v| v.verify()).map(|r| {
                r.checks.into_iter().map(|c| VerifyCheck { name: c.name.to_owned(), problems: c.problems }).collect()
            })
        })
        .await
    }

    /// Sets the retention limit.
    pub fn set_retention_policy(&self, policy: RetentionPolicy) -> Result<(), VaultError> {
        let policy =
            vault_core::RetentionPolicy { max_age_secs: policy.max_age_secs, max_messages: policy.max_messages };
        self.with(|v| v.retention().set_policy(&policy))
    }

    /// Purges what retention and disappearing timers made due; returns the messages purged.
    pub fn purge_expired(&self) -> Result<u64, VaultError> {
        self.with(|v| v.retention().purge()).map(|r| r.messages)
    }
}
