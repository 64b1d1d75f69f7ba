//! Media items in a real vault: streaming import, random access, export, attachments,
//! crypto-shredding deletes, tamper detection and orphan clean-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::io::{Read, Seek, SeekFrom};

use common::{new_vault, pass};
use vault_core::{Error, MEDIA_DIR, MEDIA_SEGMENT_LEN, MediaId, MediaImport, NewMessage, Vault};

fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| ((i * 131 + usize::from(seed) * 7) % 256) as u8).collect()
}

fn read_all(vault: &mut Vault, id: &MediaId) -> Result<Vec<u8>, Error> {
    let mut reader = vault.media().open(id)?;
    let mut out = Vec::new();
    reader
        .read_to_end(&mut out)
        .map_err(|e| Error::Integrity { object: vault_core::DataKind::Database, problem: e.to_string() })?;
    Ok(out)
}

#[test]
fn round_trip_of_many_sizes_with_seeks_and_exports() {
    let (tv, mut vault) = new_vault("pw");
    let sizes =
        [0, 1, MEDIA_SEGMENT_LEN - 1, MEDIA_SEGMENT_LEN, MEDIA_SEGMENT_LEN + 1, 3 * MEDIA_SEGMENT_LEN, 5_000_000];
    let mut ids = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = content(*size, i as u8);
        let id = vault.media().import(&mut &data[..], MediaImport::default()).unwrap();
        ids.push((id, data));
    }
    vault.lock();
    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap();
    for (id, data) in &ids {
        assert_eq!(&read_all(&mut vault, id).unwrap(), data);
    }
    let (big_id, big) = &ids[6];
    let mut reader = vault.media().open(big_id).unwrap();
    for offset in [0u64, 65_535, 1_000_003, 4_999_000] {
        reader.seek(SeekFrom::Start(offset)).unwrap();
        let mut buf = vec![0u8; 1000];
        reader.read_exact(&mut buf).unwrap();
        assert_eq!(&buf[..], &big[offset as usize..offset as usize + 1000]);
    }
    let out = tv.tmp.path().join("part.bin");
    assert_eq!(vault.media().export(big_id, &out, 100_000, Some(70_000)).unwrap(), 70_000);
    assert_eq!(std::fs::read(&out).unwrap(), &big[100_000..170_000]);
    assert!(matches!(vault.media().export(big_id, &out, 0, None), Err(Error::AlreadyExists(_))));
    let listed = vault.media().list().unwrap();
    assert_eq!(listed.len(), sizes.len());
    assert_eq!(listed.iter().map(|m| m.length).sum::<u64>(), sizes.iter().map(|s| *s as u64).sum::<u64>());
    assert!(vault.verify().unwrap().is_ok());
}

#[test]
fn attachments_conversations_and_crypto_shredding_delete() {
    let (tv, mut vault) = new_vault("pw");
    let message = vault.messages().add(&NewMessage::new("family", "alice", "photo")).unwrap();
    let place = MediaImport { conversation: Some("family"), message: Some(message) };
    let id = vault.media().import(&mut &b"jpeg bytes"[..], place).unwrap();
    let info = &vault.media().list().unwrap()[0];
    assert_eq!(info.conversation.as_deref(), Some("family"));
    assert_eq!(info.messages, vec![message]);
    let file = tv.dir.join(MEDIA_DIR).join(id.to_string());
    assert!(file.exists());
    assert!(vault.media().delete(&id).unwrap());
    assert!(!file.exists());
    assert!(matches!(vault.media().open(&id), Err(Error::NotFound(_))));
    assert!(!vault.media().delete(&id).unwrap());

    // Deleting a message deletes media attached only to it.
    let only =
        vault.media().import(&mut &b"a"[..], MediaImport { message: Some(message), ..Default::default() }).unwrap();
    let other_message = vault.messages().add(&NewMessage::new("family", "bob", "also")).unwrap();
    let shared =
        vault.media().import(&mut &b"b"[..], MediaImport { message: Some(message), ..Default::default() }).unwrap();
    vault.media().attach(&shared, other_message).unwrap();
    assert!(vault.messages().delete(message).unwrap());
    assert!(matches!(vault.media().open(&only), Err(Error::NotFound(_))));
    assert_eq!(read_all(&mut vault, &shared).unwrap(), b"b");
}

#[test]
fn a_failed_import_leaves_nothing_behind() {
    let (tv, mut vault) = new_vault("pw");
    let bad_conversation = MediaImport { conversation: Some("nobody"), ..Default::default() };
    assert!(matches!(vault.media().import(&mut &b"x"[..], bad_conversation), Err(Error::NotFound(_))));
    let bad_message = MediaImport { message: Some(vault_core::MessageId(999)), ..Default::default() };
    assert!(matches!(vault.media().import(&mut &b"x"[..], bad_message), Err(Error::NotFound(_))));
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 > 200_000 {
                return Err(std::io::Error::other("camera roll went away"));
            }
            self.0 += buf.len();
            buf.fill(1);
            Ok(buf.len())
        }
    }
    assert!(matches!(vault.media().import(&mut Failing(0), MediaImport::default()), Err(Error::Io { .. })));
    assert!(vault.media().list().unwrap().is_empty());
    assert_eq!(std::fs::read_dir(tv.dir.join(MEDIA_DIR)).unwrap().count(), 0);
}

#[test]
fn tampered_swapped_truncated_or_missing_files_are_integrity_errors() {
    let (tv, mut vault) = new_vault("pw");
    let a_data = content(3 * MEDIA_SEGMENT_LEN + 10, 1);
    let b_data = content(3 * MEDIA_SEGMENT_LEN + 10, 2);
    let a = vault.media().import(&mut &a_data[..], MediaImport::default()).unwrap();
    let b = vault.media().import(&mut &b_data[..], MediaImport::default()).unwrap();
    let path = |id: &MediaId| tv.dir.join(MEDIA_DIR).join(id.to_string());
    let original_a = std::fs::read(path(&a)).unwrap();
    let original_b = std::fs::read(path(&b)).unwrap();

    let mut flipped = original_a.clone();
    flipped[2 * MEDIA_SEGMENT_LEN] ^= 4;
    std::fs::write(path(&a), &flipped).unwrap();
    assert!(read_all(&mut vault, &a).is_err());
    let report = vault.verify().unwrap();
    assert!(!report.is_ok());
    // Reading before the damaged segment still returns only correct bytes.
    let mut reader = vault.media().open(&a).unwrap();
    let mut first = vec![0u8; MEDIA_SEGMENT_LEN];
    reader.read_exact(&mut first).unwrap();
    assert_eq!(first, a_data[..MEDIA_SEGMENT_LEN]);

    std::fs::write(path(&a), &original_b).unwrap();
    assert!(matches!(vault.media().open(&a), Err(Error::Integrity { .. })), "another item's file");
    std::fs::write(path(&a), &original_a[..original_a.len() - MEDIA_SEGMENT_LEN - 16]).unwrap();
    assert!(matches!(vault.media().open(&a), Err(Error::Integrity { .. })), "dropped final segment");
    std::fs::remove_file(path(&a)).unwrap();
    assert!(matches!(vault.media().open(&a), Err(Error::Integrity { .. })), "missing");
    let out = tv.tmp.path().join("out");
    assert!(vault.media().export(&a, &out, 0, None).is_err());
    assert!(!out.exists(), "no partial export");
    std::fs::write(path(&a), &original_a).unwrap();
    assert_eq!(read_all(&mut vault, &a).unwrap(), a_data);
    assert_eq!(read_all(&mut vault, &b).unwrap(), b_data);
}

#[test]
fn orphans_and_temp_files_are_removed_at_unlock() {
    let (tv, mut vault) = new_vault("pw");
    let kept = vault.media().import(&mut &b"keep me"[..], MediaImport::default()).unwrap();
    vault.lock();
    let media = tv.dir.join(MEDIA_DIR);
    std::fs::write(media.join(".tmp-0011223344556677"), b"half written").unwrap();
    std::fs::write(media.join("00112233445566778899aabbccddeeff"), b"no row").unwrap();
    let vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap();
    assert_eq!(vault.open_report().orphans_removed, 2);
    let names: Vec<_> = std::fs::read_dir(&media).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from(kept.to_string())]);
    assert!(vault.verify().unwrap().is_ok());
}

#[test]
fn media_plaintext_never_reaches_the_disk() {
    let (tv, mut vault) = new_vault("pw");
    let marker = b"MEDIA-CANARY-5c1d2e";
    let mut data = content(2 * MEDIA_SEGMENT_LEN, 9);
    for at in [0, 70_000, data.len() - marker.len()] {
        data[at..at + marker.len()].copy_from_slice(marker);
    }
    let id = vault.media().import(&mut &data[..], MediaImport::default()).unwrap();
    test_support::canary::assert_absent(&tv.dir, &[("media marker", marker), ("media sample", &data[1000..1032])]);
    assert_eq!(read_all(&mut vault, &id).unwrap(), data);
}

struct Recorder {
    calls: std::sync::Mutex<Vec<(u64, Option<u64>)>>,
    stop_after: u64,
}

impl vault_core::Progress for Recorder {
    fn advance(&self, done: u64, total: Option<u64>) -> bool {
        self.calls.lock().unwrap().push((done, total));
        done < self.stop_after
    }
}

#[test]
fn progress_is_reported_and_cancelling_keeps_nothing() {
    let (tv, mut vault) = new_vault("pw");
    let data = content(5_000_000, 3);
    let source = tv.tmp.path().join("big.bin");
    std::fs::write(&source, &data).unwrap();

    let all = Recorder { calls: Default::default(), stop_after: u64::MAX };
    let id = vault.media().import_file_with_progress(&source, MediaImport::default(), &all).unwrap();
    let calls = all.calls.lock().unwrap().clone();
    assert!(calls.len() >= 4, "about once per MiB: {calls:?}");
    assert!(calls.windows(2).all(|w| w[0].0 <= w[1].0), "monotonic");
    assert_eq!(calls.last().map(|c| c.0), Some(5_000_000));
    assert!(calls.iter().all(|c| c.1 == Some(5_000_000)));

    let stop = Recorder { calls: Default::default(), stop_after: 2_000_000 };
    let cancelled = vault.media().import_file_with_progress(&source, MediaImport::default(), &stop);
    assert!(matches!(cancelled, Err(Error::Cancelled)), "{cancelled:?}");
    assert_eq!(vault.media().list().unwrap().len(), 1, "the cancelled import stored nothing");
    assert_eq!(std::fs::read_dir(tv.dir.join(MEDIA_DIR)).unwrap().count(), 1, "and left no file");

    let out = tv.tmp.path().join("out.bin");
    let stop = Recorder { calls: Default::default(), stop_after: 1_000_000 };
    assert!(matches!(vault.media().export_with_progress(&id, &out, 0, None, &stop), Err(Error::Cancelled)));
    assert!(!out.exists(), "a cancelled export leaves no file");
    let leftovers = std::fs::read_dir(tv.tmp.path())
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".vault-new-")));
    assert_eq!(leftovers.count(), 0, "nor a temp file");
    assert_eq!(vault.media().export(&id, &out, 0, None).unwrap(), 5_000_000);
}
