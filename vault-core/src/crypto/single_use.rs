//! ChaCha20-Poly1305 (RFC 8439) under a key that seals exactly one plaintext: `ciphertext ‖ tag
//! (16)`, with the all-zero 96-bit nonce.
//!
//! A nonce must never repeat under one key; a key drawn fresh for each plaintext and never used
//! again meets that with a constant nonce, which saves the 24 stored nonce bytes and the HChaCha20
//! step of a random-nonce box. Backup chunks use it: each has its own random key, carried by the
//! snapshot tree, so forgetting a chunk's key forgets the chunk (`docs/adr/0017-forward-secret-backups.md`).
//! The caller must never seal a second plaintext under a key: [`seal_fresh`] draws the key itself.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use super::OpenError;
use crate::secret::{SecretBytes, SecretKey};

/// Length of the Poly1305 tag at the end of a sealed plaintext.
pub(crate) const TAG_LEN: usize = 16;

const NONCE: [u8; 12] = [0; 12];

/// Draws a fresh key and seals `plaintext` under it, binding `aad`; returns the key and
/// `ciphertext ‖ tag`.
pub(crate) fn seal_fresh(aad: &[u8], plaintext: &[u8]) -> Result<(SecretKey, Vec<u8>), getrandom::Error> {
    let key = SecretKey::generate()?;
    let sealed = seal_with(&key, aad, plaintext);
    Ok((key, sealed))
}

/// Seals under a key the caller guarantees is used for this one plaintext only.
fn seal_with(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    // Encryption with a valid key and an in-memory buffer cannot fail; an empty result would only
    // ever fail to open, never leak.
    ChaCha20Poly1305::new(key.expose_secret().into())
        .encrypt(&Nonce::from(NONCE), Payload { msg: plaintext, aad })
        .unwrap_or_default()
}

/// Authenticates and decrypts `ciphertext ‖ tag` under `key`. Any failure is the same
/// [`OpenError`].
pub(crate) fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, OpenError> {
    if sealed.len() < TAG_LEN {
        return Err(OpenError);
    }
    ChaCha20Poly1305::new(key.expose_secret().into())
        .decrypt(&Nonce::from(NONCE), Payload { msg: sealed, aad })
        .map(SecretBytes::new)
        .map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Python `cryptography` 48.0.0 (`ChaCha20Poly1305(key)
    /// .encrypt(b"\0" * 12, plaintext, aad)`); `docs/formats.md`, "Backup pack and sealed chunk", carries the same vector.
    #[test]
    fn known_answer() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let key = SecretKey::from_bytes(key);
        let mut aad = b"VBAKCHNK\x02\x00".to_vec();
        aad.extend_from_slice(&[7; 32]);
        let plaintext = b"a chunk of the export, sealed under a key of its own";
        let expected = "79982159d888cdf17c077c15c7266e4280c19c8795817b2f899990774e150032166d7a4db0ce5738e4a137424467744fbbcf8130951c6130ea46b1bdb61306d96122d0e4";
        assert_eq!(hex::encode(seal_with(&key, &aad, plaintext)), expected);
        let sealed = hex::decode(expected).unwrap();
        assert_eq!(open(&key, &aad, &sealed).unwrap().expose_secret(), plaintext);
    }

    #[test]
    fn every_change_fails_to_open_and_keys_are_fresh() {
        let (key, sealed) = seal_fresh(b"aad", b"plaintext").unwrap();
        assert_eq!(sealed.len(), 9 + TAG_LEN);
        assert_eq!(open(&key, b"aad", &sealed).unwrap().expose_secret(), b"plaintext");
        assert!(open(&key, b"aaD", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open(&key, b"aad", &bad).is_err(), "bit flipped at {i}");
        }
        assert!(open(&key, b"aad", &sealed[..TAG_LEN - 1]).is_err());
        let (other, again) = seal_fresh(b"aad", b"plaintext").unwrap();
        assert_ne!(key.expose_secret(), other.expose_secret());
        assert_ne!(sealed, again);
        assert!(open(&other, b"aad", &sealed).is_err());
    }
}
