//! No plaintext on disk: a unique marker written into messages and secrets, and the passphrase,
//! never appear in any byte under the vault directory — while open (WAL present) and after close.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{new_vault, pass};
use test_support::canary::assert_absent;
use vault_core::{NewMessage, Vault};

#[test]
fn no_canary_or_passphrase_in_any_stored_byte() {
    let canary = format!("CANARY-{:016x}", (u64::from(std::process::id())).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let passphrase = "PASS-correct-horse-battery-staple-7731";
    let (tv, mut vault) = new_vault(passphrase);
    let batch: Vec<_> = (0..2000)
        .map(|i| NewMessage::new(format!("chat-{}", i % 7), "alice", format!("msg {i} {canary} tail")))
        .collect();
    vault.messages().add_batch(&batch).unwrap();
    vault.secrets().put("token", canary.as_bytes()).unwrap();
    vault.keys().add_passphrase(&pass("PASS-second-slot-4491"), common::FAST_KDF).unwrap();
    assert_eq!(vault.messages().search(&canary.to_lowercase(), 5).unwrap().len(), 5, "canary is searchable");

    let lower = canary.to_lowercase();
    let needles: [(&str, &[u8]); 6] = [
        ("canary", canary.as_bytes()),
        ("canary (lower case)", lower.as_bytes()),
        ("passphrase", passphrase.as_bytes()),
        ("second passphrase", b"PASS-second-slot-4491"),
        ("sender", b"alice"),
        ("conversation", b"chat-3"),
    ];
    let scan = || {
        assert!(tv.dir.join("vault.db").exists());
        assert_absent(&tv.dir, &needles).files
    };
    let open_files = scan(); // while open
    assert!(open_files >= 3, "the WAL is present while open");
    vault.lock();
    scan(); // after close

    let mut vault = Vault::unlock_with_passphrase(&tv.dir, &pass(passphrase)).unwrap();
    assert_eq!(vault.secrets().get("token").unwrap().unwrap().expose_secret(), canary.as_bytes());
}
