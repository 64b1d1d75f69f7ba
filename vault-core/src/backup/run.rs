//! One backup run (`docs/backup.md`): export → keyed CDC → skip known chunks → seal → packs →
//! media objects → snapshot tree → index object → manifest (create-if-absent under the next
//! generation) → head record (compare-and-swap). Nothing is visible until the manifest and head
//! are written; packs of an interrupted run are remembered in the vault and reused by the next.

use crate::error::DataKind;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::time::{Duration, Instant};

use super::chunker::{ChunkParams, ChunkStream, Chunker};
use super::format::{
    ChunkRef, Head, IndexRef, Location, Manifest, MediaEntry, ObjectId, SnapshotEntry, Tree, Writer, bridge_name,
    index_name, manifest_hash, manifest_name, media_object_name, open_bridge, open_index, pack_name, random_object_id,
    seal_bridge, seal_index,
};
use super::keys::{
    BackupKeys, ChunkId, ChunkKey, GenerationToken, Keyring, TokenPart, TokenPolicy, key_check_of, token_candidates,
};
use super::pack::{PACK_TARGET, PackEntry, PackWriter, open_chunk};
use super::padding::padme_len;
use super::transport::{Transport, TransportError};
use crate::error::{Error, Result};
use crate::progress::{Meter, Progress};
use crate::secret::{SecretBytes, SecretKey};

/// Most generations a run skips over manifests it cannot open before it gives up.
const MAX_SKIPPED_GENERATIONS: u64 = 8;

/// What a backup run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackupReport {
    /// The generation written.
    pub generation: u64,
    /// Bytes uploaded (packs, media objects, index object, manifest, head record).
    pub uploaded_bytes: u64,
    /// Chunks sealed and uploaded in this run.
    pub new_chunks: u64,
    /// Chunks already stored and reused.
    pub reused_chunks: u64,
    /// Packs uploaded.
    pub packs: u64,
    /// Media items uploaded, and media items already stored.
    pub media_uploaded: u64,
    /// Media items already stored.
    pub media_reused: u64,
    /// Length of the database export.
    pub export_bytes: u64,
    /// Wall time.
    #[serde(rename = "duration_ms", serialize_with = "crate::progress::serialize_millis")]
    pub duration: Duration,
}

pub(crate) fn transport_error(what: &str) -> impl Fn(TransportError) -> Error + '_ {
    move |e| match e {
        TransportError::Conflict | TransportError::Exists => Error::BackupConflict,
        TransportError::NotFound => Error::Integrity {
            object: DataKind::BackupSnapshot,
            problem: format!("{what}: an object the backup names is missing"),
        },
        TransportError::OutOfRange => Error::Integrity {
            object: DataKind::BackupSnapshot,
            problem: format!("{what}: an object is shorter than the backup says"),
        },
        TransportError::Unauthorized(message) => Error::BackupAuthentication(message),
        TransportError::NotAllowed(message) => Error::InvalidInput(format!("{what}: {message}")),
        TransportError::Failed(message) => Error::BackupStorage(format!("{what}: {message}")),
    }
}

/// The head and manifest the storage holds, checked against what this device last wrote.
pub(crate) struct Current {
    pub(crate) head: Head,
    pub(crate) version: String,
    pub(crate) manifest: Manifest,
}

/// Reads and authenticates the head record and its manifest, refusing a history older than, or
/// different from, the generation this device last wrote or restored (`local`).
pub(crate) fn current(
    transport: &dyn Transport,
    keys: &BackupKeys,
    local: crate::store::backup_state::Position,
) -> Result<Option<Current>> {
    current_checked(transport, keys, local, &|_| Ok(()))
}

/// [`current`], with `check` run on the head record once it authenticates and is not older than
/// this device's (a rollback is reported as one), before the history is read and compared: a
/// backup run refuses a head another device writes.
pub(crate) fn current_checked(
    transport: &dyn Transport,
    keys: &BackupKeys,
    local: crate::store::backup_state::Position,
    check: &dyn Fn(&Head) -> Result<()>,
) -> Result<Option<Current>> {
    let Some((bytes, version)) = transport.get_head().map_err(transport_error("reading the head record"))? else {
        if local.0 > 0 {
            return Err(Error::Integrity {
                object: DataKind::BackupHead,
                problem: format!(
                    "the backup storage has no head record, but this device wrote generation {}: it was rolled back or wiped",
                    local.0
                ),
            });
        }
        return Ok(None);
    };
    let head = Head::open(keys, &bytes)?;
    if head.generation < local.0 {
        return Err(Error::Integrity {
            object: DataKind::BackupHead,
            problem: format!(
                "the backup storage's newest generation {} is older than generation {} this device wrote: it was rolled back",
                head.generation, local.0
            ),
        });
    }
    check(&head)?;
    let manifest = fetch_manifest(transport, keys, &head)?;
    // A newer history must descend from what this device wrote.
    if let (Some(local_hash), true) = (local.1, local.0 > 0) {
        verify_chain(transport, keys, &manifest, head.manifest_hash, Some((local.0, local_hash)))?;
    }
    Ok(Some(Current { head, version, manifest }))
}

/// The keys of the backup whose current epoch key is `key`: its keyring object
/// (`keyring-<key check>`) when the backup was rotated, else the first epoch's keys. Returns the
/// keyring too, for a restored vault to keep.
pub(crate) fn load_keys(transport: &dyn Transport, key: &SecretKey) -> Result<(BackupKeys, Option<Keyring>)> {
    let name = Keyring::object_name(&key_check_of(key));
    let keyring = transport
        .get(&name)
        .map_err(transport_error("reading the backup keyring"))?
        .map(|sealed| Keyring::open(key, &sealed))
        .transpose()?;
    Ok((BackupKeys::with_keyring(key, keyring.as_ref()), keyring))
}

/// Reads a whole object the backup names; a missing one is an integrity failure naming it.
pub(crate) fn fetch_named(transport: &dyn Transport, name: &str, kind: &str) -> Result<Vec<u8>> {
    transport.get(name).map_err(|e| transport_error(&format!("reading {kind} {name}"))(e))?.ok_or_else(|| {
        Error::Integrity { object: DataKind::BackupSnapshot, problem: format!("backup {kind} {name} is missing") }
    })
}

/// Opens the chunk `location` names in a whole pack fetched by [`fetch_named`], under `key` (the
/// key its tree carries; `None` for a chunk sealed under its epoch's key).
pub(crate) fn open_in_pack(
    keys: &BackupKeys,
    pack: &[u8],
    location: &Location,
    key: Option<&ChunkKey>,
) -> Result<SecretBytes> {
    open_chunk(keys, location.epoch, pack, &location.entry, key).map_err(|e| Error::Integrity {
        object: DataKind::BackupPack,
        problem: format!("backup {}: {e} ({:?})", pack_name(&location.pack), location.entry.id),
    })
}

/// Fetches the manifest `head` names, checks its hash and opens it (under the head's token for a
/// forward-secret generation, else under its key epoch).
pub(crate) fn fetch_manifest(transport: &dyn Transport, keys: &BackupKeys, head: &Head) -> Result<Manifest> {
    let name = manifest_name(head.generation);
    let sealed = fetch_named(transport, &name, "manifest")?;
    if manifest_hash(&sealed) != head.manifest_hash {
        return Err(Error::Integrity {
            object: DataKind::BackupManifest,
            problem: format!("backup manifest {name} is not the one the history names"),
        });
    }
    Manifest::open(keys, head.manifest_epoch, head.generation, &sealed, keys.token_for(head).as_ref())
}

/// Fetches the manifest `head` names and opens it under `token` (checking its hash).
fn opens_under(transport: &dyn Transport, keys: &BackupKeys, head: &Head, token: &GenerationToken) -> bool {
    let Ok(Some(sealed)) = transport.get(&manifest_name(head.generation)) else { return false };
    manifest_hash(&sealed) == head.manifest_hash
        && Manifest::open(keys, head.manifest_epoch, head.generation, &sealed, Some(token)).is_ok()
}

/// Most bridges a restore crosses from an older generation's token to the newest.
const MAX_BRIDGES: u64 = 64;

/// The token of `head`'s generation from the parts the holders keep (`head`'s own and those of
/// `others`, the other guardians' head records): a threshold of parts of that generation, or else
/// a threshold of an older generation's and the bridges from it forward (a run that stopped
/// between the guardians' head writes). Every candidate is checked by opening the manifest, so a
/// lying guardian's share is skipped. `None` when no combination opens it.
pub(crate) fn recover_token(
    transport: &dyn Transport,
    keys: &BackupKeys,
    head: &Head,
    others: &[Head],
) -> Option<GenerationToken> {
    let all: Vec<&Head> = std::iter::once(head).chain(others).collect();
    let parts_at = |generation: u64| -> Vec<TokenPart> {
        all.iter().filter(|h| h.generation == generation).filter_map(|h| h.token.clone()).collect()
    };
    if let Some(token) =
        token_candidates(&parts_at(head.generation)).into_iter().find(|t| opens_under(transport, keys, head, t))
    {
        return Some(token);
    }
    let mut older: Vec<u64> = others.iter().map(|h| h.generation).filter(|g| *g < head.generation).collect();
    older.sort_unstable_by(|a, b| b.cmp(a));
    older.dedup();
    for generation in older {
        for start in token_candidates(&parts_at(generation)) {
            if let Some(token) = cross_bridges(transport, keys, start, generation, head.generation)
                && opens_under(transport, keys, head, &token)
            {
                return Some(token);
            }
        }
    }
    None
}

/// Walks the bridges from generation `from`'s `token` up to generation `to`. Each bridge names its
/// own generation and opens under its predecessor's token; the predecessor is not always the
/// generation before (a run skips a name an unpublished manifest holds, and an interrupted run may
/// have left a bridge under that name), so each bridge is tried with every token reached so far.
fn cross_bridges(
    transport: &dyn Transport,
    keys: &BackupKeys,
    token: GenerationToken,
    from: u64,
    to: u64,
) -> Option<GenerationToken> {
    let mut reached = vec![(from, token)];
    for next in from + 1..=to.min(from.saturating_add(MAX_BRIDGES)) {
        let Ok(Some(sealed)) = transport.get(&bridge_name(next)) else { continue };
        let opened = reached.iter().rev().find_map(|(at, token)| {
            (0..=keys.current_epoch()).find_map(|epoch| open_bridge(keys, epoch, token, *at, next, &sealed).ok())
        });
        if let Some(newer) = opened {
            reached.push((next, newer));
        }
    }
    reached.into_iter().find(|(at, _)| *at == to).map(|(_, token)| token)
}

/// Walks the manifest chain down from `newest`: each manifest's `previous` must hash-match its
/// predecessor (read from its clear header, or by opening an older manifest: no generation's
/// token is needed). With `until = Some((g, hash))` the walk must reach generation `g` with that
/// hash; with `None` it stops at the oldest manifest still stored. Returns how many manifests it
/// checked.
pub(crate) fn verify_chain(
    transport: &dyn Transport,
    keys: &BackupKeys,
    newest: &Manifest,
    newest_hash: [u8; 32],
    until: Option<(u64, [u8; 32])>,
) -> Result<u64> {
    let mut generation = newest.generation;
    let mut link = newest.link_of();
    let mut hash = newest_hash;
    let mut checked = 1;
    loop {
        if let Some((wanted, expected)) = until
            && generation == wanted
        {
            return if hash == expected {
                Ok(checked)
            } else {
                Err(Error::Integrity {
                    object: DataKind::BackupSnapshot,
                    problem: format!(
                        "backup generation {wanted} differs from the one this device wrote or a guardian attests"
                    ),
                })
            };
        }
        if until.is_some_and(|(wanted, _)| generation < wanted) || link.previous_generation == 0 {
            return match until {
                None => Ok(checked),
                Some(_) => Err(Error::Integrity {
                    object: DataKind::BackupManifest,
                    problem: "the backup history does not contain what this device wrote or a guardian attests".into(),
                }),
            };
        }
        let previous_generation = link.previous_generation;
        let name = manifest_name(previous_generation);
        let Some(sealed) = transport.get(&name).map_err(transport_error("reading a manifest"))? else {
            return match until {
                None => Ok(checked),
                Some(_) => Err(Error::Integrity {
                    object: DataKind::BackupManifest,
                    problem: format!("backup manifest {name} is missing"),
                }),
            };
        };
        if manifest_hash(&sealed) != link.previous {
            return Err(Error::Integrity {
                object: DataKind::BackupManifest,
                problem: format!("backup manifest {name} does not match the chain"),
            });
        }
        hash = link.previous;
        link = Manifest::link(keys, link.previous_epoch, previous_generation, &sealed)?;
        generation = previous_generation;
        checked += 1;
    }
}

/// Every chunk location the manifest's index objects name.
pub(crate) fn load_index(
    transport: &dyn Transport,
    keys: &BackupKeys,
    manifest: &Manifest,
) -> Result<HashMap<ChunkId, Location>> {
    let mut known = HashMap::new();
    for index in &manifest.indexes {
        let name = index_name(&index.id);
        let sealed = fetch_named(transport, &name, "index object")?;
        for location in open_index(keys, index.epoch, &name, &sealed)? {
            known.insert(location.entry.id, location);
        }
    }
    Ok(known)
}

/// Reads and decodes a snapshot's tree, fetching each pack that holds some of its chunks once
/// (a tree spans hundreds of small chunks but few packs).
pub(crate) fn read_tree(
    transport: &dyn Transport,
    keys: &BackupKeys,
    known: &HashMap<ChunkId, Location>,
    snapshot: &SnapshotEntry,
) -> Result<Tree> {
    let mut by_pack: HashMap<ObjectId, Vec<(Location, Option<&ChunkKey>)>> = HashMap::new();
    for chunk in &snapshot.tree_chunks {
        let location = known.get(&chunk.id).ok_or_else(|| Error::Integrity {
            object: DataKind::BackupIndex,
            problem: format!("backup index lacks a tree chunk ({:?})", chunk.id),
        })?;
        by_pack.entry(location.pack).or_default().push((*location, chunk.key.as_ref()));
    }
    let mut opened: HashMap<ChunkId, SecretBytes> = HashMap::new();
    for (pack, locations) in &by_pack {
        let bytes = fetch_named(transport, &pack_name(pack), "pack")?;
        for (location, key) in locations {
            opened.insert(location.entry.id, open_in_pack(keys, &bytes, location, *key)?);
        }
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    for chunk in &snapshot.tree_chunks {
        let plain = opened.get(&chunk.id).ok_or(Error::Internal("tree chunk not fetched"))?;
        bytes.extend_from_slice(plain.expose_secret());
    }
    Tree::decode(&bytes)
}

/// The key of every chunk a snapshot reaches: its tree's own chunks and the export's (`None` for
/// chunks sealed under their epoch's key).
pub(crate) fn chunk_keys(snapshot: &SnapshotEntry, tree: &Tree) -> HashMap<ChunkId, Option<ChunkKey>> {
    snapshot.tree_chunks.iter().chain(&tree.export_chunks).map(|c| (c.id, c.key.clone())).collect()
}

/// Seals chunks into packs and uploads them, skipping chunks already stored whose keys are known.
struct Uploader<'a> {
    transport: &'a dyn Transport,
    keys: &'a BackupKeys,
    conn: &'a rusqlite::Connection,
    /// Where each stored chunk lies.
    known: HashMap<ChunkId, Location>,
    /// The keys of the stored chunks a new snapshot may reuse: those of the previous snapshot and
    /// of this run's packs (a chunk stored without a key this run knows is sealed again).
    reusable: HashMap<ChunkId, ChunkKey>,
    writer: PackWriter,
    new_locations: Vec<Location>,
    report: BackupReport,
    meter: Meter<'a>,
}

impl Uploader<'_> {
    /// Adds `chunks` in order and returns their references: the ids computed on all cores, the
    /// chunks already stored reused, the others sealed into packs on all cores (each full pack
    /// uploaded as it fills).
    fn add_all(&mut self, chunks: &[&[u8]]) -> Result<Vec<ChunkRef>> {
        self.meter.add(chunks.iter().map(|chunk| chunk.len() as u64).sum())?;
        let ids = self.keys.chunk_ids(chunks);
        // A chunk stored before, or twice in this run, is reused under the key it has.
        let mut fresh_ids = HashSet::new();
        let fresh: Vec<(ChunkId, &[u8])> = ids
            .iter()
            .zip(chunks)
            .filter(|(id, _)| !self.reusable.contains_key(*id) && fresh_ids.insert(**id))
            .map(|(id, chunk)| (*id, *chunk))
            .collect();
        self.report.new_chunks += fresh.len() as u64;
        self.report.reused_chunks += (chunks.len() - fresh.len()) as u64;
        let mut rest = &fresh[..];
        while !rest.is_empty() {
            let keys = self
                .writer
                .add_until(rest, PACK_TARGET)
                .map_err(|e| Error::Integrity { object: DataKind::BackupSnapshot, problem: e.to_string() })?;
            let (sealed, later) = rest.split_at(keys.len());
            self.reusable.extend(sealed.iter().map(|(id, _)| *id).zip(keys.iter().cloned()));
            rest = later;
            if self.writer.len() >= PACK_TARGET {
                self.flush()?;
            }
        }
        // Sized up front: a vector of keys grown by reallocation would leave copies behind.
        let mut refs = Vec::with_capacity(ids.len());
        for id in ids {
            let key = self.reusable.get(&id).ok_or(Error::Internal("a chunk added without its key"))?;
            refs.push(ChunkRef { id, key: Some(key.clone()) });
        }
        Ok(refs)
    }

    fn flush(&mut self) -> Result<()> {
        if self.writer.is_empty() {
            return Ok(());
        }
        let (bytes, entries) = std::mem::take(&mut self.writer).finish().map_err(Error::from_rng)?;
        let pack: ObjectId = random_object_id()?;
        // Remembered before the upload, so a crash at any point after it leaves the pack known
        // to the next run (which drops it if it never arrived).
        let pending = encode_pending(&entries, &self.reusable)?;
        crate::store::backup_state::add_pending(self.conn, &pack, &pending)?;
        self.transport.put(&pack_name(&pack), &bytes).map_err(transport_error("uploading a pack"))?;
        crate::failpoint::hit("backup:pack-uploaded");
        self.report.uploaded_bytes += bytes.len() as u64;
        self.report.packs += 1;
        self.writer = PackWriter::reusing(bytes);
        for entry in entries {
            let location = Location { pack, entry, epoch: self.keys.current_epoch() };
            self.known.insert(entry.id, location);
            self.new_locations.push(location);
        }
        Ok(())
    }
}

/// A media file followed by random padding up to its Padmé length, readable more than once with
/// the same bytes each time: the padding is the BLAKE3 output stream of a random key drawn for
/// this upload (padding up to a Padmé length can reach 12 % of a large item, too much to hold in
/// memory), and the file is read at positions from one open handle, which a concurrent deletion
/// of the media item cannot take away.
struct PaddedMedia {
    file: std::sync::Arc<std::fs::File>,
    len: u64,
    padding: blake3::Hasher,
    padded: u64,
}

impl PaddedMedia {
    fn new(file: std::fs::File, len: u64, padded: u64) -> Result<Self> {
        let key: zeroize::Zeroizing<[u8; 32]> =
            zeroize::Zeroizing::new(crate::crypto::random_array().map_err(Error::from_rng)?);
        Ok(Self { file: std::sync::Arc::new(file), len, padding: blake3::Hasher::new_keyed(&key), padded })
    }

    /// A reading from the start: the file's `len` bytes, then the padding.
    fn reading(&self) -> impl Read + Send + 'static {
        let file = PositionedReader { file: std::sync::Arc::clone(&self.file), position: 0, end: self.len };
        file.chain(Padding(self.padding.finalize_xof()).take(self.padded.saturating_sub(self.len)))
    }
}

/// A reading of the padding stream, wiped when dropped (its state holds the padding key).
struct Padding(blake3::OutputReader);

impl Read for Padding {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(out)
    }
}

impl Drop for Padding {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl Drop for PaddedMedia {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.padding);
    }
}

/// Reads `file` from `position` to `end` with positioned reads (its shared offset untouched).
struct PositionedReader {
    file: std::sync::Arc<std::fs::File>,
    position: u64,
    end: u64,
}

impl Read for PositionedReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt as _;
        let want = usize::try_from(self.end - self.position).unwrap_or(usize::MAX).min(out.len());
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut out[..want], self.position)?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a media file ended early"));
        }
        self.position += n as u64;
        Ok(n)
    }
}

/// A completed run: its report, and the head record it wrote with the generation's whole token
/// (each other guardian gets it with its own part of the token).
pub(crate) struct Written {
    pub(crate) report: BackupReport,
    pub(crate) head: Head,
}

/// The vault's database as a backup run uses it: `snapshot` is read in one read transaction (the
/// export and the media list come from the same consistent state, whatever other connections
/// write meanwhile); `state` records the run's bookkeeping (pending packs, the new generation)
/// and commits at once. They must be two connections to the same database.
pub(crate) struct Database<'a> {
    /// The connection the export is read from.
    pub(crate) snapshot: &'a rusqlite::Connection,
    /// The connection the backup state is written to.
    pub(crate) state: &'a rusqlite::Connection,
}

/// Whether a run may write over the head record `head` as the device `me` (`None`: a run
/// without a device identity, to a backup directory): returns the writer the new head names.
/// A head naming another writer is refused ([`Error::TakenOver`]); so is a head of a build
/// without writers whose generation is not the one this device last wrote or restored (another
/// device wrote it). A head without a writer is otherwise claimed by `me`, since now.
pub(crate) fn claim(head: Option<&Head>, me: Option<&str>, local_generation: u64) -> Result<Option<Writer>> {
    let Some(head) = head else { return me.map(|d| Writer::new(d, crate::store::now_millis())).transpose() };
    match (&head.writer, me) {
        (Some(w), Some(d)) if w.device == d => Ok(Some(w.clone())),
        (Some(w), _) => Err(Error::TakenOver { by_device: Some(w.device.clone()), at_ms: Some(w.since_ms) }),
        (None, Some(_)) if local_generation > 0 && head.generation != local_generation => {
            Err(Error::TakenOver { by_device: None, at_ms: None })
        }
        (None, Some(d)) => Writer::new(d, crate::store::now_millis()).map(Some),
        (None, None) => Ok(None),
    }
}

/// One backup run over the vault's database and media files, as the writing device `writer`
/// (its device id at the data guardian; `None` for a backup directory).
pub(crate) fn run(
    db: &Database<'_>,
    media_files: &crate::media::MediaFiles,
    transport: &dyn Transport,
    progress: Option<&dyn Progress>,
    writer: Option<&str>,
    policy: TokenPolicy,
) -> Result<Written> {
    // A run interrupted between its manifest and its head record leaves that manifest unpublished
    // under the next generation's name: it is published, and the run starts again above it.
    for _ in 0..2 {
        if let Some(written) = run_once(db, media_files, transport, progress, writer, policy)? {
            return Ok(written);
        }
    }
    Err(Error::BackupConflict)
}

/// Publishes the manifest of generation `head.generation` left by an interrupted run of this
/// device, whose token it kept (`token`), when it authenticates and continues the current head:
/// writes `head` (the new head record but for its manifest hash). Otherwise the name is taken by
/// something else (an integrity error: the caller skips the name).
fn publish_unfinished(
    conn: &rusqlite::Connection,
    transport: &dyn Transport,
    keys: &BackupKeys,
    previous: Option<&Current>,
    head: Head,
    token: &GenerationToken,
) -> Result<()> {
    let generation = head.generation;
    let name = manifest_name(generation);
    let sealed = fetch_named(transport, &name, "manifest")?;
    let taken = || Error::Integrity {
        object: DataKind::BackupHead,
        problem: format!("backup {name} exists but does not continue the current head"),
    };
    let found = Manifest::open(keys, keys.current_epoch(), generation, &sealed, Some(token)).map_err(|_| taken())?;
    if found.previous != previous.map_or([0; 32], |c| c.head.manifest_hash) {
        return Err(taken());
    }
    let head = Head { manifest_hash: manifest_hash(&sealed), ..head };
    transport
        .put_head(&head.seal(keys), head.generation, previous.map(|c| c.version.as_str()))
        .map_err(transport_error("publishing an interrupted run's manifest"))?;
    crate::store::backup_state::advance(conn, generation, &head.manifest_hash, Some(token))
}

/// One attempt of [`run`]; `None` when it published an interrupted run's manifest instead.
fn run_once(
    db: &Database<'_>,
    media_files: &crate::media::MediaFiles,
    transport: &dyn Transport,
    progress: Option<&dyn Progress>,
    me: Option<&str>,
    policy: TokenPolicy,
) -> Result<Option<Written>> {
    let started = Instant::now();
    let conn = db.state;
    if crate::store::backup_state::root_key(conn)?.is_none() {
        let key = SecretKey::generate().map_err(Error::from_rng)?;
        crate::store::backup_state::set_root_key(conn, &key)?;
    }
    let keys = crate::store::backup_state::keys(conn)?.ok_or(Error::Internal("no backup key after creating one"))?;
    if crate::store::backup_state::pending_rotation(conn)?.is_some() {
        return Err(Error::KeyRotationUnfinished);
    }
    let local = crate::store::backup_state::position(conn)?;
    let previous = current_checked(transport, &keys, local, &|head| claim(Some(head), me, local.0).map(|_| ()))?;
    let writer = claim(previous.as_ref().map(|c| &c.head), me, local.0)?;
    let generation = previous.as_ref().map_or(0, |c| c.head.generation) + 1;

    let mut known = match &previous {
        Some(c) => load_index(transport, &keys, &c.manifest)?,
        None => HashMap::new(),
    };
    // The previous snapshot's chunks are reused with the keys its tree carries; a backup of the
    // format before forward secrecy has none, and its chunks are sealed again.
    let previous_tree = match &previous {
        Some(c) => match c.manifest.snapshots.last() {
            Some(s) => Some((s, read_tree(transport, &keys, &known, s)?)),
            None => None,
        },
        None => None,
    };
    let mut reusable: HashMap<ChunkId, ChunkKey> = previous_tree
        .as_ref()
        .map(|(s, tree)| chunk_keys(s, tree).into_iter().filter_map(|(id, key)| Some((id, key?))).collect())
        .unwrap_or_default();
    reusable.retain(|id, _| known.contains_key(id));
    let mut new_locations = Vec::new();
    for (pack, entries) in pending_packs(conn)? {
        // A pack whose upload never completed is not there: its chunks are uploaded again.
        match transport.get_range(&pack_name(&pack), 0, 1) {
            Ok(_) => {}
            Err(TransportError::NotFound) => continue,
            Err(e) => return Err(transport_error("checking an earlier run's pack")(e)),
        }
        for (entry, key) in entries {
            let location = Location { pack, entry, epoch: keys.current_epoch() };
            known.insert(entry.id, location);
            new_locations.push(location);
            reusable.insert(entry.id, key);
        }
    }
    let previous_media: HashSet<[u8; 16]> =
        previous_tree.as_ref().map(|(_, tree)| tree.media.iter().map(|m| m.media_id).collect()).unwrap_or_default();

    let chunker = Chunker::new(keys.gear(), ChunkParams::EXPORT);
    let mut uploader = Uploader {
        transport,
        keys: &keys,
        conn,
        known,
        reusable,
        writer: PackWriter::new(),
        new_locations,
        report: BackupReport::default(),
        meter: Meter::new(progress, None),
    };

    // The database export, chunked as it is written, and the media list, from one read
    // transaction: the snapshot is the state at its start.
    let snapshot = db.snapshot.unchecked_transaction()?;
    let mut export_chunks = Vec::new();
    let stats = {
        let mut sink = ChunkSink {
            stream: ChunkStream::new(&chunker),
            uploader: &mut uploader,
            ids: &mut export_chunks,
            error: None,
        };
        let stats = crate::store::export::export_in(&snapshot, &mut sink);
        if let Some(error) = sink.error.take() {
            return Err(error);
        }
        let stats = stats?;
        let ChunkSink { stream, uploader, ids, .. } = sink;
        stream.finish(&mut |chunks: &[&[u8]]| uploader.add_all(chunks).map(|refs| ids.extend(refs)))?;
        stats
    };
    uploader.report.export_bytes = stats.bytes;
    let media_items = crate::store::media_rows::list(&snapshot)?;
    drop(snapshot);

    // Media items not in the previous snapshot.
    let mut media = Vec::new();
    for info in media_items {
        let path = media_files.path(&info.id);
        let file = std::fs::File::open(&path).map_err(Error::io("opening a media file to back up"))?;
        let file_len = file.metadata().map_err(Error::io("reading a media file's size"))?.len();
        media.push(MediaEntry { media_id: info.id.0, file_len });
        uploader.meter.add(file_len)?;
        if previous_media.contains(&info.id.0) {
            uploader.report.media_reused += 1;
            continue;
        }
        let padded = padme_len(file_len);
        let source = PaddedMedia::new(file, file_len, padded)?;
        let open = || Ok(Box::new(source.reading()) as Box<dyn Read + Send>);
        match transport.put_repeatable(&media_object_name(&keys, &info.id.0), padded, &open) {
            Ok(()) => {
                uploader.report.media_uploaded += 1;
                uploader.report.uploaded_bytes += padded;
            }
            // Uploaded by an interrupted run: objects are write-once and appear whole.
            Err(TransportError::Exists) => uploader.report.media_reused += 1,
            Err(e) => return Err(transport_error("uploading a media item")(e)),
        }
    }

    // The snapshot tree, through the same chunker and packs.
    let tree = Tree { export_len: stats.bytes, export_chunks, media };
    let encoded = tree.encode()?;
    let tree_chunks = uploader.add_all(&Chunker::new(keys.gear(), ChunkParams::TREE).chunks(&encoded))?;
    uploader.flush()?;
    uploader.meter.finish()?;

    // The index object for this run's packs, the manifest, the head.
    let mut indexes = previous.as_ref().map(|c| c.manifest.indexes.clone()).unwrap_or_default();
    if !uploader.new_locations.is_empty() {
        let id = random_object_id()?;
        let name = index_name(&id);
        let sealed = seal_index(&keys, &name, &uploader.new_locations)?;
        transport.put(&name, &sealed).map_err(transport_error("uploading an index object"))?;
        uploader.report.uploaded_bytes += sealed.len() as u64;
        indexes.push(IndexRef { id, epoch: keys.current_epoch() });
    }
    let now = crate::store::now_millis();
    let export_len = stats.bytes;
    let media_count = u32::try_from(tree.media.len()).map_err(|_| Error::Internal("too many media items"))?;
    // The new generation's manifest holds only the new snapshot, so no older tree's chunk keys
    // are carried forward (`docs/adr/0017-forward-secret-backups.md`).
    let mut manifest = Manifest {
        generation,
        previous_generation: generation - 1,
        previous: previous.as_ref().map_or([0; 32], |c| c.head.manifest_hash),
        previous_epoch: previous.as_ref().map_or(0, |c| c.head.manifest_epoch),
        created_at: now,
        indexes,
        snapshots: Vec::new(),
    };
    let (sealed, token) = loop {
        manifest.snapshots = vec![SnapshotEntry {
            generation: manifest.generation,
            created_at: now,
            tree_chunks: tree_chunks.clone(),
            export_len,
            media_count,
        }];
        // A token drawn by an interrupted run of this device for this generation is used again:
        // the manifest under this name may be that run's, and is then published.
        let token = match crate::store::backup_state::pending_token(conn)? {
            Some((g, token)) if g == manifest.generation => token,
            _ => {
                let token = GenerationToken::generate()?;
                crate::store::backup_state::set_pending_token(conn, manifest.generation, &token)?;
                token
            }
        };
        let sealed = manifest.seal_with_token(&keys, &token)?;
        // The bridge from the previous generation's token, so that guardians still holding
        // that token's shares (a run stopped between their head writes) reach this one.
        if let Some((previous_token, c)) = previous.as_ref().and_then(|c| Some((keys.token_for(&c.head)?, c))) {
            let bridge = seal_bridge(&keys, &previous_token, c.head.generation, &token, manifest.generation);
            match transport.put(&bridge_name(manifest.generation), &bridge) {
                Ok(()) | Err(TransportError::Exists) => {}
                Err(e) => return Err(transport_error("writing the bridge")(e)),
            }
        }
        crate::failpoint::hit("backup:before-manifest");
        match transport.put(&manifest_name(manifest.generation), &sealed) {
            Ok(()) => break (sealed, token),
            Err(TransportError::Exists) => {}
            Err(e) => return Err(transport_error("writing the manifest")(e)),
        }
        let unpublished = Head {
            generation: manifest.generation,
            manifest_hash: [0; 32],
            writer: writer.clone(),
            manifest_epoch: keys.current_epoch(),
            token: Some(policy.part(&token, manifest.generation, 0)?),
        };
        let published = publish_unfinished(conn, transport, &keys, previous.as_ref(), unpublished, &token);
        match published {
            Ok(()) => return Ok(None),
            // A manifest this device cannot open (an interrupted run's whose token is gone, say
            // after a restore) holds the name for good: the new generation skips it.
            Err(Error::Integrity { .. }) if manifest.generation < generation + MAX_SKIPPED_GENERATIONS => {
                manifest.generation += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let generation = manifest.generation;
    let head = Head {
        generation,
        manifest_hash: manifest_hash(&sealed),
        writer,
        manifest_epoch: keys.current_epoch(),
        token: Some(policy.part(&token, generation, 0)?),
    };
    let head_bytes = head.seal(&keys);
    crate::failpoint::hit("backup:before-head");
    transport
        .put_head(&head_bytes, head.generation, previous.as_ref().map(|c| c.version.as_str()))
        .map_err(transport_error("updating the head record"))?;
    uploader.report.uploaded_bytes += (sealed.len() + head_bytes.len()) as u64;
    let mut report = uploader.report;
    crate::store::backup_state::advance(conn, head.generation, &head.manifest_hash, Some(&token))?;
    crate::store::events::record(
        conn,
        now,
        crate::SecurityEventKind::BackupWritten,
        &format!("generation {}", head.generation),
    )?;
    report.generation = head.generation;
    report.duration = started.elapsed();
    Ok(Some(Written { report, head: Head { token: Some(TokenPart::Whole(token)), ..head } }))
}

/// Receives the export as it is written and chunks it.
struct ChunkSink<'s, 'u, 'c> {
    stream: ChunkStream<'c>,
    uploader: &'s mut Uploader<'u>,
    ids: &'s mut Vec<ChunkRef>,
    error: Option<Error>,
}

impl std::io::Write for ChunkSink<'_, '_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (uploader, ids) = (&mut *self.uploader, &mut *self.ids);
        let result =
            self.stream.push(buf, &mut |chunks: &[&[u8]]| uploader.add_all(chunks).map(|refs| ids.extend(refs)));
        match result {
            Ok(()) => Ok(buf.len()),
            Err(error) => {
                self.error = Some(error);
                Err(std::io::Error::other("backup upload failed"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Version byte of the pending-pack encoding that carries chunk keys.
const PENDING_KEYED: u8 = 2;
/// Bytes per chunk entry of that encoding.
const PENDING_ENTRY_LEN: usize = 32 + 4 + 4 + 32;

/// The chunk entries of a pack an unfinished run uploaded, as the vault's (encrypted) backup
/// state keeps them: a version byte (2), then per chunk its id, offset and sealed length
/// (little-endian) and the key it is sealed under.
fn encode_pending(entries: &[PackEntry], keys: &HashMap<ChunkId, ChunkKey>) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let mut blob = zeroize::Zeroizing::new(Vec::with_capacity(1 + entries.len() * PENDING_ENTRY_LEN));
    blob.push(PENDING_KEYED);
    for e in entries {
        let key = keys.get(&e.id).ok_or(Error::Internal("a packed chunk without its key"))?;
        blob.extend_from_slice(&e.id.0);
        blob.extend_from_slice(&e.offset.to_le_bytes());
        blob.extend_from_slice(&e.sealed_len.to_le_bytes());
        blob.extend_from_slice(&key.0);
    }
    Ok(blob)
}

/// A pack an unfinished run uploaded: its id, and each chunk's entry with the chunk's key.
type PendingPack = (ObjectId, Vec<(PackEntry, ChunkKey)>);

/// Packs uploaded by unfinished runs, with their chunks and the chunks' keys.
fn pending_packs(conn: &rusqlite::Connection) -> Result<Vec<PendingPack>> {
    let malformed = || Error::Integrity { object: DataKind::BackupPack, problem: "malformed pending pack".into() };
    let mut out = Vec::new();
    for (pack, blob) in crate::store::backup_state::pending(conn)? {
        let blob = zeroize::Zeroizing::new(blob);
        let pack = ObjectId::try_from(pack.as_slice()).map_err(|_| malformed())?;
        let Some((&PENDING_KEYED, rest)) = blob.split_first() else { return Err(malformed()) };
        if rest.len() % PENDING_ENTRY_LEN != 0 {
            return Err(malformed());
        }
        let entries = rest
            .chunks_exact(PENDING_ENTRY_LEN)
            .map(|e| {
                let mut id = [0u8; 32];
                id.copy_from_slice(&e[..32]);
                let offset = u32::from_le_bytes([e[32], e[33], e[34], e[35]]);
                let sealed_len = u32::from_le_bytes([e[36], e[37], e[38], e[39]]);
                let mut key = ChunkKey([0; 32]);
                key.0.copy_from_slice(&e[40..]);
                (PackEntry { id: ChunkId(id), offset, sealed_len }, key)
            })
            .collect();
        out.push((pack, entries));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::DirTransport;

    /// A media upload's source reads the same bytes each time: the file, then padding to the
    /// padded length; another upload of the same file draws other padding.
    #[test]
    fn a_padded_media_source_repeats_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("media");
        let content: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let read_all = |source: &PaddedMedia| {
            let mut out = Vec::new();
            source.reading().read_to_end(&mut out).unwrap();
            out
        };
        let padded = padme_len(content.len() as u64);
        assert!(padded > content.len() as u64 + 100);
        let source = PaddedMedia::new(std::fs::File::open(&path).unwrap(), content.len() as u64, padded).unwrap();
        let first = read_all(&source);
        assert_eq!(first.len() as u64, padded);
        assert_eq!(&first[..content.len()], &content[..]);
        assert_eq!(read_all(&source), first);
        let other = PaddedMedia::new(std::fs::File::open(&path).unwrap(), content.len() as u64, padded).unwrap();
        assert_ne!(read_all(&other)[content.len()..], first[content.len()..]);
        // A file shorter than its stated length is an error, not a short object.
        let short = PaddedMedia::new(std::fs::File::open(&path).unwrap(), content.len() as u64 + 10, padded).unwrap();
        assert!(short.reading().read_to_end(&mut Vec::new()).is_err());
    }

    /// Generation 1's token reaches generation 3 past a bridge an interrupted run left under the
    /// skipped name 2 (it leads to that run's token, from which nothing goes on).
    #[test]
    fn the_bridge_walk_passes_a_skipped_generations_bridge() {
        let dir = tempfile::tempdir().unwrap();
        let storage = DirTransport::new(dir.path()).unwrap();
        let keys = BackupKeys::derive(&SecretKey::from_bytes([1; 32]));
        let (t1, dead, t3) = (GenerationToken([1; 32]), GenerationToken([2; 32]), GenerationToken([3; 32]));
        storage.put(&bridge_name(2), &seal_bridge(&keys, &t1, 1, &dead, 2)).unwrap();
        storage.put(&bridge_name(3), &seal_bridge(&keys, &t1, 1, &t3, 3)).unwrap();
        assert_eq!(cross_bridges(&storage, &keys, t1.clone(), 1, 3), Some(t3.clone()));
        assert_eq!(cross_bridges(&storage, &keys, t1.clone(), 1, 2), Some(dead));
        // No bridge leads backwards, and another token opens none.
        assert_eq!(cross_bridges(&storage, &keys, t3, 3, 3).map(|t| t.0), Some([3; 32]));
        assert_eq!(cross_bridges(&storage, &keys, GenerationToken([9; 32]), 1, 3), None);
    }
}
