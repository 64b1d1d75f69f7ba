//! Entry points for the benchmarks in `benches/` (and a few integration tests): the store opened in
//! the ways the benchmarks compare, and the backup pipeline's chunk-and-seal step, and the raw
//! media cipher. Not part of the
//! API; hidden from the documentation.

pub use crate::store::bench_support::*;

use crate::backup::BackupRootKey;
use crate::backup::chunker::{ChunkParams, ChunkStream, Chunker};
use crate::backup::keys::{BackupKeys, ChunkId};
use crate::backup::pack::{PACK_TARGET, PackWriter};
use crate::crypto::aead::DetachedAead;
use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// The XChaCha20-Poly1305 this build runs (see `crypto/aead.rs`): which backend the
/// raw-cipher benchmark measures.
pub const AEAD_BACKEND: &str = crate::crypto::aead::BACKEND;

/// The vault's XChaCha20-Poly1305 with caller-built nonces and detached tags, the cipher of the
/// media segments, for measuring the raw cipher in memory.
pub struct RawAead(DetachedAead);

impl RawAead {
    /// The cipher under `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self(DetachedAead::new(&SecretKey::from_bytes(key)))
    }

    /// Encrypts `buf` in place and returns the tag (`None` only beyond the cipher's limit).
    pub fn seal_in_place(&self, nonce: &[u8; 24], aad: &[u8], buf: &mut [u8]) -> Option<[u8; 16]> {
        self.0.seal_in_place(nonce, aad, buf)
    }

    /// Authenticates and decrypts `buf` in place; false (and `buf` zeroed) if it does not open.
    pub fn open_in_place(&self, nonce: &[u8; 24], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        self.0.open_in_place(nonce, aad, buf, tag).is_ok()
    }
}

/// What a first backup does per byte of the database export: keyed content-defined chunking, the
/// keyed id of every chunk, and sealing the chunks into packs. The keys stay inside.
pub struct BackupPipeline {
    keys: BackupKeys,
    chunker: Chunker,
}

impl BackupPipeline {
    /// The pipeline keyed by `root`, chunking as the database export is chunked (1 KiB average).
    pub fn export(root: &BackupRootKey) -> Self {
        Self::with_params(root, ChunkParams::EXPORT)
    }

    /// The pipeline keyed by `root`, chunking with the given minimum, average and maximum chunk
    /// sizes (even, within FastCDC's bounds).
    pub fn with_chunk_sizes(root: &BackupRootKey, min: usize, avg: usize, max: usize) -> Self {
        Self::with_params(root, ChunkParams { min, avg, max })
    }

    fn with_params(root: &BackupRootKey, params: ChunkParams) -> Self {
        let keys = BackupKeys::derive(&root.0);
        let chunker = Chunker::new(keys.gear(), params);
        Self { keys, chunker }
    }

    /// Chunks `input` as the export is chunked (streamed, in runs), computes the chunks' ids and
    /// seals them into packs of about the size a backup run uploads, as a backup run does, and
    /// returns the bytes sealed (finished packs, padded, and the unfinished last one).
    pub fn chunk_and_seal(&self, input: &[u8]) -> Result<usize> {
        let mut writer = PackWriter::new();
        let mut sealed = 0;
        let mut each = |chunks: &[&[u8]]| -> Result<()> {
            let ids = self.keys.chunk_ids(chunks);
            let chunks: Vec<(ChunkId, &[u8])> = ids.into_iter().zip(chunks.iter().copied()).collect();
            let mut rest = &chunks[..];
            while !rest.is_empty() {
                let added = writer
                    .add_until(rest, PACK_TARGET)
                    .map_err(|e| Error::Integrity { object: crate::DataKind::BackupPack, problem: e.to_string() })?;
                rest = &rest[added.len()..];
                if writer.len() >= PACK_TARGET {
                    let (pack, _) = std::mem::take(&mut writer).finish().map_err(Error::from_rng)?;
                    sealed += pack.len();
                    writer = PackWriter::reusing(pack);
                }
            }
            Ok(())
        };
        let mut stream = ChunkStream::new(&self.chunker);
        stream.push(input, &mut each)?;
        stream.finish(&mut each)?;
        Ok(sealed + writer.len())
    }
}
