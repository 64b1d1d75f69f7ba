//! Media: the [`Media`] handle for media items in the vault session, and the owned
//! [`MediaTransfers`] handle for long imports and exports on a connection of its own.

use crate::error::DataKind;
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::Path;

use super::{Error, Result, Vault, fsutil, lock_media, media_rows};
use crate::media::MediaId;
use crate::media::io::MediaReader;
use crate::secret::SecretKey;
use crate::store::media_rows::MediaInfo;
use crate::store::messages::MessageId;
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

/// The media items of a vault (photos, voice notes, files), each encrypted under a key of its
/// own. Get one with [`Vault::media`]. It works in the vault session; for a long import or export
/// that should not hold the vault, use [`Vault::media_transfers`].
#[derive(Debug)]
pub struct Media<'a> {
    vault: &'a mut Vault,
}

impl Vault {
    /// The media items (see [`Media`]).
    pub fn media(&mut self) -> Media<'_> {
        Media { vault: self }
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
        for item in media_rows::list(&self.store.conn)? {
            problems.extend(self.verify_media_item(&item.id));
        }
        problems.extend(self.unknown_media_files(&media_rows::ids(&self.store.conn)?)?);
        Ok(problems)
    }

    /// Authenticates every segment of the media file of `id` under its row's key; the problem
    /// found, if any (no row, no file, a segment that fails).
    fn verify_media_item(&self, id: &MediaId) -> Option<String> {
        let check = open_media(&self.store.conn, &self.media, id).and_then(|mut reader| authenticate_all(&mut reader));
        check.err().map(|e| format!("media {id}: {e}"))
    }

    /// A problem for each media file whose id is not in `known` (the ids of the media rows).
    pub(super) fn unknown_media_files(&self, known: &HashSet<MediaId>) -> Result<Vec<String>> {
        let (ids, _) = self.media.entries()?;
        Ok(ids
            .iter()
            .filter(|id| !known.contains(id))
            .map(|id| format!("media file {id} has no database row"))
            .collect())
    }
}

/// Authenticates every segment a media reader covers (without keeping the plaintext).
pub(super) fn authenticate_all(reader: &mut MediaReader) -> Result<()> {
    let len = reader.len();
    reader.copy_range_to(0, len, &mut std::io::sink()).map(|_| ()).map_err(|_| Error::Integrity {
        object: DataKind::Media,
        problem: "a segment failed authentication".to_owned(),
    })
}

impl Media<'_> {
    /// Imports media from a reader, streaming (constant memory), under a fresh random key.
    /// The item becomes visible only once its file is complete and durable and its row is
    /// committed; an interrupted import leaves nothing visible, and its temp file is removed
    /// at the next unlock.
    pub fn import(&mut self, input: &mut dyn Read, place: MediaImport<'_>) -> Result<MediaId> {
        let vault = &*self.vault;
        import_media(&vault.store.conn, &vault.dir, &vault.media, input, place)
    }

    /// Imports the file at `path` (see [`Media::import`]).
    pub fn import_file(&mut self, path: &Path, place: MediaImport<'_>) -> Result<MediaId> {
        let mut file = fs::File::open(path).map_err(Error::io("opening the file to import"))?;
        self.import(&mut file, place)
    }

    /// Imports the file at `path`, reporting progress; `progress` returning `false` cancels the
    /// import ([`Error::Cancelled`], nothing stored).
    pub fn import_file_with_progress(
        &mut self,
        path: &Path,
        place: MediaImport<'_>,
        progress: &dyn crate::Progress,
    ) -> Result<MediaId> {
        let vault = &*self.vault;
        import_media_file(&vault.store.conn, &vault.dir, &vault.media, path, place, progress)
    }

    /// Opens a media item for reading: `Read + Seek`, random access, only authenticated bytes.
    pub fn open(&self, id: &MediaId) -> Result<MediaReader> {
        open_media(&self.vault.store.conn, &self.vault.media, id)
    }

    /// Decrypts `length` bytes from `offset` (all by default) of a media item into a new file
    /// at `path` (refused if it exists). The output is written to a temp file and renamed, so a
    /// failed export (a tampered segment, say) leaves no partial file. Returns the bytes written.
    pub fn export(&self, id: &MediaId, path: &Path, offset: u64, length: Option<u64>) -> Result<u64> {
        self.export_with_progress(id, path, offset, length, &NoProgress)
    }

    /// [`Media::export`], reporting progress; `progress` returning `false` cancels the
    /// export ([`Error::Cancelled`], no file left).
    pub fn export_with_progress(
        &self,
        id: &MediaId,
        path: &Path,
        offset: u64,
        length: Option<u64>,
        progress: &dyn crate::Progress,
    ) -> Result<u64> {
        export_media(&self.vault.store.conn, &self.vault.media, id, path, offset, length, progress)
    }

    /// Deletes a media item: its row and key go first (crypto-shredding the file), then the
    /// file. Returns whether it existed.
    pub fn delete(&mut self, id: &MediaId) -> Result<bool> {
        let existed = media_rows::delete(&self.vault.store.conn, id)?;
        if existed {
            // The key leaves the database file (secure_delete) when the log is checkpointed;
            // the file goes after. A deferred checkpoint finishes at a later one.
            let _complete = self.vault.store.checkpoint()?;
            self.vault.media.remove(id)?;
        }
        Ok(existed)
    }

    /// Links a media item to a message.
    pub fn attach(&mut self, id: &MediaId, message: MessageId) -> Result<()> {
        media_rows::attach(&self.vault.store.conn, id, message)
    }

    /// Every media item.
    pub fn list(&self) -> Result<Vec<MediaInfo>> {
        media_rows::list(&self.vault.store.conn)
    }

    /// The media item whose id is `text` or starts with it: a full id, or a prefix of at least
    /// 4 hex digits (either case) that exactly one item's id starts with.
    /// [`Error::NotFound`] when none does, [`Error::InvalidInput`] when several do.
    pub fn resolve_prefix(&self, text: &str) -> Result<MediaId> {
        resolve_prefix(media_rows::ids(&self.vault.store.conn)?, text)
    }
}

/// The shortest id prefix [`Media::resolve_prefix`] accepts.
const MIN_MEDIA_PREFIX: usize = 4;
/// Hex digits in a whole media id.
const ID_HEX_DIGITS: usize = 2 * std::mem::size_of::<MediaId>();

fn resolve_prefix(ids: impl IntoIterator<Item = MediaId>, text: &str) -> Result<MediaId> {
    let prefix = text.trim().to_ascii_lowercase();
    if prefix.len() == ID_HEX_DIGITS {
        return MediaId::parse(&prefix);
    }
    if prefix.len() < MIN_MEDIA_PREFIX || prefix.len() > ID_HEX_DIGITS || !prefix.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Error::InvalidInput(format!(
            "a media id is 32 hex digits, or a unique prefix of at least {MIN_MEDIA_PREFIX}"
        )));
    }
    let mut matching: Vec<MediaId> = ids.into_iter().filter(|id| id.to_string().starts_with(&prefix)).collect();
    match matching.len() {
        0 => Err(Error::NotFound(format!("media with an id starting {prefix}"))),
        1 => Ok(matching.remove(0)),
        n => Err(Error::InvalidInput(format!("{n} media items have ids starting {prefix}: give more digits"))),
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
    /// [`Media::import`], reporting progress to `progress` (returning `false` cancels:
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
        import_media_file(&self.conn, &self.dir, &self.media, path, place, progress.unwrap_or(&NoProgress))
    }

    /// [`Media::export_with_progress`].
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

/// Imports the file at `path`, telling `progress` how far it got against the file's size.
fn import_media_file(
    conn: &rusqlite::Connection,
    dir: &Path,
    media: &crate::media::MediaFiles,
    path: &Path,
    place: MediaImport<'_>,
    progress: &dyn crate::Progress,
) -> Result<MediaId> {
    let file = fs::File::open(path).map_err(Error::io("opening the file to import"))?;
    let total = file.metadata().ok().map(|m| m.len());
    let mut tracked = crate::progress::Tracked::new(file, progress, total);
    import_media(conn, dir, media, &mut tracked, place)
}

/// Imports media from `input` under a fresh random key (see [`Media::import`]).
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

/// Decrypts a range of a media item into a new file (see [`Media::export`]).
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

#[cfg(test)]
mod tests {
    use super::resolve_prefix;
    use crate::Error;
    use crate::media::MediaId;

    fn id(hex: &str) -> MediaId {
        MediaId::parse(hex).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_unique_prefix_names_one_item() {
        let a = id("3f2a0000000000000000000000000000");
        let b = id("3f2b00000000000000000000000000e9");
        let c = id("3f2b11111111111111111111111111e9");
        let ids = || [a, b, c];
        assert_eq!(resolve_prefix(ids(), "3f2a").ok(), Some(a));
        assert_eq!(resolve_prefix(ids(), "3F2B0").ok(), Some(b));
        assert_eq!(resolve_prefix(ids(), &c.to_string()).ok(), Some(c));
        assert!(matches!(resolve_prefix(ids(), "3f2b"), Err(Error::InvalidInput(m)) if m.starts_with("2 media items")));
        assert!(matches!(resolve_prefix(ids(), "3f2c"), Err(Error::NotFound(_))));
        assert!(matches!(resolve_prefix(ids(), "3f2"), Err(Error::InvalidInput(_))));
        assert!(matches!(resolve_prefix(ids(), "3f2z"), Err(Error::InvalidInput(_))));
    }
}
