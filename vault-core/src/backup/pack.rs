//! Pack objects: sealed chunks concatenated behind a header and padded to a Padmé length, so the
//! server sees neither single chunks nor their lengths.
//!
//! ```text
//! pack         = "VBAKPACK" (8) ‖ version u16 ‖ sealed chunk* ‖ random padding
//! version 2:
//! sealed chunk = ChaCha20-Poly1305 ciphertext ‖ tag (16), all-zero nonce,
//!                under the chunk's own key (drawn for it, carried by the snapshot tree),
//!                associated data "VBAKCHNK" ‖ u16 2 ‖ chunk id (32)
//! version 1 (read, and written by a prune of a backup not yet forward-secret):
//! sealed chunk = nonce (24) ‖ XChaCha20-Poly1305 ciphertext ‖ tag (16)
//!                under the epoch's chunk-seal key, associated data "VBAKCHNK" ‖ u16 1 ‖ chunk id (32)
//! ```
//!
//! A pack does not describe itself: where each chunk lies is recorded in [`PackEntry`] values,
//! kept in the (sealed) index. Opening a chunk authenticates it under its id and then checks that
//! the plaintext hashes to that id, so a chunk moved to another id or another pack fails.

use zeroize::Zeroizing;

use super::keys::{BackupKeys, ChunkId, ChunkKey};
use super::padding::padme_len;
use crate::crypto::{aead, single_use};
use crate::secret::SecretBytes;

/// Magic at the start of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"VBAKPACK";
/// The pack version whose chunks are sealed under keys of their own.
pub const PACK_VERSION: u16 = 2;
/// The pack version whose chunks are sealed under the key epoch's chunk-seal key.
pub const PACK_VERSION_EPOCH_KEYED: u16 = 1;
/// Bytes before the first sealed chunk.
pub const PACK_HEADER_LEN: usize = 10;
/// Packs are closed once they reach this size (before padding).
pub const PACK_TARGET: usize = 4 << 20;
/// The room a new pack's buffer is made with, before padding: a pack closed at [`PACK_TARGET`]
/// after a last chunk of up to 64 KiB, padded, fits without the buffer (and the chunks sealed so
/// far) being copied to a larger one.
const PACK_ROOM: u64 = PACK_TARGET as u64 + (64 << 10);
const CHUNK_AAD_MAGIC: &[u8; 8] = b"VBAKCHNK";

/// Where one chunk lies in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The chunk's id.
    pub id: ChunkId,
    /// Offset of the sealed chunk from the start of the pack.
    pub offset: u32,
    /// Length of the sealed chunk (plaintext + 16 in a version 2 pack, + 40 in version 1).
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
    /// The operating system's random number generator failed (a chunk key could not be drawn).
    #[error("no randomness for a chunk key")]
    Randomness,
}

fn chunk_aad(version: u16, id: &ChunkId) -> [u8; 42] {
    let mut aad = [0u8; 42];
    aad[..8].copy_from_slice(CHUNK_AAD_MAGIC);
    aad[8..10].copy_from_slice(&version.to_le_bytes());
    aad[10..].copy_from_slice(&id.0);
    aad
}

/// Collects sealed chunks into one pack.
pub struct PackWriter {
    version: u16,
    body: Vec<u8>,
    entries: Vec<PackEntry>,
    keys: single_use::FreshKeys,
}

impl Default for PackWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PackWriter {
    /// An empty pack of the current version: each chunk under a key of its own.
    pub fn new() -> Self {
        Self::of_version(PACK_VERSION)
    }

    /// An empty version 1 pack (chunks under the epoch's chunk-seal key), for a prune of a backup
    /// written before forward secrecy.
    pub fn epoch_keyed() -> Self {
        Self::of_version(PACK_VERSION_EPOCH_KEYED)
    }

    fn of_version(version: u16) -> Self {
        Self::of_version_in(version, Vec::new())
    }

    /// An empty pack of the current version written into `buffer`, the bytes of a pack finished
    /// (and uploaded) before: its memory is reused, rather than a new buffer's pages touched for
    /// the first time (8-10 ms per 32 MiB of export chunks in `benches/backup.rs`).
    pub fn reusing(buffer: Vec<u8>) -> Self {
        Self::of_version_in(PACK_VERSION, buffer)
    }

    /// Starts a pack in `body`, reserving no room yet: a writer only taken out of its place to be
    /// finished costs no new buffer.
    fn of_version_in(version: u16, mut body: Vec<u8>) -> Self {
        body.clear();
        body.extend_from_slice(PACK_MAGIC);
        body.extend_from_slice(&version.to_le_bytes());
        Self { version, body, entries: Vec::new(), keys: single_use::FreshKeys::default() }
    }

    /// Seals `plaintext` (whose id is `id`) into the pack under a key drawn for it, and returns
    /// that key. Only for a pack of the current version.
    #[cfg(test)]
    pub fn add(&mut self, id: ChunkId, plaintext: &[u8]) -> Result<ChunkKey, PackError> {
        Ok(self.add_until(&[(id, plaintext)], usize::MAX)?.pop().expect("one chunk sealed"))
    }

    /// Seals chunks from the front of `chunks` (each with its id) into the pack, each under a key
    /// drawn for it, on all cores: as many as fit before the pack reaches `target` bytes, and the
    /// one that brings it there. Returns their keys in order (wiped when dropped); the caller goes
    /// on with the rest. Only for a pack of the current version.
    pub fn add_until(
        &mut self,
        chunks: &[(ChunkId, &[u8])],
        target: usize,
    ) -> Result<Zeroizing<Vec<ChunkKey>>, PackError> {
        if self.version != PACK_VERSION {
            return Err(PackError::UnsupportedVersion(self.version));
        }
        let mut end = self.body.len();
        let mut entries = Vec::new();
        for (id, plaintext) in chunks {
            if end >= target && !entries.is_empty() {
                break;
            }
            let sealed_len = plaintext.len().checked_add(single_use::TAG_LEN).ok_or(PackError::OutOfBounds)?;
            let offset = u32::try_from(end).map_err(|_| PackError::OutOfBounds)?;
            let sealed_len = u32::try_from(sealed_len).map_err(|_| PackError::OutOfBounds)?;
            entries.push(PackEntry { id: *id, offset, sealed_len });
            end += sealed_len as usize;
        }
        u32::try_from(end).map_err(|_| PackError::OutOfBounds)?;
        let items: Vec<([u8; 42], &[u8])> =
            chunks[..entries.len()].iter().map(|(id, plaintext)| (chunk_aad(PACK_VERSION, id), *plaintext)).collect();
        self.make_room();
        let keys = single_use::seal_fresh_all_into(&mut self.keys, &items, &mut self.body).map_err(|e| match e {
            single_use::BatchSealError::Randomness => PackError::Randomness,
            // Unreachable: every chunk and the pack fit in a u32 (checked above).
            single_use::BatchSealError::TooLong => PackError::OutOfBounds,
        })?;
        self.entries.extend(entries);
        Ok(Zeroizing::new(keys.iter().map(ChunkKey::from_secret).collect()))
    }

    /// Reserves a whole pack's room once, so that the buffer (and the chunks sealed into it so
    /// far) is not copied into larger ones as the pack fills.
    fn make_room(&mut self) {
        let room = usize::try_from(padme_len(PACK_ROOM)).unwrap_or(PACK_TARGET);
        self.body.reserve(room.saturating_sub(self.body.len()));
    }

    /// Seals `plaintext` under the current epoch's chunk-seal key. Only for a version 1 pack.
    pub fn add_epoch_keyed(&mut self, keys: &BackupKeys, id: ChunkId, plaintext: &[u8]) -> Result<(), PackError> {
        if self.version != PACK_VERSION_EPOCH_KEYED {
            return Err(PackError::UnsupportedVersion(self.version));
        }
        let sealed = aead::seal(keys.chunk_seal_key(), &chunk_aad(PACK_VERSION_EPOCH_KEYED, &id), plaintext);
        self.push(id, &sealed)
    }

    /// Copies a chunk sealed in another pack of this version unchanged (a repack: its key, which
    /// the trees carry, stays valid, since the associated data names the chunk, not its place).
    pub fn add_sealed(&mut self, id: ChunkId, sealed: &[u8]) -> Result<(), PackError> {
        self.push(id, sealed)
    }

    fn push(&mut self, id: ChunkId, sealed: &[u8]) -> Result<(), PackError> {
        let offset = u32::try_from(self.body.len()).map_err(|_| PackError::OutOfBounds)?;
        let sealed_len = u32::try_from(sealed.len()).map_err(|_| PackError::OutOfBounds)?;
        self.make_room();
        self.body.extend_from_slice(sealed);
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

/// Checks a pack's header and returns its version.
pub fn check_header(pack: &[u8]) -> Result<u16, PackError> {
    if pack.len() < PACK_HEADER_LEN || &pack[..8] != PACK_MAGIC {
        return Err(PackError::NotAPack);
    }
    let version = u16::from_le_bytes([pack[8], pack[9]]);
    if version != PACK_VERSION && version != PACK_VERSION_EPOCH_KEYED {
        return Err(PackError::UnsupportedVersion(version));
    }
    Ok(version)
}

/// The sealed bytes `entry` describes in a whole pack, with the pack's version.
pub fn sealed_chunk<'p>(pack: &'p [u8], entry: &PackEntry) -> Result<(u16, &'p [u8]), PackError> {
    let version = check_header(pack)?;
    let start = entry.offset as usize;
    let end = start.checked_add(entry.sealed_len as usize).ok_or(PackError::OutOfBounds)?;
    if start < PACK_HEADER_LEN || end > pack.len() {
        return Err(PackError::OutOfBounds);
    }
    Ok((version, &pack[start..end]))
}

/// Opens the chunk `entry` describes from a whole pack: bounds, authentication under the entry's
/// id (under `key` in a version 2 pack, under epoch `epoch`'s chunk-seal key in version 1), and
/// the plaintext's keyed hash against that id.
pub fn open_chunk(
    keys: &BackupKeys,
    epoch: u32,
    pack: &[u8],
    entry: &PackEntry,
    key: Option<&ChunkKey>,
) -> Result<SecretBytes, PackError> {
    let (version, sealed) = sealed_chunk(pack, entry)?;
    let plaintext = match (version, key) {
        (PACK_VERSION, Some(key)) => single_use::open(&key.secret(), &chunk_aad(version, &entry.id), sealed),
        (PACK_VERSION_EPOCH_KEYED, None) => {
            // A chunk of an epoch this key does not reach cannot be authenticated.
            let epoch_key = keys.epoch(epoch).map_err(|_| PackError::Authentication)?.chunk_seal_key();
            aead::open(epoch_key, &chunk_aad(version, &entry.id), sealed)
        }
        // A tree that names a key for an epoch-keyed chunk, or none for a keyed one, was not
        // written by this format.
        _ => return Err(PackError::Authentication),
    }
    .map_err(|_| PackError::Authentication)?;
    if keys.chunk_id(plaintext.expose_secret()) != entry.id {
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

    fn packed(keys: &BackupKeys, chunks: &[&[u8]]) -> (Vec<u8>, Vec<PackEntry>, Vec<ChunkKey>) {
        let mut writer = PackWriter::new();
        let chunk_keys = chunks.iter().map(|chunk| writer.add(keys.chunk_id(chunk), chunk).unwrap()).collect();
        let (pack, entries) = writer.finish().unwrap();
        (pack, entries, chunk_keys)
    }

    #[test]
    fn every_tamper_is_refused() {
        let keys = keys();
        let (pack, entries, ck) = packed(&keys, &[b"first chunk", b"second chunk"]);
        assert_eq!(pack.len() as u64, padme_len(pack.len() as u64));
        assert_eq!(entries[1].sealed_len as usize, b"second chunk".len() + 16);
        assert_eq!(open_chunk(&keys, 0, &pack, &entries[1], Some(&ck[1])).unwrap().expose_secret(), b"second chunk");
        // Any flipped bit inside a sealed chunk or the header.
        let sealed_end = (entries[1].offset + entries[1].sealed_len) as usize;
        for i in 0..sealed_end {
            let mut bad = pack.clone();
            bad[i] ^= 0x10;
            let result =
                entries.iter().zip(&ck).map(|(e, k)| open_chunk(&keys, 0, &bad, e, Some(k))).find(|r| r.is_err());
            assert!(result.is_some(), "flip at {i} went unnoticed");
        }
        // Swapped entries (a chunk presented under another id), another chunk's key, no key,
        // truncation, other backup keys.
        let swapped = PackEntry { id: entries[0].id, ..entries[1] };
        assert_eq!(open_chunk(&keys, 0, &pack, &swapped, Some(&ck[1])).err(), Some(PackError::Authentication));
        assert_eq!(open_chunk(&keys, 0, &pack, &entries[1], Some(&ck[0])).err(), Some(PackError::Authentication));
        assert_eq!(open_chunk(&keys, 0, &pack, &entries[1], None).err(), Some(PackError::Authentication));
        assert_eq!(
            open_chunk(&keys, 0, &pack[..sealed_end - 1], &entries[1], Some(&ck[1])).err(),
            Some(PackError::OutOfBounds)
        );
        let other = BackupKeys::derive(&SecretKey::from_bytes([5; 32]));
        assert_eq!(open_chunk(&other, 0, &pack, &entries[0], Some(&ck[0])).err(), Some(PackError::Authentication));
        let far = PackEntry { offset: u32::MAX, ..entries[0] };
        assert_eq!(open_chunk(&keys, 0, &pack, &far, Some(&ck[0])).err(), Some(PackError::OutOfBounds));
        assert_eq!(
            open_chunk(&keys, 0, b"VBAKPACK\x03\x00", &entries[0], None).err(),
            Some(PackError::UnsupportedVersion(3))
        );
        assert_eq!(open_chunk(&keys, 0, b"not a pack", &entries[0], None).err(), Some(PackError::NotAPack));
    }

    /// Chunks sealed in runs close their packs where adding one chunk at a time, and closing a
    /// pack once it holds `target` bytes, closes them; every key opens its chunk.
    #[test]
    fn packs_close_where_one_chunk_at_a_time_would_close_them() {
        let keys = keys();
        let chunks: Vec<Vec<u8>> = (0..200).map(|i| vec![i as u8; 1 + (i * 37) % 400]).collect();
        let target = 3000;
        let mut expected: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
        let mut len = PACK_HEADER_LEN;
        for chunk in &chunks {
            expected.last_mut().unwrap().push((len as u32, (chunk.len() + 16) as u32));
            len += chunk.len() + 16;
            if len >= target {
                expected.push(Vec::new());
                len = PACK_HEADER_LEN;
            }
        }
        expected.retain(|pack| !pack.is_empty());

        let items: Vec<(ChunkId, &[u8])> = chunks.iter().map(|c| (keys.chunk_id(c), &c[..])).collect();
        let mut packs = Vec::new();
        let mut chunk_keys = Vec::new();
        let mut writer = PackWriter::new();
        for run in items.chunks(23) {
            let mut rest = run;
            while !rest.is_empty() {
                let sealed = writer.add_until(rest, target).unwrap();
                rest = &rest[sealed.len()..];
                chunk_keys.extend(sealed.iter().cloned());
                if writer.len() >= target {
                    let (pack, entries) = std::mem::take(&mut writer).finish().unwrap();
                    packs.push((pack.clone(), entries));
                    writer = PackWriter::reusing(pack);
                }
            }
        }
        packs.push(writer.finish().unwrap());
        let got: Vec<Vec<(u32, u32)>> =
            packs.iter().map(|(_, entries)| entries.iter().map(|e| (e.offset, e.sealed_len)).collect()).collect();
        assert_eq!(got, expected);
        let opened: Vec<Vec<u8>> = packs
            .iter()
            .flat_map(|(pack, entries)| entries.iter().map(move |e| (pack, e)))
            .zip(&chunk_keys)
            .map(|((pack, entry), key)| open_chunk(&keys, 0, pack, entry, Some(key)).unwrap().expose_secret().to_vec())
            .collect();
        assert_eq!(opened, chunks);
    }

    #[test]
    fn epoch_keyed_packs_still_open_and_copies_keep_their_keys() {
        let keys = keys();
        let mut old = PackWriter::epoch_keyed();
        let id = keys.chunk_id(b"an old chunk");
        old.add_epoch_keyed(&keys, id, b"an old chunk").unwrap();
        assert_eq!(old.add(id, b"an old chunk").err(), Some(PackError::UnsupportedVersion(1)));
        let (pack, entries) = old.finish().unwrap();
        assert_eq!(entries[0].sealed_len as usize, b"an old chunk".len() + 40);
        assert_eq!(open_chunk(&keys, 0, &pack, &entries[0], None).unwrap().expose_secret(), b"an old chunk");
        assert!(open_chunk(&keys, 0, &pack, &entries[0], Some(&ChunkKey([1; 32]))).is_err());
        assert!(open_chunk(&keys, 1, &pack, &entries[0], None).is_err(), "an epoch the keys do not reach");

        // A repack copies a keyed chunk byte for byte; its key still opens it at its new place.
        let (pack, entries, ck) = packed(&keys, &[b"moved", b"kept"]);
        let mut repacked = PackWriter::new();
        repacked.add(keys.chunk_id(b"filler"), b"filler").unwrap();
        let (version, sealed) = sealed_chunk(&pack, &entries[1]).unwrap();
        assert_eq!(version, PACK_VERSION);
        repacked.add_sealed(entries[1].id, sealed).unwrap();
        let (bytes, moved) = repacked.finish().unwrap();
        assert_ne!(moved[1].offset, entries[1].offset);
        assert_eq!(open_chunk(&keys, 0, &bytes, &moved[1], Some(&ck[1])).unwrap().expose_secret(), b"kept");
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
            let mut order: Vec<(usize, usize, ChunkKey)> = Vec::new();
            let mut rest = &data[..];
            for len in chunker.chunk_lengths(&data) {
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                let key = writer.add(keys.chunk_id(chunk), chunk).unwrap();
                order.push((packs.len(), writer_entries(&writer) - 1, key));
                if writer.len() >= pack_target {
                    packs.push(std::mem::take(&mut writer).finish().unwrap());
                }
            }
            if !writer.is_empty() {
                packs.push(writer.finish().unwrap());
            }
            let mut rebuilt = Vec::new();
            for (pack, index, key) in order {
                let (bytes, entries) = &packs[pack];
                rebuilt.extend_from_slice(open_chunk(&keys, 0, bytes, &entries[index], Some(&key)).unwrap().expose_secret());
            }
            prop_assert_eq!(rebuilt, data);
        }
    }

    fn writer_entries(writer: &PackWriter) -> usize {
        writer.entries.len()
    }
}
