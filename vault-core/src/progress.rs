//! Progress reporting and cancellation for long operations (media import and export).

use std::io::{self, Read, Write};

/// Told how many bytes a long operation has processed so far; returning `false` cancels it
/// (the operation then fails with [`crate::Error::Cancelled`] and leaves nothing behind).
pub trait Progress: Send + Sync {
    /// `done` bytes of `total` (when known) are processed. Called about once per MiB.
    fn advance(&self, done: u64, total: Option<u64>) -> bool;
}

/// Serializes a duration as whole milliseconds (report fields named `…_ms`).
pub(crate) fn serialize_millis<S: serde::Serializer>(
    duration: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
}

/// Reports every this many bytes.
const REPORT_EVERY: u64 = 1 << 20;

/// The error a cancelled operation's reader or writer returns, recognised by the vault.
pub(crate) fn cancelled() -> io::Error {
    // Not `Interrupted`: readers retry on that, which would swallow the cancellation.
    io::Error::other(CancelledMarker)
}

pub(crate) fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<CancelledMarker>())
}

#[derive(Debug)]
struct CancelledMarker;

impl std::fmt::Display for CancelledMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for CancelledMarker {}

/// Counts bytes through a reader or writer and consults a [`Progress`].
pub(crate) struct Tracked<'a, T> {
    inner: T,
    progress: &'a dyn Progress,
    total: Option<u64>,
    done: u64,
    next_report: u64,
}

impl<'a, T> Tracked<'a, T> {
    pub(crate) fn new(inner: T, progress: &'a dyn Progress, total: Option<u64>) -> Self {
        Self { inner, progress, total, done: 0, next_report: 0 }
    }

    fn count(&mut self, n: usize) -> io::Result<()> {
        self.done += n as u64;
        if self.done >= self.next_report || n == 0 {
            self.next_report = self.done + REPORT_EVERY;
            if !self.progress.advance(self.done, self.total) {
                return Err(cancelled());
            }
        }
        Ok(())
    }
}

impl<T: Read> Read for Tracked<'_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count(n)?;
        Ok(n)
    }
}

impl<T: Write> Write for Tracked<'_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count(n)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts the bytes of a long operation made of many steps (a backup run, a restore) and consults
/// an optional [`Progress`] about once per MiB; [`Meter::add`] fails with
/// [`crate::Error::Cancelled`] when the progress asks to stop.
pub(crate) struct Meter<'a> {
    progress: Option<&'a dyn Progress>,
    total: Option<u64>,
    done: u64,
    next_report: u64,
}

impl<'a> Meter<'a> {
    pub(crate) fn new(progress: Option<&'a dyn Progress>, total: Option<u64>) -> Self {
        Self { progress, total, done: 0, next_report: 0 }
    }

    /// Counts `n` more bytes.
    pub(crate) fn add(&mut self, n: u64) -> crate::Result<()> {
        self.done += n;
        if let Some(progress) = self.progress
            && self.done >= self.next_report
        {
            self.next_report = self.done + REPORT_EVERY;
            if !progress.advance(self.done, self.total) {
                return Err(crate::Error::Cancelled);
            }
        }
        Ok(())
    }

    /// Reports the final count (also when it is below the reporting step).
    pub(crate) fn finish(&mut self) -> crate::Result<()> {
        self.next_report = 0;
        self.add(0)
    }
}
