//! The sealed objects of a backup besides packs: index objects, snapshot trees, manifests and the
//! head record (`docs/formats.md`, "Backup objects"). Each is a sealed box (XChaCha20-Poly1305,
//! random nonce) under its own BRK subkey, with associated data naming the kind, the version and
//! the object's name, so an object presented under another name or kind fails to open.

use super::keys::{BackupKeys, ChunkId, ChunkKey, GenerationToken, TokenPart, TokenShare};
use super::pack::PackEntry;
use crate::crypto::aead;
use crate::error::DataKind;
use crate::error::{Error, Result};
#[cfg(test)]
use crate::secret::SecretKey;

const VERSION: u16 = 1;
/// Largest sealed object of these kinds accepted (index objects are the largest).
pub const MAX_OBJECT_LEN: usize = 64 << 20;

/// A reader over a decoded plaintext that fails with an integrity error when it runs short.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(malformed(self.what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| malformed(self.what))?))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| malformed(self.what))?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| malformed(self.what))?))
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| malformed(self.what))
    }

    /// A count of items of `item_len` bytes each, checked against what is left.
    fn count(&mut self, item_len: usize) -> Result<usize> {
        let n = self.u32()? as usize;
        if n.checked_mul(item_len).is_none_or(|total| total > self.bytes.len()) {
            return Err(malformed(self.what));
        }
        Ok(n)
    }

    /// A count, then that many chunk ids, each followed by its key when `keyed`.
    fn chunk_refs(&mut self, keyed: bool) -> Result<Vec<ChunkRef>> {
        let n = self.count(if keyed { 64 } else { 32 })?;
        (0..n)
            .map(|_| {
                let id = ChunkId(self.array()?);
                let key = if keyed { Some(ChunkKey(self.array()?)) } else { None };
                Ok(ChunkRef { id, key })
            })
            .collect()
    }

    fn finish(self) -> Result<()> {
        if self.bytes.is_empty() { Ok(()) } else { Err(malformed(self.what)) }
    }
}

fn malformed(what: &str) -> Error {
    Error::Integrity { object: DataKind::BackupSnapshot, problem: format!("backup {what} is malformed") }
}

fn aad(magic: &[u8; 8], name: &str) -> Vec<u8> {
    versioned_aad(magic, VERSION, name)
}

fn versioned_aad(magic: &[u8; 8], version: u16, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(10 + name.len());
    aad.extend_from_slice(magic);
    aad.extend_from_slice(&version.to_le_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
fn seal(key: &SecretKey, magic: &[u8; 8], name: &str, plaintext: &[u8]) -> Vec<u8> {
    aead::seal(key, &aad(magic, name), plaintext)
}

fn failed(what: &str, name: &str) -> Error {
    Error::Integrity {
        object: DataKind::BackupSnapshot,
        problem: format!("backup {what} {name} failed authentication"),
    }
}

/// Which sealed object [`seal_for_fuzzing`] makes.
#[cfg(fuzzing)]
#[derive(Clone, Copy)]
pub enum FuzzObject {
    /// `manifest-0000000000000001`, version 2.
    Manifest,
    /// `manifest-0000000000000001`, version 3, under the token [`FUZZ_TOKEN`].
    GenerationManifest,
    /// `index-00000000000000000000000000000000`.
    Index,
    /// The head record.
    Head,
    /// The keyring object of the key's epoch.
    Keyring,
}

/// The generation token [`FuzzObject::GenerationManifest`] seals under.
#[cfg(fuzzing)]
pub const FUZZ_TOKEN: [u8; 32] = [7; 32];

/// Seals arbitrary bytes as the plaintext of an object, so the fuzz targets reach the decoders
/// behind authentication (which see hostile bytes only if the key leaked, and must still refuse
/// them cleanly). Returns the sealed bytes and the object's name. Only in fuzzing builds: anywhere
/// else it would be a sealing oracle.
#[cfg(fuzzing)]
pub fn seal_for_fuzzing(keys: &BackupKeys, object: FuzzObject, plaintext: &[u8]) -> (Vec<u8>, String) {
    match object {
        FuzzObject::Manifest => {
            let name = manifest_name(1);
            (aead::seal(keys.manifest_key(), &versioned_aad(MANIFEST_MAGIC, MANIFEST_V2, &name), plaintext), name)
        }
        FuzzObject::GenerationManifest => {
            let empty = Manifest {
                generation: 1,
                previous_generation: 0,
                previous: [0; 32],
                previous_epoch: 0,
                created_at: 0,
                indexes: Vec::new(),
                snapshots: Vec::new(),
            };
            let header = empty.v3_header();
            let key = keys.current().generation_key(&GenerationToken(FUZZ_TOKEN), 1);
            let mut out = header.to_vec();
            out.extend_from_slice(&aead::seal(&key, &v3_aad(&header, 1), plaintext));
            (out, manifest_name(1))
        }
        FuzzObject::Index => {
            let name = index_name(&[0; 16]);
            (aead::seal(keys.index_key(), &versioned_aad(INDEX_MAGIC, INDEX_VERSION, &name), plaintext), name)
        }
        FuzzObject::Head => (aead::seal(keys.head_key(), &head_aad(HEAD_VERSION), plaintext), "head".to_owned()),
        FuzzObject::Keyring => {
            let name = super::keys::Keyring::object_name(&keys.key_check());
            (aead::seal(keys.current().keyring_key(), &versioned_aad(b"VBAKKRNG", 1, &name), plaintext), name)
        }
    }
}

/// A 16-byte random object id, shown as 32 hex characters in object names.
pub type ObjectId = [u8; 16];

/// A fresh random object id.
pub fn random_object_id() -> Result<ObjectId> {
    crate::crypto::random_array().map_err(Error::from_rng)
}

/// Name of the pack with this id.
pub fn pack_name(id: &ObjectId) -> String {
    format!("pack-{}", hex::encode(id))
}

/// Name of the index object with this id.
pub fn index_name(id: &ObjectId) -> String {
    format!("index-{}", hex::encode(id))
}

/// Name of the manifest of this generation.
pub fn manifest_name(generation: u64) -> String {
    format!("manifest-{generation:016x}")
}

/// Name of a media object: derived from the media id under the chunk-id key, so the server sees a
/// stable name per item but not the vault's media ids.
pub fn media_object_name(keys: &BackupKeys, media_id: &[u8; 16]) -> String {
    let mut input = Vec::with_capacity(22);
    input.extend_from_slice(b"media:");
    input.extend_from_slice(media_id);
    format!("media-{}", hex::encode(&keys.chunk_id(&input).0[..16]))
}

// ---- index objects -----------------------------------------------------------------------------

/// Where a chunk is: its pack and place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The pack's id.
    pub pack: ObjectId,
    /// Offset and length of the sealed chunk in the pack.
    pub entry: PackEntry,
    /// The key epoch the chunk is sealed under: that of the index object listing it.
    pub epoch: u32,
}

const INDEX_MAGIC: &[u8; 8] = b"VBAKINDX";
/// The index object's version: 2 names each chunk's key epoch; 1 (every chunk of the index's
/// epoch) still opens.
const INDEX_VERSION: u16 = 2;
const INDEX_V1_ENTRY_LEN: usize = 32 + 16 + 4 + 4;
const INDEX_ENTRY_LEN: usize = INDEX_V1_ENTRY_LEN + 4;

/// Seals an index object (version 2) under the current key epoch: `u32 count ‖ (chunk id 32 ‖
/// pack id 16 ‖ u32 offset ‖ u32 sealed length ‖ u32 epoch)*`. A prune keeps chunks of earlier
/// epochs where they are, so one index lists chunks of several epochs, none newer than its own.
pub fn seal_index(keys: &BackupKeys, name: &str, locations: &[Location]) -> Result<Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(4 + locations.len() * INDEX_ENTRY_LEN));
    out.extend_from_slice(
        &u32::try_from(locations.len()).map_err(|_| Error::Internal("index too large"))?.to_le_bytes(),
    );
    for l in locations {
        out.extend_from_slice(&l.entry.id.0);
        out.extend_from_slice(&l.pack);
        out.extend_from_slice(&l.entry.offset.to_le_bytes());
        out.extend_from_slice(&l.entry.sealed_len.to_le_bytes());
        if l.epoch > keys.current_epoch() {
            return Err(Error::Internal("a chunk of an epoch newer than the index"));
        }
        out.extend_from_slice(&l.epoch.to_le_bytes());
    }
    Ok(aead::seal(keys.index_key(), &versioned_aad(INDEX_MAGIC, INDEX_VERSION, name), &out))
}

/// Opens an index object sealed under key epoch `epoch` (version 2, or version 1, whose chunks
/// are all of that epoch). A chunk said to be of a newer epoch than the index is refused.
pub fn open_index(keys: &BackupKeys, epoch: u32, name: &str, sealed: &[u8]) -> Result<Vec<Location>> {
    if sealed.len() > MAX_OBJECT_LEN {
        return Err(malformed("index object"));
    }
    let key = keys.epoch(epoch)?.index_key();
    let (plain, version) = match aead::open(key, &versioned_aad(INDEX_MAGIC, INDEX_VERSION, name), sealed) {
        Ok(plain) => (plain, INDEX_VERSION),
        Err(_) => (aead::open(key, &aad(INDEX_MAGIC, name), sealed).map_err(|_| failed("index object", name))?, 1),
    };
    let mut r = Reader { bytes: plain.expose_secret(), what: "index object" };
    let n = r.count(if version == 1 { INDEX_V1_ENTRY_LEN } else { INDEX_ENTRY_LEN })?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = ChunkId(r.array()?);
        let pack = r.array()?;
        let offset = r.u32()?;
        let sealed_len = r.u32()?;
        let chunk_epoch = if version == 1 { epoch } else { r.u32()? };
        if chunk_epoch > epoch {
            return Err(malformed("index object"));
        }
        out.push(Location { pack, entry: PackEntry { id, offset, sealed_len }, epoch: chunk_epoch });
    }
    r.finish()?;
    Ok(out)
}

// ---- snapshot trees ----------------------------------------------------------------------------

/// One media item of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEntry {
    /// The vault's media id.
    pub media_id: [u8; 16],
    /// Length of the media file (the `VLTMEDIA` stream) before padding.
    pub file_len: u64,
}

/// One chunk as a tree or manifest names it: its id and, since forward secrecy, the key it is
/// sealed under (`None`: a chunk of a version 1 pack, under its epoch's chunk-seal key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkRef {
    /// The chunk's id.
    pub id: ChunkId,
    /// The key it is sealed under, for a chunk of a version 2 pack.
    pub key: Option<ChunkKey>,
}

/// What a snapshot holds: the export's chunks in order, and the media items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Length of the database export.
    pub export_len: u64,
    /// The export's chunks, in order.
    pub export_chunks: Vec<ChunkRef>,
    /// Every media item.
    pub media: Vec<MediaEntry>,
}

const TREE_MAGIC: &[u8; 8] = b"VBAKTREE";
/// The tree's version: 2 carries each chunk's key; 1 (ids only, chunks under the epoch's key)
/// still decodes.
const TREE_VERSION: u16 = 2;

impl Tree {
    /// The tree's plaintext (chunked and sealed like export data), version 2:
    /// `"VBAKTREE" ‖ u16 2 ‖ u64 export length ‖ u32 n ‖ (chunk id 32 ‖ chunk key 32)* ‖ u32 m ‖
    /// (media id 16 ‖ u64 file length)*`. Every chunk must have its key.
    pub fn encode(&self) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let too_big = |_| Error::Internal("snapshot tree too large");
        let mut out =
            zeroize::Zeroizing::new(Vec::with_capacity(26 + self.export_chunks.len() * 64 + self.media.len() * 24));
        out.extend_from_slice(TREE_MAGIC);
        out.extend_from_slice(&TREE_VERSION.to_le_bytes());
        out.extend_from_slice(&self.export_len.to_le_bytes());
        out.extend_from_slice(&u32::try_from(self.export_chunks.len()).map_err(too_big)?.to_le_bytes());
        for chunk in &self.export_chunks {
            let key = chunk.key.as_ref().ok_or(Error::Internal("a tree chunk without its key"))?;
            out.extend_from_slice(&chunk.id.0);
            out.extend_from_slice(&key.0);
        }
        out.extend_from_slice(&u32::try_from(self.media.len()).map_err(too_big)?.to_le_bytes());
        for m in &self.media {
            out.extend_from_slice(&m.media_id);
            out.extend_from_slice(&m.file_len.to_le_bytes());
        }
        Ok(out)
    }

    /// Parses a tree's plaintext (version 2, or version 1 without keys).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, what: "snapshot tree" };
        if r.take(8)? != TREE_MAGIC {
            return Err(malformed("snapshot tree"));
        }
        let version = r.u16()?;
        if version != TREE_VERSION && version != VERSION {
            return Err(Error::UnsupportedVersion { what: "backup snapshot tree", found: u64::from(version) });
        }
        let export_len = r.u64()?;
        let export_chunks = r.chunk_refs(version == TREE_VERSION)?;
        let m = r.count(24)?;
        let media =
            (0..m).map(|_| Ok(MediaEntry { media_id: r.array()?, file_len: r.u64()? })).collect::<Result<_>>()?;
        r.finish()?;
        Ok(Self { export_len, export_chunks, media })
    }
}

// ---- manifests ---------------------------------------------------------------------------------

/// One snapshot as listed in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The generation that created it.
    pub generation: u64,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The chunks of its tree, in order.
    pub tree_chunks: Vec<ChunkRef>,
    /// Length of its database export.
    pub export_len: u64,
    /// Media items in it.
    pub media_count: u32,
}

/// An index object in force, and the key epoch it (and every chunk it lists) is sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexRef {
    /// The index object's id.
    pub id: ObjectId,
    /// Its key epoch.
    pub epoch: u32,
}

/// The state of the whole backup at one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Monotonic generation (1 for the first).
    pub generation: u64,
    /// The previous manifest's generation: `generation - 1`, or lower when a run found the next
    /// name taken by a manifest it cannot open (an interrupted run's whose token is gone) and
    /// skipped it (0 for the first).
    pub previous_generation: u64,
    /// BLAKE3 of the previous manifest's sealed bytes (zeros for the first).
    pub previous: [u8; 32],
    /// The key epoch the previous manifest is sealed under.
    pub previous_epoch: u32,
    /// When it was written, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Index objects in force.
    pub indexes: Vec<IndexRef>,
    /// Retained snapshots, oldest first (version 3 holds the newest only).
    pub snapshots: Vec<SnapshotEntry>,
}

/// What the manifest chain needs of a manifest: its predecessor's generation, hash and key epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestLink {
    /// The previous manifest's generation (0 for the first).
    pub previous_generation: u64,
    /// BLAKE3 of the previous manifest's sealed bytes (zeros for the first).
    pub previous: [u8; 32],
    /// The key epoch the previous manifest is sealed under.
    pub previous_epoch: u32,
}

const MANIFEST_MAGIC: &[u8; 8] = b"VBAKMNFT";
/// The manifest's version: 3 is sealed under a generation key (the token in the head records)
/// behind a clear header; 2 names each index's key epoch and the previous manifest's; 1 (all
/// epoch 0) still opens.
const MANIFEST_VERSION: u16 = 3;
const MANIFEST_V2: u16 = 2;
/// The clear header of a version 3 manifest: magic, version, generation, previous generation,
/// previous hash, previous epoch.
const MANIFEST_V3_HEADER_LEN: usize = 8 + 2 + 8 + 8 + 32 + 4;

impl Manifest {
    /// The body both sealed versions share from `created_at` on, with tree chunks keyed
    /// (version 3) or not (version 2).
    fn encode_body(&self, keyed: bool, out: &mut Vec<u8>) -> Result<()> {
        let too_big = |_| Error::Internal("manifest too large");
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&u32::try_from(self.indexes.len()).map_err(too_big)?.to_le_bytes());
        for index in &self.indexes {
            out.extend_from_slice(&index.id);
            out.extend_from_slice(&index.epoch.to_le_bytes());
        }
        out.extend_from_slice(&u32::try_from(self.snapshots.len()).map_err(too_big)?.to_le_bytes());
        for s in &self.snapshots {
            out.extend_from_slice(&s.generation.to_le_bytes());
            out.extend_from_slice(&s.created_at.to_le_bytes());
            out.extend_from_slice(&s.export_len.to_le_bytes());
            out.extend_from_slice(&s.media_count.to_le_bytes());
            out.extend_from_slice(&u32::try_from(s.tree_chunks.len()).map_err(too_big)?.to_le_bytes());
            for chunk in &s.tree_chunks {
                out.extend_from_slice(&chunk.id.0);
                match (&chunk.key, keyed) {
                    (Some(key), true) => out.extend_from_slice(&key.0),
                    (None, false) => {}
                    _ => return Err(Error::Internal("a manifest's tree chunks do not match its version")),
                }
            }
        }
        Ok(())
    }

    /// Seals the manifest (version 3) under generation `self.generation`'s key from `token`:
    /// `"VBAKMNFT" ‖ u16 3 ‖ u64 generation ‖ u64 previous generation ‖ previous (32) ‖ u32
    /// previous epoch` in the clear,
    /// then a sealed box (XChaCha20-Poly1305) of `i64 created_at ‖ u32 k ‖ (index id (16) ‖ u32
    /// epoch)* ‖ u32 s ‖ snapshot*`, snapshot = `u64 generation ‖ i64 created_at ‖ u64 export
    /// length ‖ u32 media count ‖ u32 t ‖ (chunk id (32) ‖ chunk key (32))*`, whose associated data
    /// is the clear header followed by the name `manifest-<generation>`.
    pub fn seal_with_token(&self, keys: &BackupKeys, token: &GenerationToken) -> Result<Vec<u8>> {
        let header = self.v3_header();
        let mut body = zeroize::Zeroizing::new(Vec::new());
        self.encode_body(true, &mut body)?;
        let key = keys.current().generation_key(token, self.generation);
        let mut out = header.to_vec();
        out.extend_from_slice(&aead::seal(&key, &v3_aad(&header, self.generation), &body));
        Ok(out)
    }

    fn v3_header(&self) -> [u8; MANIFEST_V3_HEADER_LEN] {
        let mut header = [0u8; MANIFEST_V3_HEADER_LEN];
        header[..8].copy_from_slice(MANIFEST_MAGIC);
        header[8..10].copy_from_slice(&MANIFEST_VERSION.to_le_bytes());
        header[10..18].copy_from_slice(&self.generation.to_le_bytes());
        header[18..26].copy_from_slice(&self.previous_generation.to_le_bytes());
        header[26..58].copy_from_slice(&self.previous);
        header[58..].copy_from_slice(&self.previous_epoch.to_le_bytes());
        header
    }

    /// Seals the manifest as version 2 under the current key epoch (a backup written before
    /// forward secrecy, pruned): `u64 generation ‖ previous (32) ‖ u32 previous epoch ‖ i64
    /// created_at ‖ u32 k ‖ (index id (16) ‖ u32 epoch)* ‖ u32 s ‖ snapshot*`, snapshot = `u64
    /// generation ‖ i64 created_at ‖ u64 export length ‖ u32 media count ‖ u32 t ‖ chunk id*`.
    pub fn seal(&self, keys: &BackupKeys) -> Result<Vec<u8>> {
        if self.previous_generation != self.generation.saturating_sub(1) {
            return Err(Error::Internal("a version 2 manifest follows the generation before it"));
        }
        let mut out = zeroize::Zeroizing::new(Vec::new());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.previous);
        out.extend_from_slice(&self.previous_epoch.to_le_bytes());
        self.encode_body(false, &mut out)?;
        let name = manifest_name(self.generation);
        Ok(aead::seal(keys.manifest_key(), &versioned_aad(MANIFEST_MAGIC, MANIFEST_V2, &name), &out))
    }

    /// The clear header of a version 3 manifest, if `sealed` is one.
    fn v3_parts(sealed: &[u8]) -> Option<(&[u8; MANIFEST_V3_HEADER_LEN], &[u8])> {
        let (header, boxed) = sealed.split_first_chunk::<MANIFEST_V3_HEADER_LEN>()?;
        (&header[..8] == MANIFEST_MAGIC && header[8..10] == MANIFEST_VERSION.to_le_bytes()).then_some((header, boxed))
    }

    /// Opens the manifest stored as `manifest-<generation>` under key epoch `epoch`, checking it
    /// says it is that generation: version 3 under the generation key from `token` (the head
    /// record's), versions 2 and 1 under the epoch's manifest key.
    pub fn open(
        keys: &BackupKeys,
        epoch: u32,
        generation: u64,
        sealed: &[u8],
        token: Option<&GenerationToken>,
    ) -> Result<Self> {
        let name = manifest_name(generation);
        if sealed.len() > MAX_OBJECT_LEN {
            return Err(malformed("manifest"));
        }
        let epoch_keys = keys.epoch(epoch)?;
        if let Some((header, boxed)) = Self::v3_parts(sealed) {
            let link = Self::parse_v3_header(header, generation)?;
            let token = token.ok_or_else(|| Error::Integrity {
                object: DataKind::BackupHead,
                problem: format!("backup {name} needs its generation's token, and the head record carries none"),
            })?;
            let key = epoch_keys.generation_key(token, generation);
            let plain = aead::open(&key, &v3_aad(header, generation), boxed).map_err(|_| failed("manifest", &name))?;
            let mut r = Reader { bytes: plain.expose_secret(), what: "manifest" };
            let manifest = Self::decode_body(&mut r, generation, link, true, MANIFEST_VERSION)?;
            r.finish()?;
            return Ok(manifest);
        }
        let key = epoch_keys.manifest_key();
        let (plain, version) = match aead::open(key, &versioned_aad(MANIFEST_MAGIC, MANIFEST_V2, &name), sealed) {
            Ok(plain) => (plain, MANIFEST_V2),
            Err(_) => (aead::open(key, &aad(MANIFEST_MAGIC, &name), sealed).map_err(|_| failed("manifest", &name))?, 1),
        };
        let mut r = Reader { bytes: plain.expose_secret(), what: "manifest" };
        let stated = r.u64()?;
        if stated != generation {
            return Err(Error::Integrity {
                object: DataKind::BackupSnapshot,
                problem: format!("backup {name} claims another generation"),
            });
        }
        let previous = r.array()?;
        let previous_epoch = if version == 1 { 0 } else { r.u32()? };
        let link = ManifestLink { previous_generation: generation.saturating_sub(1), previous, previous_epoch };
        let manifest = Self::decode_body(&mut r, generation, link, false, version)?;
        r.finish()?;
        Ok(manifest)
    }

    fn decode_body(r: &mut Reader<'_>, generation: u64, link: ManifestLink, keyed: bool, version: u16) -> Result<Self> {
        let created_at = r.u64()? as i64;
        let indexes = if version == 1 {
            let k = r.count(16)?;
            (0..k).map(|_| Ok(IndexRef { id: r.array()?, epoch: 0 })).collect::<Result<_>>()?
        } else {
            let k = r.count(20)?;
            (0..k).map(|_| Ok(IndexRef { id: r.array()?, epoch: r.u32()? })).collect::<Result<_>>()?
        };
        let s = r.count(32)?;
        let mut snapshots = Vec::with_capacity(s);
        for _ in 0..s {
            let generation = r.u64()?;
            let created_at = r.u64()? as i64;
            let export_len = r.u64()?;
            let media_count = r.u32()?;
            let tree_chunks = r.chunk_refs(keyed)?;
            snapshots.push(SnapshotEntry { generation, created_at, tree_chunks, export_len, media_count });
        }
        Ok(Self {
            generation,
            previous_generation: link.previous_generation,
            previous: link.previous,
            previous_epoch: link.previous_epoch,
            created_at,
            indexes,
            snapshots,
        })
    }

    fn parse_v3_header(header: &[u8; MANIFEST_V3_HEADER_LEN], generation: u64) -> Result<ManifestLink> {
        let mut r = Reader { bytes: &header[10..], what: "manifest" };
        if r.u64()? != generation {
            return Err(Error::Integrity {
                object: DataKind::BackupSnapshot,
                problem: format!("backup {} claims another generation", manifest_name(generation)),
            });
        }
        let previous_generation = r.u64()?;
        if previous_generation >= generation {
            return Err(malformed("manifest"));
        }
        Ok(ManifestLink { previous_generation, previous: r.array()?, previous_epoch: r.u32()? })
    }

    /// The link to its predecessor of the manifest stored as `manifest-<generation>`, whose bytes
    /// the caller has already pinned by hash: read from a version 3 manifest's clear header (no
    /// key needed, so a device walks back past generations whose tokens are gone), or from an
    /// older manifest opened under epoch `epoch`.
    pub fn link(keys: &BackupKeys, epoch: u32, generation: u64, sealed: &[u8]) -> Result<ManifestLink> {
        match Self::v3_parts(sealed) {
            Some((header, _)) => Self::parse_v3_header(header, generation),
            None => Self::open(keys, epoch, generation, sealed, None).map(|m| m.link_of()),
        }
    }
}

impl Manifest {
    /// This manifest's link to its predecessor.
    pub fn link_of(&self) -> ManifestLink {
        ManifestLink {
            previous_generation: self.previous_generation,
            previous: self.previous,
            previous_epoch: self.previous_epoch,
        }
    }
}

fn v3_aad(header: &[u8; MANIFEST_V3_HEADER_LEN], generation: u64) -> Vec<u8> {
    let name = manifest_name(generation);
    let mut aad = Vec::with_capacity(MANIFEST_V3_HEADER_LEN + name.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(name.as_bytes());
    aad
}

// ---- bridges ----------------------------------------------------------------------------------

const BRIDGE_MAGIC: &[u8; 8] = b"VBAKBRDG";
const BRIDGE_VERSION: u16 = 1;

/// Name of the bridge to generation `generation`.
pub fn bridge_name(generation: u64) -> String {
    format!("bridge-{generation:016x}")
}

fn bridge_aad(previous_generation: u64, generation: u64) -> Vec<u8> {
    let mut aad = versioned_aad(BRIDGE_MAGIC, BRIDGE_VERSION, &bridge_name(generation));
    aad.extend_from_slice(&previous_generation.to_le_bytes());
    aad
}

/// Seals generation `generation`'s token under generation `previous_generation`'s key (from
/// `previous`, its token): `bridge-<generation>`, a sealed box (XChaCha20-Poly1305) of the 32
/// bytes whose associated data is `"VBAKBRDG" ‖ u16 1 ‖ name ‖ u64 previous generation`. Whoever
/// recovers the previous token (a threshold of guardians that had not yet taken the new one when
/// a run stopped) walks forward to the newer generation; no bridge leads backwards.
pub fn seal_bridge(
    keys: &BackupKeys,
    previous: &GenerationToken,
    previous_generation: u64,
    token: &GenerationToken,
    generation: u64,
) -> Vec<u8> {
    let key = keys.current().generation_key(previous, previous_generation);
    aead::seal(&key, &bridge_aad(previous_generation, generation), &token.0)
}

/// Opens `bridge-<generation>` with generation `previous_generation`'s token, under key epoch
/// `epoch` (the newer generation's manifest epoch).
pub fn open_bridge(
    keys: &BackupKeys,
    epoch: u32,
    previous: &GenerationToken,
    previous_generation: u64,
    generation: u64,
    sealed: &[u8],
) -> Result<GenerationToken> {
    let key = keys.epoch(epoch)?.generation_key(previous, previous_generation);
    let plain = aead::open(&key, &bridge_aad(previous_generation, generation), sealed)
        .map_err(|_| failed("bridge", &bridge_name(generation)))?;
    let token: [u8; 32] = plain.expose_secret().try_into().map_err(|_| malformed("bridge"))?;
    Ok(GenerationToken(token))
}

/// The hash that chains manifests and that the head record names: BLAKE3 of the sealed bytes.
pub fn manifest_hash(sealed: &[u8]) -> [u8; 32] {
    *blake3::hash(sealed).as_bytes()
}

// ---- head record -------------------------------------------------------------------------------

const HEAD_MAGIC: &[u8; 8] = b"VBAKHEAD";
/// The head record's version: 4 carries the generation's token; 3 names its manifest's key
/// epoch; 2 (the writing device, no epoch) and 1 (40 bytes, no writer) still open under a
/// backup's first epoch.
const HEAD_VERSION: u16 = 4;
const HEAD_V3: u16 = 3;
/// Most holders a generation token is shared among (a policy's guardians).
const MAX_TOKEN_HOLDERS: u8 = 8;
/// Longest writer device id a head record holds (guardians' ids are 32 hex digits).
pub const MAX_WRITER_ID_LEN: usize = 64;
const HEAD_V2_LEN: usize = 8 + 32 + 1 + MAX_WRITER_ID_LEN + 8;
const HEAD_V3_LEN: usize = HEAD_V2_LEN + 4;
const HEAD_V4_LEN: usize = HEAD_V3_LEN + 2 + 32;

/// The device that writes a backup: its enrolment's device id at the data guardian, and since
/// when (the time it took the backup over, or its first run), milliseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer {
    /// The device id at the data guardian (printable ASCII, at most [`MAX_WRITER_ID_LEN`] bytes).
    pub device: String,
    /// Since when it writes.
    pub since_ms: i64,
}

impl Writer {
    /// A writer, checking the id fits a head record.
    pub fn new(device: &str, since_ms: i64) -> Result<Self> {
        if device.is_empty() || device.len() > MAX_WRITER_ID_LEN || !device.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Internal("a device id that does not fit a head record"));
        }
        Ok(Self { device: device.to_owned(), since_ms })
    }
}

// Beside `Head` rather than in `keys.rs`, which knows nothing of the objects' formats.
impl BackupKeys {
    /// The token that opens the manifest `head` names: the one the head carries whole, else the
    /// one these keys know for its generation; `None` when neither (a share alone, or a head of
    /// the format before forward secrecy, which needs none).
    pub(crate) fn token_for(&self, head: &Head) -> Option<GenerationToken> {
        match &head.token {
            Some(TokenPart::Whole(token)) => Some(token.clone()),
            Some(TokenPart::Share(_)) => self.known_token(head.generation).cloned(),
            None => None,
        }
    }
}

/// The newest generation, its manifest hash and the device that writes the backup, as kept in
/// the server's head record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Newest generation.
    pub generation: u64,
    /// Hash of its sealed manifest.
    pub manifest_hash: [u8; 32],
    /// The writing device; `None` for a record of version 1 or one written without a device
    /// (a backup directory).
    pub writer: Option<Writer>,
    /// The key epoch its manifest is sealed under (0 for versions 1 and 2).
    pub manifest_epoch: u32,
    /// What this holder keeps of the generation's token (its version 3 manifest's key is derived
    /// from the token): the token, or one share of it; `None` for a record of version 3 or older,
    /// whose manifest is sealed under the epoch's key.
    pub token: Option<TokenPart>,
}

impl Head {
    /// Seals the head record under the current key epoch: version 4 with a token, version 3
    /// without. Version 3 is `u64 generation ‖ manifest hash (32) ‖ u8 n ‖ writer id (n bytes,
    /// then zeros to 64) ‖ i64 writer since ms ‖ u32 manifest epoch` (n = 0 and since = 0 is "no
    /// writer"); version 4 appends the token part: `u8 threshold ‖ u8 index ‖ 32 bytes`, either
    /// threshold 1, index 0 and the token, or a threshold of 2 or more, the share's index (the
    /// holder's position plus one) and the share.
    pub fn seal(&self, keys: &BackupKeys) -> Vec<u8> {
        let mut out = zeroize::Zeroizing::new([0u8; HEAD_V4_LEN]);
        out[..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..40].copy_from_slice(&self.manifest_hash);
        if let Some(w) = &self.writer {
            // `Writer::new` bounds the id; a longer one is cut rather than overflow.
            let id = &w.device.as_bytes()[..w.device.len().min(MAX_WRITER_ID_LEN)];
            out[40] = id.len() as u8;
            out[41..41 + id.len()].copy_from_slice(id);
            out[41 + MAX_WRITER_ID_LEN..HEAD_V2_LEN].copy_from_slice(&w.since_ms.to_le_bytes());
        }
        out[HEAD_V2_LEN..HEAD_V3_LEN].copy_from_slice(&self.manifest_epoch.to_le_bytes());
        match &self.token {
            Some(part) => {
                let (threshold, index, value) = match part {
                    TokenPart::Whole(token) => (1, 0, &token.0),
                    TokenPart::Share(share) => (share.threshold, share.index, &share.value),
                };
                out[HEAD_V3_LEN] = threshold;
                out[HEAD_V3_LEN + 1] = index;
                out[HEAD_V3_LEN + 2..].copy_from_slice(value);
                aead::seal(keys.head_key(), &head_aad(HEAD_VERSION), &out[..])
            }
            None => aead::seal(keys.head_key(), &head_aad(HEAD_V3), &out[..HEAD_V3_LEN]),
        }
    }

    /// Opens the head record under the current key epoch. Under a backup's first epoch a record
    /// of version 2 or 1 opens too. After a rotation, a record still sealed under the previous
    /// epoch opens only if it is the head the rotation started from (the keyring's rotation
    /// point): that is the state a rotation interrupted before its re-seal leaves, and nothing
    /// else sealed under an old key is accepted.
    pub fn open(keys: &BackupKeys, sealed: &[u8]) -> Result<Self> {
        if sealed.len() > MAX_OBJECT_LEN {
            return Err(malformed("head record"));
        }
        let current = keys.current_epoch();
        if let Some(head) = Self::open_under(keys.current(), current == 0, sealed) {
            return head;
        }
        if let (Some(point), Some(previous)) = (keys.rotation(), current.checked_sub(1))
            && point.generation > 0
            && let Some(head) = Self::open_under(keys.epoch(previous)?, previous == 0, sealed)
        {
            let head = head?;
            if head.generation == point.generation && head.manifest_hash == point.manifest_hash {
                return Ok(head);
            }
            return Err(Error::Integrity {
                object: DataKind::BackupHead,
                problem: "the head record is sealed under the key before the last rotation and is not the one \
                          the rotation started from (written by someone holding an old key)"
                    .into(),
            });
        }
        Err(failed("head record", "head"))
    }

    /// Whether `sealed` opens under the current key epoch itself (not through the rotation
    /// point): a rotation re-seals a head that does not.
    pub(crate) fn sealed_under_current(keys: &BackupKeys, sealed: &[u8]) -> bool {
        Self::open_under(keys.current(), keys.current_epoch() == 0, sealed).is_some_and(|h| h.is_ok())
    }

    /// The record opened under one epoch's head key (`legacy`: versions 2 and 1 too); `None`
    /// when it does not authenticate under that key.
    fn open_under(keys: &super::keys::EpochKeys, legacy: bool, sealed: &[u8]) -> Option<Result<Self>> {
        if let Ok(plain) = aead::open(keys.head_key(), &head_aad(HEAD_VERSION), sealed) {
            return Some(Self::decode_v4(plain.expose_secret()));
        }
        if let Ok(plain) = aead::open(keys.head_key(), &head_aad(HEAD_V3), sealed) {
            return Some(Self::decode_v3(plain.expose_secret()));
        }
        if !legacy {
            return None;
        }
        if let Ok(plain) = aead::open(keys.head_key(), &head_aad(2), sealed) {
            return Some(Self::decode_v2(plain.expose_secret()));
        }
        let plain = aead::open(keys.head_key(), &aad(HEAD_MAGIC, "head"), sealed).ok()?;
        let mut r = Reader { bytes: plain.expose_secret(), what: "head record" };
        Some((|| {
            let generation = r.u64()?;
            let manifest_hash = r.array()?;
            r.finish()?;
            Ok(Self { generation, manifest_hash, writer: None, manifest_epoch: 0, token: None })
        })())
    }

    fn decode_v4(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != HEAD_V4_LEN {
            return Err(malformed("head record"));
        }
        let mut head = Self::decode_v3(&bytes[..HEAD_V3_LEN])?;
        let value: [u8; 32] = bytes[HEAD_V3_LEN + 2..].try_into().map_err(|_| malformed("head record"))?;
        head.token = Some(match (bytes[HEAD_V3_LEN], bytes[HEAD_V3_LEN + 1]) {
            (1, 0) => TokenPart::Whole(GenerationToken(value)),
            (threshold @ 2.., index @ 1..) if index <= MAX_TOKEN_HOLDERS => {
                TokenPart::Share(TokenShare { threshold, index, value })
            }
            _ => return Err(malformed("head record")),
        });
        Ok(head)
    }

    fn decode_v3(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != HEAD_V3_LEN {
            return Err(malformed("head record"));
        }
        let mut head = Self::decode_v2(&bytes[..HEAD_V2_LEN])?;
        head.manifest_epoch =
            u32::from_le_bytes(bytes[HEAD_V2_LEN..].try_into().map_err(|_| malformed("head record"))?);
        Ok(head)
    }

    fn decode_v2(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, what: "head record" };
        let generation = r.u64()?;
        let manifest_hash = r.array()?;
        let n = usize::from(r.array::<1>()?[0]);
        let id: [u8; MAX_WRITER_ID_LEN] = r.array()?;
        let since_ms = r.u64()? as i64;
        r.finish()?;
        if n > MAX_WRITER_ID_LEN || id[n..].iter().any(|&b| b != 0) {
            return Err(malformed("head record"));
        }
        let writer = match n {
            0 if since_ms == 0 => None,
            0 => return Err(malformed("head record")),
            _ => {
                let device = std::str::from_utf8(&id[..n]).map_err(|_| malformed("head record"))?;
                Some(Writer::new(device, since_ms).map_err(|_| malformed("head record"))?)
            }
        };
        Ok(Self { generation, manifest_hash, writer, manifest_epoch: 0, token: None })
    }
}

fn head_aad(version: u16) -> Vec<u8> {
    let mut aad = Vec::with_capacity(14);
    aad.extend_from_slice(HEAD_MAGIC);
    aad.extend_from_slice(&version.to_le_bytes());
    aad.extend_from_slice(b"head");
    aad
}

/// Seals a version-1 head record (no writer), as builds before version 2 wrote it: for tests
/// that an old record still opens.
#[cfg(test)]
pub(crate) fn seal_head_v1(keys: &BackupKeys, generation: u64, manifest_hash: &[u8; 32]) -> Vec<u8> {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&generation.to_le_bytes());
    out[8..].copy_from_slice(manifest_hash);
    seal(keys.head_key(), HEAD_MAGIC, "head", &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seed: u8) -> BackupKeys {
        BackupKeys::derive(&SecretKey::from_bytes([seed; 32]))
    }

    fn manifest() -> Manifest {
        Manifest {
            generation: 7,
            previous_generation: 6,
            previous: [9; 32],
            previous_epoch: 0,
            created_at: 1_700_000_000_000,
            indexes: vec![IndexRef { id: [1; 16], epoch: 0 }, IndexRef { id: [2; 16], epoch: 0 }],
            snapshots: vec![SnapshotEntry {
                generation: 7,
                created_at: 5,
                tree_chunks: vec![ChunkRef { id: ChunkId([3; 32]), key: None }],
                export_len: 1234,
                media_count: 2,
            }],
        }
    }

    #[test]
    fn objects_round_trip_and_refuse_other_names_keys_and_tampering() {
        let k = keys(1);
        let sealed = manifest().seal(&k).unwrap();
        assert_eq!(Manifest::open(&k, 0, 7, &sealed, None).unwrap(), manifest());
        assert!(
            matches!(Manifest::open(&k, 0, 8, &sealed, None), Err(Error::Integrity { .. })),
            "replayed under another generation"
        );
        assert!(matches!(Manifest::open(&keys(2), 0, 7, &sealed, None), Err(Error::Integrity { .. })));
        for i in [0, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(matches!(Manifest::open(&k, 0, 7, &bad, None), Err(Error::Integrity { .. })));
        }

        let locations = vec![Location {
            pack: [4; 16],
            entry: PackEntry { id: ChunkId([5; 32]), offset: 10, sealed_len: 99 },
            epoch: 0,
        }];
        let sealed = seal_index(&k, "index-a", &locations).unwrap();
        assert_eq!(open_index(&k, 0, "index-a", &sealed).unwrap(), locations);
        assert!(open_index(&k, 0, "index-b", &sealed).is_err(), "an index object moved to another name");
        assert!(open_index(&k, 1, "index-a", &sealed).is_err(), "an epoch this key does not reach");

        let head = Head { generation: 3, manifest_hash: [6; 32], writer: None, manifest_epoch: 0, token: None };
        assert_eq!(Head::open(&k, &head.seal(&k)).unwrap(), head);
        assert!(Head::open(&keys(3), &head.seal(&k)).is_err());

        let tree = Tree {
            export_len: 77,
            export_chunks: vec![
                ChunkRef { id: ChunkId([1; 32]), key: Some(ChunkKey([11; 32])) },
                ChunkRef { id: ChunkId([2; 32]), key: Some(ChunkKey([12; 32])) },
            ],
            media: vec![MediaEntry { media_id: [8; 16], file_len: 4096 }],
        };
        assert_eq!(Tree::decode(&tree.encode().unwrap()).unwrap(), tree);
        let encoded = tree.encode().unwrap();
        for cut in 0..encoded.len() {
            assert!(Tree::decode(&encoded[..cut]).is_err(), "truncated at {cut}");
        }
    }

    fn keyed_manifest() -> Manifest {
        let mut m = manifest();
        m.snapshots[0].tree_chunks = vec![
            ChunkRef { id: ChunkId([3; 32]), key: Some(ChunkKey([30; 32])) },
            ChunkRef { id: ChunkId([4; 32]), key: Some(ChunkKey([40; 32])) },
        ];
        m
    }

    #[test]
    fn a_version_3_manifest_opens_only_with_its_generations_token() {
        let k = keys(1);
        let token = GenerationToken([21; 32]);
        let sealed = keyed_manifest().seal_with_token(&k, &token).unwrap();
        assert_eq!(Manifest::open(&k, 0, 7, &sealed, Some(&token)).unwrap(), keyed_manifest());
        // Without the token, with another generation's token, or under the right token and
        // backup key but as another generation: nothing opens.
        let error = Manifest::open(&k, 0, 7, &sealed, None).unwrap_err();
        assert!(error.to_string().contains("token"), "{error}");
        assert!(Manifest::open(&k, 0, 7, &sealed, Some(&GenerationToken([22; 32]))).is_err());
        assert!(Manifest::open(&keys(2), 0, 7, &sealed, Some(&token)).is_err());
        assert!(Manifest::open(&k, 0, 8, &sealed, Some(&token)).is_err());
        for i in [0, 9, 12, 20, 30, 60, 70, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(Manifest::open(&k, 0, 7, &bad, Some(&token)).is_err(), "bit flipped at {i}");
        }
        // The chain link is read without any key; an older manifest's is read by opening it.
        let link = Manifest::link(&keys(9), 0, 7, &sealed).unwrap();
        assert_eq!(link, ManifestLink { previous_generation: 6, previous: [9; 32], previous_epoch: 0 });
        assert!(Manifest::link(&k, 0, 8, &sealed).is_err(), "a manifest under another generation's name");
        assert_eq!(Manifest::link(&k, 0, 7, &manifest().seal(&k).unwrap()).unwrap(), link);
        // A skipped generation is carried by a version 3 manifest only.
        let skipped = Manifest { previous_generation: 5, ..keyed_manifest() };
        let sealed = skipped.seal_with_token(&k, &token).unwrap();
        assert_eq!(Manifest::open(&k, 0, 7, &sealed, Some(&token)).unwrap(), skipped);
        assert_eq!(Manifest::link(&k, 0, 7, &sealed).unwrap().previous_generation, 5);
        assert!(Manifest { previous_generation: 5, ..manifest() }.seal(&k).is_err());
        // The version 2 sealing takes no keys, the version 3 one needs every key.
        assert!(keyed_manifest().seal(&k).is_err());
        assert!(manifest().seal_with_token(&k, &token).is_err());
    }

    #[test]
    fn a_version_4_head_carries_its_token_and_older_versions_none() {
        let k = keys(1);
        let head = Head {
            generation: 9,
            manifest_hash: [4; 32],
            writer: None,
            manifest_epoch: 0,
            token: Some(TokenPart::Whole(GenerationToken([5; 32]))),
        };
        let sealed = head.seal(&k);
        assert_eq!(sealed.len(), 24 + HEAD_V4_LEN + 16);
        assert_eq!(Head::open(&k, &sealed).unwrap(), head);
        assert!(Head::open(&keys(2), &sealed).is_err());
        let v3 = Head { token: None, ..head.clone() };
        assert_eq!(v3.seal(&k).len(), 24 + HEAD_V3_LEN + 16);
        assert_eq!(Head::open(&k, &v3.seal(&k)).unwrap(), v3);
        let share = Head {
            token: Some(TokenPart::Share(TokenShare { threshold: 2, index: 3, value: [6; 32] })),
            ..head.clone()
        };
        assert_eq!(Head::open(&k, &share.seal(&k)).unwrap(), share);
        let mut short = [0u8; HEAD_V4_LEN - 1];
        short[..8].copy_from_slice(&9u64.to_le_bytes());
        assert!(Head::decode_v4(&short).is_err());
        // A whole token with an index, a share with a threshold of 1 or index 0 or 9: refused.
        for (threshold, index) in [(1, 1), (2, 0), (1, 9), (0, 0), (3, 9)] {
            let mut plain = [0u8; HEAD_V4_LEN];
            plain[HEAD_V3_LEN] = threshold;
            plain[HEAD_V3_LEN + 1] = index;
            assert!(Head::decode_v4(&plain).is_err(), "threshold {threshold}, index {index}");
        }
        assert!(format!("{head:?}").contains("REDACTED") && !format!("{head:?}").contains("5, 5"));
    }

    #[test]
    fn a_bridge_opens_only_with_the_previous_generations_token() {
        let k = keys(1);
        let (old, new) = (GenerationToken([1; 32]), GenerationToken([2; 32]));
        let sealed = seal_bridge(&k, &old, 4, &new, 5);
        assert_eq!(open_bridge(&k, 0, &old, 4, 5, &sealed).unwrap(), new);
        assert!(open_bridge(&k, 0, &new, 4, 5, &sealed).is_err(), "the new token opens no bridge to itself");
        assert!(open_bridge(&k, 0, &old, 3, 5, &sealed).is_err());
        assert!(open_bridge(&k, 0, &old, 4, 6, &sealed).is_err(), "a bridge moved to another name");
        assert!(open_bridge(&keys(2), 0, &old, 4, 5, &sealed).is_err());
    }

    #[test]
    fn a_version_1_tree_decodes_without_keys() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(TREE_MAGIC);
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&77u64.to_le_bytes());
        bytes.extend_from_slice(&1u32.to_le_bytes());
        bytes.extend_from_slice(&[1; 32]);
        bytes.extend_from_slice(&0u32.to_le_bytes());
        let tree = Tree::decode(&bytes).unwrap();
        assert_eq!(tree.export_chunks, vec![ChunkRef { id: ChunkId([1; 32]), key: None }]);
        assert!(tree.encode().is_err(), "a tree is written with every chunk's key");
        bytes[8] = 3;
        assert!(matches!(Tree::decode(&bytes), Err(Error::UnsupportedVersion { .. })));
    }

    #[test]
    fn head_records_name_their_writer_and_version_1_still_opens_without_one() {
        let k = keys(1);
        let writer = Writer::new(&"ab".repeat(16), 1_700_000_000_123).unwrap();
        let head = Head { generation: 9, manifest_hash: [4; 32], writer: Some(writer), manifest_epoch: 0, token: None };
        let sealed = head.seal(&k);
        assert_eq!(sealed.len(), 24 + HEAD_V3_LEN + 16, "fixed size whatever the writer");
        assert_eq!(sealed.len(), Head { writer: None, ..head.clone() }.seal(&k).len());
        assert_eq!(Head::open(&k, &sealed).unwrap(), head);
        for i in [0, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(Head::open(&k, &bad).is_err());
        }
        let old = seal_head_v1(&k, 5, &[7; 32]);
        assert_eq!(
            Head::open(&k, &old).unwrap(),
            Head { generation: 5, manifest_hash: [7; 32], writer: None, manifest_epoch: 0, token: None }
        );
        assert!(Writer::new("", 1).is_err());
        assert!(Writer::new(&"a".repeat(65), 1).is_err());
        assert!(Writer::new("a b", 1).is_err());
        // Non-zero padding after the id, or a time without an id, is refused.
        let mut plain = [0u8; HEAD_V2_LEN];
        plain[40] = 1;
        plain[41] = b'a';
        plain[42] = b'b';
        assert!(Head::decode_v2(&plain).is_err());
        let mut plain = [0u8; HEAD_V2_LEN];
        plain[HEAD_V2_LEN - 1] = 1;
        assert!(Head::decode_v2(&plain).is_err());
    }

    /// A backup rotated to epoch 1: keys `[1; 32]` (epoch 0) then `[2; 32]`, rotated at
    /// generation 4.
    fn rotated() -> (BackupKeys, BackupKeys) {
        use super::super::keys::{Keyring, RotationPoint};
        let old = keys(1);
        let keyring = Keyring {
            earlier: vec![SecretKey::from_bytes([1; 32])],
            rotation: RotationPoint { generation: 4, manifest_hash: [4; 32] },
        };
        (old, BackupKeys::with_keyring(&SecretKey::from_bytes([2; 32]), Some(&keyring)))
    }

    #[test]
    fn a_new_epoch_reads_old_objects_and_an_old_key_reads_nothing_new() {
        let (old, new) = rotated();
        assert_eq!(new.current_epoch(), 1);
        assert_eq!(new.chunk_id(b"x"), old.chunk_id(b"x"), "deduplication keys stay across epochs");
        // Written before the rotation: opens under its epoch with the new keyring.
        let before = manifest().seal(&old).unwrap();
        assert_eq!(Manifest::open(&new, 0, 7, &before, None).unwrap(), manifest());
        // Written after: the old key opens none of it.
        let mut after = manifest();
        after.indexes.push(IndexRef { id: [3; 16], epoch: 1 });
        let sealed = after.seal(&new).unwrap();
        assert_eq!(Manifest::open(&new, 1, 7, &sealed, None).unwrap(), after);
        assert!(Manifest::open(&old, 0, 7, &sealed, None).is_err());
        assert!(Manifest::open(&new, 0, 7, &sealed, None).is_err(), "opened only under the epoch that names it");
        let head = Head { generation: 8, manifest_hash: [8; 32], writer: None, manifest_epoch: 1, token: None };
        assert!(Head::open(&old, &head.seal(&new)).is_err());
        let index = seal_index(&new, "index-c", &[]).unwrap();
        assert!(open_index(&old, 0, "index-c", &index).is_err());
    }

    #[test]
    fn after_a_rotation_an_old_key_head_opens_only_at_the_rotation_point() {
        let (old, new) = rotated();
        let at_rotation = Head { generation: 4, manifest_hash: [4; 32], writer: None, manifest_epoch: 0, token: None };
        assert_eq!(Head::open(&new, &at_rotation.seal(&old)).unwrap(), at_rotation);
        assert!(!Head::sealed_under_current(&new, &at_rotation.seal(&old)));
        assert!(Head::sealed_under_current(&new, &at_rotation.seal(&new)));
        // Whoever holds the old key cannot pass off another head record.
        for forged in
            [Head { generation: 5, ..at_rotation.clone() }, Head { manifest_hash: [5; 32], ..at_rotation.clone() }]
        {
            let error = Head::open(&new, &forged.seal(&old)).unwrap_err();
            assert!(matches!(error, Error::Integrity { object: DataKind::BackupHead, .. }), "{error}");
        }
    }

    #[test]
    fn manifests_of_version_1_still_open_with_every_index_of_epoch_0() {
        let k = keys(1);
        let mut plain = Vec::new();
        plain.extend_from_slice(&7u64.to_le_bytes());
        plain.extend_from_slice(&[9; 32]);
        plain.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
        plain.extend_from_slice(&2u32.to_le_bytes());
        plain.extend_from_slice(&[1; 16]);
        plain.extend_from_slice(&[2; 16]);
        plain.extend_from_slice(&1u32.to_le_bytes());
        plain.extend_from_slice(&7u64.to_le_bytes());
        plain.extend_from_slice(&5i64.to_le_bytes());
        plain.extend_from_slice(&1234u64.to_le_bytes());
        plain.extend_from_slice(&2u32.to_le_bytes());
        plain.extend_from_slice(&1u32.to_le_bytes());
        plain.extend_from_slice(&[3; 32]);
        let sealed = seal(k.manifest_key(), MANIFEST_MAGIC, &manifest_name(7), &plain);
        assert_eq!(Manifest::open(&k, 0, 7, &sealed, None).unwrap(), manifest());
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        // A tree claiming four billion chunks in a few bytes is refused before allocating.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(TREE_MAGIC);
        bytes.extend_from_slice(&TREE_VERSION.to_le_bytes());
        bytes.extend_from_slice(&0u64.to_le_bytes());
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Tree::decode(&bytes), Err(Error::Integrity { .. })));
    }

    #[test]
    fn media_object_names_hide_media_ids() {
        let name = media_object_name(&keys(1), &[7; 16]);
        assert!(name.starts_with("media-") && name.len() == 38);
        assert!(!name.contains(&hex::encode([7u8; 16])));
        assert_ne!(name, media_object_name(&keys(2), &[7; 16]));
    }

    /// A version 3 head record kept as a file, sealed once by `regenerate_golden_head` under the
    /// epoch-1 keys of [`rotated`].
    const GOLDEN_HEAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/head-v3.bin");

    fn golden_head() -> Head {
        Head {
            generation: 5,
            manifest_hash: [5; 32],
            writer: Some(Writer::new("0123456789abcdef0123456789abcdef", 1_700_000_000_000).unwrap()),
            manifest_epoch: 1,
            token: None,
        }
    }

    #[test]
    fn the_version_3_golden_head_opens_under_its_epoch_only() {
        let golden = std::fs::read(GOLDEN_HEAD).unwrap();
        let (old, new) = rotated();
        assert_eq!(Head::open(&new, &golden).unwrap(), golden_head());
        assert!(Head::sealed_under_current(&new, &golden));
        assert!(Head::open(&old, &golden).is_err(), "an old key opens no head of a later epoch");
        // nonce 24 ‖ 117 bytes of plaintext ‖ tag 16
        assert_eq!(golden.len(), 24 + HEAD_V3_LEN + 16);
    }

    /// Rewrites the golden head record (ignored: run by hand only for a new format version).
    #[test]
    #[ignore]
    fn regenerate_golden_head() {
        std::fs::write(GOLDEN_HEAD, golden_head().seal(&rotated().1)).unwrap();
    }
}
