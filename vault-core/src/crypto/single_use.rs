//! ChaCha20-Poly1305 (RFC 8439) under a key that seals exactly one plaintext: `ciphertext ‖ tag
//! (16)`, with the all-zero 96-bit nonce.
//!
//! A nonce must never repeat under one key; a key drawn fresh for each plaintext and never used
//! again meets that with a constant nonce, which saves the 24 stored nonce bytes and the HChaCha20
//! step of a random-nonce box. Backup chunks use it: each has its own random key, carried by the
//! snapshot tree, so forgetting a chunk's key forgets the chunk (`docs/adr/0017-forward-secret-backups.md`).
//! The caller must never seal a second plaintext under a key: [`seal_fresh_all_into`] draws the
//! keys itself, one per plaintext.
//! Like `crypto::aead`, it runs on aws-lc-rs on desktop and server builds and on RustCrypto
//! elsewhere, with the same bytes (ADR 0018).

use zeroize::{Zeroize, Zeroizing};

use super::OpenError;
use crate::secret::{SecretBytes, SecretKey};

/// Length of the Poly1305 tag at the end of a sealed plaintext.
pub(crate) const TAG_LEN: usize = 16;

const NONCE: [u8; 12] = [0; 12];

/// Keys in one batch of [`FreshKeys`].
const KEYS_PER_DRAW: usize = 64;

/// Fresh keys from the operating system's CSPRNG, drawn [`KEYS_PER_DRAW`] at a time: one
/// `getrandom` call per batch rather than per key, which at the backup export's 1 KiB chunks was a
/// large share of each chunk's cost. The batch is zeroized when dropped, and each key's bytes are
/// cleared from it as the key is handed out, so the batch never holds a key already in use.
pub(crate) struct FreshKeys {
    batch: Zeroizing<[u8; 32 * KEYS_PER_DRAW]>,
    next: usize,
}

impl Default for FreshKeys {
    fn default() -> Self {
        Self { batch: Zeroizing::new([0; 32 * KEYS_PER_DRAW]), next: KEYS_PER_DRAW }
    }
}

impl FreshKeys {
    fn draw(&mut self) -> Result<SecretKey, getrandom::Error> {
        if self.next == KEYS_PER_DRAW {
            getrandom::fill(&mut self.batch[..])?;
            self.next = 0;
        }
        let slot = &mut self.batch[self.next * 32..][..32];
        let mut key = [0u8; 32];
        key.copy_from_slice(slot);
        slot.zeroize();
        self.next += 1;
        Ok(SecretKey::from_bytes(key))
    }
}

/// Why [`seal_fresh_all_into`] sealed nothing.
#[derive(Debug)]
pub(crate) enum BatchSealError {
    /// The operating system's random number generator failed.
    Randomness,
    /// A plaintext beyond the cipher's limit, or more bytes than memory holds.
    TooLong,
}

/// The fewest plaintexts one task of [`seal_fresh_all_into`] seals (about 16 KiB of backup
/// chunks): enough that handing the task to another core costs little beside the sealing.
const SEALS_PER_TASK: usize = 16;

/// Draws a fresh key for each `(aad, plaintext)` of `items`, and appends each plaintext sealed
/// under its key, binding its `aad`, to `out` (`ciphertext ‖ tag`, back to back in order), sealing
/// on all cores (rayon's pool). Returns the keys in order. On error nothing is appended.
pub(crate) fn seal_fresh_all_into<A: AsRef<[u8]> + Sync>(
    keys: &mut FreshKeys,
    items: &[(A, &[u8])],
    out: &mut Vec<u8>,
) -> Result<Vec<SecretKey>, BatchSealError> {
    let drawn =
        items.iter().map(|_| keys.draw()).collect::<Result<Vec<_>, _>>().map_err(|_| BatchSealError::Randomness)?;
    seal_all_into(&drawn, items, out)?;
    Ok(drawn)
}

/// Appends each plaintext of `items` sealed under the key of the same place in `keys`, which the
/// caller guarantees is used for that one plaintext only, on all cores.
fn seal_all_into<A: AsRef<[u8]> + Sync>(
    keys: &[SecretKey],
    items: &[(A, &[u8])],
    out: &mut Vec<u8>,
) -> Result<(), BatchSealError> {
    use rayon::prelude::*;

    debug_assert_eq!(keys.len(), items.len(), "one key for each plaintext");

    let sealed_len = items
        .iter()
        .try_fold(0usize, |total, (_, plaintext)| total.checked_add(plaintext.len().checked_add(TAG_LEN)?))
        .ok_or(BatchSealError::TooLong)?;
    let start = out.len();
    out.resize(start.checked_add(sealed_len).ok_or(BatchSealError::TooLong)?, 0);
    // One region of `out` per item, each the length of its sealed plaintext.
    let mut regions = Vec::with_capacity(items.len());
    let mut rest = &mut out[start..];
    for (_, plaintext) in items {
        let (region, tail) = std::mem::take(&mut rest).split_at_mut(plaintext.len() + TAG_LEN);
        regions.push(region);
        rest = tail;
    }
    let all_sealed = regions.into_par_iter().zip(items).zip(keys).with_min_len(SEALS_PER_TASK).all(
        |((region, (aad, plaintext)), key)| {
            let (body, tag) = region.split_at_mut(plaintext.len());
            body.copy_from_slice(plaintext);
            match backend::seal_in_place(key, NONCE, aad.as_ref(), body) {
                Some(sealed_tag) => {
                    tag.copy_from_slice(&sealed_tag);
                    true
                }
                None => false,
            }
        },
    );
    if !all_sealed {
        out[start..].zeroize();
        out.truncate(start);
        return Err(BatchSealError::TooLong);
    }
    Ok(())
}

/// Draws a fresh key and seals `plaintext` under it, binding `aad`; returns the key and
/// `ciphertext ‖ tag`.
#[cfg(test)]
pub(crate) fn seal_fresh(aad: &[u8], plaintext: &[u8]) -> Result<(SecretKey, Vec<u8>), BatchSealError> {
    let mut sealed = Vec::with_capacity(plaintext.len() + TAG_LEN);
    let mut keys = seal_fresh_all_into(&mut FreshKeys::default(), &[(aad, plaintext)], &mut sealed)?;
    Ok((keys.pop().expect("one plaintext sealed"), sealed))
}

/// Authenticates and decrypts `ciphertext ‖ tag` under `key`. Any failure is the same
/// [`OpenError`].
pub(crate) fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, OpenError> {
    let ciphertext_len = sealed.len().checked_sub(TAG_LEN).ok_or(OpenError)?;
    let (ciphertext, tag) = sealed.split_at(ciphertext_len);
    let tag = <&[u8; TAG_LEN]>::try_from(tag).map_err(|_| OpenError)?;
    // Zeroizing: on failure the buffer may hold unauthenticated bytes; it is cleared on drop.
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    backend::open_in_place(key, NONCE, aad, &mut plaintext, tag)?;
    Ok(SecretBytes::new(std::mem::take(&mut *plaintext)))
}

/// aws-lc-rs's assembly ChaCha20-Poly1305, where the AEAD runs on it (`crypto::aead`, ADR 0018).
#[cfg(aead_aws_lc)]
mod backend {
    pub(super) use crate::crypto::aead::aws_lc::{
        chacha20_poly1305_open as open_in_place, chacha20_poly1305_seal as seal_in_place,
    };
}

/// RustCrypto's `chacha20poly1305`: elsewhere, and the reference the aws-lc path is tested against.
#[cfg(any(not(aead_aws_lc), test))]
mod rust_crypto {
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};

    use super::TAG_LEN;
    use crate::crypto::OpenError;
    use crate::secret::SecretKey;

    pub(super) fn seal_in_place(key: &SecretKey, nonce: [u8; 12], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let cipher = ChaCha20Poly1305::new(key.expose_secret().into());
        Some(cipher.encrypt_inout_detached(&Nonce::from(nonce), aad, buf.into()).ok()?.into())
    }

    pub(super) fn open_in_place(
        key: &SecretKey,
        nonce: [u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), OpenError> {
        let cipher = ChaCha20Poly1305::new(key.expose_secret().into());
        cipher.decrypt_inout_detached(&Nonce::from(nonce), aad, buf.into(), &Tag::from(*tag)).map_err(|_| OpenError)
    }
}

#[cfg(not(aead_aws_lc))]
use rust_crypto as backend;

#[cfg(test)]
mod tests {
    use super::*;

    fn seal_with(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut sealed = Vec::new();
        seal_all_into(std::slice::from_ref(key), &[(aad, plaintext)], &mut sealed).unwrap();
        sealed
    }

    #[test]
    fn sealing_appends_and_batched_keys_are_distinct_and_cleared_from_the_batch() {
        let mut keys = FreshKeys::default();
        let mut out = b"header".to_vec();
        let mut drawn = std::collections::HashSet::new();
        for i in 0..KEYS_PER_DRAW + 3 {
            let start = out.len();
            let key = seal_fresh_all_into(&mut keys, &[(b"aad", &[i as u8; 5][..])], &mut out).unwrap().remove(0);
            assert_eq!(out.len(), start + 5 + TAG_LEN);
            assert_eq!(open(&key, b"aad", &out[start..]).unwrap().expose_secret(), &[i as u8; 5]);
            assert!(drawn.insert(*key.expose_secret()), "key {i} drawn twice");
            assert!(keys.batch[..keys.next * 32].iter().all(|b| *b == 0), "handed-out keys are cleared");
        }
        assert_eq!(&out[..6], b"header");
    }

    #[test]
    fn a_batch_seals_each_item_as_one_seal_would_under_keys_of_its_own() {
        let mut keys = FreshKeys::default();
        let plaintexts: Vec<Vec<u8>> = (0..KEYS_PER_DRAW * 2 + 5).map(|i| vec![i as u8; i * 7 % 300]).collect();
        let items: Vec<([u8; 2], &[u8])> =
            plaintexts.iter().enumerate().map(|(i, p)| ((i as u16).to_le_bytes(), &p[..])).collect();
        let mut out = b"header".to_vec();
        let drawn = seal_fresh_all_into(&mut keys, &items, &mut out).unwrap();
        assert_eq!(drawn.len(), items.len());
        assert_eq!(&out[..6], b"header");
        let mut at = 6;
        let mut distinct = std::collections::HashSet::new();
        for ((aad, plaintext), key) in items.iter().zip(&drawn) {
            let sealed = &out[at..at + plaintext.len() + TAG_LEN];
            assert_eq!(sealed, seal_with(key, aad, plaintext), "the same bytes as a single seal");
            assert_eq!(open(key, aad, sealed).unwrap().expose_secret(), *plaintext);
            assert!(distinct.insert(*key.expose_secret()), "a key drawn twice");
            at += sealed.len();
        }
        assert_eq!(at, out.len());
        let none: [([u8; 2], &[u8]); 0] = [];
        assert!(seal_fresh_all_into(&mut keys, &none, &mut out).unwrap().is_empty());
        assert_eq!(at, out.len());
    }

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

    /// The aws-lc path gives RustCrypto's bytes for every length around the ChaCha20 and Poly1305
    /// block sizes and the export's chunk sizes, and each opens the other's output.
    #[cfg(aead_aws_lc)]
    #[test]
    fn the_aws_lc_path_seals_to_rust_crypto_bytes() {
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1023, 1024, 1025, 4096, 65_537] {
            for aad_len in [0, 1, 16, 42, 200] {
                let key = SecretKey::generate().unwrap();
                let aad: Vec<u8> = (0..aad_len).map(|i| (i * 7 + len) as u8).collect();
                let plaintext: Vec<u8> = (0..len).map(|i| (i * 31 + aad_len) as u8).collect();
                let mut reference = plaintext.clone();
                let tag = rust_crypto::seal_in_place(&key, NONCE, &aad, &mut reference).unwrap();
                let sealed = seal_with(&key, &aad, &plaintext);
                assert!(sealed == [&reference[..], &tag].concat(), "length {len}, aad {aad_len}");
                let mut opened = reference.clone();
                rust_crypto::open_in_place(&key, NONCE, &aad, &mut opened, &tag).unwrap();
                assert!(opened == plaintext);
                assert_eq!(open(&key, &aad, &sealed).unwrap().expose_secret(), &plaintext[..]);
            }
        }
    }
}
