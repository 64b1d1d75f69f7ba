//! The vault side of backups: the deterministic logical export of the database and its import
//! into a freshly created vault (`store::export`). The backup run and restore (`docs/backup.md`,
//! being built) stream these through the chunker and sealer; the plaintext stream never reaches
//! the disk.

use std::io::Read;

use super::Vault;
use crate::backup::{BackupCheck, BackupKeys, BackupReport, BackupRootKey, PruneReport, SnapshotInfo, Transport};
use crate::error::{Error, Result};
use crate::secret::SecretKey;
use crate::store::export::{self, ExportStats};
use crate::{MediaId, Progress};

impl Vault {
    /// Backs the vault up to `transport`: a new snapshot that shares every unchanged chunk and
    /// media item with the earlier ones, visible only once complete. The first run creates the
    /// vault's Backup Root Key. Refuses storage whose history is older than, or diverges from,
    /// what this vault last wrote.
    pub fn backup(&mut self, transport: &dyn Transport) -> Result<BackupReport> {
        crate::backup::run::run(&mut self.store.conn, &self.media, transport, None).map(|w| w.report)
    }

    /// [`Vault::backup`], telling `progress` how many bytes (export and media) it has processed;
    /// a cancelled run fails with [`Error::Cancelled`] and the next run resumes it.
    pub fn backup_with_progress(&mut self, transport: &dyn Transport, progress: &dyn Progress) -> Result<BackupReport> {
        crate::backup::run::run(&mut self.store.conn, &self.media, transport, Some(progress)).map(|w| w.report)
    }

    /// The snapshots the backup at `transport` retains, oldest first.
    pub fn backup_list(&self, transport: &dyn Transport) -> Result<Vec<SnapshotInfo>> {
        let (keys, local) = self.backup_keys()?;
        crate::backup::maintain::list(transport, &keys, local)
    }

    /// Checks the backup at `transport` (see [`BackupCheck`]); `read_fraction` is the share of
    /// packs read and authenticated in full (0 to 1).
    pub fn backup_verify(&self, transport: &dyn Transport, read_fraction: f64) -> Result<BackupCheck> {
        if !(0.0..=1.0).contains(&read_fraction) {
            return Err(Error::InvalidInput("the share of packs to read is between 0 and 1".into()));
        }
        let (keys, local) = self.backup_keys()?;
        let conn = &self.store.conn;
        let media_key =
            |id: &[u8; 16]| crate::store::media_rows::row(conn, &MediaId(*id)).ok().map(|row| (row.key, row.length));
        crate::backup::maintain::verify(transport, &keys, local, read_fraction, &media_key)
    }

    /// Keeps the newest `keep` snapshots and deletes what only the others needed.
    pub fn backup_prune(&mut self, transport: &dyn Transport, keep: usize) -> Result<PruneReport> {
        let (keys, local) = self.backup_keys()?;
        let (report, head) = crate::backup::maintain::prune(transport, &keys, local, keep)?;
        crate::store::backup_state::advance(&mut self.store.conn, head.generation, &head.manifest_hash)?;
        Ok(report)
    }

    fn backup_keys(&self) -> Result<(BackupKeys, crate::store::backup_state::Position)> {
        let key = crate::store::backup_state::root_key(&self.store.conn)?
            .ok_or_else(|| Error::NotFound("this vault has no backup yet".into()))?;
        Ok((BackupKeys::derive(&key), crate::store::backup_state::position(&self.store.conn)?))
    }

    /// The vault's Backup Root Key, for the developer option that restores without recovery.
    /// Anyone holding it can decrypt every backup of this vault: never store it unprotected.
    /// `None` before the first backup.
    pub fn dangerous_export_backup_key(&self) -> Result<Option<BackupRootKey>> {
        Ok(crate::store::backup_state::root_key(&self.store.conn)?.map(BackupRootKey))
    }

    /// Writes a restored media file (the stored `VLTMEDIA` stream, read from `source`) under its
    /// id; its row and key come from the imported export.
    pub(crate) fn place_restored_media(&self, id: &MediaId, source: &mut dyn Read) -> Result<()> {
        self.media.ensure_dir()?;
        let path = self.media.path(id);
        crate::fsutil::write_new(&path, 0o600, Error::io("writing a restored media file"), |file| {
            std::io::copy(source, file)
                .map(|_| ())
                .map_err(|e| Error::Integrity(format!("a media object could not be read: {e}")))
        })
    }

    /// Whether the media file of `id` is present (a resumed restore skips it; the final
    /// verification authenticates it).
    pub(crate) fn has_media_file(&self, id: &MediaId) -> bool {
        self.media.path(id).exists()
    }

    /// How many messages the vault holds.
    pub(crate) fn message_count(&self) -> Result<u64> {
        crate::store::messages::count(&self.store.conn)
    }

    /// Records the backup this vault was restored from, so its next backup continues that history.
    pub(crate) fn adopt_backup(&mut self, key: &SecretKey, generation: u64, hash: &[u8; 32]) -> Result<()> {
        crate::store::backup_state::set_root_key(&self.store.conn, key)?;
        crate::store::backup_state::advance(&mut self.store.conn, generation, hash)?;
        crate::store::events::record(
            &self.store.conn,
            crate::store::now_millis(),
            crate::SecurityEventKind::BackupRestored,
            &format!("generation {generation}"),
        )
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
    pub(crate) fn import_database<R: Read>(&mut self, input: R) -> Result<ExportStats> {
        export::import(&mut self.store.conn, input)
    }
}

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
        v.add_messages(&batch).unwrap();
        v.put_secret("token", b"\x00\x01 secret bytes").unwrap();
        v.set_retention_policy(&RetentionPolicy { max_age_secs: Some(30 * 86_400), max_messages: Some(10_000) })
            .unwrap();
        v.set_conversation_expiry("chat-1", Some(3600)).unwrap();
        let media = v
            .import_media(&mut &b"media bytes"[..], MediaImport { conversation: Some("chat-2"), message: None })
            .unwrap();
        let first = v.messages("chat-0", 1).unwrap()[0].id;
        v.attach_media(&media, first).unwrap();
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

    const CONTENT_TABLES: [&str; 6] = ["settings", "conversations", "app_secrets", "media", "messages", "attachments"];

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
        assert_eq!(b.search("brûlée", 500).unwrap().len(), 300);
        assert_eq!(b.search("message 299", 5).unwrap().len(), 1);
    }

    #[test]
    fn import_refuses_a_vault_with_content_and_changes_nothing() {
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = filled(&a_dir.path().join("v"));
        let mut export = Vec::new();
        a.export_database(&mut export).unwrap();
        let mut b = vault(&b_dir.path().join("v"));
        b.add_message(&NewMessage::new("mine", "me", "already here")).unwrap();
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
                matches!(result, Err(Error::Integrity(_) | Error::UnsupportedVersion { .. })),
                "{} bytes: {result:?}",
                bad.len()
            );
            assert!(rows(&b, "messages").is_empty(), "nothing was imported");
        }
        b.import_database(&export[..]).unwrap();
        assert_eq!(rows(&b, "messages").len(), 300);
        // The search index was rebuilt, and the failed imports left its trigger in place.
        assert_eq!(b.search("brûlée", 500).unwrap().len(), 300);
        b.add_message(&NewMessage::new("later", "me", "zebra unicorn")).unwrap();
        assert_eq!(b.search("unicorn", 5).unwrap().len(), 1);
    }
}
