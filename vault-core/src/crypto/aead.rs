//! XChaCha20-Poly1305 sealed boxes: `nonce (24) ‖ ciphertext ‖ tag (16)`.
//!
//! Nonces are random (192 bits, so random nonces are safe for any realistic number of messages
//! under one key). The caller always supplies associated data that names what is sealed.

use chacha20poly1305::aead::{Aead, AeadInOut, Generate, KeyInit, Payload};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use super::OpenError;
use crate::secret::{SecretBytes, SecretKey};

/// Length of the random nonce at the front of a sealed box.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag at the end of a sealed box.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed box adds to its plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

fn cipher(key: &SecretKey) -> XChaCha20Poly1305 {
    XChaCha20Poly1305::new(key.expose_secret().into())
}

/// Encrypts `plaintext` under `key`, binding `aad`, with a fresh random nonce.
pub(crate) fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let nonce = XNonce::generate();
    seal_with_nonce(key, &nonce, aad, plaintext)
}

fn seal_with_nonce(key: &SecretKey, nonce: &XNonce, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(nonce.as_slice());
    // Encryption with a valid key and an in-memory buffer cannot fail; an empty result would
    // only ever fail to open, never leak.
    let ciphertext = cipher(key).encrypt(nonce, Payload { msg: plaintext, aad }).unwrap_or_default();
    out.extend_from_slice(&ciphertext);
    out
}

/// Authenticates and decrypts a sealed box. Any failure is the same [`OpenError`].
pub(crate) fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, OpenError> {
    if sealed.len() < OVERHEAD {
        return Err(OpenError);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).map_err(|_| OpenError)?;
    cipher(key).decrypt(&nonce, Payload { msg: ciphertext, aad }).map(SecretBytes::new).map_err(|_| OpenError)
}

/// XChaCha20-Poly1305 with nonces built by the caller and detached tags, for formats whose
/// nonces carry structure (the media STREAM construction: prefix, counter, last flag).
pub(crate) struct DetachedAead(XChaCha20Poly1305);

impl DetachedAead {
    pub(crate) fn new(key: &SecretKey) -> Self {
        Self(XChaCha20Poly1305::new(key.expose_secret().into()))
    }

    /// Encrypts `buf` in place; returns the tag, or `None` if the buffer is too long for the
    /// cipher (more than 256 GiB, never the case for a segment).
    pub(crate) fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        let tag = self.0.encrypt_inout_detached(&XNonce::from(*nonce), aad, buf.into()).ok()?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_slice());
        Some(out)
    }

    /// Authenticates and decrypts `buf` in place. On failure `buf` is zeroed, so no
    /// unauthenticated byte can reach a caller.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8],
    ) -> Result<(), OpenError> {
        let result = Tag::try_from(tag).map_err(|_| OpenError).and_then(|tag| {
            self.0.decrypt_inout_detached(&XNonce::from(*nonce), aad, buf.into(), &tag).map_err(|_| OpenError)
        });
        if result.is_err() {
            buf.fill(0);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::from_bytes([byte; 32])
    }

    /// XChaCha20-Poly1305 vector from draft-irtf-cfrg-xchacha-03, appendix A.3.1.
    #[test]
    fn draft_xchacha_known_answer() {
        let key_bytes: [u8; 32] = std::array::from_fn(|i| 0x80 + i as u8);
        let nonce_bytes: [u8; 24] = std::array::from_fn(|i| 0x40 + i as u8);
        let aad = hex::decode("50515253c0c1c2c3c4c5c6c7").unwrap_or_default();
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let expected = "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb\
                        731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452\
                        2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9\
                        21f9664c97637da9768812f615c68b13b52e\
                        c0875924c1c7987947deafd8780acf49";
        let nonce = XNonce::try_from(&nonce_bytes[..]).map_err(|_| OpenError);
        let Ok(nonce) = nonce else {
            panic!("nonce length");
        };
        let sealed = seal_with_nonce(&key_bytes_key(key_bytes), &nonce, &aad, plaintext);
        assert_eq!(hex::encode(&sealed[NONCE_LEN..]), expected);
        let opened = open(&key_bytes_key(key_bytes), &aad, &sealed);
        assert_eq!(opened.map(|p| p.expose_secret().to_vec()), Ok(plaintext.to_vec()));
    }

    fn key_bytes_key(bytes: [u8; 32]) -> SecretKey {
        SecretKey::from_bytes(bytes)
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let a = seal(&key(1), b"ctx", b"hello");
        let b = seal(&key(1), b"ctx", b"hello");
        assert_ne!(a, b, "two seals of the same value must differ");
        assert_eq!(a.len(), 5 + OVERHEAD);
        let opened = open(&key(1), b"ctx", &a).map(|p| p.expose_secret().to_vec());
        assert_eq!(opened, Ok(b"hello".to_vec()));
    }

    #[test]
    fn wrong_key_aad_or_any_flipped_bit_fails() {
        let sealed = seal(&key(1), b"ctx", b"hello");
        assert_eq!(open(&key(2), b"ctx", &sealed).err(), Some(OpenError));
        assert_eq!(open(&key(1), b"other", &sealed).err(), Some(OpenError));
        for bit in 0..sealed.len() * 8 {
            let mut tampered = sealed.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(open(&key(1), b"ctx", &tampered).err(), Some(OpenError), "bit {bit}");
        }
        for len in 0..sealed.len() {
            assert_eq!(open(&key(1), b"ctx", &sealed[..len]).err(), Some(OpenError));
        }
    }
}
