//! Durable file operations: atomic replace (temp file, fsync, rename, directory fsync).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Writes `contents` to `path` atomically: a reader sees the old file or the new one, never a
/// mix, and after return the new file survives a crash or power loss.
pub(crate) fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| io::Error::other("path has no parent directory"))?;
    let name = path.file_name().ok_or_else(|| io::Error::other("path has no file name"))?.to_string_lossy();
    let suffix: [u8; 8] = crate::crypto::random_array().map_err(io::Error::other)?;
    let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(suffix)));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` atomically and never over an existing file: `fill` writes a temp file (mode
/// `mode`) in the same directory, which is fsynced and hard-linked into place (failing with
/// `AlreadyExists` if `path` exists), then the directory is fsynced. The temp file is removed
/// whatever happens, so a failure leaves nothing behind.
pub(crate) fn write_new<T, E>(
    path: &Path,
    mode: u32,
    io_error: impl Fn(io::Error) -> E,
    fill: impl FnOnce(&mut File) -> Result<T, E>,
) -> Result<T, E> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let suffix: [u8; 8] = crate::crypto::random_array().map_err(|e| io_error(io::Error::other(e)))?;
    let tmp = dir.join(format!(".vault-new-{}", hex::encode(suffix)));
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(&io_error)?;
        let out = fill(&mut file)?;
        file.sync_all().map_err(&io_error)?;
        fs::hard_link(&tmp, path).map_err(&io_error)?;
        sync_dir(dir).map_err(&io_error)?;
        Ok(out)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Bytes moved per write by [`copy_large`].
const COPY_BUFFER: usize = 1 << 20;

/// Copies `reader` to `writer` to the end in writes of [`COPY_BUFFER`] bytes (the last one
/// shorter), and returns the bytes copied. `std::io::copy` from a `dyn Read` moves 8 KiB per
/// write: restoring 1 GiB of media made 131,000 `write` calls, which cost more system time than
/// the bytes themselves.
pub(crate) fn copy_large(reader: &mut dyn io::Read, writer: &mut dyn io::Write) -> io::Result<u64> {
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut copied = 0u64;
    loop {
        let mut filled = 0;
        while filled < buffer.len() {
            match reader.read(&mut buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(copied);
        }
        writer.write_all(&buffer[..filled])?;
        copied += filled as u64;
    }
}

/// Asks the kernel to drop the cached pages of the file at `path`, which must be durable (clean):
/// for files written once and read back once, such as a restore's media, so that their pages are
/// freed for the next file's writes rather than the page cache growing by every byte restored.
/// Advice only: the file is unchanged, and where the call fails or the platform has no such
/// advice (Apple platforms) nothing happens.
pub(crate) fn release_cached(path: &Path) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Ok(file) = File::open(path) {
        let _ = nix::fcntl::posix_fadvise(&file, 0, 0, nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = path;
}

/// Bytes a [`WrittenBehind`] file takes between starting their writeback.
const WRITE_BEHIND_STEP: u64 = 8 << 20;

/// A file being written sequentially whose bytes go to the disk as it is written, not all at the
/// final fsync: every [`WRITE_BEHIND_STEP`] bytes it asks the kernel (`posix_fadvise(DONTNEED)`,
/// which starts the writeback of a range's dirty pages and drops its clean ones) to start writing
/// the newest step and to drop the steps written before, now on the disk. The disk then works
/// while the next bytes are produced, the final fsync waits only for the last steps, and the file
/// holds a few steps of page cache rather than all its bytes. Durability is still the caller's
/// fsync. Advice only: on Apple platforms, or where the call fails, it is a plain file.
pub(crate) struct WrittenBehind<'f> {
    file: &'f mut File,
    written: u64,
    advised: u64,
}

impl<'f> WrittenBehind<'f> {
    /// Writes to `file` from its current position, which must be its start.
    pub(crate) fn new(file: &'f mut File) -> Self {
        Self { file, written: 0, advised: 0 }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn advise(&mut self) {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        while self.written - self.advised >= WRITE_BEHIND_STEP {
            // The newest step and the three before it: their writeback starts (or has started),
            // and the pages already written back are dropped.
            let from = self.advised.saturating_sub(3 * WRITE_BEHIND_STEP);
            let len = self.advised + WRITE_BEHIND_STEP - from;
            let (Ok(from), Ok(len)) = (i64::try_from(from), i64::try_from(len)) else { return };
            let _ = posix_fadvise(&*self.file, from, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
            self.advised += WRITE_BEHIND_STEP;
        }
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn advise(&mut self) {}
}

impl Write for WrittenBehind<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        self.advise();
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads a whole file of at most `max` bytes; a larger file is refused (`InvalidData`) before
/// anything is read, so a hostile file cannot make the vault allocate much.
pub(crate) fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = File::open(path)?;
    if file.metadata()?.len() > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "file is larger than allowed"));
    }
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "file is larger than allowed"));
    }
    Ok(bytes)
}

/// Flushes a directory's entries (a rename or a new file in it) to stable storage.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Flushes the directory that holds `path`.
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f");
        assert!(atomic_write(&path, b"one", 0o600).is_ok());
        assert!(atomic_write(&path, b"two", 0o600).is_ok());
        assert_eq!(fs::read(&path).ok(), Some(b"two".to_vec()));
        let entries = fs::read_dir(dir.path()).map(|d| d.count()).unwrap_or(0);
        assert_eq!(entries, 1);
    }

    /// A reader that hands out at most 1000 bytes per read, and a writer that counts its writes.
    struct Trickle<'a>(&'a [u8]);
    impl io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(self.0.len()).min(1000);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    #[derive(Default)]
    struct Counted(Vec<u8>, usize);
    impl io::Write for Counted {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.extend_from_slice(bytes);
            self.1 += 1;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_file_written_behind_holds_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("written");
        let bytes: Vec<u8> = (0..(3 * WRITE_BEHIND_STEP as u32 + 12_345)).map(|i| (i % 253) as u8).collect();
        let mut file = File::create(&path).unwrap();
        let mut behind = WrittenBehind::new(&mut file);
        for piece in bytes.chunks(1 << 20) {
            behind.write_all(piece).unwrap();
        }
        assert_eq!(behind.written, bytes.len() as u64);
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(behind.advised, 3 * WRITE_BEHIND_STEP, "each whole step advised once");
        file.sync_all().unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn releasing_cached_pages_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restored");
        let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        atomic_write(&path, &bytes, 0o600).unwrap();
        release_cached(&path);
        assert_eq!(fs::read(&path).unwrap(), bytes);
        release_cached(&dir.path().join("absent"));
    }

    #[test]
    fn copy_large_copies_everything_in_full_buffer_writes() {
        for len in [0, 1, COPY_BUFFER - 1, COPY_BUFFER, COPY_BUFFER + 1, 3 * COPY_BUFFER + 12_345] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Counted::default();
            assert_eq!(copy_large(&mut Trickle(&data), &mut out).ok(), Some(len as u64));
            assert!(out.0 == data, "length {len}");
            assert_eq!(out.1, len.div_ceil(COPY_BUFFER), "writes for length {len}");
        }
    }
}
