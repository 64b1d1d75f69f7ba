//! The vault: a directory holding the key-slot file and the encrypted database, unlocked by one
//! of its slots. This is the main entry point of the crate.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::crypto::derive::{Subkey, derive_subkey};
use crate::crypto::kdf::KdfParams;
use crate::crypto::random_array;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keys::slot_file::{SlotFile, SlotFileError, SlotId, VAULT_ID_LEN};
use crate::keys::wrapper::KeyWrapper;
use crate::keys::{self, SlotInfo, SlotMethod};
use crate::secret::{Passphrase, SecretBytes, SecretKey};
use crate::store::events::{self, SecurityEvent, SecurityEventKind};
use crate::store::messages::{self, ConversationSummary, Message, MessageId, MessageStatus, NewMessage, SearchHit};
use crate::store::{self, CipherInfo, Store, migrations, secrets};

/// Name of the key-slot file inside a vault directory.
pub const KEYSLOTS_FILE: &str = "keyslots";
/// Name of the encrypted database inside a vault directory.
pub const DATABASE_FILE: &str = "vault.db";
/// Name of the file that records failed unlock times until the next successful unlock.
pub const UNLOCK_FAILURES_FILE: &str = "unlock-failures";
const SLOTS_LOCK_FILE: &str = "keyslots.lock";
const MAX_PENDING_FAILURES_BYTES: u64 = 64 * 1024;

/// How to create a vault.
pub struct CreateOptions<'a> {
    /// Argon2id parameters of the first passphrase slot.
    pub kdf: KdfParams,
    /// An optional key wrapper for a second, device-bound slot.
    pub wrapper: Option<&'a dyn KeyWrapper>,
}

impl Default for CreateOptions<'_> {
    fn default() -> Self {
        Self { kdf: KdfParams::DEFAULT, wrapper: None }
    }
}

/// What the privacy dashboard shows.
#[derive(Debug, Clone)]
pub struct VaultStatus {
    /// SQLCipher build and settings.
    pub cipher: CipherInfo,
    /// Database schema version.
    pub schema_version: u32,
    /// Every key slot.
    pub slots: Vec<SlotInfo>,
    /// The slot that unlocked this session.
    pub unlocked_by: SlotId,
    /// Number of conversations.
    pub conversations: u64,
    /// Number of messages.
    pub messages: u64,
    /// Number of app secrets.
    pub app_secrets: u64,
    /// Number of security events.
    pub security_events: u64,
    /// The newest security events, newest first.
    pub recent_events: Vec<SecurityEvent>,
}

/// One check done by [`Vault::verify`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyCheck {
    /// What was checked.
    pub name: &'static str,
    /// Problems found; empty when the check passed.
    pub problems: Vec<String>,
}

/// The result of [`Vault::verify`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Every check, in the order run.
    pub checks: Vec<VerifyCheck>,
}

impl VerifyReport {
    /// Whether every check passed.
    pub fn is_ok(&self) -> bool {
        self.checks.iter().all(|c| c.problems.is_empty())
    }
}

/// An unlocked vault. Dropping it (or calling [`Vault::lock`]) closes the database and zeroizes
/// the keys.
///
/// ```
/// # fn main() -> Result<(), vault_core::Error> {
/// use vault_core::{CreateOptions, KdfParams, NewMessage, Passphrase, Vault};
/// let dir = std::env::temp_dir().join(format!("vault-doc-{}", std::process::id()));
/// # let _ = std::fs::remove_dir_all(&dir);
/// let options = CreateOptions { kdf: KdfParams { memory_kib: 8192, iterations: 1, parallelism: 1 }, wrapper: None };
/// let mut vault = Vault::create(&dir, &Passphrase::new("correct horse".into()), options)?;
/// vault.add_message(&NewMessage::new("family", "alice", "dinner at eight"))?;
/// vault.lock();
///
/// let vault = Vault::unlock_with_passphrase(&dir, &Passphrase::new("correct horse".into()))?;
/// assert_eq!(vault.search("dinner", 10)?.len(), 1);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(())
/// # }
/// ```
pub struct Vault {
    dir: PathBuf,
    store: Store,
    root: SecretKey,
    slots: SlotFile,
    unlocked_by: SlotId,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("dir", &self.dir).field("unlocked_by", &self.unlocked_by).finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    u64::try_from(store::now_millis() / 1000).unwrap_or(0)
}

/// Reads and parses the slot file of `dir`. Damage is reported as authentication failure (one
/// uniform error), an unknown version as such.
fn read_slot_file(dir: &Path) -> Result<SlotFile> {
    let bytes = match fs::read(dir.join(KEYSLOTS_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound("no vault in this directory (no key-slot file)".to_owned()));
        }
        Err(e) => return Err(Error::io("reading the key-slot file")(e)),
    };
    SlotFile::decode(&bytes).map_err(|e| match e {
        SlotFileError::UnsupportedVersion(v) => {
            Error::UnsupportedVersion { what: "key-slot file", found: u64::from(v) }
        }
        _ => Error::AuthenticationFailed,
    })
}

fn write_slot_file(dir: &Path, file: &SlotFile) -> Result<()> {
    fsutil::atomic_write(&dir.join(KEYSLOTS_FILE), &file.encode(), 0o600)
        .map_err(Error::io("writing the key-slot file"))
}

/// An exclusive lock serialising key-slot changes between processes.
fn lock_slots(dir: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(SLOTS_LOCK_FILE))
        .map_err(Error::io("opening the key-slot lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking the key slots")(e)),
    }
}

/// Records a failed unlock for the security log (times only, no secrets).
fn note_failed_unlock(dir: &Path) {
    let path = dir.join(UNLOCK_FAILURES_FILE);
    let too_big = fs::metadata(&path).map(|m| m.len() > MAX_PENDING_FAILURES_BYTES).unwrap_or(false);
    if too_big {
        return;
    }
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).mode(0o600).open(&path) {
        let _ = writeln!(file, "{}", store::now_millis());
        let _ = file.sync_all();
    }
}

impl Vault {
    /// Creates a vault in `dir`, which must not exist or be empty. The vault is built in a
    /// sibling temporary directory and renamed into place, so a crash leaves no half vault.
    pub fn create(dir: &Path, passphrase: &Passphrase, options: CreateOptions<'_>) -> Result<Vault> {
        if let Ok(mut entries) = fs::read_dir(dir)
            && entries.next().is_some()
        {
            return Err(Error::AlreadyExists("the vault directory is not empty".to_owned()));
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let suffix: [u8; 8] = random_array().map_err(Error::from_rng)?;
        let staging = parent.join(format!(".vault-creating-{}", hex::encode(suffix)));
        fs::DirBuilder::new().mode(0o700).create(&staging).map_err(Error::io("creating the vault directory"))?;
        let built = Self::build(&staging, passphrase, &options);
        let placed = built.and_then(|()| {
            fsutil::sync_dir(&staging).map_err(Error::io("syncing the vault directory"))?;
            fs::rename(&staging, dir).map_err(Error::io("moving the new vault into place"))?;
            fsutil::sync_dir(&parent).map_err(Error::io("syncing the parent directory"))
        });
        if let Err(e) = placed {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        Self::unlock_with_passphrase(dir, passphrase)
    }

    fn build(staging: &Path, passphrase: &Passphrase, options: &CreateOptions<'_>) -> Result<()> {
        let vault_id: [u8; VAULT_ID_LEN] = random_array().map_err(Error::from_rng)?;
        let root = SecretKey::generate().map_err(Error::from_rng)?;
        let now = now_secs();
        let mut slots = vec![keys::passphrase_slot(SlotId(0), now, &vault_id, &root, passphrase, options.kdf)?];
        if let Some(wrapper) = options.wrapper {
            slots.push(keys::wrapper_slot(SlotId(1), now, &vault_id, &root, wrapper)?);
        }
        let file = SlotFile { vault_id, next_slot_id: u32::try_from(slots.len()).unwrap_or(2), slots };
        let store = Store::create(&staging.join(DATABASE_FILE), &derive_subkey(&root, Subkey::Database), &vault_id)?;
        let at = store::now_millis();
        events::record(&store.conn, at, SecurityEventKind::VaultCreated, "")?;
        for slot in &file.slots {
            events::record(&store.conn, at, SecurityEventKind::SlotAdded, &describe_slot(&SlotInfo::of(slot)))?;
        }
        store.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        drop(store);
        write_slot_file(staging, &file)
    }

    /// Unlocks with a passphrase. A wrong passphrase, a damaged slot file or a slot file from
    /// another vault all give [`Error::AuthenticationFailed`].
    pub fn unlock_with_passphrase(dir: &Path, passphrase: &Passphrase) -> Result<Vault> {
        Self::unlock(dir, |file| keys::open_with_passphrase(file, passphrase))
    }

    /// Unlocks with a key wrapper (platform keystore or the software key file).
    pub fn unlock_with_wrapper(dir: &Path, wrapper: &dyn KeyWrapper) -> Result<Vault> {
        Self::unlock(dir, |file| keys::open_with_wrapper(file, wrapper))
    }

    fn unlock(dir: &Path, open: impl FnOnce(&SlotFile) -> Result<(SecretKey, SlotId)>) -> Result<Vault> {
        let opened = read_slot_file(dir).and_then(|file| open(&file).map(|(root, id)| (file, root, id)));
        let (slots, root, unlocked_by) = match opened {
            Ok(opened) => opened,
            Err(Error::AuthenticationFailed) => {
                note_failed_unlock(dir);
                return Err(Error::AuthenticationFailed);
            }
            Err(e) => return Err(e),
        };
        let store = Store::open(&dir.join(DATABASE_FILE), &derive_subkey(&root, Subkey::Database), &slots.vault_id)?;
        let vault = Vault { dir: dir.to_owned(), store, root, slots, unlocked_by };
        vault.record_pending_failures()?;
        vault.record(SecurityEventKind::UnlockSucceeded, &format!("slot {unlocked_by}"))?;
        Ok(vault)
    }

    /// Moves failed-unlock times noted while locked into the encrypted log.
    fn record_pending_failures(&self) -> Result<()> {
        let path = self.dir.join(UNLOCK_FAILURES_FILE);
        let Ok(text) = fs::read_to_string(&path) else {
            return Ok(());
        };
        let times: Vec<i64> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        let tx = self.store.conn.unchecked_transaction()?;
        for at in &times {
            events::record(&tx, *at, SecurityEventKind::UnlockFailed, "")?;
        }
        tx.commit()?;
        fs::remove_file(&path).map_err(Error::io("clearing the failed-unlock record"))
    }

    fn record(&self, kind: SecurityEventKind, detail: &str) -> Result<()> {
        events::record(&self.store.conn, store::now_millis(), kind, detail)
    }

    /// Locks the vault: closes the database and zeroizes the keys.
    pub fn lock(self) {
        drop(self);
    }

    /// The vault directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The slot that unlocked this session.
    pub fn unlocked_by(&self) -> SlotId {
        self.unlocked_by
    }

    // ---- key slots -------------------------------------------------------------------------

    /// Lists the key slots of the vault in `dir` without unlocking it (the slot file holds no
    /// secret in the clear).
    pub fn inspect_slots(dir: &Path) -> Result<Vec<SlotInfo>> {
        Ok(read_slot_file(dir)?.slots.iter().map(SlotInfo::of).collect())
    }

    /// The key slots.
    pub fn slots(&self) -> Vec<SlotInfo> {
        self.slots.slots.iter().map(SlotInfo::of).collect()
    }

    /// Re-reads the slot file under the slot lock, applies `change`, writes it atomically.
    fn change_slots<T>(&mut self, change: impl FnOnce(&mut SlotFile, &SecretKey) -> Result<T>) -> Result<T> {
        let _lock = lock_slots(&self.dir)?;
        let mut file = read_slot_file(&self.dir)?;
        if file.vault_id != self.slots.vault_id {
            return Err(Error::Integrity("the key-slot file was replaced by another vault's".to_owned()));
        }
        let out = change(&mut file, &self.root)?;
        write_slot_file(&self.dir, &file)?;
        self.slots = file;
        Ok(out)
    }

    fn allocate_slot_id(file: &mut SlotFile) -> Result<SlotId> {
        if file.slots.len() >= crate::keys::slot_file::MAX_SLOTS {
            return Err(Error::InvalidInput("the vault already has the maximum number of key slots".to_owned()));
        }
        let id = SlotId(file.next_slot_id);
        file.next_slot_id = file.next_slot_id.checked_add(1).ok_or(Error::internal("slot ids exhausted"))?;
        Ok(id)
    }

    /// Adds a passphrase slot.
    pub fn add_passphrase_slot(&mut self, passphrase: &Passphrase, kdf: KdfParams) -> Result<SlotId> {
        let id = self.change_slots(|file, root| {
            let id = Self::allocate_slot_id(file)?;
            let vault_id = file.vault_id;
            file.slots.push(keys::passphrase_slot(id, now_secs(), &vault_id, root, passphrase, kdf)?);
            Ok(id)
        })?;
        self.record_slot_event(SecurityEventKind::SlotAdded, id)?;
        Ok(id)
    }

    /// Adds a key-wrapper slot.
    pub fn add_wrapper_slot(&mut self, wrapper: &dyn KeyWrapper) -> Result<SlotId> {
        let id = self.change_slots(|file, root| {
            let id = Self::allocate_slot_id(file)?;
            let vault_id = file.vault_id;
            file.slots.push(keys::wrapper_slot(id, now_secs(), &vault_id, root, wrapper)?);
            Ok(id)
        })?;
        self.record_slot_event(SecurityEventKind::SlotAdded, id)?;
        Ok(id)
    }

    /// Replaces the passphrase of passphrase slot `id` (new salt, same slot number).
    pub fn change_passphrase(&mut self, id: SlotId, new: &Passphrase, kdf: KdfParams) -> Result<()> {
        self.change_slots(|file, root| {
            let vault_id = file.vault_id;
            let slot =
                file.slots.iter_mut().find(|s| s.id == id).ok_or_else(|| Error::NotFound(format!("key slot {id}")))?;
            if !matches!(SlotInfo::of(slot).method, SlotMethod::Passphrase { .. }) {
                return Err(Error::InvalidInput(format!("key slot {id} is not a passphrase slot")));
            }
            *slot = keys::passphrase_slot(id, now_secs(), &vault_id, root, new, kdf)?;
            Ok(())
        })?;
        self.record_slot_event(SecurityEventKind::SlotChanged, id)
    }

    /// Removes slot `id`. Refuses to remove the last slot.
    pub fn remove_slot(&mut self, id: SlotId) -> Result<()> {
        self.change_slots(|file, _| {
            let position =
                file.slots.iter().position(|s| s.id == id).ok_or_else(|| Error::NotFound(format!("key slot {id}")))?;
            if file.slots.len() == 1 {
                return Err(Error::LastSlot);
            }
            file.slots.remove(position);
            Ok(())
        })?;
        self.record(SecurityEventKind::SlotRemoved, &format!("slot {id}"))
    }

    fn record_slot_event(&self, kind: SecurityEventKind, id: SlotId) -> Result<()> {
        let detail =
            self.slots().iter().find(|s| s.id == id).map(describe_slot).unwrap_or_else(|| format!("slot {id}"));
        self.record(kind, &detail)
    }

    // ---- messages --------------------------------------------------------------------------

    /// Stores one message.
    pub fn add_message(&mut self, message: &NewMessage) -> Result<MessageId> {
        let ids = messages::insert(&mut self.store.conn, std::slice::from_ref(message))?;
        ids.first().copied().ok_or(Error::internal("insert returned no id"))
    }

    /// Stores many messages in one transaction (all or nothing).
    pub fn add_messages(&mut self, batch: &[NewMessage]) -> Result<Vec<MessageId>> {
        messages::insert(&mut self.store.conn, batch)
    }

    /// The newest `limit` messages of a conversation, oldest first.
    pub fn messages(&self, conversation: &str, limit: usize) -> Result<Vec<Message>> {
        messages::list(&self.store.conn, conversation, limit)
    }

    /// One message.
    pub fn message(&self, id: MessageId) -> Result<Option<Message>> {
        messages::get(&self.store.conn, id)
    }

    /// Deletes a message and its search entry; returns whether it existed.
    pub fn delete_message(&mut self, id: MessageId) -> Result<bool> {
        messages::delete(&self.store.conn, id)
    }

    /// Updates a message's delivery status; returns whether it existed.
    pub fn set_message_status(&mut self, id: MessageId, status: MessageStatus) -> Result<bool> {
        messages::set_status(&self.store.conn, id, status)
    }

    /// All conversations.
    pub fn conversations(&self) -> Result<Vec<ConversationSummary>> {
        messages::conversations(&self.store.conn)
    }

    /// Full-text search over message bodies, best match first. Every word must match; a word
    /// ending in `*` matches as a prefix.
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<SearchHit>> {
        messages::search(&self.store.conn, query, limit)
    }

    // ---- app secrets -----------------------------------------------------------------------

    /// Stores or replaces a small app secret.
    pub fn put_secret(&mut self, name: &str, value: &[u8]) -> Result<()> {
        secrets::put(&self.store.conn, name, value, store::now_millis())
    }

    /// Reads an app secret.
    pub fn secret(&self, name: &str) -> Result<Option<SecretBytes>> {
        secrets::get(&self.store.conn, name)
    }

    /// Deletes an app secret; returns whether it existed.
    pub fn delete_secret(&mut self, name: &str) -> Result<bool> {
        secrets::delete(&self.store.conn, name)
    }

    /// Names of all app secrets.
    pub fn secret_names(&self) -> Result<Vec<String>> {
        secrets::names(&self.store.conn)
    }

    // ---- dashboard and checks ---------------------------------------------------------------

    /// The newest `limit` security events, newest first.
    pub fn security_events(&self, limit: usize) -> Result<Vec<SecurityEvent>> {
        events::recent(&self.store.conn, limit)
    }

    /// The privacy dashboard.
    pub fn status(&self) -> Result<VaultStatus> {
        let conversations = u64::try_from(self.conversations()?.len()).unwrap_or(0);
        Ok(VaultStatus {
            cipher: self.store.cipher_info()?,
            schema_version: migrations::current_version(&self.store.conn)?,
            slots: self.slots(),
            unlocked_by: self.unlocked_by,
            conversations,
            messages: messages::count(&self.store.conn)?,
            app_secrets: u64::try_from(self.secret_names()?.len()).unwrap_or(0),
            security_events: events::count(&self.store.conn)?,
            recent_events: self.security_events(10)?,
        })
    }

    /// Checks the whole vault: the key-slot file, SQLCipher's per-page authentication, SQLite's
    /// integrity check and the search index.
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut checks = Vec::new();
        let slot_problems = match fs::read(self.dir.join(KEYSLOTS_FILE)) {
            Ok(bytes) => match SlotFile::decode(&bytes) {
                Ok(file) if file.vault_id != self.slots.vault_id => vec!["belongs to another vault".to_owned()],
                Ok(file) if !file.slots.iter().any(|s| s.id == self.unlocked_by) => {
                    vec!["the slot used to unlock is gone".to_owned()]
                }
                Ok(_) => Vec::new(),
                Err(e) => vec![e.to_string()],
            },
            Err(e) => vec![format!("unreadable: {}", e.kind())],
        };
        checks.push(VerifyCheck { name: "key slots", problems: slot_problems });
        checks.push(VerifyCheck { name: "database", problems: self.store.verify()? });
        Ok(VerifyReport { checks })
    }

    /// Returns the raw SQLCipher key of the database.
    ///
    /// Dangerous: anyone holding it can read the whole database. It exists so that the database
    /// can be opened by an independent SQLCipher 4 build (interoperability tests, forensic
    /// export by the owner). Never log it or write it to disk.
    pub fn dangerous_export_database_key(&self) -> SecretKey {
        derive_subkey(&self.root, Subkey::Database)
    }
}

/// A one-line, non-secret description of a slot for the security log.
fn describe_slot(slot: &SlotInfo) -> String {
    match &slot.method {
        SlotMethod::Passphrase { kdf } => format!(
            "slot {} passphrase argon2id m={}KiB t={} p={}",
            slot.id, kdf.memory_kib, kdf.iterations, kdf.parallelism
        ),
        SlotMethod::KeyWrapper { label, hardware_backed } => format!(
            "slot {} key-wrapper {label} ({})",
            slot.id,
            if *hardware_backed { "hardware-backed" } else { "software, not hardware-backed" }
        ),
    }
}
