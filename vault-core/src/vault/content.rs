//! What the vault holds: messages, app secrets, media, and the retention rules that purge them.

use crate::error::DataKind;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::{Error, Result, Vault, fsutil, lock_media, media_rows, messages, secrets};
use crate::media::MediaId;
use crate::media::io::MediaReader;
use crate::secret::{SecretBytes, SecretKey};
use crate::store::media_rows::MediaInfo;
use crate::store::messages::{ConversationSummary, Message, MessageId, MessageStatus, NewMessage, SearchHit};
use crate::store::retention::{self, PurgeReport, RetentionPolicy};
use crate::store::{self};

/// A progress that never cancels.
struct NoProgress;

impl crate::Progress for NoProgress {
    fn advance(&self, _: u64, _: Option<u64>) -> bool {
        true
    }
}

/// Where an imported media item belongs.
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaImport<'a> {
    /// The conversation it belongs to (must exist).
    pub conversation: Option<&'a str>,
    /// A message to attach it to (must exist).
    pub message: Option<MessageId>,
}

impl Vault {
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

    /// Deletes a message, its search entry, and media attached only to it. Returns whether the
    /// message existed.
    pub fn delete_message(&mut self, id: MessageId) -> Result<bool> {
        let report = self.delete_messages(&[id])?;
        Ok(report.messages == 1)
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

    // ---- media -----------------------------------------------------------------------------

    /// Imports media from a reader, streaming (constant memory), under a fresh random key.
    /// The item becomes visible only once its file is complete and durable and its row is
    /// committed; an interrupted import leaves nothing visible, and its temp file is removed
    /// at the next unlock.
    pub fn import_media(&mut self, input: &mut dyn Read, place: MediaImport<'_>) -> Result<MediaId> {
        import_media(&self.store.conn, &self.dir, &self.media, input, place)
    }

    /// Imports the file at `path` (see [`Vault::import_media`]).
    pub fn import_media_file(&mut self, path: &Path, place: MediaImport<'_>) -> Result<MediaId> {
        let mut file = fs::File::open(path).map_err(Error::io("opening the file to import"))?;
        self.import_media(&mut file, place)
    }

    /// Imports the file at `path`, reporting progress; `progress` returning `false` cancels the
    /// import ([`Error::Cancelled`], nothing stored).
    pub fn import_media_file_with_progress(
        &mut self,
        path: &Path,
        place: MediaImport<'_>,
        progress: &dyn crate::Progress,
    ) -> Result<MediaId> {
        let file = fs::File::open(path).map_err(Error::io("opening the file to import"))?;
        let total = file.metadata().ok().map(|m| m.len());
        let mut tracked = crate::progress::Tracked::new(file, progress, total);
        self.import_media(&mut tracked, place)
    }

    /// Opens a media item for reading: `Read + Seek`, random access, only authenticated bytes.
    pub fn open_media(&self, id: &MediaId) -> Result<MediaReader> {
        open_media(&self.store.conn, &self.media, id)
    }

    /// A handle for importing and exporting media on a connection of its own (see
    /// [`MediaTransfers`]).
    pub fn media_transfers(&self) -> Result<MediaTransfers> {
        Ok(MediaTransfers {
            conn: self.side_connection()?,
            dir: self.dir.clone(),
            media: crate::media::MediaFiles::new(&self.dir),
            _work: self.long_work(),
        })
    }

    /// Decrypts `length` bytes from `offset` (all by default) of a media item into a new file
    /// at `path` (refused if it exists). The output is written to a temp file and renamed, so a
    /// failed export (a tampered segment, say) leaves no partial file. Returns the bytes written.
    pub fn export_media(&self, id: &MediaId, path: &Path, offset: u64, length: Option<u64>) -> Result<u64> {
        self.export_media_with_progress(id, path, offset, length, &NoProgress)
    }

    /// [`Vault::export_media`], reporting progress; `progress` returning `false` cancels the
    /// export ([`Error::Cancelled`], no file left).
    pub fn export_media_with_progress(
        &self,
        id: &MediaId,
        path: &Path,
        offset: u64,
        length: Option<u64>,
        progress: &dyn crate::Progress,
    ) -> Result<u64> {
        export_media(&self.store.conn, &self.media, id, path, offset, length, progress)
    }

    /// Deletes a media item: its row and key go first (crypto-shredding the file), then the
    /// file. Returns whether it existed.
    pub fn delete_media(&mut self, id: &MediaId) -> Result<bool> {
        let existed = media_rows::delete(&self.store.conn, id)?;
        if existed {
            // The key leaves the database file (secure_delete) when the log is checkpointed;
            // the file goes after. A deferred checkpoint finishes at a later one.
            let _complete = self.store.checkpoint()?;
            self.media.remove(id)?;
        }
        Ok(existed)
    }

    /// Links a media item to a message.
    pub fn attach_media(&mut self, id: &MediaId, message: MessageId) -> Result<()> {
        media_rows::attach(&self.store.conn, id, message)
    }

    /// Every media item.
    pub fn media(&self) -> Result<Vec<MediaInfo>> {
        media_rows::list(&self.store.conn)
    }

    /// Removes temp files and files without a row, unless another process is importing.
    pub(super) fn remove_orphan_media(&self) -> Result<usize> {
        let Some(_lock) = lock_media(&self.dir, true)? else {
            return Ok(0);
        };
        let known = media_rows::ids(&self.store.conn)?;
        self.media.remove_orphans(&known)
    }

    /// Authenticates every segment of every media file, and reports missing and unknown files.
    pub(super) fn verify_media(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        for item in self.media()? {
            let check = self.open_media(&item.id).and_then(|mut reader| {
                let len = reader.len();
                reader.copy_range_to(0, len, &mut std::io::sink()).map_err(|_| Error::Integrity {
                    object: DataKind::Media,
                    problem: "a segment failed authentication".to_owned(),
                })
            });
            if let Err(e) = check {
                problems.push(format!("media {}: {e}", item.id));
            }
        }
        let known = media_rows::ids(&self.store.conn)?;
        let (ids, _) = self.media.entries()?;
        for id in ids.iter().filter(|id| !known.contains(id)) {
            problems.push(format!("media file {id} has no database row"));
        }
        Ok(problems)
    }

    // ---- retention -------------------------------------------------------------------------

    /// The vault-wide retention limit.
    pub fn retention_policy(&self) -> Result<RetentionPolicy> {
        retention::policy(&self.store.conn)
    }

    /// Sets the vault-wide retention limit (applied at the next purge).
    pub fn set_retention_policy(&mut self, policy: &RetentionPolicy) -> Result<()> {
        retention::set_policy(&self.store.conn, policy)
    }

    /// Sets (or clears) the default expiry of new messages in a conversation (disappearing
    /// messages).
    pub fn set_conversation_expiry(&mut self, conversation: &str, secs: Option<u64>) -> Result<()> {
        retention::set_conversation_expiry(&self.store.conn, conversation, secs)
    }

    /// Purges messages whose expiry has passed or that fall outside the retention limit, with
    /// their search entries and the media attached only to them. Deleted content is
    /// overwritten in the database (`secure_delete`), merged out of the search index, and
    /// flushed from the write-ahead log. The app calls this on its own schedule; unlock calls
    /// it too.
    pub fn purge_expired(&mut self) -> Result<PurgeReport> {
        let policy = retention::policy(&self.store.conn)?;
        let due = retention::due(&self.store.conn, store::now_millis(), &policy)?;
        self.delete_messages(&due)
    }

    fn delete_messages(&mut self, ids: &[MessageId]) -> Result<PurgeReport> {
        if ids.is_empty() {
            return Ok(PurgeReport::default());
        }
        let tx = self.store.conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let media = media_rows::only_attached_to(&tx, ids)?;
        let mut deleted = 0u64;
        for id in ids {
            if messages::delete(&tx, *id)? {
                deleted += 1;
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

/// Media imports and exports on a connection of their own: a large import or export through this
/// handle never holds the [`Vault`], so the app keeps reading, searching and adding messages
/// meanwhile. It is `Send`. While one exists, a root-key rotation is refused ([`Error::Busy`]).
pub struct MediaTransfers {
    conn: rusqlite::Connection,
    dir: std::path::PathBuf,
    media: crate::media::MediaFiles,
    _work: super::LongWork,
}

impl std::fmt::Debug for MediaTransfers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaTransfers").finish_non_exhaustive()
    }
}

impl MediaTransfers {
    /// [`Vault::import_media`], reporting progress to `progress` (returning `false` cancels:
    /// [`Error::Cancelled`], nothing stored).
    pub fn import(
        &mut self,
        input: &mut dyn Read,
        place: MediaImport<'_>,
        progress: Option<&dyn crate::Progress>,
    ) -> Result<MediaId> {
        match progress {
            Some(progress) => {
                let mut tracked = crate::progress::Tracked::new(input, progress, None);
                import_media(&self.conn, &self.dir, &self.media, &mut tracked, place)
            }
            None => import_media(&self.conn, &self.dir, &self.media, input, place),
        }
    }

    /// Imports the file at `path`, reporting progress with its size as the total.
    pub fn import_file(
        &mut self,
        path: &Path,
        place: MediaImport<'_>,
        progress: Option<&dyn crate::Progress>,
    ) -> Result<MediaId> {
        let file = fs::File::open(path).map_err(Error::io("opening the file to import"))?;
        let total = file.metadata().ok().map(|m| m.len());
        let progress = progress.unwrap_or(&NoProgress);
        let mut tracked = crate::progress::Tracked::new(file, progress, total);
        import_media(&self.conn, &self.dir, &self.media, &mut tracked, place)
    }

    /// [`Vault::export_media_with_progress`].
    pub fn export(
        &self,
        id: &MediaId,
        path: &Path,
        offset: u64,
        length: Option<u64>,
        progress: Option<&dyn crate::Progress>,
    ) -> Result<u64> {
        export_media(&self.conn, &self.media, id, path, offset, length, progress.unwrap_or(&NoProgress))
    }
}

/// Imports media from `input` under a fresh random key (see [`Vault::import_media`]).
fn import_media(
    conn: &rusqlite::Connection,
    dir: &Path,
    media: &crate::media::MediaFiles,
    input: &mut dyn Read,
    place: MediaImport<'_>,
) -> Result<MediaId> {
    if let Some(name) = place.conversation {
        media_rows::conversation_id(conn, name)?;
    }
    let _lock = lock_media(dir, false)?;
    let id = MediaId::generate()?;
    let key = SecretKey::generate().map_err(Error::from_rng)?;
    let length = media.write(&id, &key, input)?;
    let inserted = media_rows::insert(conn, &id, &key, length, place.conversation, place.message, store::now_millis());
    if let Err(e) = inserted {
        let _ = media.remove(&id);
        return Err(e);
    }
    Ok(id)
}

fn open_media(conn: &rusqlite::Connection, media: &crate::media::MediaFiles, id: &MediaId) -> Result<MediaReader> {
    let row = media_rows::row(conn, id)?;
    media.open(id, &row.key, row.length)
}

/// Decrypts a range of a media item into a new file (see [`Vault::export_media`]).
fn export_media(
    conn: &rusqlite::Connection,
    media: &crate::media::MediaFiles,
    id: &MediaId,
    path: &Path,
    offset: u64,
    length: Option<u64>,
    progress: &dyn crate::Progress,
) -> Result<u64> {
    let mut reader = open_media(conn, media, id)?;
    if offset > reader.len() {
        return Err(Error::InvalidInput("the offset is past the end of the media".to_owned()));
    }
    let wanted = length.unwrap_or(u64::MAX).min(reader.len() - offset);
    if path.exists() {
        return Err(Error::AlreadyExists("the export target exists".to_owned()));
    }
    fsutil::write_new(path, 0o600, Error::io("writing the export file"), |out| {
        let mut tracked = crate::progress::Tracked::new(out, progress, Some(wanted));
        reader.copy_range_to(offset, wanted, &mut tracked).map_err(|e| {
            if crate::progress::is_cancelled(&e) {
                Error::Cancelled
            } else if e.kind() == std::io::ErrorKind::InvalidData {
                Error::Integrity { object: DataKind::Media, problem: format!("media {id} failed authentication") }
            } else {
                Error::io("exporting media")(e)
            }
        })
    })
}
