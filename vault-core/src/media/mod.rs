//! Encrypted media: one file per item under `media/`, in the stream format of [`stream`], each
//! with its own random key kept in the encrypted database (deleting the row crypto-shreds the
//! file). Files are placed atomically: temp file, fsync, rename, directory fsync.

use crate::error::DataKind;
pub(crate) mod io;
pub(crate) mod stream;

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::crypto::random_array;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::secret::SecretKey;
use io::{MediaReader, StreamError};
use stream::{MEDIA_ID_LEN, MediaFormatError, MediaHeader, SegmentCipher};

/// Name of the media directory inside a vault.
pub const MEDIA_DIR: &str = "media";
const TEMP_PREFIX: &str = ".tmp-";

/// A media item's identifier (16 random bytes, shown as 32 hex digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MediaId(pub [u8; MEDIA_ID_LEN]);

impl MediaId {
    pub(crate) fn generate() -> Result<Self> {
        Ok(Self(random_array().map_err(Error::from_rng)?))
    }

    /// The id a media file is named after: exactly 32 lowercase hex digits, as written.
    pub(crate) fn from_file_name(name: &str) -> Option<Self> {
        let lowercase_hex =
            name.len() == 2 * MEDIA_ID_LEN && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if lowercase_hex { Self::parse(name).ok() } else { None }
    }

    /// Parses 32 hex digits (either case).
    pub fn parse(text: &str) -> Result<Self> {
        let bytes = hex::decode(text).map_err(|_| Error::InvalidInput("a media id is 32 hex digits".to_owned()))?;
        let bytes = <[u8; MEDIA_ID_LEN]>::try_from(bytes.as_slice())
            .map_err(|_| Error::InvalidInput("a media id is 32 hex digits".to_owned()))?;
        Ok(Self(bytes))
    }
}

impl std::fmt::Display for MediaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl serde::Serialize for MediaId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

pub(crate) fn stream_error(e: StreamError) -> Error {
    match e {
        StreamError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            Error::Integrity { object: DataKind::Media, problem: "a media segment failed authentication".to_owned() }
        }
        StreamError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::Integrity { object: DataKind::Media, problem: "a media file is truncated".to_owned() }
        }
        StreamError::Io(source) => Error::Io { context: "media file", source },
        StreamError::Format(MediaFormatError::UnsupportedVersion(v)) => {
            Error::UnsupportedVersion { what: "media file", found: u64::from(v) }
        }
        StreamError::Format(MediaFormatError::TooLong) => Error::InvalidInput("the media is too large".to_owned()),
        StreamError::Format(e) => Error::Integrity { object: DataKind::Media, problem: e.to_string() },
    }
}

/// The `media/` directory of a vault.
pub(crate) struct MediaFiles {
    dir: PathBuf,
}

impl MediaFiles {
    pub(crate) fn new(vault_dir: &Path) -> Self {
        Self { dir: vault_dir.join(MEDIA_DIR) }
    }

    pub(crate) fn ensure_dir(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => fsutil::sync_parent_dir(&self.dir).map_err(Error::io("creating the media directory")),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(Error::io("creating the media directory")(e)),
        }
    }

    pub(crate) fn path(&self, id: &MediaId) -> PathBuf {
        self.dir.join(id.to_string())
    }

    /// Encrypts `input` into a new file for `id`; the file appears under its final name only
    /// once complete and durable. Returns the plaintext length.
    pub(crate) fn write(&self, id: &MediaId, key: &SecretKey, input: &mut dyn std::io::Read) -> Result<u64> {
        self.ensure_dir()?;
        let suffix: [u8; 8] = random_array().map_err(Error::from_rng)?;
        let tmp = self.dir.join(format!("{TEMP_PREFIX}{}", hex::encode(suffix)));
        let result = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(Error::io("creating a media file"))?;
            let header = MediaHeader::generate(id.0).map_err(Error::from_rng)?;
            let cipher = SegmentCipher::new(key, header);
            let mut file = file;
            let mut written_behind =
                fsutil::WrittenBehind::new(&mut file).map_err(Error::io("creating a media file"))?;
            let len = io::encrypt(&cipher, input, &mut written_behind).map_err(|e| match e {
                StreamError::Io(source) if crate::progress::is_cancelled(&source) => Error::Cancelled,
                StreamError::Io(source) => Error::Io { context: "importing media", source },
                other => stream_error(other),
            })?;
            crate::failpoint::hit("media-import:before-sync");
            file.sync_all().map_err(Error::io("syncing a media file"))?;
            fs::rename(&tmp, self.path(id)).map_err(Error::io("placing a media file"))?;
            fsutil::sync_dir(&self.dir).map_err(Error::io("syncing the media directory"))?;
            Ok(len)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Opens the file of `id` for reading; `len` is the plaintext length from the database.
    pub(crate) fn open(&self, id: &MediaId, key: &SecretKey, len: u64) -> Result<MediaReader> {
        let file = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Integrity {
                    object: DataKind::Media,
                    problem: format!("media file {id} is missing"),
                });
            }
            Err(e) => return Err(Error::io("opening a media file")(e)),
        };
        MediaReader::open(file, |h| SegmentCipher::new(key, h), &id.0, len).map_err(stream_error)
    }

    /// Removes the file of `id` (absent is fine).
    pub(crate) fn remove(&self, id: &MediaId) -> Result<()> {
        match fs::remove_file(self.path(id)) {
            Ok(()) => fsutil::sync_dir(&self.dir).map_err(Error::io("syncing the media directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("removing a media file")(e)),
        }
    }

    /// Every entry of the directory: media files by id, and anything else (temp files, junk).
    pub(crate) fn entries(&self) -> Result<(Vec<MediaId>, Vec<PathBuf>)> {
        let mut ids = Vec::new();
        let mut others = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((ids, others)),
            Err(e) => return Err(Error::io("listing media files")(e)),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io("listing media files"))?;
            let name = entry.file_name();
            match name.to_str().and_then(MediaId::from_file_name) {
                Some(id) => ids.push(id),
                None => others.push(entry.path()),
            }
        }
        Ok((ids, others))
    }

    /// Removes temp files and files no database row refers to (left by a crash between writing
    /// a file and committing its row, or between deleting a row and removing its file).
    pub(crate) fn remove_orphans(&self, known: &std::collections::HashSet<MediaId>) -> Result<usize> {
        let (ids, others) = self.entries()?;
        let mut removed = 0;
        for path in others {
            let is_temp = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(TEMP_PREFIX));
            if is_temp && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        for id in ids {
            if !known.contains(&id) {
                self.remove(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
