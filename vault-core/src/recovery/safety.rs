//! The safety number: a numeric fingerprint of the account and its guardians' pinned OPAQUE
//! public keys, which two devices of the same account show identically. A difference means one
//! device talks to a different server key (a replaced or impersonated server).
//!
//! 60 digits in 12 groups of 5: group `i` is the little-endian integer of bytes `5i..5i+5`, modulo
//! 100000, of the output derived for `Purpose::SafetyNumber` (BLAKE3 `derive_key` mode, extended
//! output, `docs/key-hierarchy.md`) over `u32 LE length ‖ account` and each key, sorted, as
//! `u32 LE length ‖ key`.

use crate::crypto::derive::{Derivation, Purpose};

/// The safety number of `account` with guardians whose keys are `server_keys` (any order).
pub(crate) fn safety_number(account: &str, server_keys: &[&[u8]]) -> String {
    let mut keys = server_keys.to_vec();
    keys.sort();
    let mut derivation = Derivation::new(Purpose::SafetyNumber);
    derivation.update(&(account.len() as u32).to_le_bytes()).update(account.as_bytes());
    for key in keys {
        derivation.update(&(key.len() as u32).to_le_bytes()).update(key);
    }
    let mut bytes = [0u8; 60];
    derivation.fill(&mut bytes);
    bytes
        .chunks_exact(5)
        .map(|group| {
            let mut word = [0u8; 8];
            word[..5].copy_from_slice(group);
            format!("{:05}", u64::from_le_bytes(word) % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_keys_in_any_order_give_the_same_number_and_any_change_another() {
        let a = safety_number("alice", &[b"key-a", b"key-b"]);
        assert_eq!(a, safety_number("alice", &[b"key-b", b"key-a"]));
        assert_eq!(a.len(), 12 * 5 + 11);
        assert!(a.split(' ').all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        assert_ne!(a, safety_number("alice", &[b"key-a", b"key-c"]));
        assert_ne!(a, safety_number("bob", &[b"key-a", b"key-b"]));
        assert_ne!(a, safety_number("alice", &[b"key-a"]));
    }

    /// Pinned, cross-checked with an independent Python implementation (the `blake3` package):
    /// devices on different builds must show the same number.
    #[test]
    fn known_answer() {
        assert_eq!(
            safety_number("alice", &[b"key-a", b"key-b"]),
            "82759 39065 36756 57143 71331 01055 08794 46974 78555 71095 28544 63634"
        );
        let spec = include_str!("../../../docs/formats.md");
        assert!(spec.contains("number 82759 39065 36756 57143 71331 01055 08794 46974 78555 71095 28544 63634"));
    }
}
