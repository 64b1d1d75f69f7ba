//! The sealed objects of a backup besides packs: index objects, snapshot trees, manifests and the
//! head record (`docs/formats.md`, "Backup objects"). Each is a sealed box (XChaCha20-Poly1305,
//! random nonce) under its own BRK subkey, with associated data naming the kind, the version and
//! the object's name, so an object presented under another name or kind fails to open.

use super::keys::{BackupKeys, ChunkId};
use super::pack::PackEntry;
use crate::crypto::aead;
use crate::error::DataKind;
use crate::error::{Error, Result};
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

    fn finish(self) -> Result<()> {
        if self.bytes.is_empty() { Ok(()) } else { Err(malformed(self.what)) }
    }
}

fn malformed(what: &str) -> Error {
    Error::Integrity { object: DataKind::BackupSnapshot, problem: format!("backup {what} is malformed") }
}

fn aad(magic: &[u8; 8], name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(10 + name.len());
    aad.extend_from_slice(magic);
    aad.extend_from_slice(&VERSION.to_le_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn seal(key: &SecretKey, magic: &[u8; 8], name: &str, plaintext: &[u8]) -> Vec<u8> {
    aead::seal(key, &aad(magic, name), plaintext)
}

fn open(key: &SecretKey, magic: &[u8; 8], name: &str, sealed: &[u8], what: &str) -> Result<crate::SecretBytes> {
    if sealed.len() > MAX_OBJECT_LEN {
        return Err(malformed(what));
    }
    aead::open(key, &aad(magic, name), sealed).map_err(|_| Error::Integrity {
        object: DataKind::BackupSnapshot,
        problem: format!("backup {what} {name} failed authentication"),
    })
}

/// Which sealed object [`seal_for_fuzzing`] makes.
#[cfg(fuzzing)]
#[derive(Clone, Copy)]
pub enum FuzzObject {
    /// `manifest-0000000000000001`.
    Manifest,
    /// `index-00000000000000000000000000000000`.
    Index,
    /// The head record.
    Head,
}

/// Seals arbitrary bytes as the plaintext of an object, so the fuzz targets reach the decoders
/// behind authentication (which see hostile bytes only if the key leaked, and must still refuse
/// them cleanly). Returns the sealed bytes and the object's name. Only in fuzzing builds: anywhere
/// else it would be a sealing oracle.
#[cfg(fuzzing)]
pub fn seal_for_fuzzing(keys: &BackupKeys, object: FuzzObject, plaintext: &[u8]) -> (Vec<u8>, String) {
    match object {
        FuzzObject::Manifest => {
            let name = manifest_name(1);
            (seal(keys.manifest_key(), MANIFEST_MAGIC, &name, plaintext), name)
        }
        FuzzObject::Index => {
            let name = index_name(&[0; 16]);
            (seal(keys.index_key(), INDEX_MAGIC, &name, plaintext), name)
        }
        FuzzObject::Head => (aead::seal(keys.head_key(), &head_aad(HEAD_VERSION), plaintext), "head".to_owned()),
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
}

const INDEX_MAGIC: &[u8; 8] = b"VBAKINDX";
const INDEX_ENTRY_LEN: usize = 32 + 16 + 4 + 4;

/// Seals an index object: `u32 count ‖ (chunk id 32 ‖ pack id 16 ‖ u32 offset ‖ u32 sealed length)*`.
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
    }
    Ok(seal(keys.index_key(), INDEX_MAGIC, name, &out))
}

/// Opens an index object.
pub fn open_index(keys: &BackupKeys, name: &str, sealed: &[u8]) -> Result<Vec<Location>> {
    let plain = open(keys.index_key(), INDEX_MAGIC, name, sealed, "index object")?;
    let mut r = Reader { bytes: plain.expose_secret(), what: "index object" };
    let n = r.count(INDEX_ENTRY_LEN)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = ChunkId(r.array()?);
        let pack = r.array()?;
        let offset = r.u32()?;
        let sealed_len = r.u32()?;
        out.push(Location { pack, entry: PackEntry { id, offset, sealed_len } });
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

/// What a snapshot holds: the export's chunks in order, and the media items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Length of the database export.
    pub export_len: u64,
    /// The export's chunk ids, in order.
    pub export_chunks: Vec<ChunkId>,
    /// Every media item.
    pub media: Vec<MediaEntry>,
}

const TREE_MAGIC: &[u8; 8] = b"VBAKTREE";

impl Tree {
    /// The tree's plaintext (chunked and sealed like export data):
    /// `"VBAKTREE" ‖ u16 1 ‖ u64 export length ‖ u32 n ‖ chunk id* ‖ u32 m ‖ (media id 16 ‖ u64 file length)*`.
    pub fn encode(&self) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let too_big = |_| Error::Internal("snapshot tree too large");
        let mut out =
            zeroize::Zeroizing::new(Vec::with_capacity(26 + self.export_chunks.len() * 32 + self.media.len() * 24));
        out.extend_from_slice(TREE_MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.export_len.to_le_bytes());
        out.extend_from_slice(&u32::try_from(self.export_chunks.len()).map_err(too_big)?.to_le_bytes());
        for id in &self.export_chunks {
            out.extend_from_slice(&id.0);
        }
        out.extend_from_slice(&u32::try_from(self.media.len()).map_err(too_big)?.to_le_bytes());
        for m in &self.media {
            out.extend_from_slice(&m.media_id);
            out.extend_from_slice(&m.file_len.to_le_bytes());
        }
        Ok(out)
    }

    /// Parses a tree's plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader { bytes, what: "snapshot tree" };
        if r.take(8)? != TREE_MAGIC {
            return Err(malformed("snapshot tree"));
        }
        let version = r.u16()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion { what: "backup snapshot tree", found: u64::from(version) });
        }
        let export_len = r.u64()?;
        let n = r.count(32)?;
        let export_chunks = (0..n).map(|_| r.array().map(ChunkId)).collect::<Result<_>>()?;
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
    pub tree_chunks: Vec<ChunkId>,
    /// Length of its database export.
    pub export_len: u64,
    /// Media items in it.
    pub media_count: u32,
}

/// The state of the whole backup at one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Monotonic generation (1 for the first).
    pub generation: u64,
    /// BLAKE3 of the previous manifest's sealed bytes (zeros for the first).
    pub previous: [u8; 32],
    /// When it was written, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Index objects in force.
    pub indexes: Vec<ObjectId>,
    /// Retained snapshots, oldest first.
    pub snapshots: Vec<SnapshotEntry>,
}

const MANIFEST_MAGIC: &[u8; 8] = b"VBAKMNFT";

impl Manifest {
    /// Seals the manifest under its name (`manifest-<generation>`):
    /// `u64 generation ‖ previous (32) ‖ i64 created_at ‖ u32 k ‖ index id (16)* ‖ u32 s ‖ snapshot*`,
    /// snapshot = `u64 generation ‖ i64 created_at ‖ u64 export length ‖ u32 media count ‖ u32 t ‖ chunk id*`.
    pub fn seal(&self, keys: &BackupKeys) -> Result<Vec<u8>> {
        let too_big = |_| Error::Internal("manifest too large");
        let mut out = zeroize::Zeroizing::new(Vec::new());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.previous);
        out.extend_from_slice(&self.created_at.to_le_bytes());
        out.extend_from_slice(&u32::try_from(self.indexes.len()).map_err(too_big)?.to_le_bytes());
        for id in &self.indexes {
            out.extend_from_slice(id);
        }
        out.extend_from_slice(&u32::try_from(self.snapshots.len()).map_err(too_big)?.to_le_bytes());
        for s in &self.snapshots {
            out.extend_from_slice(&s.generation.to_le_bytes());
            out.extend_from_slice(&s.created_at.to_le_bytes());
            out.extend_from_slice(&s.export_len.to_le_bytes());
            out.extend_from_slice(&s.media_count.to_le_bytes());
            out.extend_from_slice(&u32::try_from(s.tree_chunks.len()).map_err(too_big)?.to_le_bytes());
            for id in &s.tree_chunks {
                out.extend_from_slice(&id.0);
            }
        }
        Ok(seal(keys.manifest_key(), MANIFEST_MAGIC, &manifest_name(self.generation), &out))
    }

    /// Opens the manifest stored as `manifest-<generation>`, checking it says it is that generation.
    pub fn open(keys: &BackupKeys, generation: u64, sealed: &[u8]) -> Result<Self> {
        let name = manifest_name(generation);
        let plain = open(keys.manifest_key(), MANIFEST_MAGIC, &name, sealed, "manifest")?;
        let mut r = Reader { bytes: plain.expose_secret(), what: "manifest" };
        let stated = r.u64()?;
        if stated != generation {
            return Err(Error::Integrity {
                object: DataKind::BackupSnapshot,
                problem: format!("backup {name} claims another generation"),
            });
        }
        let previous = r.array()?;
        let created_at = r.u64()? as i64;
        let k = r.count(16)?;
        let indexes = (0..k).map(|_| r.array()).collect::<Result<_>>()?;
        let s = r.count(32)?;
        let mut snapshots = Vec::with_capacity(s);
        for _ in 0..s {
            let generation = r.u64()?;
            let created_at = r.u64()? as i64;
            let export_len = r.u64()?;
            let media_count = r.u32()?;
            let t = r.count(32)?;
            let tree_chunks = (0..t).map(|_| r.array().map(ChunkId)).collect::<Result<_>>()?;
            snapshots.push(SnapshotEntry { generation, created_at, tree_chunks, export_len, media_count });
        }
        r.finish()?;
        Ok(Self { generation, previous, created_at, indexes, snapshots })
    }
}

/// The hash that chains manifests and that the head record names: BLAKE3 of the sealed bytes.
pub fn manifest_hash(sealed: &[u8]) -> [u8; 32] {
    *blake3::hash(sealed).as_bytes()
}

// ---- head record -------------------------------------------------------------------------------

const HEAD_MAGIC: &[u8; 8] = b"VBAKHEAD";
/// The head record's version: 2 names the writing device; 1 (40 bytes, no writer) still opens.
const HEAD_VERSION: u16 = 2;
/// Longest writer device id a head record holds (guardians' ids are 32 hex digits).
pub const MAX_WRITER_ID_LEN: usize = 64;
const HEAD_V2_LEN: usize = 8 + 32 + 1 + MAX_WRITER_ID_LEN + 8;

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
}

impl Head {
    /// Seals the head record (version 2): `u64 generation ‖ manifest hash (32) ‖ u8 n ‖ writer id
    /// (n bytes, then zeros to 64) ‖ i64 writer since ms`; n = 0 (and since = 0) is "no writer".
    pub fn seal(&self, keys: &BackupKeys) -> Vec<u8> {
        let mut out = zeroize::Zeroizing::new([0u8; HEAD_V2_LEN]);
        out[..8].copy_from_slice(&self.generation.to_le_bytes());
        out[8..40].copy_from_slice(&self.manifest_hash);
        if let Some(w) = &self.writer {
            // `Writer::new` bounds the id; a longer one is cut rather than overflow.
            let id = &w.device.as_bytes()[..w.device.len().min(MAX_WRITER_ID_LEN)];
            out[40] = id.len() as u8;
            out[41..41 + id.len()].copy_from_slice(id);
            out[41 + MAX_WRITER_ID_LEN..].copy_from_slice(&w.since_ms.to_le_bytes());
        }
        aead::seal(keys.head_key(), &head_aad(HEAD_VERSION), &out[..])
    }

    /// Opens a head record of version 2, or of version 1 (then with no writer).
    pub fn open(keys: &BackupKeys, sealed: &[u8]) -> Result<Self> {
        if sealed.len() > MAX_OBJECT_LEN {
            return Err(malformed("head record"));
        }
        if let Ok(plain) = aead::open(keys.head_key(), &head_aad(HEAD_VERSION), sealed) {
            return Self::decode_v2(plain.expose_secret());
        }
        let plain = open(keys.head_key(), HEAD_MAGIC, "head", sealed, "head record")?;
        let mut r = Reader { bytes: plain.expose_secret(), what: "head record" };
        let generation = r.u64()?;
        let manifest_hash = r.array()?;
        r.finish()?;
        Ok(Self { generation, manifest_hash, writer: None })
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
        Ok(Self { generation, manifest_hash, writer })
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
            previous: [9; 32],
            created_at: 1_700_000_000_000,
            indexes: vec![[1; 16], [2; 16]],
            snapshots: vec![SnapshotEntry {
                generation: 7,
                created_at: 5,
                tree_chunks: vec![ChunkId([3; 32])],
                export_len: 1234,
                media_count: 2,
            }],
        }
    }

    #[test]
    fn objects_round_trip_and_refuse_other_names_keys_and_tampering() {
        let k = keys(1);
        let sealed = manifest().seal(&k).unwrap();
        assert_eq!(Manifest::open(&k, 7, &sealed).unwrap(), manifest());
        assert!(
            matches!(Manifest::open(&k, 8, &sealed), Err(Error::Integrity { .. })),
            "replayed under another generation"
        );
        assert!(matches!(Manifest::open(&keys(2), 7, &sealed), Err(Error::Integrity { .. })));
        for i in [0, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(matches!(Manifest::open(&k, 7, &bad), Err(Error::Integrity { .. })));
        }

        let locations =
            vec![Location { pack: [4; 16], entry: PackEntry { id: ChunkId([5; 32]), offset: 10, sealed_len: 99 } }];
        let sealed = seal_index(&k, "index-a", &locations).unwrap();
        assert_eq!(open_index(&k, "index-a", &sealed).unwrap(), locations);
        assert!(open_index(&k, "index-b", &sealed).is_err(), "an index object moved to another name");

        let head = Head { generation: 3, manifest_hash: [6; 32], writer: None };
        assert_eq!(Head::open(&k, &head.seal(&k)).unwrap(), head);
        assert!(Head::open(&keys(3), &head.seal(&k)).is_err());

        let tree = Tree {
            export_len: 77,
            export_chunks: vec![ChunkId([1; 32]), ChunkId([2; 32])],
            media: vec![MediaEntry { media_id: [8; 16], file_len: 4096 }],
        };
        assert_eq!(Tree::decode(&tree.encode().unwrap()).unwrap(), tree);
        let encoded = tree.encode().unwrap();
        for cut in 0..encoded.len() {
            assert!(Tree::decode(&encoded[..cut]).is_err(), "truncated at {cut}");
        }
    }

    #[test]
    fn head_records_name_their_writer_and_version_1_still_opens_without_one() {
        let k = keys(1);
        let writer = Writer::new(&"ab".repeat(16), 1_700_000_000_123).unwrap();
        let head = Head { generation: 9, manifest_hash: [4; 32], writer: Some(writer) };
        let sealed = head.seal(&k);
        assert_eq!(sealed.len(), 24 + HEAD_V2_LEN + 16, "fixed size whatever the writer");
        assert_eq!(sealed.len(), Head { writer: None, ..head.clone() }.seal(&k).len());
        assert_eq!(Head::open(&k, &sealed).unwrap(), head);
        for i in [0, 30, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(Head::open(&k, &bad).is_err());
        }
        let old = seal_head_v1(&k, 5, &[7; 32]);
        assert_eq!(Head::open(&k, &old).unwrap(), Head { generation: 5, manifest_hash: [7; 32], writer: None });
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

    #[test]
    fn hostile_counts_do_not_allocate() {
        // A tree claiming four billion chunks in a few bytes is refused before allocating.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(TREE_MAGIC);
        bytes.extend_from_slice(&VERSION.to_le_bytes());
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
}
