//! Protocol state handed to the client between two messages and returned with the second, so that
//! any replica can finish what another started. Sealed with XChaCha20-Poly1305 under the
//! setup-derived state key; the associated data names the purpose, so a login state can never be
//! used as a registration state.
//!
//! Format (version 1): `nonce (24) ‖ ciphertext ‖ tag (16)`, where the plaintext is
//! `account hash (32) ‖ expiry (u64, big-endian Unix seconds) ‖ payload`.

use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::secrets::AccountHash;

const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 32 + 8;
/// Longest sealed state accepted from a client.
pub const MAX_SEALED_LEN: usize = 4096;

/// What a sealed state is for; bound into the associated data.
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// Between `register/start` and `register/finish`; the payload is the credential nonce and the
    /// key-stretching parameters.
    Registration,
    /// Between `login/start` and `login/finish`; the payload is opaque-ke's `ServerLogin` state.
    Login,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Self::Registration => b"vault-backup-server registration state v1",
            Self::Login => b"vault-backup-server login state v1",
        }
    }
}

/// A state that opened: whose it is and what it carries.
pub struct Opened {
    /// The account the state was issued for.
    pub account: AccountHash,
    /// The sealed payload (zeroized on drop).
    pub payload: Zeroizing<Vec<u8>>,
}

/// Seals `payload` for `account`, valid until `expires_at` (Unix seconds).
pub fn seal(key: &[u8; 32], purpose: Purpose, account: &AccountHash, expires_at: u64, payload: &[u8]) -> Vec<u8> {
    let mut plaintext = Zeroizing::new(Vec::with_capacity(HEADER_LEN + payload.len()));
    plaintext.extend_from_slice(account.as_bytes());
    plaintext.extend_from_slice(&expires_at.to_be_bytes());
    plaintext.extend_from_slice(payload);
    let nonce = XNonce::generate();
    let cipher = XChaCha20Poly1305::new(key.into());
    // Encrypting an in-memory buffer of bounded size cannot fail; an empty result would only
    // fail to open later.
    let ciphertext = cipher.encrypt(&nonce, Payload { msg: &plaintext, aad: purpose.aad() }).unwrap_or_default();
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(&ciphertext);
    out
}

/// Opens a state sealed by [`seal`] for `purpose`, refusing it after its expiry. `None` for
/// anything forged, tampered with, expired or too long.
pub fn open(key: &[u8; 32], purpose: Purpose, sealed: &[u8], now: u64) -> Option<Opened> {
    if sealed.len() > MAX_SEALED_LEN || sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = XNonce::try_from(nonce).ok()?;
    let cipher = XChaCha20Poly1305::new(key.into());
    let plaintext = Zeroizing::new(cipher.decrypt(&nonce, Payload { msg: ciphertext, aad: purpose.aad() }).ok()?);
    if plaintext.len() < HEADER_LEN {
        return None;
    }
    let account: [u8; 32] = plaintext[..32].try_into().ok()?;
    let expires_at = u64::from_be_bytes(plaintext[32..40].try_into().ok()?);
    if now > expires_at {
        return None;
    }
    Some(Opened {
        account: AccountHash::from_bytes(account),
        payload: Zeroizing::new(plaintext[HEADER_LEN..].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn round_trip_and_every_refusal() {
        let account = AccountHash::from_bytes([1; 32]);
        let sealed = seal(&KEY, Purpose::Login, &account, 100, b"state");
        let opened = open(&KEY, Purpose::Login, &sealed, 100).unwrap();
        assert_eq!(opened.account, account);
        assert_eq!(&opened.payload[..], b"state");

        assert!(open(&KEY, Purpose::Login, &sealed, 101).is_none(), "expired");
        assert!(open(&KEY, Purpose::Registration, &sealed, 0).is_none(), "other purpose");
        assert!(open(&[8; 32], Purpose::Login, &sealed, 0).is_none(), "other key");
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 1;
            assert!(open(&KEY, Purpose::Login, &tampered, 0).is_none(), "bit flip at {i}");
        }
        assert!(open(&KEY, Purpose::Login, &sealed[..sealed.len() - 1], 0).is_none(), "truncated");
        assert!(open(&KEY, Purpose::Login, &[], 0).is_none(), "empty");
    }
}
