//! XChaCha20-Poly1305 composed from two vetted pieces: RustCrypto's HChaCha20 (the `chacha20`
//! crate that `chacha20poly1305` itself builds on) derives the subkey, and aws-lc-rs's assembly
//! ChaCha20-Poly1305 (RFC 8439) does the bulk under it:
//!
//! ```text
//! subkey = HChaCha20(key, nonce[0..16])
//! XChaCha20-Poly1305(key, nonce, aad, m) = ChaCha20-Poly1305(subkey, 0x00000000 ‖ nonce[16..24], aad, m)
//! ```
//!
//! which is the construction of draft-irtf-cfrg-xchacha-03 §2.3 and of `chacha20poly1305`'s
//! `XChaCha20Poly1305`: the same bytes, checked against it by the known-answer tests in
//! `aead.rs`. Nothing here computes a cipher round of its own.
//!
//! The subkey lives in a `Zeroizing` array while aws-lc-rs copies it into its context, and the
//! context is cleansed when it is freed (aws-lc's `OPENSSL_free` clears every allocation).

use std::sync::OnceLock;

use aws_lc_rs::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use chacha20::{R20, hchacha};
use zeroize::Zeroizing;

use super::{NONCE_LEN, TAG_LEN};
use crate::crypto::OpenError;
use crate::secret::SecretKey;

/// The nonce bytes HChaCha20 takes.
const HCHACHA_INPUT_LEN: usize = 16;

/// ChaCha20-Poly1305 under the HChaCha20 subkey of one `(key, nonce[0..16])`.
struct SubkeyCipher {
    hchacha_input: [u8; HCHACHA_INPUT_LEN],
    cipher: LessSafeKey,
}

impl SubkeyCipher {
    fn derive(key: &SecretKey, nonce: &[u8; NONCE_LEN]) -> Option<Self> {
        let mut hchacha_input = [0u8; HCHACHA_INPUT_LEN];
        hchacha_input.copy_from_slice(&nonce[..HCHACHA_INPUT_LEN]);
        let subkey =
            Zeroizing::new(<[u8; 32]>::from(hchacha::<R20>(key.expose_secret().into(), (&hchacha_input).into())));
        let cipher = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, subkey.as_slice()).ok()?);
        Some(Self { hchacha_input, cipher })
    }

    /// The RFC 8439 nonce: four zero bytes and the last eight bytes of the extended nonce.
    fn inner_nonce(nonce: &[u8; NONCE_LEN]) -> Nonce {
        let mut inner = [0u8; 12];
        inner[4..].copy_from_slice(&nonce[HCHACHA_INPUT_LEN..]);
        Nonce::assume_unique_for_key(inner)
    }

    fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        seal_under(&self.cipher, Self::inner_nonce(nonce), aad, buf)
    }

    fn open_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
        open_under(&self.cipher, Self::inner_nonce(nonce), aad, buf, tag)
    }
}

/// XChaCha20-Poly1305 under one key. The subkey of the first nonce prefix it sees is kept (a media
/// stream uses one prefix for all its segments, so the subkey is derived once per file); any other
/// prefix gets a subkey of its own for that call.
pub(super) struct XChaCha20Poly1305 {
    key: SecretKey,
    first: OnceLock<Option<SubkeyCipher>>,
}

impl XChaCha20Poly1305 {
    pub(super) fn new(key: &SecretKey) -> Self {
        let mut copy = SecretKey::zeroed();
        copy.expose_secret_mut().copy_from_slice(key.expose_secret());
        Self { key: copy, first: OnceLock::new() }
    }

    fn with_subkey<T>(&self, nonce: &[u8; NONCE_LEN], f: impl FnOnce(&SubkeyCipher) -> Option<T>) -> Option<T> {
        match self.first.get_or_init(|| SubkeyCipher::derive(&self.key, nonce)) {
            Some(cached) if cached.hchacha_input[..] == nonce[..HCHACHA_INPUT_LEN] => f(cached),
            _ => f(&SubkeyCipher::derive(&self.key, nonce)?),
        }
    }

    /// Encrypts `buf` in place; returns the tag, or `None` if the cipher refuses the input (a
    /// buffer longer than ChaCha20's 256 GiB per nonce).
    pub(super) fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
        self.with_subkey(nonce, |c| c.seal_in_place(nonce, aad, buf))
    }

    /// Authenticates and decrypts `buf` in place. On failure the content of `buf` is unspecified:
    /// the caller clears it.
    pub(super) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), OpenError> {
        self.with_subkey(nonce, |c| c.open_in_place(nonce, aad, buf, tag).then_some(())).ok_or(OpenError)
    }
}

/// One seal under a key used once: no copy of the key and no cache.
pub(super) fn seal_once(key: &SecretKey, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
    SubkeyCipher::derive(key, nonce)?.seal_in_place(nonce, aad, buf)
}

/// One open under a key used once: no copy of the key and no cache.
pub(super) fn open_once(
    key: &SecretKey,
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), OpenError> {
    SubkeyCipher::derive(key, nonce).filter(|c| c.open_in_place(nonce, aad, buf, tag)).map(|_| ()).ok_or(OpenError)
}

/// ChaCha20-Poly1305 seal in place under an aws-lc key: the tag, or `None` if aws-lc refuses.
fn seal_under(cipher: &LessSafeKey, nonce: Nonce, aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
    let tag = cipher.seal_in_place_separate_tag(nonce, Aad::from(aad), buf).ok()?;
    <[u8; TAG_LEN]>::try_from(tag.as_ref()).ok()
}

/// ChaCha20-Poly1305 open in place under an aws-lc key: whether it authenticated.
fn open_under(cipher: &LessSafeKey, nonce: Nonce, aad: &[u8], buf: &mut [u8], tag: &[u8; TAG_LEN]) -> bool {
    cipher.open_in_place_separate_tag(nonce, Aad::from(aad), tag, buf).is_ok()
}

/// RFC 8439 ChaCha20-Poly1305 with a caller-built 96-bit nonce, in place: the single-use boxes of
/// `crypto::single_use` (a fresh key per plaintext). Returns the tag, or `None` if aws-lc refuses
/// the input (beyond 256 GiB).
pub(in crate::crypto) fn chacha20_poly1305_seal(
    key: &SecretKey,
    nonce: [u8; 12],
    aad: &[u8],
    buf: &mut [u8],
) -> Option<[u8; TAG_LEN]> {
    let cipher = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key.expose_secret()).ok()?);
    seal_under(&cipher, Nonce::assume_unique_for_key(nonce), aad, buf)
}

/// Authenticates and decrypts `buf` in place under RFC 8439 ChaCha20-Poly1305. On failure the
/// content of `buf` is unspecified: the caller clears it.
pub(in crate::crypto) fn chacha20_poly1305_open(
    key: &SecretKey,
    nonce: [u8; 12],
    aad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), OpenError> {
    let cipher = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key.expose_secret()).map_err(|_| OpenError)?);
    open_under(&cipher, Nonce::assume_unique_for_key(nonce), aad, buf, tag).then_some(()).ok_or(OpenError)
}
