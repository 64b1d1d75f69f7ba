//! Where backup objects go. The backup run and restore speak to a [`Transport`]; the vault itself
//! opens no network connection. Implementations: [`DirTransport`] (a local directory, for example
//! removable storage, and the tests' stand-in for a server), and, outside this crate, the backup
//! server's HTTPS client.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What a transport reports.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// `put` of a name that already exists (objects are write-once).
    #[error("the object already exists")]
    Exists,
    /// `put_head` with an expected version that is no longer current.
    #[error("the head record changed")]
    Conflict,
    /// `get_range` of an object that does not exist.
    #[error("the object does not exist")]
    NotFound,
    /// `get_range` beyond the end of the object: it is shorter than the backup says.
    #[error("the object is shorter than the range read")]
    OutOfRange,
    /// The storage refused this device's credentials (a revoked or unknown device token).
    #[error("{0}")]
    Unauthorized(String),
    /// The credentials may not do this: a device token deleting, or lowering the head record's
    /// generation (device tokens are append-only; a password session may).
    #[error("{0}")]
    NotAllowed(String),
    /// Anything else: unreachable, refused, I/O. The message names no stored content.
    #[error("{0}")]
    Failed(String),
}

/// Opens a fresh reading of an object's content for [`Transport::put_repeatable`].
pub type RepeatableSource<'a> = dyn Fn() -> Result<Box<dyn Read + Send>, TransportError> + Sync + 'a;

/// Object storage for one backup (one account on a server, or one directory).
pub trait Transport: Send + Sync {
    /// Stores a new object; [`TransportError::Exists`] if the name is taken.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), TransportError>;
    /// Stores a new object of exactly `len` bytes streamed from `reader` (large media).
    fn put_reader(&self, name: &str, len: u64, reader: Box<dyn Read + Send>) -> Result<(), TransportError>;
    /// Stores a new object of exactly `len` bytes that each call of `open` yields again, the same
    /// bytes every time: a storage that must know the content's hash before the first byte is
    /// sent (a presigned upload) reads it twice. By default one reading goes to
    /// [`Transport::put_reader`].
    fn put_repeatable(&self, name: &str, len: u64, open: &RepeatableSource<'_>) -> Result<(), TransportError> {
        self.put_reader(name, len, open()?)
    }
    /// Reads a whole object, `None` if absent.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError>;
    /// Reads `len` bytes of an object from `offset`.
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, TransportError>;
    /// Every object's name and size.
    fn list(&self) -> Result<Vec<(String, u64)>, TransportError>;
    /// Deletes an object (absent is not an error).
    fn delete(&self, name: &str) -> Result<(), TransportError>;
    /// The head record and its version tag, `None` if there is none.
    fn get_head(&self) -> Result<Option<(Vec<u8>, String)>, TransportError>;
    /// Replaces the head record if it is still at `expected` (`None`: still absent). `generation`
    /// is the generation the sealed record states: a server keeps device tokens from lowering it
    /// ([`TransportError::NotAllowed`]).
    fn put_head(&self, bytes: &[u8], generation: u64, expected: Option<&str>) -> Result<(), TransportError>;
}

/// A backup in a local directory: `objects/<name>` files written atomically and never replaced,
/// and a `head` file changed under an exclusive lock.
pub struct DirTransport {
    root: PathBuf,
}

fn failed(what: &str, e: std::io::Error) -> TransportError {
    TransportError::Failed(format!("{what}: {e}"))
}

/// An error writing a new object: `Exists` if the name is taken.
fn write_error(e: std::io::Error) -> TransportError {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        TransportError::Exists
    } else {
        failed("writing a backup object", e)
    }
}

fn checked_name(name: &str) -> Result<&str, TransportError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(name) } else { Err(TransportError::Failed("invalid object name".into())) }
}

/// The version tag of head-record content.
fn version_of(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex()[..32].to_owned()
}

impl DirTransport {
    /// A backup directory at `root` (created if missing).
    pub fn new(root: &Path) -> Result<Self, TransportError> {
        fs::create_dir_all(root.join("objects")).map_err(|e| failed("creating the backup directory", e))?;
        Ok(Self { root: root.to_owned() })
    }

    fn object(&self, name: &str) -> Result<PathBuf, TransportError> {
        Ok(self.root.join("objects").join(checked_name(name)?))
    }
}

impl Transport for DirTransport {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), TransportError> {
        let path = self.object(name)?;
        crate::fsutil::write_new(&path, 0o600, write_error, |file: &mut fs::File| {
            file.write_all(bytes).map_err(write_error)
        })
    }

    fn put_reader(&self, name: &str, len: u64, reader: Box<dyn Read + Send>) -> Result<(), TransportError> {
        let path = self.object(name)?;
        crate::fsutil::write_new(&path, 0o600, write_error, |file: &mut fs::File| {
            let copied = crate::fsutil::copy_large(&mut reader.take(len), file).map_err(write_error)?;
            if copied == len { Ok(()) } else { Err(TransportError::Failed("the object's source ended early".into())) }
        })
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match fs::read(self.object(name)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed("reading a backup object", e)),
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, TransportError> {
        let mut file = fs::File::open(self.object(name)?).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => TransportError::NotFound,
            _ => failed("reading a backup object", e),
        })?;
        file.seek(SeekFrom::Start(offset)).map_err(|e| failed("reading a backup object", e))?;
        let mut out = Vec::with_capacity(usize::try_from(len.min(64 << 20)).unwrap_or(0));
        file.take(len).read_to_end(&mut out).map_err(|e| failed("reading a backup object", e))?;
        Ok(out)
    }

    fn list(&self) -> Result<Vec<(String, u64)>, TransportError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(self.root.join("objects")).map_err(|e| failed("listing the backup", e))? {
            let entry = entry.map_err(|e| failed("listing the backup", e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
            if checked_name(&name).is_err() {
                continue; // temp files of writes in progress
            }
            let len = entry.metadata().map_err(|e| failed("listing the backup", e))?.len();
            out.push((name, len));
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), TransportError> {
        match fs::remove_file(self.object(name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(failed("deleting a backup object", e)),
        }
    }

    fn get_head(&self) -> Result<Option<(Vec<u8>, String)>, TransportError> {
        match fs::read(self.root.join("head")) {
            Ok(bytes) => {
                let version = version_of(&bytes);
                Ok(Some((bytes, version)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(failed("reading the head record", e)),
        }
    }

    fn put_head(&self, bytes: &[u8], _generation: u64, expected: Option<&str>) -> Result<(), TransportError> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join("head.lock"))
            .map_err(|e| failed("locking the head record", e))?;
        lock.lock().map_err(|e| failed("locking the head record", e))?;
        let current = self.get_head()?.map(|(_, version)| version);
        if current.as_deref() != expected {
            return Err(TransportError::Conflict);
        }
        crate::fsutil::atomic_write(&self.root.join("head"), bytes, 0o600)
            .map_err(|e| failed("writing the head record", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_once_objects_and_compare_and_swap_head() {
        let dir = tempfile::tempdir().unwrap();
        let t = DirTransport::new(dir.path()).unwrap();
        t.put("pack-1", b"bytes").unwrap();
        assert!(matches!(t.put("pack-1", b"other"), Err(TransportError::Exists)));
        assert_eq!(t.get("pack-1").unwrap().unwrap(), b"bytes");
        assert_eq!(t.get_range("pack-1", 1, 3).unwrap(), b"yte");
        assert_eq!(t.get("missing").unwrap(), None);
        assert!(t.put("../escape", b"x").is_err());
        assert_eq!(t.list().unwrap(), vec![("pack-1".to_owned(), 5)]);
        t.delete("pack-1").unwrap();
        t.delete("pack-1").unwrap();
        assert!(t.list().unwrap().is_empty());

        assert!(t.get_head().unwrap().is_none());
        t.put_head(b"one", 1, None).unwrap();
        assert!(matches!(t.put_head(b"two", 2, None), Err(TransportError::Conflict)));
        let (bytes, version) = t.get_head().unwrap().unwrap();
        assert_eq!(bytes, b"one");
        t.put_head(b"two", 2, Some(&version)).unwrap();
        assert!(matches!(t.put_head(b"three", 3, Some(&version)), Err(TransportError::Conflict)));
        assert_eq!(t.get_head().unwrap().unwrap().0, b"two");
    }
}
