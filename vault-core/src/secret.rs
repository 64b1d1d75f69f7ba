//! Secret newtypes: zeroized on drop, boxed, never `Copy`, `Default`, `PartialEq`, with a redacted
//! `Debug`. Read them through an explicit `expose_secret()`.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length in bytes of every symmetric key in the vault.
pub const KEY_LEN: usize = 32;

/// A 256-bit symmetric key (the vault root key, a subkey, a key-encryption key).
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Box<[u8; KEY_LEN]>);

impl SecretKey {
    /// Wraps key bytes. The caller's copy should be zeroized by the caller.
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        let mut boxed = Box::new([0u8; KEY_LEN]);
        boxed.copy_from_slice(&bytes);
        let mut bytes = bytes;
        bytes.zeroize();
        Self(boxed)
    }

    /// An all-zero key to be filled in place (so no copy of the key is left on the stack).
    pub(crate) fn zeroed() -> Self {
        Self(Box::new([0u8; KEY_LEN]))
    }

    /// The key bytes, for filling a [`SecretKey::zeroed`] key in place.
    pub(crate) fn expose_secret_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }

    /// Takes a key out of a slice of exactly [`KEY_LEN`] bytes.
    pub(crate) fn try_from_slice(bytes: &[u8]) -> Option<Self> {
        let mut boxed = Box::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return None;
        }
        boxed.copy_from_slice(bytes);
        Some(Self(boxed))
    }

    /// Generates a fresh key from the operating system's CSPRNG.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut boxed = Box::new([0u8; KEY_LEN]);
        getrandom::fill(boxed.as_mut_slice())?;
        Ok(Self(boxed))
    }

    /// The key bytes. Every call site is a place a key leaves its box: keep them few.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

/// Secret bytes of any length (a decrypted app secret, an unwrapped key).
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Takes ownership of secret bytes; they are zeroized when this value is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret bytes.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {} bytes])", self.0.len())
    }
}

/// A user passphrase, normalised to Unicode NFC so that the same passphrase typed on different
/// platforms (composed or decomposed accents) derives the same key.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Normalises and takes ownership of a passphrase. The input string is zeroized.
    pub fn new(mut passphrase: String) -> Self {
        let normalised: String = passphrase.nfc().collect();
        passphrase.zeroize();
        Self(Zeroizing::new(normalised))
    }

    /// The normalised passphrase.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether the passphrase is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        let key = SecretKey::from_bytes([0x41; KEY_LEN]);
        let bytes = SecretBytes::new(b"hunter2".to_vec());
        let pass = Passphrase::new("correct horse".to_owned());
        let rendered = format!("{key:?} {bytes:?} {pass:?}");
        assert!(!rendered.contains("AAAA") && !rendered.contains("65, 65"));
        assert!(!rendered.contains("hunter2"));
        assert!(!rendered.contains("correct horse"));
        assert!(rendered.contains("REDACTED"));
    }

    #[test]
    fn passphrase_is_nfc_normalised() {
        let composed = Passphrase::new("caf\u{e9}".to_owned());
        let decomposed = Passphrase::new("cafe\u{301}".to_owned());
        assert_eq!(composed.expose_secret(), decomposed.expose_secret());
    }

    #[test]
    fn key_from_slice_checks_length() {
        assert!(SecretKey::try_from_slice(&[1u8; 31]).is_none());
        assert!(SecretKey::try_from_slice(&[1u8; 33]).is_none());
        assert!(SecretKey::try_from_slice(&[1u8; 32]).is_some());
    }
}
