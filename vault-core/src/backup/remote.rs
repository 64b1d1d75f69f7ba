//! A stored object read as a seekable stream of its first `len` bytes (the rest, if any, is
//! padding), through ranged reads of up to 4 MiB, so media objects can be authenticated segment by
//! segment without holding them in memory.

use std::io::{self, Read, Seek, SeekFrom};

use super::run::transport_error;
use super::transport::Transport;
use crate::error::Error;

const RANGE: u64 = 4 << 20;

pub(crate) struct RemoteObject<'a> {
    transport: &'a dyn Transport,
    name: &'a str,
    len: u64,
    position: u64,
    buffer: Vec<u8>,
    buffer_start: u64,
    failure: Option<Error>,
}

impl<'a> RemoteObject<'a> {
    pub(crate) fn new(transport: &'a dyn Transport, name: &'a str, len: u64) -> Self {
        Self { transport, name, len, position: 0, buffer: Vec::new(), buffer_start: 0, failure: None }
    }

    /// The storage failure behind a read error, if one was the cause (a missing object is an
    /// integrity failure, an unreachable server a storage failure); `None` after bad bytes.
    pub(crate) fn take_failure(&mut self) -> Option<Error> {
        self.failure.take()
    }
}

impl Read for RemoteObject<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.len || out.is_empty() {
            return Ok(0);
        }
        let buffered = self.buffer_start..self.buffer_start + self.buffer.len() as u64;
        if !buffered.contains(&self.position) {
            let want = (self.len - self.position).min(RANGE);
            let bytes = match self.transport.get_range(self.name, self.position, want) {
                Ok(bytes) => bytes,
                Err(e) => {
                    let error = transport_error(&format!("reading {}", self.name))(e);
                    let message = error.to_string();
                    self.failure = Some(error);
                    return Err(io::Error::other(message));
                }
            };
            if bytes.is_empty() || bytes.len() as u64 > want {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a backup object is truncated"));
            }
            self.buffer = bytes;
            self.buffer_start = self.position;
        }
        let at = usize::try_from(self.position - self.buffer_start).map_err(io::Error::other)?;
        let n = (self.buffer.len() - at).min(out.len());
        out[..n].copy_from_slice(&self.buffer[at..at + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for RemoteObject<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        self.position = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.position)
    }
}
