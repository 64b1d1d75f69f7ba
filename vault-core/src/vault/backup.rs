//! The vault side of backups (`docs/backup.md`): the [`Backups`] handle, which runs backups on
//! connections of its own so the vault stays usable meanwhile, and [`restore_backup`], which
//! builds a new vault from a backup.

use crate::error::DataKind;
use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use rusqlite::Connection;

use super::media::authenticate_all;
use super::{CreateOptions, Vault};
use crate::backup::keys::{GenerationToken, Keyring, TokenPolicy};
use crate::backup::restore::{MediaCheck, MediaPlacer, Restore, RestoreStaging, RestoredVault};
use crate::backup::run::{Database, Written};
use crate::backup::{
    BackupCheck, BackupKeys, BackupReport, BackupRootKey, PruneReport, RestoreReport, SnapshotInfo, Transport,
};
use crate::error::{Error, Result};
use crate::media::MediaFiles;
use crate::secret::SecretKey;
#[cfg(test)]
use crate::store::export::ExportStats;
use crate::store::export::{self, ImportedMedia};
use crate::store::{backup_state, events, media_rows};
use crate::{MediaId, Passphrase, Progress, SecurityEventKind};

/// Backups of an unlocked vault, on connections of their own: a backup run, a listing, a
/// verification or a prune through this handle never holds the [`Vault`], so the app keeps
/// adding, reading and searching messages meanwhile. A run backs up the vault as it was when the
/// run started (one read transaction); what is added meanwhile goes into the next run.
///
/// Get one with [`Vault::backups`]; it is `Send`, so it can run on a worker thread. While one
/// exists, a root-key rotation of the vault is refused ([`Error::Busy`]).
pub struct Backups {
    snapshot: Connection,
    state: Connection,
    media: MediaFiles,
    _work: super::LongWork,
}

impl std::fmt::Debug for Backups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backups").finish_non_exhaustive()
    }
}

impl Vault {
    /// A handle for backing this vault up (see [`Backups`]).
    pub fn backups(&self) -> Result<Backups> {
        Ok(Backups {
            snapshot: self.side_connection()?,
            state: self.side_connection()?,
            media: MediaFiles::new(&self.dir),
            _work: self.long_work(),
        })
    }
}

impl Backups {
    /// Backs the vault up to `transport`: a new snapshot that shares every unchanged chunk and
    /// media item with the earlier ones, visible only once complete. The first run creates the
    /// vault's Backup Root Key. Refuses storage whose history is older than, or diverges from,
    /// what this vault last wrote. `progress` hears the bytes processed (export and media); a
    /// cancelled run fails with [`Error::Cancelled`] and the next run resumes it.
    pub fn run(&mut self, transport: &dyn Transport, progress: Option<&dyn Progress>) -> Result<BackupReport> {
        self.run_written(transport, progress, None, TokenPolicy::WHOLE).map(|w| w.report)
    }

    /// [`Backups::run`] as the writing device `writer` (its device id at the data guardian;
    /// `None` for a backup directory), spreading the generation's token over the holders by
    /// `policy`; also returns the head record it wrote, with the whole token.
    pub(crate) fn run_written(
        &mut self,
        transport: &dyn Transport,
        progress: Option<&dyn Progress>,
        writer: Option<&str>,
        policy: TokenPolicy,
    ) -> Result<Written> {
        let db = Database { snapshot: &self.snapshot, state: &self.state };
        crate::backup::run::run(&db, &self.media, transport, progress, writer, policy)
    }

    /// The snapshots the backup at `transport` retains, oldest first.
    pub fn list(&self, transport: &dyn Transport) -> Result<Vec<SnapshotInfo>> {
        let (keys, local) = self.keys()?;
        crate::backup::maintain::list(transport, &keys, local)
    }

    /// Checks the backup at `transport` (see [`BackupCheck`]); `read_fraction` is the share of
    /// packs (and media objects) read and authenticated in full (0 to 1), rounded up to whole
    /// objects: any share above 0 reads at least one.
    pub fn verify(&self, transport: &dyn Transport, read_fraction: f64) -> Result<BackupCheck> {
        if !(0.0..=1.0).contains(&read_fraction) {
            return Err(Error::InvalidInput("the share of packs to read is between 0 and 1".into()));
        }
        let (keys, local) = self.keys()?;
        let conn = &self.state;
        let media_key = |id: &[u8; 16]| media_rows::row(conn, &MediaId(*id)).ok().map(|row| (row.key, row.length));
        crate::backup::maintain::verify(transport, &keys, local, read_fraction, &media_key)
    }

    /// Keeps the newest `keep` snapshots and deletes what only the others needed.
    pub fn prune(&mut self, transport: &dyn Transport, keep: usize) -> Result<PruneReport> {
        self.prune_with(transport, keep, TokenPolicy::WHOLE).map(|(report, _)| report)
    }

    /// [`Backups::prune`], spreading the new generation's token over the holders by `policy`;
    /// also returns the head record written (with the whole token).
    pub(crate) fn prune_with(
        &mut self,
        transport: &dyn Transport,
        keep: usize,
        policy: TokenPolicy,
    ) -> Result<(PruneReport, crate::backup::format::Head)> {
        if backup_state::pending_rotation(&self.state)?.is_some() {
            return Err(Error::KeyRotationUnfinished);
        }
        let (keys, local) = self.keys()?;
        let (report, head) = crate::backup::maintain::prune(transport, &keys, local, keep, policy)?;
        if report.rewritten {
            let token = keys.token_for(&head);
            backup_state::advance(&self.state, head.generation, &head.manifest_hash, token.as_ref())?;
        }
        Ok((report, head))
    }

    /// The vault's Backup Root Key, for the developer option that restores without recovery.
    /// Anyone holding it can decrypt every backup of this vault: never store it unprotected.
    /// `None` before the first backup.
    pub fn dangerous_export_key(&self) -> Result<Option<BackupRootKey>> {
        Ok(backup_state::root_key(&self.state)?.map(BackupRootKey))
    }

    /// The Backup Root Key, created (and stored) if the vault has none yet.
    pub(crate) fn root_key_or_create(&self) -> Result<SecretKey> {
        if let Some(key) = backup_state::root_key(&self.state)? {
            return Ok(key);
        }
        let key = SecretKey::generate().map_err(Error::from_rng)?;
        backup_state::set_root_key(&self.state, &key)?;
        Ok(key)
    }

    /// The connection the backup state is kept on (recovery keeps its enrolment there too).
    pub(crate) fn state(&self) -> &Connection {
        &self.state
    }

    fn keys(&self) -> Result<(BackupKeys, backup_state::Position)> {
        let keys =
            backup_state::keys(&self.state)?.ok_or_else(|| Error::NotFound("this vault has no backup yet".into()))?;
        Ok((keys, backup_state::position(&self.state)?))
    }

    /// Every key of the backup (current epoch and keyring), which must exist.
    pub(crate) fn backup_keys(&self) -> Result<BackupKeys> {
        self.keys().map(|(keys, _)| keys)
    }
}

/// How [`restore_backup`] builds the new vault.
#[derive(Default)]
pub struct RestoreOptions<'a> {
    /// The new vault's key options (Argon2 parameters, optional key wrapper).
    pub create: CreateOptions<'a>,
    /// Told the bytes restored so far (export and media) of the total; may cancel.
    pub progress: Option<&'a dyn Progress>,
    /// The newest generation and manifest hash other guardians attest (recovery): the storage
    /// must hold at least that history, or the restore fails as a rollback.
    pub at_least: Option<(u64, [u8; 32])>,
}

/// Restores the newest snapshot of the backup at `transport` into a new vault at `target` (which
/// must not exist), protected by `passphrase` (and the key wrapper of `options.create`).
///
/// The vault is built in `.<name>.restoring` beside the target and renamed into place when
/// complete and verified. An interrupted or failed restore (network, cancellation) leaves that
/// directory, and the next restore of the same generation into the same target resumes it: the
/// database import is kept and media items already written are not fetched again. A restore
/// that finds damaged data removes it.
pub fn restore_backup(
    transport: &dyn Transport,
    key: &BackupRootKey,
    target: &Path,
    passphrase: &Passphrase,
    options: RestoreOptions<'_>,
) -> Result<RestoreReport> {
    restore_with_token(transport, key, target, passphrase, options, None)
}

/// [`restore_backup`] knowing the newest generation's token (recovered from the guardians).
pub(crate) fn restore_with_token(
    transport: &dyn Transport,
    key: &BackupRootKey,
    target: &Path,
    passphrase: &Passphrase,
    options: RestoreOptions<'_>,
    token: Option<(u64, GenerationToken)>,
) -> Result<RestoreReport> {
    let staging = Staging { passphrase, create: options.create };
    let restore = Restore { staging: &staging, progress: options.progress, at_least: options.at_least, token };
    crate::backup::restore::restore(transport, key, target, restore)
}

/// Builds the restored vault with the new device's passphrase and key options.
struct Staging<'a> {
    passphrase: &'a Passphrase,
    create: CreateOptions<'a>,
}

impl RestoreStaging for Staging<'_> {
    fn create(&self, dir: &Path) -> Result<Box<dyn RestoredVault + '_>> {
        let options = CreateOptions { kdf: self.create.kdf, wrapper: self.create.wrapper };
        Ok(Box::new(Vault::create(dir, self.passphrase, options)?))
    }

    fn reopen(&self, dir: &Path) -> Option<Box<dyn RestoredVault + '_>> {
        Vault::unlock_with_passphrase(dir, self.passphrase).ok().map(|v| Box::new(v) as Box<dyn RestoredVault>)
    }
}

/// The media directory of a vault being restored.
struct RestoredMedia(MediaFiles);

impl MediaPlacer for RestoredMedia {
    fn has_media(&self, id: &[u8; 16]) -> bool {
        self.0.path(&MediaId(*id)).exists()
    }

    fn place_media(&mut self, id: &[u8; 16], source: &mut dyn Read) -> Result<()> {
        self.0.ensure_dir()?;
        let path = self.0.path(&MediaId(*id));
        crate::fsutil::write_new(&path, 0o600, Error::io("writing a restored media file"), |file| {
            crate::fsutil::copy_large(source, file).map(|_| ()).map_err(|e| Error::Integrity {
                object: DataKind::BackupMedia,
                problem: format!("a media object could not be read: {e}"),
            })
        })
    }
}

/// The authentication of a restored media file under the key of its row, opened when it runs.
struct PendingMediaCheck {
    files: MediaFiles,
    id: MediaId,
    key: SecretKey,
    length: u64,
}

impl PendingMediaCheck {
    /// The check of the media file `id` of the vault at `dir`, under `key`, for `length` bytes.
    fn boxed(dir: &Path, id: MediaId, key: SecretKey, length: u64) -> Box<dyn MediaCheck> {
        Box::new(Self { files: MediaFiles::new(dir), id, key, length })
    }
}

impl MediaCheck for PendingMediaCheck {
    fn passes(self: Box<Self>) -> bool {
        let passes = self
            .files
            .open(&self.id, &self.key, self.length)
            .and_then(|mut reader| authenticate_all(&mut reader))
            .is_ok();
        // Written (durably) and now read back: the restore has no further use for its pages.
        crate::fsutil::release_cached(&self.files.path(&self.id));
        passes
    }
}

impl RestoredVault for Vault {
    fn import_database(
        &mut self,
        input: &mut dyn Read,
        media_checks: &mut dyn FnMut([u8; 16], Box<dyn MediaCheck>),
    ) -> Result<()> {
        let dir = &self.dir;
        let mut hand_over = |media: ImportedMedia| {
            media_checks(media.id.0, PendingMediaCheck::boxed(dir, media.id, media.key, media.length));
        };
        export::import_with(&mut self.store.conn, input, &mut hand_over).map(|_| ())
    }

    fn media_placer(&self) -> Box<dyn MediaPlacer> {
        Box::new(RestoredMedia(MediaFiles::new(&self.dir)))
    }

    fn verify_database(&self) -> Result<bool> {
        Ok(self.verify_stored()?.iter().all(|check| check.problems.is_empty()))
    }

    fn media_check(&self, id: &[u8; 16]) -> Result<Option<Box<dyn MediaCheck>>> {
        let id = MediaId(*id);
        let row = match media_rows::row(&self.store.conn, &id) {
            Ok(row) => row,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(PendingMediaCheck::boxed(&self.dir, id, row.key, row.length)))
    }

    fn media_complete(&self, verified: &HashSet<[u8; 16]>) -> Result<bool> {
        let rows = media_rows::ids(&self.store.conn)?;
        Ok(rows.iter().all(|id| verified.contains(&id.0)) && self.unknown_media_files(&rows)?.is_empty())
    }

    fn adopt(
        &mut self,
        key: &SecretKey,
        keyring: Option<&Keyring>,
        generation: u64,
        manifest_hash: &[u8; 32],
        token: Option<&GenerationToken>,
    ) -> Result<()> {
        backup_state::set_keys(&self.store.conn, key, keyring)?;
        backup_state::advance(&self.store.conn, generation, manifest_hash, token)?;
        events::record(
            &self.store.conn,
            crate::store::now_millis(),
            SecurityEventKind::BackupRestored,
            &format!("generation {generation}"),
        )
    }

    fn message_count(&self) -> Result<u64> {
        crate::store::messages::count(&self.store.conn)
    }
}

impl Vault {
    /// Streams the logical export of the database to `out`, from one read transaction (the
    /// backup run streams it straight into the chunker instead).
    #[cfg(test)]
    pub(crate) fn export_database<W: std::io::Write>(&self, out: W) -> Result<ExportStats> {
        export::export(&self.store.conn, out)
    }

    /// Fills this vault, which must be empty, from a logical export; all or nothing.
    #[cfg(test)]
    pub(crate) fn import_database<R: Read>(&mut self, input: R) -> Result<ExportStats> {
        export::import(&mut self.store.conn, input)
    }
}

#[cfg(test)]
mod forward_secrecy_tests;

#[cfg(test)]
mod tests {
    use rusqlite::types::Value;

    use crate::{CreateOptions, Error, KdfParams, MediaImport, NewMessage, Passphrase, RetentionPolicy, Vault};

    fn vault(dir: &std::path::Path) -> Vault {
        let kdf = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };
        Vault::create(dir, &Passphrase::new("pw".into()), CreateOptions { kdf, wrapper: None }).unwrap()
    }

    fn filled(dir: &std::path::Path) -> Vault {
        let mut v = vault(dir);
        let mut batch: Vec<NewMessage> = (0..300)
            .map(|i| NewMessage::new(format!("chat-{}", i % 4), "alice", format!("message {i} — crème brûlée")))
            .collect();
        batch[7].expires_at = Some(i64::MAX / 2);
        v.messages().add_batch(&batch).unwrap();
        v.secrets().put("token", b"\x00\x01 secret bytes").unwrap();
        v.retention()
            .set_policy(&RetentionPolicy { max_age_secs: Some(30 * 86_400), max_messages: Some(10_000) })
            .unwrap();
        v.retention().set_conversation_expiry("chat-1", Some(3600)).unwrap();
        let media = v
            .media()
            .import(&mut &b"media bytes"[..], MediaImport { conversation: Some("chat-2"), message: None })
            .unwrap();
        let first = v.messages().list("chat-0", 1).unwrap()[0].id;
        v.media().attach(&media, first).unwrap();
        v
    }

    fn rows(v: &Vault, table: &str) -> Vec<Vec<Value>> {
        let conn = &v.store.conn;
        let mut statement = conn.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2")).unwrap();
        let width = statement.column_count();
        statement
            .query_map([], |r| (0..width).map(|i| r.get::<_, Value>(i)).collect::<rusqlite::Result<Vec<_>>>())
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
    }

    const CONTENT_TABLES: [&str; 7] =
        ["settings", "conversations", "app_secrets", "media", "messages", "attachments", "id_high_water"];

    #[test]
    fn export_is_deterministic_and_import_reproduces_every_row() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = filled(&a_dir.path().join("v"));
        let (mut first, mut second) = (Vec::new(), Vec::new());
        let stats = a.export_database(&mut first).unwrap();
        a.export_database(&mut second).unwrap();
        assert_eq!(first, second, "the same content exports to the same bytes");
        assert_eq!(stats.bytes, first.len() as u64);
        assert_eq!(stats.rows_of("messages"), 300);
        assert_eq!(stats.rows_of("attachments"), 1);

        let mut b = vault(&b_dir.path().join("v"));
        let own_events = rows(&b, "security_events");
        let imported = b.import_database(&first[..]).unwrap();
        assert_eq!(imported.rows, stats.rows);
        for table in CONTENT_TABLES {
            assert_eq!(rows(&a, table), rows(&b, table), "{table}");
        }
        // The restored history comes first, then the new vault's own events.
        let a_events = rows(&a, "security_events");
        let b_events = rows(&b, "security_events");
        assert_eq!(b_events[..a_events.len()], a_events[..]);
        let tail: Vec<_> = b_events[a_events.len()..].iter().map(|r| r[1..].to_vec()).collect();
        let own: Vec<_> = own_events.iter().map(|r| r[1..].to_vec()).collect();
        assert_eq!(tail, own);
        // Search works on the restored messages (the FTS index was rebuilt by the triggers).
        assert_eq!(b.messages().search("brûlée", 500).unwrap().len(), 300);
        assert_eq!(b.messages().search("message 299", 5).unwrap().len(), 1);
    }

    #[test]
    fn import_refuses_a_vault_with_content_and_changes_nothing() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = filled(&a_dir.path().join("v"));
        let mut export = Vec::new();
        a.export_database(&mut export).unwrap();
        let mut b = vault(&b_dir.path().join("v"));
        b.messages().add(&NewMessage::new("mine", "me", "already here")).unwrap();
        let before = rows(&b, "messages");
        assert!(matches!(b.import_database(&export[..]), Err(Error::InvalidInput(_))));
        assert_eq!(rows(&b, "messages"), before);
    }

    #[test]
    fn malformed_exports_are_refused_whole() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = filled(&a_dir.path().join("v"));
        let mut export = Vec::new();
        a.export_database(&mut export).unwrap();
        let mut b = vault(&b_dir.path().join("v"));
        let mut damaged: Vec<Vec<u8>> = vec![Vec::new(), b"VBAKEXP2\x04\x00\x00\x00\xff".to_vec()];
        for cut in [1, 8, 12, 13, 100, export.len() / 2, export.len() - 1] {
            damaged.push(export[..cut].to_vec());
        }
        let mut extra = export.clone();
        extra.push(0);
        damaged.push(extra);
        let mut version = export.clone();
        version[8] = 99;
        damaged.push(version);
        for position in [12, 13, 14, 200, 1000] {
            let mut flipped = export.clone();
            flipped[position] = 0xEE;
            damaged.push(flipped);
        }
        for bad in damaged {
            let result = b.import_database(&bad[..]);
            assert!(
                matches!(result, Err(Error::Integrity { .. } | Error::UnsupportedVersion { .. })),
                "{} bytes: {result:?}",
                bad.len()
            );
            assert!(rows(&b, "messages").is_empty(), "nothing was imported");
        }
        b.import_database(&export[..]).unwrap();
        assert_eq!(rows(&b, "messages").len(), 300);
        // The search index was rebuilt, and the failed imports left its trigger in place.
        assert_eq!(b.messages().search("brûlée", 500).unwrap().len(), 300);
        b.messages().add(&NewMessage::new("later", "me", "zebra unicorn")).unwrap();
        assert_eq!(b.messages().search("unicorn", 5).unwrap().len(), 1);
    }

    /// The export carries the highest message id ever given: a purged newest id is not reused
    /// after an import either. An export of schema 6 (no mark) still imports, its mark rebuilt
    /// from its messages.
    #[test]
    fn the_id_high_water_mark_survives_export_and_import() {
        let dirs = [(); 4].map(|()| tempfile::tempdir().unwrap());
        let (a_dir, b_dir, c_dir) = (&dirs[0], &dirs[1], &dirs[2]);
        let mut a = filled(&a_dir.path().join("v"));
        let newest = a.messages().add(&NewMessage::new("chat-0", "alice", "purged before the backup")).unwrap();
        assert!(a.messages().delete(newest).unwrap());
        let mut export = Vec::new();
        let stats = a.export_database(&mut export).unwrap();
        assert_eq!(stats.rows_of("id_high_water"), 1);

        let mut b = vault(&b_dir.path().join("v"));
        b.import_database(&export[..]).unwrap();
        let next = b.messages().add(&NewMessage::new("chat-0", "alice", "after the restore")).unwrap();
        assert!(next > newest, "{next:?} reuses or precedes the purged {newest:?}");
        assert_eq!(next, a.messages().add(&NewMessage::new("chat-0", "alice", "on the old device")).unwrap());

        // The same export as schema 6 wrote it: version 6, no `id_high_water` row (the last
        // 24 bytes before the end: tag, width, TEXT "messages", INTEGER).
        let mut old = export[..export.len() - 1].to_vec();
        assert_eq!(old[old.len() - 24..old.len() - 22], [8, 2]);
        old.truncate(old.len() - 24);
        old.push(0xFF);
        old[8..12].copy_from_slice(&6u32.to_le_bytes());
        let mut c = vault(&c_dir.path().join("v"));
        c.import_database(&old[..]).unwrap();
        assert_eq!(rows(&c, "messages"), rows(&a, "messages")[..300]);
        let next = c.messages().add(&NewMessage::new("chat-0", "alice", "after an old restore")).unwrap();
        assert_eq!(next.0, 301, "the mark rebuilt from the imported ids");
        // A schema-6 export holding a table schema 6 does not have is malformed.
        let mut wrong = export.clone();
        wrong[8..12].copy_from_slice(&6u32.to_le_bytes());
        let mut d = vault(&dirs[3].path().join("v"));
        assert!(matches!(d.import_database(&wrong[..]), Err(Error::Integrity { .. })));
    }
}
