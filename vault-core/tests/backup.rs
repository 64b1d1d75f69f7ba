//! Backup and restore through a backup directory (`DirTransport`): round trip compared field by
//! field, incremental uploads, tamper and rollback detection, and a canary scan of every stored
//! byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::Path;

use vault_core::backup::{self, BackupReport, DirTransport, Transport};
use vault_core::{CreateOptions, Error, KdfParams, MediaId, MediaImport, NewMessage, Passphrase, SlotSecret, Vault};

fn options() -> CreateOptions<'static> {
    CreateOptions {
        kdf: KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 },
        wrapper: None,
    }
}

const CANARY: &str = "CANARY-7c1e-message-body";
const MEDIA_CANARY: &[u8] = b"MEDIA-CANARY-PLAINTEXT-f00d";

fn media_bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut out: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    if len >= MEDIA_CANARY.len() {
        out[..MEDIA_CANARY.len()].copy_from_slice(MEDIA_CANARY);
    }
    out
}

const MEDIA_SIZES: [usize; 6] = [0, 1, 65_535, 65_536, 65_537, 3 << 20];

fn filled_vault(dir: &Path, messages: usize) -> Vault {
    let mut vault = Vault::create(dir, &Passphrase::new("first device".into()), options()).unwrap();
    let batch: Vec<NewMessage> = (0..messages)
        .map(|i| {
            NewMessage::new(
                format!("chat-{}", i % 7),
                format!("sender-{}", i % 3),
                format!("message {i}: {CANARY} ünïcödé"),
            )
        })
        .collect();
    vault.messages().add_batch(&batch).unwrap();
    vault.secrets().put("api-token", b"SECRET-CANARY-bytes").unwrap();
    for (i, len) in MEDIA_SIZES.iter().enumerate() {
        let bytes = media_bytes(*len, i as u8);
        vault.media().import(&mut &bytes[..], MediaImport { conversation: Some("chat-1"), message: None }).unwrap();
    }
    vault
}

fn media_contents(vault: &mut Vault) -> Vec<(MediaId, Vec<u8>)> {
    let mut out: Vec<(MediaId, Vec<u8>)> = vault
        .media()
        .list()
        .unwrap()
        .into_iter()
        .map(|m| {
            let mut reader = vault.media().open(&m.id).unwrap();
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut reader, &mut bytes).unwrap();
            (m.id, bytes)
        })
        .collect();
    out.sort();
    out
}

fn assert_same_content(a: &mut Vault, b: &mut Vault) {
    let conversations = a.messages().conversations().unwrap();
    assert_eq!(conversations, b.messages().conversations().unwrap());
    for c in &conversations {
        assert_eq!(
            a.messages().list(&c.name, 10_000).unwrap(),
            b.messages().list(&c.name, 10_000).unwrap(),
            "{}",
            c.name
        );
    }
    assert_eq!(a.secrets().names().unwrap(), b.secrets().names().unwrap());
    assert_eq!(
        a.secrets().get("api-token").unwrap().unwrap().expose_secret(),
        b.secrets().get("api-token").unwrap().unwrap().expose_secret()
    );
    assert_eq!(a.media().list().unwrap(), b.media().list().unwrap());
    assert_eq!(media_contents(a), media_contents(b));
    assert_eq!(a.retention().policy().unwrap(), b.retention().policy().unwrap());
}

fn restore_to(storage: &Path, key: &backup::BackupRootKey, target: &Path) -> Result<backup::RestoreReport, Error> {
    let transport = DirTransport::new(storage).unwrap();
    let options = vault_core::RestoreOptions { create: options(), ..Default::default() };
    vault_core::restore_backup(&transport, key, target, &Passphrase::new("new device".into()), options)
}

/// Records every report and cancels once `stop_after` bytes are done.
struct Recorder {
    stop_after: u64,
    seen: std::sync::Mutex<Vec<(u64, Option<u64>)>>,
}

impl vault_core::Progress for Recorder {
    fn advance(&self, done: u64, total: Option<u64>) -> bool {
        self.seen.lock().unwrap().push((done, total));
        done < self.stop_after
    }
}

#[test]
fn an_interrupted_restore_resumes_without_fetching_written_media_again() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault = filled_vault(&work.path().join("phone"), 500);
    vault.backups().unwrap().run(&DirTransport::new(&storage).unwrap(), None).unwrap();
    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let target = work.path().join("new-phone");
    let passphrase = Passphrase::new("new device".into());

    // Cancelled once the export and the small media items are in (the 3 MiB item is last).
    let cancel = Recorder { stop_after: 1, seen: Default::default() };
    let transport = DirTransport::new(&storage).unwrap();
    let opts = vault_core::RestoreOptions { create: options(), progress: Some(&cancel), at_least: None };
    let first = vault_core::restore_backup(&transport, &key, &target, &passphrase, opts);
    assert!(matches!(first, Err(Error::Cancelled)), "{first:?}");
    assert!(!target.exists(), "an interrupted restore leaves nothing at the target");

    let cancel = Recorder { stop_after: 2 << 20, seen: Default::default() };
    let opts = vault_core::RestoreOptions { create: options(), progress: Some(&cancel), at_least: None };
    let second = vault_core::restore_backup(&transport, &key, &target, &passphrase, opts);
    assert!(matches!(second, Err(Error::Cancelled)), "{second:?}");
    assert!(!target.exists());

    let watch = Recorder { stop_after: u64::MAX, seen: Default::default() };
    let opts = vault_core::RestoreOptions { create: options(), progress: Some(&watch), at_least: None };
    let report = vault_core::restore_backup(&transport, &key, &target, &passphrase, opts).unwrap();
    assert!(report.media_resumed >= 1, "media written before the interruption are kept: {report:?}");
    assert!(report.media_resumed < MEDIA_SIZES.len() as u64);
    let seen = watch.seen.lock().unwrap();
    let (done, total) = *seen.last().unwrap();
    assert_eq!(Some(done), total, "the last report covers everything");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "progress never goes back");
    let mut restored = Vault::unlock_with_passphrase(&target, &passphrase).unwrap();
    assert_same_content(&mut vault, &mut restored);
    let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(!leftovers.iter().any(|n| n.to_string_lossy().contains("restoring")), "{leftovers:?}");
}

#[test]
fn a_cancelled_backup_is_resumed_by_the_next_run() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let vault = filled_vault(&work.path().join("phone"), 500);
    let transport = DirTransport::new(&storage).unwrap();
    let cancel = Recorder { stop_after: 70_000, seen: Default::default() };
    assert!(matches!(vault.backups().unwrap().run(&transport, Some(&cancel)), Err(Error::Cancelled)));
    assert!(transport.get_head().unwrap().is_none(), "a cancelled run publishes nothing");
    let report = vault.backups().unwrap().run(&transport, None).unwrap();
    assert_eq!(report.generation, 1);
    assert!(report.media_reused >= 1, "media uploaded before the cancellation are reused: {report:?}");
}

#[test]
fn round_trip_restores_every_message_secret_and_media_item() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault = filled_vault(&work.path().join("phone"), 3000);
    let transport = DirTransport::new(&storage).unwrap();
    let first = vault.backups().unwrap().run(&transport, None).unwrap();
    assert_eq!(first.generation, 1);
    assert_eq!(first.media_uploaded, MEDIA_SIZES.len() as u64);
    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();

    let target = work.path().join("new-phone");
    let report = restore_to(&storage, &key, &target).unwrap();
    assert_eq!((report.generation, report.messages, report.media), (1, 3000, MEDIA_SIZES.len() as u64));
    let mut restored = Vault::unlock(&target, SlotSecret::Passphrase(&Passphrase::new("new device".into()))).unwrap();
    assert_same_content(&mut vault, &mut restored);
    assert_eq!(restored.messages().search(CANARY.split('-').next().unwrap(), 10).unwrap().len(), 10);
    assert!(restored.verify().unwrap().is_ok());
    // Nothing but the vault is left beside the target.
    let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 3, "{leftovers:?}");
}

/// Repeated content within one run's chunks and across runs: an export of several megabytes
/// whose messages repeat one block of text, so that the chunker cuts the same chunks again and
/// again. Each distinct chunk is sealed once (the repeats reuse its key) and the restore is whole.
#[test]
fn chunks_repeated_within_a_run_are_sealed_once_and_restore() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault =
        Vault::create(&work.path().join("phone"), &Passphrase::new("first device".into()), options()).unwrap();
    let mut x: u32 = 7;
    let block: String = (0..20_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            char::from(b'a' + (x >> 16) as u8 % 26)
        })
        .collect();
    let messages: Vec<NewMessage> =
        (0..40).map(|i| NewMessage::new("chat", "me", format!("{i}: {}", block.repeat(5)))).collect();
    vault.messages().add_batch(&messages).unwrap();
    vault.secrets().put("api-token", b"SECRET-CANARY-bytes").unwrap();
    let transport = DirTransport::new(&storage).unwrap();
    let report = vault.backups().unwrap().run(&transport, None).unwrap();
    print_report("repeated", &report);
    assert!(report.export_bytes > 3 << 20, "the export spans several of the chunker's runs");
    assert!(report.reused_chunks > report.new_chunks, "repeats reuse the chunks first sealed");
    assert!(report.uploaded_bytes < report.export_bytes / 10, "uploaded {}", report.uploaded_bytes);

    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let target = work.path().join("new-phone");
    assert_eq!(restore_to(&storage, &key, &target).unwrap().messages, 40);
    let mut restored = Vault::unlock(&target, SlotSecret::Passphrase(&Passphrase::new("new device".into()))).unwrap();
    assert_same_content(&mut vault, &mut restored);
}

#[test]
fn incremental_backups_upload_only_what_changed() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault = filled_vault(&work.path().join("phone"), 20_000);
    let transport = DirTransport::new(&storage).unwrap();
    let full = vault.backups().unwrap().run(&transport, None).unwrap();

    let unchanged = vault.backups().unwrap().run(&transport, None).unwrap();
    assert_eq!(unchanged.generation, 2);
    assert_eq!(unchanged.media_uploaded, 0);
    assert!(unchanged.uploaded_bytes <= 64 << 10, "a backup with no change uploaded {}", unchanged.uploaded_bytes);

    let appended: Vec<NewMessage> =
        (0..200).map(|i| NewMessage::new("chat-3", "bob", format!("appended {i} with a tail of text"))).collect();
    vault.messages().add_batch(&appended).unwrap();
    let after_append = vault.backups().unwrap().run(&transport, None).unwrap();
    let limit = full.export_bytes * 3 / 100;
    assert!(
        after_append.uploaded_bytes <= limit,
        "1 % appended: uploaded {} > {limit} (3 % of the export)",
        after_append.uploaded_bytes
    );

    // 1 % of the messages changed at random positions (their status).
    let ids: Vec<vault_core::MessageId> =
        (0..7).flat_map(|c| vault.messages().list(&format!("chat-{c}"), 10_000).unwrap()).map(|m| m.id).collect();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..ids.len() / 100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        vault.messages().set_status(ids[(x % ids.len() as u64) as usize], vault_core::MessageStatus::Read).unwrap();
    }
    let after_edits = vault.backups().unwrap().run(&transport, None).unwrap();
    // The target is 10 % of the export; with rows this short (about 120 bytes) every edit costs at
    // least one ~1 KiB chunk plus its share of the tree and index; measured figures are 17-25 %
    // (docs/benchmarks.md). This bound guards against regressions; the 10 % target is not met.
    let limit = full.export_bytes * 35 / 100;
    assert!(
        after_edits.uploaded_bytes <= limit,
        "1 % edited: uploaded {} > {limit} (35 % of the export)",
        after_edits.uploaded_bytes
    );

    // 1 % of the messages deleted at random positions: the run forgets them (their chunks' keys
    // are in no new tree) at the cost of the chunks around them and the tree's changed part.
    let ids: Vec<vault_core::MessageId> =
        (0..7).flat_map(|c| vault.messages().list(&format!("chat-{c}"), 10_000).unwrap()).map(|m| m.id).collect();
    let mut doomed: Vec<vault_core::MessageId> = Vec::new();
    while doomed.len() < ids.len() / 100 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = ids[(x % ids.len() as u64) as usize];
        if !doomed.contains(&id) {
            doomed.push(id);
        }
    }
    vault.messages().delete_batch(&doomed).unwrap();
    let after_deletes = vault.backups().unwrap().run(&transport, None).unwrap();
    // Measured 21-39 % of the export before forward secrecy and 21-34 % after (the chunks around
    // each deleted row and the tree's changed part; docs/benchmarks.md, "Forward secrecy"):
    // forgetting costs no repack. This bound guards against a run that re-uploads the export.
    let limit = full.export_bytes / 2;
    assert!(
        after_deletes.uploaded_bytes <= limit,
        "1 % deleted: uploaded {} > {limit} (half the export)",
        after_deletes.uploaded_bytes
    );

    let photo = media_bytes(1 << 20, 99);
    vault.media().import(&mut &photo[..], MediaImport { conversation: None, message: None }).unwrap();
    let after_media = vault.backups().unwrap().run(&transport, None).unwrap();
    assert_eq!(after_media.media_uploaded, 1);
    let padded = backup::padme_len(photo.len() as u64 + 46 + 16 * 16);
    assert!(
        after_media.uploaded_bytes <= padded + (64 << 10),
        "one new media file: uploaded {} > its padded size {padded} + 64 KiB",
        after_media.uploaded_bytes
    );
    print_report("full", &full);
    print_report("no change", &unchanged);
    print_report("1 % appended", &after_append);
    print_report("1 % edited", &after_edits);
    print_report("1 % deleted", &after_deletes);
    print_report("one media file", &after_media);

    let target = work.path().join("restored");
    restore_to(&storage, &vault.backups().unwrap().dangerous_export_key().unwrap().unwrap(), &target).unwrap();
    let mut restored = Vault::unlock(&target, SlotSecret::Passphrase(&Passphrase::new("new device".into()))).unwrap();
    assert_same_content(&mut vault, &mut restored);
}

fn print_report(label: &str, r: &BackupReport) {
    eprintln!(
        "{label}: export {} B, uploaded {} B, chunks new {} reused {}, packs {}, media new {} reused {}",
        r.export_bytes, r.uploaded_bytes, r.new_chunks, r.reused_chunks, r.packs, r.media_uploaded, r.media_reused
    );
}

#[test]
fn every_tampered_swapped_or_missing_object_fails_the_restore_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let vault = filled_vault(&work.path().join("phone"), 500);
    let transport = DirTransport::new(&storage).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let objects = transport.list().unwrap();
    let kinds: std::collections::BTreeSet<&str> = objects.iter().map(|(n, _)| n.split('-').next().unwrap()).collect();
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["index", "manifest", "media", "pack"]);
    let object_path = |name: &str| storage.join("objects").join(name);

    let mut attempts = 0;
    let mut check = |label: &str| {
        attempts += 1;
        let target = work.path().join(format!("restore-{attempts}"));
        let result = restore_to(&storage, &key, &target);
        assert!(matches!(result, Err(Error::Integrity { .. })), "{label}: {result:?}");
        assert!(!target.exists(), "{label}: a failed restore left a vault behind");
    };
    let mut files: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    files.push("../head".into());
    for name in &files {
        let path = object_path(name);
        let original = std::fs::read(&path).unwrap();
        if original.is_empty() {
            continue;
        }
        for position in [0, original.len() / 2, original.len() - 1] {
            let mut bad = original.clone();
            bad[position] ^= 0x40;
            std::fs::write(&path, &bad).unwrap();
            // A flip in a media object's padding or a pack's padding changes nothing that is read.
            let padding_only = {
                let target = work.path().join("probe");
                let ok = restore_to(&storage, &key, &target).is_ok();
                let _ = std::fs::remove_dir_all(&target);
                ok
            };
            if !padding_only {
                check(&format!("{name} flipped at {position}"));
            }
            std::fs::write(&path, &original).unwrap();
        }
        std::fs::write(&path, &original[..original.len() / 2]).unwrap();
        check(&format!("{name} truncated"));
        std::fs::remove_file(&path).unwrap();
        if name == "../head" {
            // Without the head there is no backup to find (a new device cannot tell a wiped
            // storage from an empty one; a device that wrote it can, see the rollback test).
            let target = work.path().join("no-head");
            assert!(matches!(restore_to(&storage, &key, &target), Err(Error::NotFound(_))));
            assert!(!target.exists());
        } else {
            check(&format!("{name} missing"));
        }
        std::fs::write(&path, &original).unwrap();
    }
    // Two packs (or two media objects) swapped under each other's names.
    for kind in ["pack-", "media-"] {
        let same: Vec<&String> = files.iter().filter(|n| n.starts_with(kind)).collect();
        if same.len() >= 2 {
            let (a, b) = (object_path(same[0]), object_path(same[1]));
            let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
            std::fs::write(&a, &y).unwrap();
            std::fs::write(&b, &x).unwrap();
            check(&format!("{kind} swapped"));
            std::fs::write(&a, &x).unwrap();
            std::fs::write(&b, &y).unwrap();
        }
    }
    // Intact again: it restores.
    restore_to(&storage, &key, &work.path().join("intact")).unwrap();
}

#[test]
fn a_rolled_back_or_forked_history_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault = filled_vault(&work.path().join("phone"), 50);
    let transport = DirTransport::new(&storage).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    let head_v1 = std::fs::read(storage.join("head")).unwrap();
    vault.messages().add(&NewMessage::new("chat-1", "a", "second")).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    // The storage serves the older head (it hides generation 2).
    let head_v2 = std::fs::read(storage.join("head")).unwrap();
    std::fs::write(storage.join("head"), &head_v1).unwrap();
    let result = vault.backups().unwrap().run(&transport, None);
    assert!(matches!(&result, Err(Error::Integrity { problem: m, .. }) if m.contains("rolled back")), "{result:?}");
    // The storage loses everything.
    std::fs::remove_file(storage.join("head")).unwrap();
    assert!(matches!(vault.backups().unwrap().run(&transport, None), Err(Error::Integrity { .. })));
    std::fs::write(storage.join("head"), &head_v2).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
}

#[test]
fn nothing_stored_contains_plaintext() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let vault = filled_vault(&work.path().join("phone"), 1000);
    vault.backups().unwrap().run(&DirTransport::new(&storage).unwrap(), None).unwrap();
    let needles: [(&str, &[u8]); 4] = [
        ("message canary", CANARY.as_bytes()),
        ("media sample", MEDIA_CANARY),
        ("secret", b"SECRET-CANARY"),
        ("sender", b"sender-1"),
    ];
    let scanned = test_support::canary::assert_absent(&storage, &needles).bytes;
    assert!(scanned > 3 << 20, "the scan covered the stored bytes ({scanned})");
}

/// A manifest holds the newest snapshot only (forward secrecy: older trees' chunk keys are not
/// carried forward); prune deletes and repacks what it no longer needs and keeps it whole.
#[test]
fn list_verify_and_prune_keep_the_newest_snapshot_whole() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault = filled_vault(&work.path().join("phone"), 3000);
    let transport = DirTransport::new(&storage).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    // Delete most messages and one media item, then back up twice more.
    for id in vault
        .messages()
        .list("chat-0", 10_000)
        .unwrap()
        .iter()
        .chain(vault.messages().list("chat-2", 10_000).unwrap().iter())
    {
        vault.messages().delete(id.id).unwrap();
    }
    let dropped = vault.media().list().unwrap().into_iter().find(|m| m.length == (3 << 20)).unwrap();
    vault.media().delete(&dropped.id).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    vault.messages().add(&NewMessage::new("chat-5", "carol", "after the deletions")).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();

    let listed = vault.backups().unwrap().list(&transport).unwrap();
    assert_eq!(listed.iter().map(|s| s.generation).collect::<Vec<_>>(), [3]);
    let check = vault.backups().unwrap().verify(&transport, 1.0).unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!((check.snapshots, check.manifests_checked), (1, 3));
    assert!(check.chunks_authenticated > 0 && check.packs_read > 0);

    let before: u64 = transport.list().unwrap().iter().map(|(_, s)| s).sum();
    let pruned = vault.backups().unwrap().prune(&transport, 2).unwrap();
    let after: u64 = transport.list().unwrap().iter().map(|(_, s)| s).sum();
    assert_eq!(pruned.snapshots_removed, 0);
    assert_eq!(pruned.media_deleted, 1, "the 3 MiB item no snapshot holds any more");
    assert!(pruned.packs_deleted + pruned.packs_repacked > 0, "{pruned:?}");
    assert!(after < before, "prune freed space ({before} -> {after})");
    eprintln!("prune: {pruned:?}, stored {before} -> {after} bytes");
    assert_eq!(pruned.generation, 4);
    assert_eq!(
        vault.backups().unwrap().list(&transport).unwrap().iter().map(|s| s.generation).collect::<Vec<_>>(),
        [3]
    );
    // The kept snapshot is still whole: tree, index, every chunk it needs, media.
    let check = vault.backups().unwrap().verify(&transport, 1.0).unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!((check.snapshots, check.manifests_checked), (1, 4));
    // Backups continue after a prune, and the newest restores exactly.
    vault.backups().unwrap().run(&transport, None).unwrap();
    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let target = work.path().join("restored");
    restore_to(&storage, &key, &target).unwrap();
    let mut restored = Vault::unlock(&target, SlotSecret::Passphrase(&Passphrase::new("new device".into()))).unwrap();
    assert_same_content(&mut vault, &mut restored);
}

#[test]
fn verify_reports_damage_by_object() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let vault = filled_vault(&work.path().join("phone"), 300);
    let transport = DirTransport::new(&storage).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    let objects = transport.list().unwrap();
    let pack = objects.iter().find(|(n, _)| n.starts_with("pack-")).unwrap().0.clone();
    let media = objects.iter().find(|(n, s)| n.starts_with("media-") && *s > 100_000).unwrap().0.clone();
    let path = storage.join("objects").join(&pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    std::fs::remove_file(storage.join("objects").join(&media)).unwrap();
    let check = vault.backups().unwrap().verify(&transport, 1.0).unwrap();
    assert!(check.problems.iter().any(|p| p.contains(&pack)), "{:?}", check.problems);
    assert!(check.problems.iter().any(|p| p.contains(&media) && p.contains("missing")), "{:?}", check.problems);
    // Without reading data, the damaged pack goes unnoticed but the missing media item does not.
    let quick = vault.backups().unwrap().verify(&transport, 0.0).unwrap();
    assert!(!quick.problems.iter().any(|p| p.contains(&pack)));
    assert!(quick.problems.iter().any(|p| p.contains(&media)));
    assert_eq!(quick.media_authenticated, 0);

    // One flipped bit inside another media object: found only by reading it (under the vault's
    // key for the item), and only that object is named.
    let other = objects.iter().find(|(n, s)| n.starts_with("media-") && *n != media && *s > 60_000).unwrap().0.clone();
    let path = storage.join("objects").join(&other);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[40_000] ^= 0x08;
    std::fs::write(&path, &bytes).unwrap();
    let full = vault.backups().unwrap().verify(&transport, 1.0).unwrap();
    assert!(full.problems.iter().any(|p| p.contains(&other) && p.contains("authentication")), "{:?}", full.problems);
    assert!(full.media_authenticated >= 3, "the intact media objects were read: {full:?}");
    assert!(!vault.backups().unwrap().verify(&transport, 0.0).unwrap().problems.iter().any(|p| p.contains(&other)));
    assert!(matches!(vault.backups().unwrap().verify(&transport, f64::NAN), Err(Error::InvalidInput(_))));
}

/// A backup directory whose media reads fail as an unreachable server's would.
struct MediaUnreachable(DirTransport);

impl Transport for MediaUnreachable {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), backup::TransportError> {
        self.0.put(name, bytes)
    }
    fn put_reader(&self, name: &str, len: u64, r: Box<dyn std::io::Read + Send>) -> Result<(), backup::TransportError> {
        self.0.put_reader(name, len, r)
    }
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, backup::TransportError> {
        self.0.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, backup::TransportError> {
        if name.starts_with("media-") {
            return Err(backup::TransportError::Failed("connection reset".into()));
        }
        self.0.get_range(name, offset, len)
    }
    fn list(&self) -> Result<Vec<(String, u64)>, backup::TransportError> {
        self.0.list()
    }
    fn delete(&self, name: &str) -> Result<(), backup::TransportError> {
        self.0.delete(name)
    }
    fn get_head(&self) -> Result<Option<(Vec<u8>, String)>, backup::TransportError> {
        self.0.get_head()
    }
    fn put_head(&self, bytes: &[u8], generation: u64, expected: Option<&str>) -> Result<(), backup::TransportError> {
        self.0.put_head(bytes, generation, expected)
    }
}

#[test]
fn a_restore_cut_off_by_the_network_is_kept_and_resumed() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault = filled_vault(&work.path().join("phone"), 200);
    vault.backups().unwrap().run(&DirTransport::new(&storage).unwrap(), None).unwrap();
    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let target = work.path().join("new-phone");
    let passphrase = Passphrase::new("new device".into());
    let flaky = MediaUnreachable(DirTransport::new(&storage).unwrap());
    let opts = vault_core::RestoreOptions { create: options(), ..Default::default() };
    let cut = vault_core::restore_backup(&flaky, &key, &target, &passphrase, opts);
    assert!(matches!(cut, Err(Error::BackupStorage(_))), "a network failure is not damage: {cut:?}");
    assert!(!target.exists());
    let marker = work.path().join(".new-phone.restoring").join("restore-progress");
    assert!(marker.exists(), "the staged vault, with its database imported, is kept for resuming");
    let report = restore_to(&storage, &key, &target).unwrap();
    assert_eq!(report.media_resumed, 0, "no media item was written before the cut");
    assert!(!marker.exists());
    assert_same_content(&mut vault, &mut Vault::unlock_with_passphrase(&target, &passphrase).unwrap());
}

/// A backup directory whose head-record updates fail while `failing` is set.
struct HeadUnreachable {
    inner: DirTransport,
    failing: std::sync::atomic::AtomicBool,
}

impl Transport for HeadUnreachable {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), backup::TransportError> {
        self.inner.put(name, bytes)
    }
    fn put_reader(&self, name: &str, len: u64, r: Box<dyn std::io::Read + Send>) -> Result<(), backup::TransportError> {
        self.inner.put_reader(name, len, r)
    }
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, backup::TransportError> {
        self.inner.get(name)
    }
    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, backup::TransportError> {
        self.inner.get_range(name, offset, len)
    }
    fn list(&self) -> Result<Vec<(String, u64)>, backup::TransportError> {
        self.inner.list()
    }
    fn delete(&self, name: &str) -> Result<(), backup::TransportError> {
        self.inner.delete(name)
    }
    fn get_head(&self) -> Result<Option<(Vec<u8>, String)>, backup::TransportError> {
        self.inner.get_head()
    }
    fn put_head(&self, bytes: &[u8], generation: u64, expected: Option<&str>) -> Result<(), backup::TransportError> {
        if self.failing.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(backup::TransportError::Failed("connection reset".into()));
        }
        self.inner.put_head(bytes, generation, expected)
    }
}

#[test]
fn a_run_interrupted_between_manifest_and_head_is_published_by_the_next() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault = filled_vault(&work.path().join("phone"), 100);
    let transport = HeadUnreachable { inner: DirTransport::new(&storage).unwrap(), failing: false.into() };
    assert_eq!(vault.backups().unwrap().run(&transport, None).unwrap().generation, 1);
    vault.messages().add(&NewMessage::new("chat-1", "bo", "between the manifest and the head")).unwrap();
    transport.failing.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(vault.backups().unwrap().run(&transport, None), Err(Error::BackupStorage(_))));
    assert!(transport.get("manifest-0000000000000002").unwrap().is_some(), "the manifest was written");
    transport.failing.store(false, std::sync::atomic::Ordering::Relaxed);
    // The next run publishes generation 2 and writes generation 3 above it.
    assert_eq!(vault.backups().unwrap().run(&transport, None).unwrap().generation, 3);
    let check = vault.backups().unwrap().verify(&transport, 1.0).unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(check.manifests_checked, 3, "generation 2 was published and is in the chain");
    let key = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
    let restored = restore_to(&storage, &key, &work.path().join("new-phone")).unwrap();
    assert_eq!(restored.generation, 3);
}

fn pack_names(transport: &DirTransport) -> Vec<String> {
    transport.list().unwrap().into_iter().map(|(n, _)| n).filter(|n| n.starts_with("pack-")).collect()
}

fn flip_a_bit(storage: &Path, object: &str) {
    let path = storage.join("objects").join(object);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
}

/// `--read-data-subset`: a share `f` of `n` packs reads `ceil(f × n)` of them, at least one when
/// `f > 0`; 0 reads none, 1 reads all. `n` counts the packs that hold chunks of a retained
/// snapshot (a pack whose chunks all died has nothing a check can authenticate).
#[test]
fn a_read_subset_rounds_up_to_whole_packs() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault =
        Vault::create(&work.path().join("phone"), &Passphrase::new("first device".into()), options()).unwrap();
    let transport = DirTransport::new(&storage).unwrap();
    // Three runs, each with new messages: a pack each. Whether an older pack still holds a chunk
    // of the newest snapshot depends on where the chunker cut, so the count is read, not assumed.
    let mut newest = Vec::new();
    for run in 0..3 {
        let batch: Vec<NewMessage> =
            (0..200).map(|i| NewMessage::new("chat", "alice", format!("run {run} message {i}"))).collect();
        vault.messages().add_batch(&batch).unwrap();
        let before = pack_names(&transport);
        vault.backups().unwrap().run(&transport, None).unwrap();
        newest = pack_names(&transport).into_iter().filter(|p| !before.contains(p)).collect();
    }
    let packs = pack_names(&transport);
    assert_eq!((packs.len(), newest.len()), (3, 1), "{packs:?}");
    let all = vault.backups().unwrap().verify(&transport, 1.0).unwrap();
    let n = all.packs_total;
    assert!((2..=3).contains(&n), "the newest run's pack and at least one older one are live: {all:?}");
    assert_eq!(all.packs_read, n, "{all:?}");

    let tenth = vault.backups().unwrap().verify(&transport, 0.1).unwrap();
    assert_eq!((tenth.packs_read, tenth.packs_total), (1, n), "{tenth:?}");
    assert!(tenth.chunks_authenticated > 0 && tenth.problems.is_empty(), "{tenth:?}");
    assert!(all.chunks_authenticated > tenth.chunks_authenticated);
    let none = vault.backups().unwrap().verify(&transport, 0.0).unwrap();
    assert_eq!((none.packs_read, none.packs_total, none.chunks_authenticated), (0, n, 0), "{none:?}");
    let half = vault.backups().unwrap().verify(&transport, 0.5).unwrap();
    assert_eq!(half.packs_read, n.div_ceil(2), "ceil(n / 2) packs: {half:?}");

    // A bit flipped in the newest pack's first chunk (sealed by the last run, so live; the tree's
    // chunks come after the export's). Each 10 % check reads one pack and names the damaged one
    // exactly when it drew it: checks are repeated until both outcomes were seen.
    let damaged_pack = &newest[0];
    let path = storage.join("objects").join(damaged_pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let (mut found, mut passed) = (false, false);
    for _ in 0..200 {
        let check = vault.backups().unwrap().verify(&transport, 0.1).unwrap();
        assert_eq!(check.packs_read, 1, "{check:?}");
        let named: Vec<&String> = packs.iter().filter(|p| check.problems.iter().any(|q| q.contains(*p))).collect();
        assert!(named.is_empty() || named == [damaged_pack], "{:?}", check.problems);
        found |= !named.is_empty();
        passed |= check.problems.is_empty();
        if found && passed {
            break;
        }
    }
    assert!(found && passed, "200 draws of one pack in {n} always or never drew the damaged one");
}

/// With a single pack, 10 % reads it: a flipped bit in it is found.
#[test]
fn a_small_read_subset_finds_a_flipped_bit_in_the_sampled_pack() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault =
        Vault::create(&work.path().join("phone"), &Passphrase::new("first device".into()), options()).unwrap();
    let batch: Vec<NewMessage> = (0..20).map(|i| NewMessage::new("chat", "alice", format!("message {i}"))).collect();
    vault.messages().add_batch(&batch).unwrap();
    let transport = DirTransport::new(&storage).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    let packs = pack_names(&transport);
    assert_eq!(packs.len(), 1, "{packs:?}");
    flip_a_bit(&storage, &packs[0]);
    let check = vault.backups().unwrap().verify(&transport, 0.1).unwrap();
    assert_eq!((check.packs_read, check.packs_total), (1, 1));
    assert!(check.problems.iter().any(|p| p.contains(&packs[0])), "{:?}", check.problems);
}

/// Message ids are never reused: not after the newest messages are deleted or purged, and not in
/// a vault restored from a backup taken after the purge; restored messages keep their ids.
#[test]
fn message_ids_are_never_reused_after_a_purge_or_a_restore() {
    let work = tempfile::tempdir().unwrap();
    let storage = work.path().join("backup");
    let mut vault =
        Vault::create(&work.path().join("phone"), &Passphrase::new("first device".into()), options()).unwrap();
    let batch: Vec<NewMessage> = (0..10).map(|i| NewMessage::new("chat", "alice", format!("message {i}"))).collect();
    let ids = vault.messages().add_batch(&batch).unwrap();
    let mut highest = *ids.iter().max().unwrap();
    for id in &ids[7..] {
        assert!(vault.messages().delete(*id).unwrap());
    }
    let again = vault.messages().add(&NewMessage::new("chat", "alice", "after the delete")).unwrap();
    assert!(again > highest, "{again:?} after {highest:?}");
    highest = again;
    // Purged by a retention limit: the newest, by send time, first kept; ours is the oldest.
    let mut old = NewMessage::new("chat", "bob", "sent long ago, stored last");
    old.sent_at = 1;
    let purged = vault.messages().add(&old).unwrap();
    assert!(purged > highest);
    highest = purged;
    vault.messages().delete(purged).unwrap();
    let next = vault.messages().add(&NewMessage::new("chat", "alice", "after the purge")).unwrap();
    assert!(next > highest);
    highest = next;
    assert!(vault.messages().delete(next).unwrap());

    let transport = DirTransport::new(&storage).unwrap();
    vault.backups().unwrap().run(&transport, None).unwrap();
    let target = work.path().join("restored");
    restore_to(&storage, &vault.backups().unwrap().dangerous_export_key().unwrap().unwrap(), &target).unwrap();
    let mut restored = Vault::unlock(&target, SlotSecret::Passphrase(&Passphrase::new("new device".into()))).unwrap();
    let kept: Vec<_> = vault.messages().list("chat", 100).unwrap().into_iter().map(|m| (m.id, m.body)).collect();
    let back: Vec<_> = restored.messages().list("chat", 100).unwrap().into_iter().map(|m| (m.id, m.body)).collect();
    assert_eq!(back, kept, "restored messages keep their ids");
    let after_restore = restored.messages().add(&NewMessage::new("chat", "alice", "on the new device")).unwrap();
    assert!(after_restore > highest, "{after_restore:?} reuses an id up to {highest:?}");
}
