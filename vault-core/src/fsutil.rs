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
    if let Ok(file) = File::open(path) {
        advise_dont_need(&file, 0, 0);
    }
}

/// `posix_fadvise(DONTNEED)` over `len` bytes of `file` from `offset` (0: to the end), on Linux and
/// Android: the kernel may start writing back the range's dirty pages, without waiting, and drops
/// its clean ones; dirty pages are never discarded. Elsewhere, and past the platform's file
/// offsets, nothing.
fn advise_dont_need(file: &File, offset: u64, len: u64) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
        use nix::libc::off_t;
        if let (Ok(offset), Ok(len)) = (off_t::try_from(offset), off_t::try_from(len)) {
            let _ = posix_fadvise(file, offset, len, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (file, offset, len);
}

/// Bytes a [`WrittenBehind`] file takes between two pieces of advice.
const WRITE_BEHIND_STEP: u64 = 8 << 20;

/// The range `(from, to)` advised once the step starting at `step_start` is written: that step
/// and the three before it.
fn write_behind_range(step_start: u64) -> (u64, u64) {
    (step_start.saturating_sub(3 * WRITE_BEHIND_STEP), step_start + WRITE_BEHIND_STEP)
}

/// A file being written sequentially whose bytes usually go to the disk as they are written, not
/// all at the final fsync: every [`WRITE_BEHIND_STEP`] bytes it advises DONTNEED over the newest
/// step and the three before it ([`advise_dont_need`]), so that the kernel starts writing the
/// newest step and drops the earlier ones it has written back by then. The disk then works while
/// the next bytes are produced, the final fsync waits mostly for the last steps, and on a disk that
/// keeps up the file holds a few steps of page cache rather than all its bytes. Durability is
/// still the caller's fsync, and the bytes are the same: advice only (on Apple platforms, or where
/// the call fails, it is a plain file).
pub(crate) struct WrittenBehind<'f> {
    file: &'f mut File,
    /// The file offset the writes started at.
    start: u64,
    written: u64,
    advised: u64,
}

impl<'f> WrittenBehind<'f> {
    /// Writes to `file` from its current position.
    pub(crate) fn new(file: &'f mut File) -> io::Result<Self> {
        let start = io::Seek::stream_position(file)?;
        Ok(Self { file, start, written: 0, advised: 0 })
    }

    fn advise(&mut self) {
        while self.written - self.advised >= WRITE_BEHIND_STEP {
            let (from, to) = write_behind_range(self.advised);
            advise_dont_need(self.file, self.start + from, to - from);
            self.advised += WRITE_BEHIND_STEP;
        }
    }
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
        let bytes: Vec<u8> = (0..(5 * WRITE_BEHIND_STEP as u32 + 12_345)).map(|i| (i % 253) as u8).collect();
        let mut file = File::create(&path).unwrap();
        file.write_all(b"head").unwrap();
        let mut behind = WrittenBehind::new(&mut file).unwrap();
        assert_eq!(behind.start, 4);
        // One write across several steps, then smaller ones.
        let (first, rest) = bytes.split_at(20 << 20);
        behind.write_all(first).unwrap();
        assert_eq!(behind.advised, 2 * WRITE_BEHIND_STEP);
        for piece in rest.chunks(1 << 20) {
            behind.write_all(piece).unwrap();
        }
        assert_eq!((behind.written, behind.advised), (bytes.len() as u64, 5 * WRITE_BEHIND_STEP));
        file.sync_all().unwrap();
        assert_eq!(fs::read(&path).unwrap()[4..], bytes[..]);
    }

    #[test]
    fn written_behind_advice_covers_the_newest_step_and_three_before() {
        let mib = |n: u64| n << 20;
        let ranges: Vec<(u64, u64)> = (0..5).map(|i| write_behind_range(i * WRITE_BEHIND_STEP)).collect();
        assert_eq!(ranges, [(0, mib(8)), (0, mib(16)), (0, mib(24)), (0, mib(32)), (mib(8), mib(40))]);
    }

    /// The advice is also given over pages not yet written back (an import advises its newest
    /// step while it is still dirty): the kernel must write those back, never drop them.
    #[test]
    fn advice_over_unsynced_bytes_loses_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unsynced");
        let bytes: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
        fs::write(&path, &bytes).unwrap();
        release_cached(&path);
        let file = File::open(&path).unwrap();
        advise_dont_need(&file, 1 << 20, 1 << 20);
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
