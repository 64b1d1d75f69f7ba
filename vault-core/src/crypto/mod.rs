//! The hazmat layer: raw AEAD, password KDF, subkey derivation and randomness.
//!
//! Everything here is `pub(crate)`. Features use envelopes built on it (a key slot, a sealed
//! value) and never call the primitives with ad-hoc parameters. This module does no I/O.

pub(crate) mod aead;
pub(crate) mod derive;
pub(crate) mod kdf;
pub(crate) mod single_use;

/// The one failure of an AEAD open: wrong key or tampered data, deliberately not told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub(crate) struct OpenError;

/// Fills a fixed-size array from the operating system's CSPRNG.
pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)?;
    Ok(out)
}
