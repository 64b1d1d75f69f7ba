//! Damaged, truncated, swapped and wrong-version files give the documented errors, never a
//! panic, never wrong data, and unlock attempts never modify them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::fs;
use std::path::Path;

use common::{new_vault, pass};
use vault_core::{DATABASE_FILE, Error, KEYSLOTS_FILE, NewMessage, Vault};

fn filled_vault(passphrase: &str) -> (common::TestVault, Vec<String>) {
    let (tv, mut vault) = new_vault(passphrase);
    let bodies: Vec<String> =
        (0..300).map(|i| format!("message number {i} with some padding text {}", "z".repeat(i % 50))).collect();
    let batch: Vec<_> =
        bodies.iter().map(|b| NewMessage { sent_at: 1, ..NewMessage::new("c", "s", b.clone()) }).collect();
    vault.messages().add_batch(&batch).unwrap();
    vault.lock();
    (tv, bodies)
}

fn snapshot(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (fs::read(dir.join(KEYSLOTS_FILE)).unwrap(), fs::read(dir.join(DATABASE_FILE)).unwrap())
}

#[test]
fn damaged_slot_files_fail_authentication_and_stay_untouched() {
    let (tv, _) = filled_vault("pw");
    let original = fs::read(tv.dir.join(KEYSLOTS_FILE)).unwrap();
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for len in [0, 1, 8, 10, 30, original.len() / 2, original.len() - 1] {
        cases.push((format!("truncated to {len}"), original[..len].to_vec()));
    }
    for bit in (0..original.len() * 8).step_by(7) {
        let mut flipped = original.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        cases.push((format!("bit {bit} flipped"), flipped));
    }
    let mut longer = original.clone();
    longer.extend_from_slice(b"junk");
    cases.push(("trailing bytes".to_owned(), longer));

    for (name, bytes) in cases {
        fs::write(tv.dir.join(KEYSLOTS_FILE), &bytes).unwrap();
        let before = snapshot(&tv.dir);
        match Vault::unlock_with_passphrase(&tv.dir, &pass("pw")) {
            Err(Error::AuthenticationFailed) | Err(Error::UnsupportedVersion { what: "key-slot file", .. }) => {
                assert!(snapshot(&tv.dir) == before, "{name}: a failed unlock changed the files");
            }
            // Every slot field is in the AAD; only the file-level `next_slot_id` is not, and
            // raising it is harmless (ids stay unique), so that unlock may succeed.
            Ok(_) if name.starts_with("bit") && bytes[26..30] > original[26..30] => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn unknown_slot_file_version_is_reported_as_such() {
    let (tv, _) = filled_vault("pw");
    let mut bytes = fs::read(tv.dir.join(KEYSLOTS_FILE)).unwrap();
    bytes[8] = 9;
    fs::write(tv.dir.join(KEYSLOTS_FILE), &bytes).unwrap();
    let result = Vault::unlock_with_passphrase(&tv.dir, &pass("pw"));
    assert!(matches!(result, Err(Error::UnsupportedVersion { what: "key-slot file", found: 9 })));
}

#[test]
fn another_vaults_slot_file_or_database_is_refused() {
    let (a, _) = filled_vault("pw");
    let (b, _) = filled_vault("pw");
    // Same passphrase, but B's slot file next to A's database: the VRK differs.
    fs::copy(b.dir.join(KEYSLOTS_FILE), a.dir.join(KEYSLOTS_FILE)).unwrap();
    let result = Vault::unlock_with_passphrase(&a.dir, &pass("pw"));
    assert!(matches!(result, Err(Error::Integrity { .. })), "{result:?}");
}

#[test]
fn a_damaged_page_never_yields_wrong_data() {
    let (tv, bodies) = filled_vault("pw");
    let db = tv.dir.join(DATABASE_FILE);
    let original = fs::read(&db).unwrap();
    let page = 4096;
    assert!(original.len() >= 4 * page, "enough pages to damage");
    for page_index in 0..original.len() / page {
        for offset in [0usize, 100, 2000, page - 40, page - 1] {
            let mut damaged = original.clone();
            damaged[page_index * page + offset] ^= 0x10;
            fs::write(&db, &damaged).unwrap();
            let _ = fs::remove_file(tv.dir.join(format!("{DATABASE_FILE}-wal")));
            let case = format!("page {page_index} offset {offset}");
            let outcome = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).and_then(|mut vault| {
                let listed = vault.messages().list("c", 1000);
                let report = vault.verify()?;
                Ok((listed, report))
            });
            match outcome {
                Err(Error::Integrity { .. }) => {}
                Ok((listed, report)) => {
                    assert!(!report.is_ok(), "{case}: verify must notice the damage");
                    if let Ok(listed) = listed {
                        let got: Vec<_> = listed.into_iter().map(|m| m.body).collect();
                        assert_eq!(got, bodies, "{case}: data read must be the original");
                    }
                }
                Err(other) => panic!("{case}: unexpected {other:?}"),
            }
        }
    }
    fs::write(&db, &original).unwrap();
    assert!(Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap().verify().unwrap().is_ok());
}

#[test]
fn truncated_or_missing_databases_are_integrity_errors() {
    let (tv, _) = filled_vault("pw");
    let db = tv.dir.join(DATABASE_FILE);
    let original = fs::read(&db).unwrap();
    for len in [0usize, 100, 4096, original.len() - 4096, original.len() - 1] {
        fs::write(&db, &original[..len]).unwrap();
        let outcome = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).and_then(|v| {
            let report = v.verify()?;
            Ok(report.is_ok())
        });
        assert!(matches!(outcome, Err(Error::Integrity { .. }) | Ok(false)), "length {len}: {outcome:?}");
    }
    fs::remove_file(&db).unwrap();
    assert!(matches!(Vault::unlock_with_passphrase(&tv.dir, &pass("pw")), Err(Error::Integrity { .. })));
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let (tv, vault) = new_vault("pw");
    let key = vault.dangerous_export_database_key();
    vault.lock();
    let conn = vault_core::bench_support::Connection::open(tv.dir.join(DATABASE_FILE)).unwrap();
    conn.execute_batch(&format!("PRAGMA key = \"x'{}'\"; PRAGMA user_version = 99;", hex::encode(key.expose_secret())))
        .unwrap();
    drop(conn);
    let result = Vault::unlock_with_passphrase(&tv.dir, &pass("pw"));
    assert!(matches!(result, Err(Error::UnsupportedVersion { what: "database schema", found: 99 })), "{result:?}");
}

#[test]
fn a_flooded_failure_record_is_bounded_and_cleared() {
    let (tv, _) = filled_vault("pw");
    let flood = "\n".repeat(60_000) + &"1700000000000\n".repeat(5_000);
    fs::write(tv.dir.join(vault_core::UNLOCK_FAILURES_FILE), flood).unwrap();
    let vault = Vault::unlock_with_passphrase(&tv.dir, &pass("pw")).unwrap();
    let failed: Vec<_> = vault
        .security_events(10_000)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == vault_core::SecurityEventKind::UnlockFailed)
        .collect();
    assert_eq!(failed.len(), 1001, "1000 listed and one summary");
    assert!(failed.iter().any(|e| e.detail == "4000 more failed unlocks not listed"), "{:?}", failed.first());
    assert!(!tv.dir.join(vault_core::UNLOCK_FAILURES_FILE).exists());
}
