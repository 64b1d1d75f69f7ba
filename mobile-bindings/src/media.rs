//! Media across the boundary in chunks: a seekable reader, and an import fed chunk by chunk
//! (no whole file crosses the FFI).

use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::error::VaultError;

/// Most bytes one `read` returns.
const MAX_CHUNK: u64 = 1 << 20;

/// Random-access, authenticated reads of one media item.
#[derive(uniffi::Object)]
pub struct MediaReader {
    inner: Mutex<vault_core::MediaReader>,
    len: u64,
}

impl MediaReader {
    pub(crate) fn new(inner: vault_core::MediaReader) -> Self {
        let len = inner.len();
        Self { inner: Mutex::new(inner), len }
    }
}

#[uniffi::export]
impl MediaReader {
    /// The plaintext length.
    pub fn length(&self) -> u64 {
        self.len
    }

    /// Up to `max_len` (at most 1 MiB) bytes from `offset`; empty at the end.
    pub fn read(&self, offset: u64, max_len: u64) -> Result<Vec<u8>, VaultError> {
        let mut reader = self.inner.lock().map_err(|_| VaultError::Other { detail: "reader poisoned".into() })?;
        let wanted = max_len.min(MAX_CHUNK).min(self.len.saturating_sub(offset));
        let mut out = vec![0u8; usize::try_from(wanted).unwrap_or(0)];
        reader.seek(SeekFrom::Start(offset)).map_err(io_error)?;
        reader.read_exact(&mut out).map_err(io_error)?;
        Ok(out)
    }
}

fn io_error(e: std::io::Error) -> VaultError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        VaultError::CorruptOrTampered { object: crate::error::DamagedData::Media }
    } else {
        VaultError::Other { detail: format!("media read failed: {}", e.kind()) }
    }
}

enum Chunk {
    Data(Vec<u8>),
    Cancel,
}

/// The vault side of a chunked import: a `Read` fed from a channel.
pub(crate) struct ChannelReader {
    chunks: Receiver<Chunk>,
    current: Vec<u8>,
    position: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.position == self.current.len() {
            match self.chunks.recv() {
                Ok(Chunk::Data(data)) => {
                    self.current = data;
                    self.position = 0;
                }
                Ok(Chunk::Cancel) => return Err(std::io::Error::other("the import was cancelled")),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.position);
        buf[..n].copy_from_slice(&self.current[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }
}

/// A media import fed chunk by chunk: `write` each chunk, then `finish` for the id (or
/// `cancel`; nothing is then stored).
#[derive(uniffi::Object)]
pub struct MediaImport {
    sender: Mutex<Option<SyncSender<Chunk>>>,
    result: Mutex<Option<Receiver<Result<String, VaultError>>>>,
}

impl MediaImport {
    /// Starts the import on a worker thread that runs `import` over the channel's bytes.
    pub(crate) fn start(
        import: impl FnOnce(&mut ChannelReader) -> Result<String, VaultError> + Send + 'static,
    ) -> Self {
        let (sender, chunks) = sync_channel(4);
        let (done, result) = sync_channel(1);
        std::thread::spawn(move || {
            let mut reader = ChannelReader { chunks, current: Vec::new(), position: 0 };
            let _ = done.send(import(&mut reader));
        });
        Self { sender: Mutex::new(Some(sender)), result: Mutex::new(Some(result)) }
    }
}

#[uniffi::export]
impl MediaImport {
    /// Sends the next chunk of plaintext.
    pub fn write(&self, chunk: Vec<u8>) -> Result<(), VaultError> {
        let sender = self.sender.lock().map_err(|_| VaultError::Other { detail: "import poisoned".into() })?;
        match sender.as_ref() {
            Some(sender) => sender
                .send(Chunk::Data(chunk))
                .map_err(|_| VaultError::Other { detail: "the import already ended".into() }),
            None => Err(VaultError::InvalidInput { reason: "the import already finished".into() }),
        }
    }

    /// Ends the input and waits for the import; returns the media id.
    pub fn finish(&self) -> Result<String, VaultError> {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        self.wait()
    }

    /// Abandons the import: nothing is stored.
    pub fn cancel(&self) -> Result<(), VaultError> {
        if let Ok(mut sender) = self.sender.lock()
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(Chunk::Cancel);
        }
        match self.wait() {
            Ok(_) | Err(VaultError::Other { .. }) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

impl Drop for MediaImport {
    /// Released without `finish`: cancelled, so a half-written item is never stored.
    fn drop(&mut self) {
        if let Ok(mut sender) = self.sender.lock()
            && let Some(sender) = sender.take()
        {
            let _ = sender.send(Chunk::Cancel);
        }
    }
}

impl MediaImport {
    fn wait(&self) -> Result<String, VaultError> {
        let result = self.result.lock().ok().and_then(|mut r| r.take());
        match result {
            Some(receiver) => {
                receiver.recv().unwrap_or_else(|_| Err(VaultError::Other { detail: "the import stopped".into() }))
            }
            None => Err(VaultError::InvalidInput { reason: "the import already finished".into() }),
        }
    }
}
