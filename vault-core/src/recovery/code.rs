//! The recovery code: one share of the Backup Root Key, printed once for the user to keep.
//!
//! Format v1 (`docs/formats.md`): 37 bytes `version (1) ‖ share index (1) ‖ share (32) ‖
//! checksum (3)`, the checksum being the first 3 bytes derived for `Purpose::RecoveryCodeChecksum`
//! (BLAKE3 `derive_key`, `docs/key-hierarchy.md`) from the first 34 bytes. Written in Crockford base32 (60 characters, the last
//! 4 bits zero) in 12 groups of 5 joined by `-`. Reading ignores case, spaces and hyphens and
//! maps `O` to `0` and `I`, `L` to `1`; a typo fails the checksum (1 in 16.7 million passes).

use zeroize::{Zeroize, Zeroizing};

use super::shares::Share;
use crate::crypto::derive::{Purpose, derive_bytes};
use crate::error::{Error, Result};
use crate::secret::SecretKey;

const VERSION: u8 = 1;
const PAYLOAD: usize = 34;
const LEN: usize = PAYLOAD + 3;
const CHARS: usize = 60;
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A recovery code as text (secret: zeroized on drop, redacted in `Debug`).
#[derive(Clone)]
pub struct RecoveryCode(Zeroizing<String>);

impl RecoveryCode {
    /// Wraps text typed by the user (checked when used).
    pub fn new(text: String) -> Self {
        Self(Zeroizing::new(text))
    }

    /// The code's text, to show the user once.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    pub(crate) fn encode(share: &Share) -> Self {
        let mut bytes = Zeroizing::new([0u8; LEN]);
        bytes[0] = VERSION;
        bytes[1] = share.index;
        bytes[2..PAYLOAD].copy_from_slice(share.value.expose_secret());
        let checksum = checksum(&bytes[..PAYLOAD]);
        bytes[PAYLOAD..].copy_from_slice(&checksum);
        let mut text = String::with_capacity(CHARS + CHARS / 5);
        let (mut acc, mut bits) = (0u32, 0u32);
        let mut written = 0;
        let mut push = |value: u32, text: &mut String| {
            if written > 0 && written % 5 == 0 {
                text.push('-');
            }
            text.push(char::from(ALPHABET[value as usize]));
            written += 1;
        };
        for &byte in bytes.iter() {
            acc = ((acc << 8) | u32::from(byte)) & 0xFFFF;
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                push((acc >> bits) & 31, &mut text);
            }
        }
        if bits > 0 {
            push((acc << (5 - bits)) & 31, &mut text);
        }
        acc.zeroize();
        Self(Zeroizing::new(text))
    }

    /// The share this code holds, refusing a malformed code or one that fails its checksum.
    pub(crate) fn decode(&self) -> Result<Share> {
        let mut values = Zeroizing::new(Vec::with_capacity(CHARS));
        for c in self.0.chars() {
            if c == '-' || c.is_whitespace() {
                continue;
            }
            let c = match c.to_ascii_uppercase() {
                'O' => '0',
                'I' | 'L' => '1',
                c => c,
            };
            let value = ALPHABET.iter().position(|&a| char::from(a) == c).ok_or_else(|| {
                Error::InvalidInput("the recovery code has a character that is not in its alphabet".into())
            })?;
            values.push(value as u32);
        }
        if values.len() != CHARS {
            return Err(Error::InvalidInput(format!(
                "a recovery code has {CHARS} characters, this one {}",
                values.len()
            )));
        }
        let mut bytes = Zeroizing::new([0u8; LEN]);
        let (mut acc, mut bits, mut at) = (0u32, 0u32, 0usize);
        for &value in values.iter() {
            acc = ((acc << 5) | value) & 0xFFFF;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                if at < LEN {
                    bytes[at] = (acc >> bits) as u8;
                }
                at += 1;
            }
        }
        let padding_is_zero = acc & ((1 << bits) - 1) == 0;
        acc.zeroize();
        if checksum(&bytes[..PAYLOAD]) != bytes[PAYLOAD..] || !padding_is_zero {
            return Err(Error::InvalidInput("the recovery code has a typo (its checksum does not match)".into()));
        }
        if bytes[0] != VERSION {
            return Err(Error::UnsupportedVersion { what: "recovery code", found: bytes[0].into() });
        }
        if bytes[1] == 0 {
            return Err(Error::InvalidInput("the recovery code is malformed".into()));
        }
        let value = SecretKey::try_from_slice(&bytes[2..PAYLOAD]).ok_or(Error::Internal("share length"))?;
        Ok(Share { index: bytes[1], value })
    }
}

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([REDACTED])")
    }
}

fn checksum(payload: &[u8]) -> [u8; 3] {
    derive_bytes(Purpose::RecoveryCodeChecksum, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share() -> Share {
        Share { index: 3, value: SecretKey::from_bytes(std::array::from_fn(|i| (i * 37 + 5) as u8)) }
    }

    /// Pinned (cross-checked with an independent Python encoder using the `blake3` package): the
    /// code format is what users write down.
    const PINNED: &str = "041GA-AJFEJ-CVXRR-85N97-F761W-R5K0N-BTKZ2-EJ3HK-B1YT5-HZC24-V5Q03-2VG90";

    #[test]
    fn round_trip_and_pinned_encoding() {
        let code = RecoveryCode::encode(&share());
        assert_eq!(code.expose_secret().len(), 60 + 11);
        assert_eq!(code.expose_secret(), PINNED);
        // The specification shows the same vector.
        assert!(include_str!("../../../docs/formats.md").contains(&format!("code   {PINNED}")));
        let back = code.decode().unwrap();
        assert_eq!(back.index, 3);
        assert_eq!(back.value.expose_secret(), share().value.expose_secret());
        // Lower case, spaces instead of hyphens, O for 0 and L for 1 are all read.
        let sloppy = PINNED.to_lowercase().replace('-', " ").replace('0', "o").replace('1', "l");
        assert_eq!(RecoveryCode::new(sloppy).decode().unwrap().value.expose_secret(), share().value.expose_secret());
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let text: Vec<char> = PINNED.chars().collect();
        for at in (0..text.len()).filter(|&i| text[i] != '-') {
            for replacement in ALPHABET.iter().map(|&b| char::from(b)).filter(|&c| c != text[at]) {
                let mut typo = text.clone();
                typo[at] = replacement;
                let typo: String = typo.into_iter().collect();
                assert!(RecoveryCode::new(typo.clone()).decode().is_err(), "{typo}");
            }
        }
        // Swapped neighbours, a dropped and an extra character.
        let plain: String = text.iter().filter(|&&c| c != '-').collect();
        let mut swapped: Vec<char> = plain.chars().collect();
        swapped.swap(10, 11);
        assert!(RecoveryCode::new(swapped.into_iter().collect()).decode().is_err());
        assert!(RecoveryCode::new(plain[1..].to_owned()).decode().is_err());
        assert!(RecoveryCode::new(format!("{plain}0")).decode().is_err());
        assert!(RecoveryCode::new("U".repeat(60)).decode().is_err());
        assert!(RecoveryCode::new(String::new()).decode().is_err());
    }
}
