//! Pack objects: sealed chunks concatenated behind a header and padded to a Padmé length, so the
//! server sees neither single chunks nor their lengths.
//!
//! ```text
//! pack         = "VBAKPACK" (8) ‖ version u16 (= 1) ‖ sealed chunk* ‖ random padding
//! sealed chunk = nonce (24) ‖ XChaCha20-Poly1305 ciphertext ‖ tag (16)
//!                under the chunk-seal key, associated data "VBAKCHNK" ‖ version u16 (= 1) ‖ chunk id (32)
//! ```
//!
//! A pack does not describe itself: where each chunk lies is recorded in [`PackEntry`] values,
//! kept in the (sealed) index. Opening a chunk authenticates it under its id and then checks that
//! the plaintext hashes to that id, so a chunk moved to another id or another pack fails.

use super::keys::{BackupKeys, ChunkId};
use super::padding::padme_len;
use crate::crypto::aead;
use crate::secret::SecretBytes;

/// Magic at the start of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"VBAKPACK";
/// Current pack format version.
pub const PACK_VERSION: u16 = 1;
/// Bytes before the first sealed chunk.
pub const PACK_HEADER_LEN: usize = 10;
const CHUNK_AAD_MAGIC: &[u8; 8] = b"VBAKCHNK";
const CHUNK_VERSION: u16 = 1;

/// Where one chunk lies in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The chunk's id.
    pub id: ChunkId,
    /// Offset of the sealed chunk from the start of the pack.
    pub offset: u32,
    /// Length of the sealed chunk (plaintext + 40).
    pub sealed_len: u32,
}

/// Why a chunk could not be read from a pack. Names no content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// The object does not start with the pack magic.
    #[error("not a backup pack")]
    NotAPack,
    /// A pack version this build does not read.
    #[error("unsupported backup pack version {0}")]
    UnsupportedVersion(u16),
    /// The entry points outside the pack.
    #[error("a chunk entry points outside its pack")]
    OutOfBounds,
    /// The sealed chunk failed authentication or does not hash to its id.
    #[error("a chunk failed authentication")]
    Authentication,
}

fn chunk_aad(id: &ChunkId) -> [u8; 42] {
    let mut aad = [0u8; 42];
    aad[..8].copy_from_slice(CHUNK_AAD_MAGIC);
    aad[8..10].copy_from_slice(&CHUNK_VERSION.to_le_bytes());
    aad[10..].copy_from_slice(&id.0);
    aad
}

/// Collects sealed chunks into one pack.
pub struct PackWriter {
    body: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl Default for PackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PackWriter {
    /// An empty pack.
    pub fn new() -> Self {
        let mut body = Vec::with_capacity(4 << 20);
        body.extend_from_slice(PACK_MAGIC);
        body.extend_from_slice(&PACK_VERSION.to_le_bytes());
        Self { body, entries: Vec::new() }
    }

    /// Seals `plaintext` (whose id is `id`) into the pack.
    pub fn add(&mut self, keys: &BackupKeys, id: ChunkId, plaintext: &[u8]) -> Result<(), PackError> {
        let sealed = aead::seal(keys.chunk_seal_key(), &chunk_aad(&id), plaintext);
        let offset = u32::try_from(self.body.len()).map_err(|_| PackError::OutOfBounds)?;
        let sealed_len = u32::try_from(sealed.len()).map_err(|_| PackError::OutOfBounds)?;
        self.body.extend_from_slice(&sealed);
        self.entries.push(PackEntry { id, offset, sealed_len });
        Ok(())
    }

    /// Bytes so far, before padding.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether no chunk was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The finished pack, padded with random bytes to its Padmé length, and its entries.
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<PackEntry>), getrandom::Error> {
        let padded = usize::try_from(padme_len(self.body.len() as u64)).unwrap_or(self.body.len());
        let start = self.body.len();
        self.body.resize(padded, 0);
        getrandom::fill(&mut self.body[start..])?;
        Ok((self.body, self.entries))
    }
}

/// Checks a pack's header.
pub fn check_header(pack: &[u8]) -> Result<(), PackError> {
    if pack.len() < PACK_HEADER_LEN || &pack[..8] != PACK_MAGIC {
        return Err(PackError::NotAPack);
    }
    let version = u16::from_le_bytes([pack[8], pack[9]]);
    if version != PACK_VERSION {
        return Err(PackError::UnsupportedVersion(version));
    }
    Ok(())
}

/// Opens the chunk `entry` describes from a whole pack: bounds, authentication under the entry's
/// id, and the plaintext's keyed hash against that id.
pub fn open_chunk(keys: &BackupKeys, epoch: u32, pack: &[u8], entry: &PackEntry) -> Result<SecretBytes, PackError> {
    check_header(pack)?;
    let start = entry.offset as usize;
    let end = start.checked_add(entry.sealed_len as usize).ok_or(PackError::OutOfBounds)?;
    if start < PACK_HEADER_LEN || end > pack.len() {
        return Err(PackError::OutOfBounds);
    }
    open_sealed(keys, epoch, &pack[start..end], &entry.id)
}

/// Opens one sealed chunk (as fetched by a ranged read) under its id.
pub fn open_sealed(keys: &BackupKeys, epoch: u32, sealed: &[u8], id: &ChunkId) -> Result<SecretBytes, PackError> {
    // A chunk of an epoch this key does not reach cannot be authenticated.
    let key = keys.epoch(epoch).map_err(|_| PackError::Authentication)?.chunk_seal_key();
    let plaintext = aead::open(key, &chunk_aad(id), sealed).map_err(|_| PackError::Authentication)?;
    if keys.chunk_id(plaintext.expose_secret()) != *id {
        return Err(PackError::Authentication);
    }
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::chunker::{ChunkParams, Chunker};
    use crate::secret::SecretKey;
    use proptest::prelude::*;

    fn keys() -> BackupKeys {
        BackupKeys::derive(&SecretKey::from_bytes([4; 32]))
    }

    fn packed(keys: &BackupKeys, chunks: &[&[u8]]) -> (Vec<u8>, Vec<PackEntry>) {
        let mut writer = PackWriter::new();
        for chunk in chunks {
            writer.add(keys, keys.chunk_id(chunk), chunk).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn every_tamper_is_refused() {
        let keys = keys();
        let (pack, entries) = packed(&keys, &[b"first chunk", b"second chunk"]);
        assert_eq!(pack.len() as u64, padme_len(pack.len() as u64));
        assert_eq!(open_chunk(&keys, 0, &pack, &entries[1]).unwrap().expose_secret(), b"second chunk");
        // Any flipped bit inside a sealed chunk or the header.
        let sealed_end = (entries[1].offset + entries[1].sealed_len) as usize;
        for i in 0..sealed_end {
            let mut bad = pack.clone();
            bad[i] ^= 0x10;
            let result = entries.iter().map(|e| open_chunk(&keys, 0, &bad, e)).find(|r| r.is_err());
            assert!(result.is_some(), "flip at {i} went unnoticed");
        }
        // Swapped entries (a chunk presented under another id), truncation, other keys.
        let swapped = PackEntry { id: entries[0].id, ..entries[1] };
        assert_eq!(open_chunk(&keys, 0, &pack, &swapped).err(), Some(PackError::Authentication));
        assert_eq!(open_chunk(&keys, 0, &pack[..sealed_end - 1], &entries[1]).err(), Some(PackError::OutOfBounds));
        let other = BackupKeys::derive(&SecretKey::from_bytes([5; 32]));
        assert_eq!(open_chunk(&other, 0, &pack, &entries[0]).err(), Some(PackError::Authentication));
        let far = PackEntry { offset: u32::MAX, ..entries[0] };
        assert_eq!(open_chunk(&keys, 0, &pack, &far).err(), Some(PackError::OutOfBounds));
        assert_eq!(
            open_chunk(&keys, 0, b"VBAKPACK\x02\x00", &entries[0]).err(),
            Some(PackError::UnsupportedVersion(2))
        );
        assert_eq!(open_chunk(&keys, 0, b"not a pack", &entries[0]).err(), Some(PackError::NotAPack));
    }

    proptest! {
        /// CDC + packing round trip: any input, chunked with the keyed chunker, sealed into packs
        /// of bounded size, reads back exactly, chunk by chunk.
        #[test]
        fn cdc_and_packing_round_trip(data in proptest::collection::vec(any::<u8>(), 0..40_000), pack_target in 1usize..20_000) {
            let keys = keys();
            let chunker = Chunker::new(keys.gear(), ChunkParams::EXPORT);
            let mut packs: Vec<(Vec<u8>, Vec<PackEntry>)> = Vec::new();
            let mut writer = PackWriter::new();
            let mut order: Vec<(usize, usize)> = Vec::new();
            let mut rest = &data[..];
            for len in chunker.chunk_lengths(&data) {
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                writer.add(&keys, keys.chunk_id(chunk), chunk).unwrap();
                order.push((packs.len(), writer_entries(&writer) - 1));
                if writer.len() >= pack_target {
                    packs.push(std::mem::take(&mut writer).finish().unwrap());
                }
            }
            if !writer.is_empty() {
                packs.push(writer.finish().unwrap());
            }
            let mut rebuilt = Vec::new();
            for (pack, index) in order {
                let (bytes, entries) = &packs[pack];
                rebuilt.extend_from_slice(open_chunk(&keys, 0, bytes, &entries[index]).unwrap().expose_secret());
            }
            prop_assert_eq!(rebuilt, data);
        }
    }

    fn writer_entries(writer: &PackWriter) -> usize {
        writer.entries.len()
    }
}
