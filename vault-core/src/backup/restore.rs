//! Restore (`docs/backup.md`): the newest manifest (hash-chained, authenticated), its index and
//! snapshot tree, then a new vault built in a temporary directory beside the target — database
//! rows imported from the streamed export while a second thread writes the media files as stored,
//! every page verified once imported and every media segment once its file is durable and its row
//! imported — and renamed into place only when complete. A failure at any point leaves no vault at
//! the target.

use crate::error::DataKind;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use super::format::{ChunkRef, Location, MediaEntry, ObjectId, Tree, media_object_name, pack_name};
use super::keys::{BackupKeys, ChunkId, GenerationToken, Keyring};
use super::remote::RemoteObject;
use super::run::{current, fetch_named, load_index, load_keys, open_in_pack, read_tree, verify_chain};
use super::transport::Transport;
use crate::error::{Error, Result};
use crate::progress::{Meter, Progress};
use crate::secret::{SecretBytes, SecretKey};

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RestoreReport {
    /// The generation restored.
    pub generation: u64,
    /// Manifests whose hash chain was checked.
    pub manifests_checked: u64,
    /// Messages restored.
    pub messages: u64,
    /// Media items restored.
    pub media: u64,
    /// Media items an interrupted restore had already written.
    pub media_resumed: u64,
    /// Bytes of the database export.
    pub export_bytes: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
}

/// A Backup Root Key given by the caller (for example from recovery, or a developer key file).
pub struct BackupRootKey(pub(crate) SecretKey);

impl BackupRootKey {
    /// From exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        SecretKey::try_from_slice(bytes)
            .map(Self)
            .ok_or_else(|| Error::InvalidInput("a backup key is exactly 32 bytes".into()))
    }

    /// The key's bytes (secret).
    pub fn expose_secret(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for BackupRootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupRootKey([REDACTED])")
    }
}

/// Streams the export's chunks in order, fetching whole packs and keeping the last few.
struct ExportReader<'a> {
    transport: &'a dyn Transport,
    keys: &'a BackupKeys,
    known: &'a HashMap<ChunkId, Location>,
    chunks: std::slice::Iter<'a, ChunkRef>,
    packs: Vec<(ObjectId, Vec<u8>)>,
    current: Option<SecretBytes>,
    position: usize,
    total: u64,
    downloaded: u64,
    error: Option<Error>,
}

const CACHED_PACKS: usize = 3;

impl ExportReader<'_> {
    fn next_chunk(&mut self) -> Result<Option<SecretBytes>> {
        let Some(chunk) = self.chunks.next() else { return Ok(None) };
        let location = self.known.get(&chunk.id).ok_or_else(|| Error::Integrity {
            object: DataKind::BackupIndex,
            problem: format!("backup index lacks an export chunk ({:?})", chunk.id),
        })?;
        if !self.packs.iter().any(|(pack, _)| *pack == location.pack) {
            let bytes = fetch_named(self.transport, &pack_name(&location.pack), "pack")?;
            self.downloaded += bytes.len() as u64;
            if self.packs.len() == CACHED_PACKS {
                self.packs.remove(0);
            }
            self.packs.push((location.pack, bytes));
        }
        let pack = self.packs.iter().find(|(pack, _)| *pack == location.pack).map(|(_, b)| b);
        let pack = pack.ok_or(Error::Internal("pack cache"))?;
        open_in_pack(self.keys, pack, location, chunk.key.as_ref()).map(Some)
    }
}

impl Read for ExportReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(chunk) = &self.current {
                let rest = &chunk.expose_secret()[self.position..];
                if !rest.is_empty() {
                    let n = rest.len().min(out.len());
                    out[..n].copy_from_slice(&rest[..n]);
                    self.position += n;
                    self.total += n as u64;
                    return Ok(n);
                }
            }
            match self.next_chunk() {
                Ok(Some(chunk)) => {
                    self.current = Some(chunk);
                    self.position = 0;
                }
                Ok(None) => return Ok(0),
                Err(error) => {
                    self.error = Some(error);
                    return Err(std::io::Error::other("backup data failed"));
                }
            }
        }
    }
}

/// The new vault a restore fills (the vault module builds it; this module never opens one).
pub(crate) trait RestoredVault {
    /// Fills the empty database from the streamed export; all or nothing. Hands over, for each
    /// media row as it is imported, the check of its file (run once the file is placed), to
    /// `media_checks`.
    fn import_database(
        &mut self,
        input: &mut dyn Read,
        media_checks: &mut dyn FnMut([u8; 16], Box<dyn MediaCheck>),
    ) -> Result<()>;
    /// Writes the vault's media files; used on a thread of its own while the database imports.
    fn media_placer(&self) -> Box<dyn MediaPlacer>;
    /// Checks the key slots, every page of the database and the search index; true when all
    /// passed.
    fn verify_database(&self) -> Result<bool>;
    /// The check of the media file of `id` under the key its (imported) row holds, to run on any
    /// thread once the file is placed; `None` when it has no row.
    fn media_check(&self, id: &[u8; 16]) -> Result<Option<Box<dyn MediaCheck>>>;
    /// Whether every media row's file is among `verified` and every media file has a row.
    fn media_complete(&self, verified: &HashSet<[u8; 16]>) -> Result<bool>;
    /// Records the backup the vault came from (with the generation's token, when it has one), so
    /// its next backup continues that history.
    fn adopt(
        &mut self,
        key: &SecretKey,
        keyring: Option<&Keyring>,
        generation: u64,
        manifest_hash: &[u8; 32],
        token: Option<&GenerationToken>,
    ) -> Result<()>;
    /// How many messages the vault holds.
    fn message_count(&self) -> Result<u64>;
}

/// Writes media files into the vault being restored (its `media/` directory only, never its
/// database), so that it can run beside the database import.
pub(crate) trait MediaPlacer: Send {
    /// Whether the media file of `id` is present (an interrupted restore wrote it).
    fn has_media(&self, id: &[u8; 16]) -> bool;
    /// Writes a media file (the stored stream, read from `source`) under its id.
    fn place_media(&mut self, id: &[u8; 16], source: &mut dyn Read) -> Result<()>;
}

/// The authentication of one media file of the vault being restored under the key its row holds,
/// detached from the database.
pub(crate) trait MediaCheck: Send {
    /// Opens the file and authenticates every segment; true when all pass.
    fn passes(self: Box<Self>) -> bool;
}

/// Creates or reopens the vault being restored in a staging directory.
pub(crate) trait RestoreStaging {
    /// A new, empty vault at `dir`.
    fn create(&self, dir: &Path) -> Result<Box<dyn RestoredVault + '_>>;
    /// The vault an interrupted restore left at `dir`, if it opens.
    fn reopen(&self, dir: &Path) -> Option<Box<dyn RestoredVault + '_>>;
}

/// What a restore needs beyond the storage and the key.
pub(crate) struct Restore<'a> {
    /// Builds the new vault.
    pub(crate) staging: &'a dyn RestoreStaging,
    /// Told the bytes restored so far (export and media) of the total; may cancel.
    pub(crate) progress: Option<&'a dyn Progress>,
    /// The newest generation and manifest hash other guardians attest (recovery): the storage
    /// must hold at least that history, or the restore fails as a rollback.
    pub(crate) at_least: Option<(u64, [u8; 32])>,
    /// The token of the newest generation, when its head record at the storage carries only a
    /// share (recovered from the guardians' parts: [`super::run::recover_token`]).
    pub(crate) token: Option<(u64, GenerationToken)>,
}

/// Restores the newest snapshot of the backup at `transport` into a new vault at `target` (which
/// must not exist).
///
/// The vault is built in `.<name>.restoring` beside the target and renamed into place when
/// complete and verified. An interrupted or failed restore (network, cancellation) leaves that
/// directory, and the next restore of the same generation into the same target resumes it: the
/// database import is kept and media items already written are not fetched again. A restore
/// that finds damaged data removes it.
pub(crate) fn restore(
    transport: &dyn Transport,
    key: &BackupRootKey,
    target: &Path,
    options: Restore<'_>,
) -> Result<RestoreReport> {
    if target.exists() {
        return Err(Error::AlreadyExists("the restore target exists; restore into a new directory".into()));
    }
    let (keys, keyring) = load_keys(transport, &key.0)?;
    let keys = match options.token {
        Some((generation, token)) => keys.with_known_token(generation, token),
        None => keys,
    };
    let Some(head) = current(transport, &keys, (0, None))? else {
        if let Some((attested, _)) = options.at_least {
            return Err(Error::Integrity {
                object: DataKind::BackupHead,
                problem: format!(
                    "the backup storage has no head record, but a guardian attests generation {attested}: it hides the backup"
                ),
            });
        }
        return Err(Error::NotFound("no backup at this storage".into()));
    };
    if let Some((attested, _)) = options.at_least
        && head.head.generation < attested
    {
        return Err(Error::Integrity {
            object: DataKind::BackupHead,
            problem: format!(
                "the backup storage's newest generation {} is older than generation {attested}, which a guardian \
             attests: it hides newer snapshots",
                head.head.generation
            ),
        });
    }
    let manifests_checked = verify_chain(transport, &keys, &head.manifest, head.head.manifest_hash, options.at_least)?;
    let known = load_index(transport, &keys, &head.manifest)?;
    let snapshot = head.manifest.snapshots.last().ok_or_else(|| Error::Integrity {
        object: DataKind::BackupManifest,
        problem: "the newest manifest lists no snapshot".into(),
    })?;
    let tree = read_tree(transport, &keys, &known, snapshot)?;
    let total = tree.media.iter().map(|m| m.file_len).sum::<u64>() + tree.export_len;
    let meter = SharedMeter::new(Meter::new(options.progress, Some(total)));
    // A restore cancelled before it starts builds nothing: the progress is asked once up front
    // (an import smaller than one metering step would otherwise never ask it).
    meter.add(0)?;

    let staging = staging_dir(target)?;
    let marker = ResumeMarker { generation: head.head.generation, manifest_hash: head.head.manifest_hash };
    let built = (|| {
        let (mut vault, resumed) = match marker.resume(&staging, options.staging) {
            Some(vault) => (vault, true),
            None => (options.staging.create(&staging)?, false),
        };
        // The media files are fetched and written on a second thread while this one imports the
        // database: the import is mostly SQLite's work, the media mostly waiting for reads,
        // writes and fsyncs. A failed import stops the media thread at its next step (without
        // the import, a resume starts over); a failed media item lets the import finish, so that
        // a resume keeps it. A cancellation reaches both through the progress, which is asked
        // again at the next report.
        //
        // Every byte is authenticated once, while the rest is still being built: each media file
        // as soon as the media thread has made it durable and the import has handed over its
        // row's key (media rows come early in the export), on worker threads; the database once
        // imported, on this one.
        let mut placer = vault.media_placer();
        let (ready, ready_events) = std::sync::mpsc::channel();
        let media_ready = ready.clone();
        let (checked, placed, media_checked) = std::thread::scope(|scope| {
            let media =
                scope.spawn(|| place_media(transport, &keys, &tree.media, placer.as_mut(), &meter, media_ready));
            let _media_stops_on_panic = StopOnPanic(&meter);
            let verifier = scope.spawn(|| verify_media_when_ready(ready_events, &meter));
            let mut hand_over = |id, check| {
                let _ = ready.send(Ready::Keyed(id, check));
            };
            let imported = if resumed {
                let keyed = tree.media.iter().try_for_each(|entry| {
                    if let Some(check) = vault.media_check(&entry.media_id)? {
                        hand_over(entry.media_id, check);
                    }
                    Ok(())
                });
                keyed.and_then(|()| meter.add(tree.export_len)).map(|()| 0)
            } else {
                // The marker is written before the import's last bytes are counted, so that a
                // cancellation the progress asks for at that count keeps the complete import.
                import_export(transport, &keys, &known, &tree, vault.as_mut(), &meter, &mut hand_over).and_then(
                    |imported| {
                        marker.write(&staging)?;
                        meter.add(imported.unmetered)?;
                        Ok(imported.downloaded)
                    },
                )
            };
            // No more keys: the verifier ends once the media thread has ended too.
            drop(ready);
            let checked = imported.and_then(|downloaded| Ok((downloaded, vault.verify_database()?)));
            // A failed import or database check stops the media thread (a failed check: what is
            // staged is removed anyway).
            if !matches!(checked, Ok((_, true))) {
                meter.stop();
            }
            let placed = media.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let media_checked = verifier.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (checked, placed, media_checked)
        });
        let (export_downloaded, (media_downloaded, media_resumed)) = match (checked, placed) {
            // A check that failed first: the media thread was stopped because of it.
            (Ok((_, false)), _) => return Err(failed_verification()),
            (_, _) if !media_checked.passed => return Err(failed_verification()),
            (Ok((export, true)), Ok(media)) => (export, media),
            // A cancelled import beside a failed media item: the media's own failure (or the
            // same cancellation).
            (Err(Error::Cancelled), Err(media_error)) => return Err(media_error),
            // Otherwise the import's failure first: the media thread stopped because of it.
            (Err(import_error), _) => return Err(import_error),
            (Ok(_), Err(media_error)) => return Err(media_error),
        };
        let downloaded = export_downloaded + media_downloaded;
        meter.finish()?;
        if !vault.media_complete(&media_checked.verified)? {
            return Err(failed_verification());
        }
        let token = keys.token_for(&head.head);
        vault.adopt(&key.0, keyring.as_ref(), head.head.generation, &head.head.manifest_hash, token.as_ref())?;
        Ok(RestoreReport {
            generation: head.head.generation,
            manifests_checked,
            messages: vault.message_count()?,
            media: tree.media.len() as u64,
            media_resumed,
            export_bytes: tree.export_len,
            downloaded_bytes: downloaded,
        })
    })();
    match built {
        Ok(report) => {
            // The vault was locked when the closure returned; move it into place.
            let _ = std::fs::remove_file(staging.join(ResumeMarker::FILE));
            std::fs::rename(&staging, target).map_err(Error::io("moving the restored vault into place"))?;
            if let Some(parent) = target.parent() {
                let _ = crate::fsutil::sync_dir(if parent.as_os_str().is_empty() { Path::new(".") } else { parent });
            }
            Ok(report)
        }
        Err(error) => {
            // Damaged data is not kept; an interruption is, to resume from.
            if matches!(error, Error::Integrity { .. } | Error::UnsupportedVersion { .. } | Error::InvalidInput(_)) {
                let _ = std::fs::remove_dir_all(&staging);
            }
            Err(error)
        }
    }
}

/// Marks a staged restore whose database import is complete, for the snapshot it came from.
struct ResumeMarker {
    generation: u64,
    manifest_hash: [u8; 32],
}

impl ResumeMarker {
    const FILE: &'static str = "restore-progress";

    fn encode(&self) -> String {
        format!("vault-core restore v1\n{}\n{}\n", self.generation, hex::encode(self.manifest_hash))
    }

    fn write(&self, staging: &Path) -> Result<()> {
        crate::fsutil::atomic_write(&staging.join(Self::FILE), self.encode().as_bytes(), 0o600)
            .map_err(Error::io("recording restore progress"))
    }

    /// The staged vault of an interrupted restore of this same snapshot, unlocked; otherwise any
    /// leftover staging directory is removed and `None` returned.
    fn resume<'s>(&self, staging: &Path, builder: &'s dyn RestoreStaging) -> Option<Box<dyn RestoredVault + 's>> {
        if !staging.exists() {
            return None;
        }
        let same = crate::fsutil::read_bounded(&staging.join(Self::FILE), 256)
            .is_ok_and(|bytes| bytes == self.encode().as_bytes());
        if same && let Some(vault) = builder.reopen(staging) {
            return Some(vault);
        }
        let _ = std::fs::remove_dir_all(staging);
        None
    }
}

/// The staging directory beside `target` in which the restored vault is built.
fn staging_dir(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidInput("the restore target needs a directory name".into()))?;
    Ok(target.with_file_name(format!(".{name}.restoring")))
}

/// The restore's one meter, shared by the database import and the media thread, with the flag by
/// which a failed import stops the media thread.
struct SharedMeter<'m> {
    meter: std::sync::Mutex<Meter<'m>>,
    stopped: std::sync::atomic::AtomicBool,
}

impl<'m> SharedMeter<'m> {
    fn new(meter: Meter<'m>) -> Self {
        Self { meter: std::sync::Mutex::new(meter), stopped: std::sync::atomic::AtomicBool::new(false) }
    }

    /// Counts `n` more bytes; fails with [`Error::Cancelled`] when the progress asked to stop or
    /// the import failed.
    fn add(&self, n: u64) -> Result<()> {
        if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(Error::Cancelled);
        }
        self.meter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).add(n)
    }

    fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn finish(&self) -> Result<()> {
        self.meter.lock().unwrap_or_else(std::sync::PoisonError::into_inner).finish()
    }
}

/// Stops the media thread if the import panics: the scope joins that thread before the panic
/// goes on, and it would otherwise place every remaining media file first.
struct StopOnPanic<'a, 'm>(&'a SharedMeter<'m>);

impl Drop for StopOnPanic<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Counts what `inner` yields on the shared meter, in steps of [`Metered::STEP`] bytes (the import
/// reads a few bytes at a time); a cancellation is kept in `cancelled`. [`Metered::flush`] counts
/// the rest.
struct Metered<'a, 'm, R> {
    inner: R,
    meter: &'a SharedMeter<'m>,
    unmetered: u64,
    cancelled: Option<Error>,
}

impl<'a, 'm, R> Metered<'a, 'm, R> {
    const STEP: u64 = 64 << 10;

    fn new(inner: R, meter: &'a SharedMeter<'m>) -> Self {
        Self { inner, meter, unmetered: 0, cancelled: None }
    }

    fn flush(&mut self) -> Result<()> {
        let n = std::mem::take(&mut self.unmetered);
        self.meter.add(n)
    }
}

impl<R: Read> Read for Metered<'_, '_, R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.unmetered += n as u64;
        if self.unmetered >= Self::STEP
            && let Err(error) = self.flush()
        {
            self.cancelled = Some(error);
            return Err(std::io::Error::other("restore cancelled"));
        }
        Ok(n)
    }
}

/// A complete database import.
struct Imported {
    /// Bytes downloaded for it.
    downloaded: u64,
    /// Bytes of the export read but not yet counted on the meter.
    unmetered: u64,
}

/// Imports the snapshot's database export into `vault`, streaming its chunks from the packs.
fn import_export(
    transport: &dyn Transport,
    keys: &BackupKeys,
    known: &HashMap<ChunkId, Location>,
    tree: &Tree,
    vault: &mut dyn RestoredVault,
    meter: &SharedMeter<'_>,
    media_checks: &mut dyn FnMut([u8; 16], Box<dyn MediaCheck>),
) -> Result<Imported> {
    let export = ExportReader {
        transport,
        keys,
        known,
        chunks: tree.export_chunks.iter(),
        packs: Vec::new(),
        current: None,
        position: 0,
        total: 0,
        downloaded: 0,
        error: None,
    };
    let mut reader = Metered::new(export, meter);
    let imported = vault.import_database(&mut reader, media_checks);
    if let Some(error) = reader.inner.error.take().or(reader.cancelled.take()) {
        return Err(error);
    }
    imported?;
    if reader.inner.total != tree.export_len {
        return Err(Error::Integrity {
            object: DataKind::BackupSnapshot,
            problem: "the restored export's length differs from the snapshot's".into(),
        });
    }
    Ok(Imported { downloaded: reader.inner.downloaded, unmetered: reader.unmetered })
}

/// Fetches and writes every media file of the snapshot the vault lacks, and sends the id of each
/// file, written now or by an interrupted restore, to `media_ready` once it is durable; returns the
/// bytes downloaded and the number of files an interrupted restore had already written.
fn place_media(
    transport: &dyn Transport,
    keys: &BackupKeys,
    media: &[MediaEntry],
    placer: &mut dyn MediaPlacer,
    meter: &SharedMeter<'_>,
    media_ready: std::sync::mpsc::Sender<Ready>,
) -> Result<(u64, u64)> {
    let (mut downloaded, mut resumed) = (0, 0);
    for entry in media {
        let id = entry.media_id;
        if placer.has_media(&id) {
            resumed += 1;
            meter.add(entry.file_len)?;
            // Verified like the others (the verifier may have stopped listening: then it is not).
            let _ = media_ready.send(Ready::Placed(id));
            continue;
        }
        let name = media_object_name(keys, &entry.media_id);
        let object = RemoteObject::new(transport, &name, entry.file_len);
        let mut source = Metered::new(object, meter);
        let placed = placer.place_media(&id, &mut source);
        // An unreachable server or a cancellation keeps the staged vault for resuming; only
        // bytes that arrived and failed are an integrity error.
        if let Some(error) = source.inner.take_failure().or(source.cancelled.take()) {
            return Err(error);
        }
        placed?;
        source.flush()?;
        downloaded += entry.file_len;
        let _ = media_ready.send(Ready::Placed(id));
    }
    Ok((downloaded, resumed))
}

/// What the verifier of the media files learns: a file is placed, or its row's key is known.
enum Ready {
    /// The media thread has made this file durable.
    Placed([u8; 16]),
    /// The import has handed over the check of this file.
    Keyed([u8; 16], Box<dyn MediaCheck>),
}

/// What the media files' verification found.
struct MediaChecked {
    /// The files whose check passed.
    verified: HashSet<[u8; 16]>,
    /// False when a check failed.
    passed: bool,
}

/// Runs each media file's check on worker threads as soon as the file is placed and its check
/// handed over (in either order), until every sender of `events` is gone. A failed check stops
/// the restore's other work through `meter`.
fn verify_media_when_ready(events: std::sync::mpsc::Receiver<Ready>, meter: &SharedMeter<'_>) -> MediaChecked {
    let _restore_stops_on_panic = StopOnPanic(meter);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let (jobs, queue) = std::sync::mpsc::channel::<([u8; 16], Box<dyn MediaCheck>)>();
    let queue = std::sync::Mutex::new(queue);
    let (results, outcomes) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let results = results.clone();
            let queue = &queue;
            scope.spawn(move || {
                let _restore_stops_on_panic = StopOnPanic(meter);
                loop {
                    let job = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                    let Ok((id, check)) = job else { break };
                    let passed = check.passes();
                    if !passed {
                        meter.stop();
                    }
                    let _ = results.send((id, passed));
                }
            });
        }
        drop(results);
        let mut keyed: HashMap<[u8; 16], Box<dyn MediaCheck>> = HashMap::new();
        let mut placed = HashSet::new();
        for event in events {
            match event {
                Ready::Placed(id) => match keyed.remove(&id) {
                    Some(check) => {
                        let _ = jobs.send((id, check));
                    }
                    None => {
                        placed.insert(id);
                    }
                },
                Ready::Keyed(id, check) => {
                    if placed.remove(&id) {
                        let _ = jobs.send((id, check));
                    } else {
                        keyed.insert(id, check);
                    }
                }
            }
        }
        drop(jobs);
        let mut checked = MediaChecked { verified: HashSet::new(), passed: true };
        for (id, passed) in outcomes {
            checked.passed &= passed;
            if passed {
                checked.verified.insert(id);
            }
        }
        checked
    })
}

fn failed_verification() -> Error {
    Error::Integrity { object: DataKind::Database, problem: "the restored vault failed verification".into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic beside a thread that meters its work stops that thread at its next step, so the
    /// panic is not held up until the thread's work is done.
    #[test]
    fn a_panic_in_the_import_stops_the_media_thread() {
        let meter = SharedMeter::new(Meter::new(None, None));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    while std::time::Instant::now() < deadline {
                        if let Err(error) = meter.add(1) {
                            return Some(error);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    None
                });
                let _media_stops_on_panic = StopOnPanic(&meter);
                std::thread::sleep(std::time::Duration::from_millis(20));
                panic!("the import failed unexpectedly");
            })
        }));
        assert!(outcome.is_err(), "the panic goes on after the media thread stopped");
        assert!(matches!(meter.add(0), Err(Error::Cancelled)), "the media thread was told to stop");
    }

    /// A check whose outcome is scripted.
    struct ScriptedCheck(bool);

    impl MediaCheck for ScriptedCheck {
        fn passes(self: Box<Self>) -> bool {
            self.0
        }
    }

    /// Runs the verifier while one thread places files 1 to 8 and another hands over their checks
    /// in reverse order (so some keys come first and some files), a millisecond apart; file
    /// `failing` fails its check.
    fn verify_eight(failing: Option<u8>, meter: &SharedMeter<'_>) -> MediaChecked {
        let (ready, events) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            let placed = ready.clone();
            scope.spawn(move || {
                for n in 1..=8u8 {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    let _ = placed.send(Ready::Placed([n; 16]));
                }
            });
            scope.spawn(move || {
                for n in (1..=8u8).rev() {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    let _ = ready.send(Ready::Keyed([n; 16], Box::new(ScriptedCheck(Some(n) != failing))));
                }
            });
            verify_media_when_ready(events, meter)
        })
    }

    #[test]
    fn each_media_file_is_checked_once_it_is_placed_and_keyed_in_either_order() {
        let meter = SharedMeter::new(Meter::new(None, None));
        let checked = verify_eight(None, &meter);
        assert!(checked.passed);
        assert_eq!(checked.verified, (1..=8u8).map(|n| [n; 16]).collect::<HashSet<_>>());
        assert!(meter.add(0).is_ok(), "nothing stopped the restore");
    }

    #[test]
    fn a_media_file_that_fails_its_check_fails_verification_and_stops_the_restore() {
        let meter = SharedMeter::new(Meter::new(None, None));
        let checked = verify_eight(Some(5), &meter);
        assert!(!checked.passed);
        assert!(!checked.verified.contains(&[5; 16]));
        assert!(matches!(meter.add(0), Err(Error::Cancelled)), "the media thread is told to stop");
    }

    #[test]
    fn a_file_without_a_key_or_a_key_without_a_file_is_not_verified() {
        let meter = SharedMeter::new(Meter::new(None, None));
        let (ready, events) = std::sync::mpsc::channel();
        ready.send(Ready::Placed([1; 16])).unwrap();
        ready.send(Ready::Keyed([2; 16], Box::new(ScriptedCheck(true)))).unwrap();
        drop(ready);
        let checked = verify_media_when_ready(events, &meter);
        assert!(checked.verified.is_empty(), "the caller's completeness check refuses both");
    }
}
