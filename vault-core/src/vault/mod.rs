//! The vault: a directory holding the key-slot file and the encrypted database, unlocked by one
//! of its slots. This is the main entry point of the crate.
//!
//! [`Vault`] is a facade: it opens, locks, reports on and checks the vault, and hands out one
//! handle per kind of work.
//!
//! - Borrowed handles work in the vault session, one group of operations each: [`Messages`]
//!   ([`Vault::messages`]), [`Secrets`] ([`Vault::secrets`]), [`Media`] ([`Vault::media`]),
//!   [`Keys`] ([`Vault::keys`]) and [`Retention`] ([`Vault::retention`]). The rule: a borrowed
//!   handle holds `&mut Vault` whenever any of its methods changes the vault (and `&Vault` only
//!   if none does). Every group above changes something, so each handle holds `&mut Vault` and
//!   its accessor takes `&mut self`; its read-only methods (`list`, `get`, `search`, ...) take
//!   `&self` on the handle. Call sites read as `vault.messages().add(&message)`.
//! - Owned handles do long work on database connections of their own, so the vault stays
//!   usable meanwhile: [`Backups`] ([`Vault::backups`]), [`Recovery`] ([`Vault::recovery`]) and
//!   [`MediaTransfers`] ([`Vault::media_transfers`]). Their accessors take `&self`; while one
//!   exists, a root-key rotation is refused.

use crate::error::DataKind;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::crypto::derive::{Purpose, derive_subkey};
use crate::crypto::kdf::KdfParams;
use crate::crypto::random_array;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::keys::slot_file::{SlotFile, SlotFileError, SlotId, VAULT_ID_LEN};
use crate::keys::wrapper::KeyWrapper;
use crate::keys::{self, Opened, SlotInfo, SlotMethod, SlotSecret};
use crate::media::MediaFiles;
use crate::secret::{Passphrase, SecretKey};
use crate::store::events::{self, SecurityEvent, SecurityEventKind};
use crate::store::retention::PurgeReport;
use crate::store::{self, CipherInfo, Store, media_rows, migrations};

mod backup;
mod key_file;
mod media;
mod messages;
mod recovery;
mod retention;
mod secrets;
mod slots;

pub use backup::{Backups, RestoreOptions, restore_backup};
pub use media::{Media, MediaImport, MediaTransfers};
pub use messages::Messages;
pub use recovery::{GuardianRestore, Recovery, RevokeReport, recover_key, restore_from_guardians};
pub use retention::Retention;
pub use secrets::Secrets;
pub use slots::Keys;

/// Name of the key-slot file inside a vault directory.
pub const KEYSLOTS_FILE: &str = "keyslots";
/// Name of the encrypted database inside a vault directory.
pub const DATABASE_FILE: &str = "vault.db";
/// Name of the file that records failed unlock times until the next successful unlock.
pub const UNLOCK_FAILURES_FILE: &str = "unlock-failures";
/// Name of the new key-slot file while the root key rotates (see `docs/formats.md`).
pub const KEYSLOTS_NEXT_FILE: &str = "keyslots.next";
const SLOTS_LOCK_FILE: &str = "keyslots.lock";
const MEDIA_LOCK_FILE: &str = "media.lock";
const MAX_PENDING_FAILURES_BYTES: u64 = 64 * 1024;
/// Most failed-unlock events one unlock records individually (see `record_pending_failures`).
const MAX_FAILURE_EVENTS_PER_UNLOCK: usize = 1000;

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
    /// Number of media items.
    pub media_items: u64,
    /// Total plaintext bytes of media.
    pub media_bytes: u64,
    /// Number of app secrets.
    pub app_secrets: u64,
    /// The vault-wide retention limit.
    pub retention: crate::store::retention::RetentionPolicy,
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

/// What a vault unlock or create did beyond opening.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Messages and media purged by retention rules.
    pub purged: PurgeReport,
    /// Temp and orphan media files removed (left by an interrupted import or delete).
    pub orphans_removed: usize,
    /// How an interrupted root-key rotation was resolved, if there was one.
    pub rotation_recovered: Option<RotationRecovery>,
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
/// vault.messages().add(&NewMessage::new("family", "alice", "dinner at eight"))?;
/// vault.lock();
///
/// let mut vault = Vault::unlock_with_passphrase(&dir, &Passphrase::new("correct horse".into()))?;
/// assert_eq!(vault.messages().search("dinner", 10)?.len(), 1);
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
    /// The KEK of the slot that unlocked, kept to re-seal it when the root key rotates.
    unlock_kek: SecretKey,
    media: MediaFiles,
    open_report: OpenReport,
    /// Shared with every handle doing long work on connections of its own ([`Backups`],
    /// [`Recovery`]); a root-key rotation waits for none and is refused while any exists.
    long_work: std::sync::Arc<()>,
}

/// Held by a handle doing long work on its own connections.
pub(crate) struct LongWork(#[allow(dead_code)] std::sync::Arc<()>);

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
    let bytes = match fsutil::read_bounded(&dir.join(KEYSLOTS_FILE), crate::keys::slot_file::MAX_FILE_LEN) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound("no vault in this directory (no key-slot file)".to_owned()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Err(Error::AuthenticationFailed),
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

/// How an unlock resolved an interrupted root-key rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationRecovery {
    /// The database had been re-keyed: the rotated slots were installed.
    Completed,
    /// The database had not been re-keyed: the rotated slots were discarded.
    RolledBack,
}

/// Waits for the key-slot lock, shared: held by unlock while it reads the slots and opens the
/// database, so no slot change or rotation runs in between.
fn lock_slots_shared(dir: &Path) -> Result<File> {
    let file = open_lock_file(dir, SLOTS_LOCK_FILE, "opening the key-slot lock")?;
    file.lock_shared().map_err(Error::io("locking the key slots"))?;
    Ok(file)
}

/// Waits for the key-slot lock, exclusive (used by unlock to resolve a rotation journal).
fn lock_slots_blocking(dir: &Path) -> Result<File> {
    let file = open_lock_file(dir, SLOTS_LOCK_FILE, "opening the key-slot lock")?;
    file.lock().map_err(Error::io("locking the key slots"))?;
    Ok(file)
}

/// Removes temp files a crash left beside the key-slot files (`.keyslots.tmp-*`,
/// `.keyslots.next.tmp-*`). Called with the slot lock held.
fn remove_slot_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(".keyslots.tmp-") || name.starts_with(".keyslots.next.tmp-") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// An exclusive lock serialising key-slot changes between processes.
fn lock_slots(dir: &Path) -> Result<File> {
    let file = open_lock_file(dir, SLOTS_LOCK_FILE, "opening the key-slot lock")?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Busy),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking the key slots")(e)),
    }
}

/// Takes the media lock: shared while importing (so a concurrent orphan clean-up cannot take a
/// file whose row is not committed yet), exclusive for the clean-up. `None` if an exclusive
/// lock is wanted and another process holds it.
fn lock_media(dir: &Path, exclusive: bool) -> Result<Option<File>> {
    let file = open_lock_file(dir, MEDIA_LOCK_FILE, "opening the media lock")?;
    if exclusive {
        return match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking media")(e)),
        };
    }
    file.lock_shared().map_err(Error::io("locking media"))?;
    Ok(Some(file))
}

/// Opens (creating if needed, mode 0600) one of the vault's lock files.
fn open_lock_file(dir: &Path, name: &str, context: &'static str) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(name))
        .map_err(Error::io(context))
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
        let placed = built.and_then(|opened| {
            fsutil::sync_dir(&staging).map_err(Error::io("syncing the vault directory"))?;
            fs::rename(&staging, dir).map_err(Error::io("moving the new vault into place"))?;
            fsutil::sync_dir(&parent).map_err(Error::io("syncing the parent directory"))?;
            Ok(opened)
        });
        match placed {
            // Opened with the keys just made: the passphrase is not run through Argon2id again.
            Ok(opened) => Self::unlock_as(dir, SlotSecret::Passphrase(passphrase), Some(opened)),
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(e)
            }
        }
    }

    /// Builds a new vault's files in `staging`; answers its root key opened by the passphrase
    /// slot (slot 0).
    fn build(staging: &Path, passphrase: &Passphrase, options: &CreateOptions<'_>) -> Result<Opened> {
        let vault_id: [u8; VAULT_ID_LEN] = random_array().map_err(Error::from_rng)?;
        let root = SecretKey::generate().map_err(Error::from_rng)?;
        let now = now_secs();
        let (passphrase_slot, kek) = keys::passphrase_slot(SlotId(0), now, &vault_id, &root, passphrase, options.kdf)?;
        let mut slots = vec![passphrase_slot];
        if let Some(wrapper) = options.wrapper {
            slots.push(keys::wrapper_slot(SlotId(1), now, &vault_id, &root, wrapper)?.0);
        }
        let file = SlotFile { vault_id, next_slot_id: u32::try_from(slots.len()).unwrap_or(2), slots };
        let store = Store::create(&staging.join(DATABASE_FILE), &derive_subkey(&root, Purpose::Database), &vault_id)?;
        let at = store::now_millis();
        events::record(&store.conn, at, SecurityEventKind::VaultCreated, "")?;
        for slot in &file.slots {
            events::record(&store.conn, at, SecurityEventKind::SlotAdded, &describe_slot(&SlotInfo::of(slot)))?;
        }
        store.checkpoint()?;
        drop(store);
        MediaFiles::new(staging).ensure_dir()?;
        write_slot_file(staging, &file)?;
        Ok(Opened { root, slot: SlotId(0), kek })
    }

    /// Unlocks with a passphrase. A wrong passphrase, a damaged slot file or a slot file from
    /// another vault all give [`Error::AuthenticationFailed`].
    pub fn unlock_with_passphrase(dir: &Path, passphrase: &Passphrase) -> Result<Vault> {
        Self::unlock(dir, SlotSecret::Passphrase(passphrase))
    }

    /// Unlocks with a key wrapper (platform keystore or the software key file).
    pub fn unlock_with_wrapper(dir: &Path, wrapper: &dyn KeyWrapper) -> Result<Vault> {
        Self::unlock(dir, SlotSecret::Wrapper(wrapper))
    }

    /// Unlocks with any slot secret. On success, the vault has also finished or rolled back an
    /// interrupted root-key rotation, removed orphan media files and purged what retention
    /// rules made due (see [`Vault::open_report`]).
    pub fn unlock(dir: &Path, secret: SlotSecret<'_>) -> Result<Vault> {
        Self::unlock_as(dir, secret, None)
    }

    /// [`Vault::unlock`], with the slot already opened when `known` is given (a vault this
    /// process has just created: the slot is checked to open to those keys without the KDF, and
    /// `secret` is then used only to recover an interrupted key rotation, which a new vault
    /// cannot have).
    fn unlock_as(dir: &Path, secret: SlotSecret<'_>, known: Option<Opened>) -> Result<Vault> {
        if !dir.join(KEYSLOTS_FILE).exists() {
            return Err(Error::NotFound("no vault in this directory (no key-slot file)".to_owned()));
        }
        // Unlock holds the slot lock shared (slot changes and rotations take it exclusively, so
        // none runs while a slot file is read and the database opened), and exclusively when a
        // rotation journal has to be resolved. A journal cannot appear while the lock is held.
        let mut slot_lock = lock_slots_shared(dir)?;
        if dir.join(KEYSLOTS_NEXT_FILE).exists() {
            drop(slot_lock);
            slot_lock = lock_slots_blocking(dir)?;
        }
        let opened = read_slot_file(dir).and_then(|file| match known {
            // The slot as written must open to the key just made (its AEAD, without the KDF).
            Some(opened) => match file.slots.iter().find(|s| s.id == opened.slot) {
                Some(slot) if keys::opens_to(&file, slot, &opened.kek, &opened.root) => Ok((file, opened)),
                _ => Err(Error::Integrity {
                    object: DataKind::KeySlots,
                    problem: "the new vault's key-slot file does not open to its key".to_owned(),
                }),
            },
            None => keys::open(&file, secret).map(|o| (file, o)),
        });
        let (slots, opened) = match opened {
            Ok(found) => found,
            Err(Error::AuthenticationFailed) => {
                note_failed_unlock(dir);
                return Err(Error::AuthenticationFailed);
            }
            Err(e) => return Err(e),
        };
        let (slots, opened, store, rotation) = Self::open_store(dir, slots, opened, secret)?;
        // Under the slot lock no slot file is being written, so any temp file is a crash's leftover.
        remove_slot_temp_files(dir);
        drop(slot_lock);
        let mut vault = Vault {
            dir: dir.to_owned(),
            store,
            root: opened.root,
            slots,
            unlocked_by: opened.slot,
            unlock_kek: opened.kek,
            media: MediaFiles::new(dir),
            open_report: OpenReport { rotation_recovered: rotation, ..OpenReport::default() },
            long_work: std::sync::Arc::new(()),
        };
        vault.record_pending_failures()?;
        vault.record(SecurityEventKind::UnlockSucceeded, &format!("slot {}", vault.unlocked_by))?;
        match rotation {
            Some(RotationRecovery::Completed) => {
                vault.record(SecurityEventKind::RootKeyRotated, "completed after an interruption")?
            }
            Some(RotationRecovery::RolledBack) => vault
                .record(SecurityEventKind::RootKeyRotationRolledBack, "interrupted before the database was re-keyed")?,
            None => {}
        }
        vault.open_report.orphans_removed = vault.remove_orphan_media()?;
        vault.open_report.purged = vault.retention().purge()?;
        Ok(vault)
    }

    /// Opens the database with the unlocked root key, resolving an interrupted root-key
    /// rotation: if `keyslots.next` exists, the rotation either never re-keyed the database (the
    /// current slots open it: the next file is discarded) or did (the next slots open it: they
    /// are installed). Called with the slot lock held whenever `keyslots.next` exists.
    fn open_store(
        dir: &Path,
        slots: SlotFile,
        opened: Opened,
        secret: SlotSecret<'_>,
    ) -> Result<(SlotFile, Opened, Store, Option<RotationRecovery>)> {
        let db = dir.join(DATABASE_FILE);
        let next_path = dir.join(KEYSLOTS_NEXT_FILE);
        let first = Store::open(&db, &derive_subkey(&opened.root, Purpose::Database), &slots.vault_id);
        let next_exists = next_path.exists();
        match first {
            Ok(store) => {
                if !next_exists {
                    return Ok((slots, opened, store, None));
                }
                fs::remove_file(&next_path).map_err(Error::io("discarding an unfinished rotation"))?;
                fsutil::sync_dir(dir).map_err(Error::io("syncing the vault directory"))?;
                Ok((slots, opened, store, Some(RotationRecovery::RolledBack)))
            }
            Err(Error::Integrity { object, problem: first_error }) if next_exists => {
                let bytes = fsutil::read_bounded(&next_path, crate::keys::slot_file::MAX_FILE_LEN).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::InvalidData {
                        Error::Integrity {
                            object: DataKind::KeySlots,
                            problem: "the rotated key-slot file is damaged".to_owned(),
                        }
                    } else {
                        Error::io("reading the rotated key slots")(e)
                    }
                })?;
                let next = SlotFile::decode(&bytes).map_err(|_| Error::Integrity {
                    object: DataKind::KeySlots,
                    problem: "the rotated key-slot file is damaged".to_owned(),
                })?;
                if next.vault_id != slots.vault_id {
                    return Err(Error::Integrity { object, problem: first_error });
                }
                let opened = keys::open(&next, secret)
                    .map_err(|_| Error::Integrity { object: DataKind::Database, problem: first_error.clone() })?;
                let store = Store::open(&db, &derive_subkey(&opened.root, Purpose::Database), &next.vault_id)?;
                fs::rename(&next_path, dir.join(KEYSLOTS_FILE))
                    .map_err(Error::io("installing the rotated key slots"))?;
                fsutil::sync_dir(dir).map_err(Error::io("syncing the vault directory"))?;
                let _ = store.checkpoint();
                Ok((next, opened, store, Some(RotationRecovery::Completed)))
            }
            Err(e) => Err(e),
        }
    }

    /// Moves failed-unlock times noted while locked into the encrypted log: the events are
    /// committed first, then the pending file is removed. Whatever the file holds (even bytes
    /// that do not parse) counts, so a damaged file cannot silence failures.
    fn record_pending_failures(&self) -> Result<()> {
        let path = self.dir.join(UNLOCK_FAILURES_FILE);
        let (times, unreadable) = match fsutil::read_bounded(&path, 2 * MAX_PENDING_FAILURES_BYTES) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let records: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
                let times: Vec<i64> = records.iter().filter_map(|l| l.parse().ok()).collect();
                let unreadable = records.len() - times.len();
                (times, unreadable)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) => (Vec::new(), 1),
        };
        // The file is outside the encryption, so its size is bounded when read and the events it
        // becomes are capped; the rest are counted in one summary event.
        let now = store::now_millis();
        let mut entries: Vec<(i64, &str)> = times.iter().map(|at| (*at, "")).collect();
        entries.extend(std::iter::repeat_n((now, "time not recorded"), unreadable));
        let listed = entries.len().min(MAX_FAILURE_EVENTS_PER_UNLOCK);
        let tx = self.store.conn.unchecked_transaction()?;
        for (at, detail) in &entries[..listed] {
            events::record(&tx, *at, SecurityEventKind::UnlockFailed, detail)?;
        }
        if entries.len() > listed {
            let detail = format!("{} more failed unlocks not listed", entries.len() - listed);
            events::record(&tx, now, SecurityEventKind::UnlockFailed, &detail)?;
        }
        tx.commit()?;
        fs::remove_file(&path).map_err(Error::io("clearing the failed-unlock record"))?;
        fsutil::sync_dir(&self.dir).map_err(Error::io("syncing the vault directory"))
    }

    fn record(&self, kind: SecurityEventKind, detail: &str) -> Result<()> {
        events::record_now(&self.store.conn, kind, detail)
    }

    /// A second connection to the vault's database, keyed like the first, for long work that
    /// must not hold this session (WAL lets it read a snapshot while this session writes).
    fn side_connection(&self) -> Result<rusqlite::Connection> {
        store::open_keyed(&self.dir.join(DATABASE_FILE), &derive_subkey(&self.root, Purpose::Database), false)
    }

    /// A token held by a long-work handle (see [`Keys::rotate_root_key`]).
    fn long_work(&self) -> LongWork {
        LongWork(std::sync::Arc::clone(&self.long_work))
    }

    /// Refuses a change of the database key while a long-work handle is open on the old one.
    fn check_no_long_work(&self) -> Result<()> {
        if std::sync::Arc::strong_count(&self.long_work) > 1 {
            return Err(Error::Busy);
        }
        Ok(())
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

    /// What this unlock did beyond opening: purges, orphan clean-up, rotation recovery.
    pub fn open_report(&self) -> OpenReport {
        self.open_report
    }

    // ---- dashboard and checks ---------------------------------------------------------------

    /// The newest `limit` security events, newest first.
    pub fn security_events(&self, limit: usize) -> Result<Vec<SecurityEvent>> {
        events::recent(&self.store.conn, limit)
    }

    /// The privacy dashboard.
    pub fn status(&self) -> Result<VaultStatus> {
        let (media_items, media_bytes) = media_rows::totals(&self.store.conn)?;
        Ok(VaultStatus {
            cipher: self.store.cipher_info()?,
            schema_version: migrations::current_version(&self.store.conn)?,
            slots: self.slot_infos(),
            unlocked_by: self.unlocked_by,
            conversations: store::messages::conversation_count(&self.store.conn)?,
            messages: store::messages::count(&self.store.conn)?,
            media_items,
            media_bytes,
            app_secrets: store::secrets::count(&self.store.conn)?,
            retention: crate::store::retention::policy(&self.store.conn)?,
            security_events: events::count(&self.store.conn)?,
            recent_events: self.security_events(10)?,
        })
    }

    /// Checks the whole vault: the key-slot file, SQLCipher's per-page authentication, SQLite's
    /// integrity check, the search index, and every media file (each segment authenticated).
    pub fn verify(&self) -> Result<VerifyReport> {
        let mut checks = self.verify_stored()?;
        checks.push(VerifyCheck { name: "media", problems: self.verify_media()? });
        Ok(VerifyReport { checks })
    }

    /// The checks of [`Vault::verify`] but the media's: the key-slot file, the database's pages
    /// and integrity, and the search index.
    pub(crate) fn verify_stored(&self) -> Result<Vec<VerifyCheck>> {
        let mut checks = Vec::new();
        let slot_problems =
            match fsutil::read_bounded(&self.dir.join(KEYSLOTS_FILE), crate::keys::slot_file::MAX_FILE_LEN) {
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
        checks.push(VerifyCheck { name: "search index", problems: self.store.verify_search_index() });
        Ok(checks)
    }

    /// Checks the key-slot file of `dir` without unlocking (it holds no secret in the clear) and
    /// says what is wrong with a damaged one, which unlock deliberately reports only as
    /// "authentication failed": [`Error::NotFound`] without a vault, [`Error::UnsupportedVersion`]
    /// for a newer format, [`Error::Integrity`] naming the parse error otherwise.
    pub fn check_slot_file(dir: &Path) -> Result<()> {
        let bytes = match fsutil::read_bounded(&dir.join(KEYSLOTS_FILE), crate::keys::slot_file::MAX_FILE_LEN) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound("no vault in this directory (no key-slot file)".to_owned()));
            }
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Error::Integrity {
                    object: DataKind::KeySlots,
                    problem: "key-slot file: larger than any valid key-slot file".to_owned(),
                });
            }
            Err(e) => return Err(Error::io("reading the key-slot file")(e)),
        };
        match SlotFile::decode(&bytes) {
            Ok(_) => Ok(()),
            Err(SlotFileError::UnsupportedVersion(v)) => {
                Err(Error::UnsupportedVersion { what: "key-slot file", found: u64::from(v) })
            }
            Err(e) => Err(Error::Integrity { object: DataKind::KeySlots, problem: format!("key-slot file: {e}") }),
        }
    }

    /// Returns the raw SQLCipher key of the database.
    ///
    /// Dangerous: anyone holding it can read the whole database. It exists so that the database
    /// can be opened by an independent SQLCipher 4 build (interoperability tests, forensic
    /// export by the owner). Never log it or write it to disk.
    pub fn dangerous_export_database_key(&self) -> SecretKey {
        derive_subkey(&self.root, Purpose::Database)
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
