//! Restore (`docs/backup.md`): the newest manifest (hash-chained, authenticated), its index and
//! snapshot tree, then a new vault built in a temporary directory beside the target — database
//! rows imported from the streamed export, media files written as stored, every page and media
//! segment verified — and renamed into place only when complete. A failure at any point leaves
//! no vault at the target.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::format::{Location, ObjectId, media_object_name, pack_name};
use super::keys::{BackupKeys, ChunkId};
use super::run::{current, fetch_named, load_index, open_in_pack, read_tree, verify_chain};
use super::transport::Transport;
use crate::error::{Error, Result};
use crate::secret::{SecretBytes, SecretKey};
use crate::{CreateOptions, Passphrase, Vault};

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// The generation restored.
    pub generation: u64,
    /// Manifests whose hash chain was checked.
    pub manifests_checked: u64,
    /// Messages restored.
    pub messages: u64,
    /// Media items restored.
    pub media: u64,
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
    ids: std::slice::Iter<'a, ChunkId>,
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
        let Some(id) = self.ids.next() else { return Ok(None) };
        let location = self
            .known
            .get(id)
            .ok_or_else(|| Error::Integrity(format!("backup index lacks an export chunk ({id:?})")))?;
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
        open_in_pack(self.keys, pack, location).map(Some)
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

/// Restores the newest snapshot of the backup at `transport` into a new vault at `target` (which
/// must not exist), protected by `passphrase` (and `options`' key wrapper, if any).
pub fn restore(
    transport: &dyn Transport,
    key: &BackupRootKey,
    target: &Path,
    passphrase: &Passphrase,
    options: CreateOptions<'_>,
) -> Result<RestoreReport> {
    if target.exists() {
        return Err(Error::AlreadyExists("the restore target exists; restore into a new directory".into()));
    }
    let keys = BackupKeys::derive(&key.0);
    let Some(head) = current(transport, &keys, (0, None))? else {
        return Err(Error::NotFound("no backup at this storage".into()));
    };
    let manifests_checked = verify_chain(transport, &keys, &head.manifest, head.head.manifest_hash, None)?;
    let known = load_index(transport, &keys, &head.manifest)?;
    let snapshot = head
        .manifest
        .snapshots
        .last()
        .ok_or_else(|| Error::Integrity("the newest manifest lists no snapshot".into()))?;
    let tree = read_tree(transport, &keys, &known, snapshot)?;

    let staging = staging_dir(target)?;
    let built = (|| {
        let mut vault = Vault::create(&staging, passphrase, options)?;
        let mut reader = ExportReader {
            transport,
            keys: &keys,
            known: &known,
            ids: tree.export_chunks.iter(),
            packs: Vec::new(),
            current: None,
            position: 0,
            total: 0,
            downloaded: 0,
            error: None,
        };
        let imported = vault.import_database(&mut reader);
        if let Some(error) = reader.error.take() {
            return Err(error);
        }
        let stats = imported?;
        if reader.total != tree.export_len {
            return Err(Error::Integrity("the restored export's length differs from the snapshot's".into()));
        }
        let mut downloaded = reader.downloaded;
        for entry in &tree.media {
            let name = media_object_name(&keys, &entry.media_id);
            let mut source = RangedReader { transport, name: &name, offset: 0, len: entry.file_len };
            vault.place_restored_media(&crate::MediaId(entry.media_id), &mut source)?;
            downloaded += entry.file_len;
        }
        let report = vault.verify()?;
        if !report.is_ok() {
            return Err(Error::Integrity("the restored vault failed verification".into()));
        }
        vault.adopt_backup(&key.0, head.head.generation, &head.head.manifest_hash)?;
        Ok(RestoreReport {
            generation: head.head.generation,
            manifests_checked,
            messages: stats.rows_of("messages"),
            media: tree.media.len() as u64,
            export_bytes: tree.export_len,
            downloaded_bytes: downloaded,
        })
    })();
    match built {
        Ok(report) => {
            // The vault was locked when the closure returned; move it into place.
            std::fs::rename(&staging, target).map_err(Error::io("moving the restored vault into place"))?;
            if let Some(parent) = target.parent() {
                let _ = crate::fsutil::sync_dir(if parent.as_os_str().is_empty() { Path::new(".") } else { parent });
            }
            Ok(report)
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(error)
        }
    }
}

/// A fresh directory name beside `target` for building the restored vault.
fn staging_dir(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidInput("the restore target needs a directory name".into()))?;
    let suffix: [u8; 8] = crate::crypto::random_array().map_err(Error::from_rng)?;
    Ok(target.with_file_name(format!(".{name}.restoring-{}", hex::encode(suffix))))
}

/// Reads an object's first `len` bytes in 4 MiB ranged reads.
struct RangedReader<'a> {
    transport: &'a dyn Transport,
    name: &'a str,
    offset: u64,
    len: u64,
}

impl Read for RangedReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.offset >= self.len || out.is_empty() {
            return Ok(0);
        }
        let want = (self.len - self.offset).min(out.len() as u64).min(4 << 20);
        let bytes = self
            .transport
            .get_range(self.name, self.offset, want)
            .map_err(|e| std::io::Error::other(format!("reading a media object: {e}")))?;
        if bytes.is_empty() {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "a media object is truncated"));
        }
        let n = bytes.len().min(out.len());
        out[..n].copy_from_slice(&bytes[..n]);
        self.offset += n as u64;
        Ok(n)
    }
}
