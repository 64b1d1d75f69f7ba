//! XChaCha20-Poly1305 sealed boxes: `nonce (24) ‖ ciphertext ‖ tag (16)`.
//!
//! Nonces are random (192 bits, so random nonces are safe for any realistic number of messages
//! under one key). The caller always supplies associated data that names what is sealed.
//!
//! Two backends compute the same function, byte for byte (the known-answer tests below compare
//! them on every build that has both):
//!
//! - `aws_lc`: RustCrypto's HChaCha20 for the subkey, then aws-lc-rs's assembly ChaCha20-Poly1305
//!   for the bulk; about 1.4× as fast on x86_64 (docs/benchmarks.md). Used when the build sets `cfg(aead_aws_lc)`:
//!   the `aws-lc` feature (default) on x86_64 or aarch64, not Android or iOS (see `build.rs`).
//! - `rust_crypto`: the `chacha20poly1305` crate's `XChaCha20Poly1305`, everywhere else (and
//!   always on phones until the aws-lc path is measured there).

use chacha20poly1305::XNonce;
use chacha20poly1305::aead::Generate;
use zeroize::{Zeroize, Zeroizing};

use super::OpenError;
use crate::secret::{SecretBytes, SecretKey};

#[cfg(aead_aws_lc)]
pub(in crate::crypto) mod aws_lc;
#[cfg(aead_aws_lc)]
use aws_lc as backend;
#[cfg(not(aead_aws_lc))]
use rust_crypto as backend;

/// Which backend this build runs, for benchmark reports.
pub(crate) const BACKEND: &str = if cfg!(aead_aws_lc) {
    "aws-lc-rs ChaCha20-Poly1305 under RustCrypto HChaCha20"
} else {
    "RustCrypto chacha20poly1305"
};

/// Length of the random nonce at the front of a sealed box.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag at the end of a sealed box.
pub(crate) const TAG_LEN: usize = 16;
/// Bytes a sealed box adds to its plaintext.
pub(crate) const OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Encrypts `plaintext` under `key`, binding `aad`, with a fresh random nonce.
pub(crate) fn seal(key: &SecretKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    seal_with_nonce(key, &XNonce::generate().into(), aad, plaintext)
}

fn seal_with_nonce(key: &SecretKey, nonce: &[u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    match backend::seal_once(key, nonce, aad, &mut out[NONCE_LEN..]) {
        Some(tag) => out.extend_from_slice(&tag),
        // Only an input beyond the cipher's 256 GiB refuses; the nonce alone never opens, and
        // the plaintext copied in is cleared.
        None => {
            out[NONCE_LEN..].zeroize();
            out.truncate(NONCE_LEN);
        }
    }
    out
}

/// Authenticates and decrypts a sealed box. Any failure is the same [`OpenError`].
pub(crate) fn open(key: &SecretKey, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes, OpenError> {
    let ciphertext_len = sealed.len().checked_sub(OVERHEAD).ok_or(OpenError)?;
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(ciphertext_len);
    let nonce = <&[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| OpenError)?;
    let tag = <&[u8; TAG_LEN]>::try_from(tag).map_err(|_| OpenError)?;
    // Zeroizing: on failure the buffer may hold unauthenticated bytes; it is cleared on drop.
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    backend::open_once(key, nonce, aad, &mut plaintext, tag)?;
    Ok(SecretBytes::new(std::mem::take(&mut *plaintext)))
}

/// XChaCha20-Poly1305 with nonces built by the caller and detached tags, for formats whose
/// nonces carry structure (the media STREAM construction: prefix, counter, last flag).
pub(crate) struct DetachedAead(backend::XChaCha20Poly1305);

impl DetachedAead {
    pub(crate) fn new(key: &SecretKey) -> Self {
        Self(backend::XChaCha20Poly1305::new(key))
    }

    /// Encrypts `buf` in place; returns the tag, or `None` if the buffer is too long for the
    /// cipher (more than 256 GiB, never the case for a segment).
    pub(crate) fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        self.0.seal_in_place(nonce, aad, buf)
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
        let result = <&[u8; TAG_LEN]>::try_from(tag)
            .map_err(|_| OpenError)
            .and_then(|tag| self.0.open_in_place(nonce, aad, buf, tag));
        if result.is_err() {
            buf.fill(0);
        }
        result
    }
}

/// The `chacha20poly1305` crate's XChaCha20-Poly1305: the backend where aws-lc-rs is not used, and
/// the reference the aws-lc backend is tested against.
#[cfg(any(not(aead_aws_lc), test))]
mod rust_crypto {
    use chacha20poly1305::aead::{AeadInOut, KeyInit};
    use chacha20poly1305::{Tag, XNonce};

    use super::{NONCE_LEN, TAG_LEN};
    use crate::crypto::OpenError;
    use crate::secret::SecretKey;

    pub(super) struct XChaCha20Poly1305(chacha20poly1305::XChaCha20Poly1305);

    impl XChaCha20Poly1305 {
        pub(super) fn new(key: &SecretKey) -> Self {
            Self(chacha20poly1305::XChaCha20Poly1305::new(key.expose_secret().into()))
        }

        pub(super) fn seal_in_place(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
        ) -> Option<[u8; TAG_LEN]> {
            let tag = self.0.encrypt_inout_detached(&XNonce::from(*nonce), aad, buf.into()).ok()?;
            Some(tag.into())
        }

        pub(super) fn open_in_place(
            &self,
            nonce: &[u8; NONCE_LEN],
            aad: &[u8],
            buf: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), OpenError> {
            self.0
                .decrypt_inout_detached(&XNonce::from(*nonce), aad, buf.into(), &Tag::from(*tag))
                .map_err(|_| OpenError)
        }
    }

    pub(super) fn seal_once(
        key: &SecretKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Option<[u8; TAG_LEN]> {
        XChaCha20Poly1305::new(key).seal_in_place(nonce, aad, buf)
    }

    pub(super) fn open_once(
        key: &SecretKey,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), OpenError> {
        XChaCha20Poly1305::new(key).open_in_place(nonce, aad, buf, tag)
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
        let sealed = seal_with_nonce(&key_bytes_key(key_bytes), &nonce_bytes, &aad, plaintext);
        assert_eq!(hex::encode(&sealed[NONCE_LEN..]), expected);
        let opened = open(&key_bytes_key(key_bytes), &aad, &sealed);
        assert_eq!(opened.map(|p| p.expose_secret().to_vec()), Ok(plaintext.to_vec()));
        // The reference backend gives the draft's bytes too (so both are pinned to the vector,
        // not only to each other).
        let mut buf = plaintext.to_vec();
        let tag = rust_crypto::seal_once(&key_bytes_key(key_bytes), &nonce_bytes, &aad, &mut buf);
        assert_eq!(hex::encode([buf, tag.map(Vec::from).unwrap_or_default()].concat()), expected);
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

/// Known-answer tests of the aws-lc backend against the RustCrypto one it replaces: the same bytes
/// for every length that matters to the formats (empty, around the ChaCha20 block and Poly1305
/// block sizes, around a media segment) and for random lengths, keys, nonces and associated data;
/// each opens the other's output; tampering fails on the new path.
#[cfg(test)]
#[cfg(aead_aws_lc)]
mod aws_lc_against_rust_crypto {
    use proptest::prelude::*;

    use super::*;
    use crate::crypto::random_array;
    use crate::media::stream::SEGMENT_LEN;

    /// Plaintext, associated-data and media-header lengths to try.
    const LENGTHS: [usize; 15] = [
        0,
        1,
        15,
        16,
        17,
        63,
        64,
        65,
        255,
        1024,
        4096,
        SEGMENT_LEN - 1,
        SEGMENT_LEN,
        SEGMENT_LEN + 1,
        3 * SEGMENT_LEN + 7,
    ];
    const AAD_LENGTHS: [usize; 6] = [0, 1, 16, 17, 46, 200];

    fn random_bytes(len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        getrandom::fill(&mut out).unwrap();
        out
    }

    /// `len` bytes expanded from `seed` (BLAKE3's XOF), so proptest can shrink the seed.
    fn bytes_from_seed(seed: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof().fill(&mut out);
        out
    }

    /// Seals `plaintext` with both backends (cached, one-shot and sealed-box paths), asserts the
    /// bytes are identical and that each backend opens the other's output.
    fn assert_same_bytes(key: [u8; 32], nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) {
        let key = SecretKey::from_bytes(key);
        let len = plaintext.len();
        let fast = aws_lc::XChaCha20Poly1305::new(&key);
        let reference = rust_crypto::XChaCha20Poly1305::new(&key);

        let mut expected = plaintext.to_vec();
        let expected_tag = reference.seal_in_place(&nonce, aad, &mut expected).unwrap();
        let mut ours = plaintext.to_vec();
        assert_eq!(fast.seal_in_place(&nonce, aad, &mut ours), Some(expected_tag), "tag, length {len}");
        assert!(ours == expected, "ciphertext, length {len}");
        let mut once = plaintext.to_vec();
        assert_eq!(aws_lc::seal_once(&key, &nonce, aad, &mut once), Some(expected_tag), "one-shot tag, length {len}");
        assert!(once == expected, "one-shot ciphertext, length {len}");
        let sealed_box = seal_with_nonce(&key, &nonce, aad, plaintext);
        assert!(sealed_box == [&nonce[..], &expected, &expected_tag].concat(), "sealed box, length {len}");

        let mut opened = ours.clone();
        reference.open_in_place(&nonce, aad, &mut opened, &expected_tag).unwrap();
        assert!(opened == plaintext, "RustCrypto opens aws-lc's output, length {len}");
        let mut opened = ours.clone();
        rust_crypto::open_once(&key, &nonce, aad, &mut opened, &expected_tag).unwrap();
        assert!(opened == plaintext, "RustCrypto one-shot opens aws-lc's output, length {len}");
        let mut opened = expected.clone();
        fast.open_in_place(&nonce, aad, &mut opened, &expected_tag).unwrap();
        assert!(opened == plaintext, "aws-lc opens RustCrypto's output, length {len}");
        let mut opened = expected.clone();
        aws_lc::open_once(&key, &nonce, aad, &mut opened, &expected_tag).unwrap();
        assert!(opened == plaintext, "aws-lc one-shot opens RustCrypto's output, length {len}");
        let opened = open(&key, aad, &[&nonce[..], &expected, &expected_tag].concat()).unwrap();
        assert!(opened.expose_secret() == plaintext, "sealed box opens, length {len}");
    }

    #[test]
    fn the_lengths_that_matter_seal_to_the_same_bytes() {
        for len in LENGTHS {
            for aad_len in AAD_LENGTHS {
                let key = random_array().unwrap();
                let nonce = random_array().unwrap();
                assert_same_bytes(key, nonce, &random_bytes(aad_len), &random_bytes(len));
            }
        }
    }

    #[test]
    fn edge_keys_and_nonces_seal_to_the_same_bytes() {
        for key in [[0u8; 32], [0xff; 32]] {
            for nonce in [[0u8; NONCE_LEN], [0xff; NONCE_LEN]] {
                for len in LENGTHS {
                    assert_same_bytes(key, nonce, b"", &random_bytes(len));
                }
            }
        }
    }

    /// A media stream's nonces (one 19-byte prefix, a big-endian counter, a last flag) through one
    /// `DetachedAead`, whose subkey of the first prefix is cached: every segment is the reference's
    /// bytes, and so are segments under a second prefix on the same instance (a cache miss).
    #[test]
    fn a_media_stream_seals_to_the_same_bytes_through_the_cached_subkey() {
        let key = SecretKey::from_bytes(random_array().unwrap());
        let fast = DetachedAead::new(&key);
        let reference = rust_crypto::XChaCha20Poly1305::new(&key);
        let header = random_bytes(46);
        let prefixes: [[u8; 19]; 2] = [random_array().unwrap(), random_array().unwrap()];
        for prefix in [prefixes[0], prefixes[1], prefixes[0]] {
            for (index, last, len) in [(0u32, false, SEGMENT_LEN), (1, false, SEGMENT_LEN), (2, true, 17), (0, true, 0)]
            {
                let mut nonce = [0u8; NONCE_LEN];
                nonce[..19].copy_from_slice(&prefix);
                nonce[19..23].copy_from_slice(&index.to_be_bytes());
                nonce[23] = u8::from(last);
                let plaintext = random_bytes(len);
                let mut ours = plaintext.clone();
                let mut expected = plaintext.clone();
                let tag = fast.seal_in_place(&nonce, &header, &mut ours);
                assert_eq!(tag, reference.seal_in_place(&nonce, &header, &mut expected));
                assert!(ours == expected);
                fast.open_in_place(&nonce, &header, &mut ours, &tag.unwrap()).unwrap();
                assert!(ours == plaintext);
            }
        }
    }

    /// Every flipped bit of ciphertext, tag, associated data or nonce (in the HChaCha20 half and in
    /// the ChaCha20 half), a short tag, or the wrong key fails to open on the aws-lc path, and a
    /// failed open leaves no byte in the buffer.
    #[test]
    fn tampering_fails_on_the_aws_lc_path() {
        let key = SecretKey::from_bytes(random_array().unwrap());
        let cipher = DetachedAead::new(&key);
        let nonce: [u8; NONCE_LEN] = random_array().unwrap();
        let aad = random_bytes(46);
        let plaintext = random_bytes(100);
        let mut sealed = plaintext.clone();
        let tag = cipher.seal_in_place(&nonce, &aad, &mut sealed).unwrap();
        let fails = |nonce: &[u8; NONCE_LEN], aad: &[u8], ciphertext: &[u8], tag: &[u8]| {
            let mut buf = ciphertext.to_vec();
            let failed = cipher.open_in_place(nonce, aad, &mut buf, tag).is_err();
            failed && buf.iter().all(|&b| b == 0)
        };
        assert!(!fails(&nonce, &aad, &sealed, &tag), "the untampered segment opens");
        for bit in 0..sealed.len() * 8 {
            let mut tampered = sealed.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(fails(&nonce, &aad, &tampered, &tag), "ciphertext bit {bit}");
        }
        for bit in 0..TAG_LEN * 8 {
            let mut tampered = tag;
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(fails(&nonce, &aad, &sealed, &tampered), "tag bit {bit}");
        }
        for bit in 0..aad.len() * 8 {
            let mut tampered = aad.clone();
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(fails(&nonce, &tampered, &sealed, &tag), "aad bit {bit}");
        }
        for bit in 0..NONCE_LEN * 8 {
            let mut tampered = nonce;
            tampered[bit / 8] ^= 1 << (bit % 8);
            assert!(fails(&tampered, &aad, &sealed, &tag), "nonce bit {bit}");
        }
        assert!(fails(&nonce, &aad, &sealed, &tag[..TAG_LEN - 1]), "short tag");
        assert!(fails(&nonce, &aad[..45], &sealed, &tag), "short aad");
        let other = DetachedAead::new(&SecretKey::from_bytes(random_array().unwrap()));
        let mut buf = sealed.clone();
        assert!(other.open_in_place(&nonce, &aad, &mut buf, &tag).is_err(), "another key");
        let mut buf = sealed.clone();
        assert!(aws_lc::open_once(&key, &nonce, &aad[1..], &mut buf, &tag).is_err(), "one-shot, other aad");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Random keys, nonces, associated data and lengths (up to three segments and a bit).
        #[test]
        fn random_inputs_seal_to_the_same_bytes(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; NONCE_LEN]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..120),
            len in prop_oneof![0usize..300, 0usize..(3 * SEGMENT_LEN + 100)],
            seed in any::<u64>(),
        ) {
            assert_same_bytes(key, nonce, &aad, &bytes_from_seed(seed, len));
        }
    }
}
