//! Shamir secret sharing of the Backup Root Key over GF(256), through `vsss-rs` (ADR 0001).
//! Share `i` (1-based) is the polynomial evaluated at `i`; a threshold of 1 degenerates to every
//! share being the key itself (only in the explicitly accepted single-provider mode).

use std::convert::Infallible;

use vsss_rs::{Gf256, IdentifierGf256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// One share: its index (1..=255) and 32 bytes.
pub(crate) struct Share {
    pub(crate) index: u8,
    pub(crate) value: SecretKey,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Share({}, [REDACTED])", self.index)
    }
}

/// The operating system's random generator behind `rand_core`'s infallible interface: a failure
/// is remembered (and zeros handed out) so the caller can refuse the result instead of panicking.
struct OsRandom {
    failed: bool,
}

impl rand_core_010::TryRng for OsRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        if getrandom::fill(dst).is_err() {
            self.failed = true;
            dst.fill(0);
        }
        Ok(())
    }
}

impl rand_core_010::TryCryptoRng for OsRandom {}

/// A derivation's output stream behind `rand_core`'s interface: the coefficients of a split that
/// every holder of the secret must reproduce (a generation token's, `docs/key-hierarchy.md`).
struct StreamRandom(crate::crypto::derive::DerivedStream);

impl rand_core_010::TryRng for StreamRandom {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0u8; 4];
        self.0.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl rand_core_010::TryCryptoRng for StreamRandom {}

/// Splits `secret` into `count` shares (indexes 1..=count), any `threshold` of which recover it.
pub(crate) fn split(secret: &SecretKey, threshold: u8, count: u8) -> Result<Vec<Share>> {
    let mut rng = OsRandom { failed: false };
    let shares = split_with(secret, threshold, count, &mut rng)?;
    if rng.failed {
        return Err(Error::Internal("the operating system's random number generator failed"));
    }
    Ok(shares)
}

/// [`split`] with the polynomial drawn from `stream`: the same stream gives the same shares.
pub(crate) fn split_derived(
    secret: &SecretKey,
    threshold: u8,
    count: u8,
    stream: crate::crypto::derive::DerivedStream,
) -> Result<Vec<Share>> {
    split_with(secret, threshold, count, &mut StreamRandom(stream))
}

fn split_with<R: rand_core_010::TryCryptoRng<Error = Infallible>>(
    secret: &SecretKey,
    threshold: u8,
    count: u8,
    rng: &mut R,
) -> Result<Vec<Share>> {
    if threshold == 0 || threshold > count {
        return Err(Error::InvalidInput("the share threshold must be between 1 and the number of shares".into()));
    }
    if threshold == 1 {
        return Ok((1..=count)
            .map(|index| Share { index, value: SecretKey::from_bytes(*secret.expose_secret()) })
            .collect());
    }
    let ids = (1..=count).map(|i| IdentifierGf256::from(Gf256(i)));
    let raw = Gf256::split_bytes_with_participant_ids_iter(
        usize::from(threshold),
        usize::from(count),
        secret.expose_secret(),
        rng,
        ids,
    )
    .map_err(|_| Error::Internal("secret sharing refused its parameters"))?;
    let raw: Vec<Zeroizing<Vec<u8>>> = raw.into_iter().map(Zeroizing::new).collect();
    raw.iter()
        .map(|bytes| {
            let value = SecretKey::try_from_slice(&bytes[1..]).ok_or(Error::Internal("share length"))?;
            Ok(Share { index: bytes[0], value })
        })
        .collect()
}

/// Combines at least `threshold` shares. Refuses too few, a zero or repeated index; the result
/// is only *a* key: the caller must check it against the key-check value.
pub(crate) fn combine(shares: &[&Share], threshold: u8) -> Result<SecretKey> {
    if shares.len() < usize::from(threshold.max(1)) {
        return Err(Error::InvalidInput(format!("{threshold} shares are needed, {} given", shares.len())));
    }
    let mut seen = [false; 256];
    for share in shares {
        if share.index == 0 || std::mem::replace(&mut seen[usize::from(share.index)], true) {
            return Err(Error::InvalidInput("a share index is zero or repeated".into()));
        }
    }
    if threshold == 1 {
        return Ok(SecretKey::from_bytes(*shares[0].value.expose_secret()));
    }
    let raw: Vec<Vec<u8>> = shares
        .iter()
        .take(usize::from(threshold))
        .map(|s| {
            let mut bytes = Vec::with_capacity(33);
            bytes.push(s.index);
            bytes.extend_from_slice(s.value.expose_secret());
            bytes
        })
        .collect();
    let raw = Zeroizing::new(raw);
    let combined = Zeroizing::new(
        Gf256::combine_bytes(&raw[..]).map_err(|_| Error::InvalidInput("the shares do not combine".into()))?,
    );
    SecretKey::try_from_slice(&combined).ok_or(Error::Internal("combined key length"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(seed: u8) -> SecretKey {
        SecretKey::from_bytes(std::array::from_fn(|i| seed.wrapping_mul(7).wrapping_add(i as u8)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any `t` of `n` shares recover the key; `t - 1` shares (padded with a share of another
        /// key) do not.
        #[test]
        fn any_threshold_subset_recovers_and_fewer_do_not(seed: u8, n in 2u8..=6, t_offset in 0u8..5, pick in any::<u64>()) {
            let t = 2 + t_offset % (n - 1);
            let secret = key(seed);
            let shares = split(&secret, t, n).unwrap();
            prop_assert_eq!(shares.iter().map(|s| s.index).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
            // A pseudo-random subset of size t.
            let mut order: Vec<usize> = (0..usize::from(n)).collect();
            let mut state = pick;
            for i in (1..order.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (state >> 33) as usize % (i + 1));
            }
            let subset: Vec<&Share> = order[..usize::from(t)].iter().map(|&i| &shares[i]).collect();
            let combined = combine(&subset, t).unwrap();
            prop_assert_eq!(combined.expose_secret(), secret.expose_secret());
            // Too few is refused outright.
            prop_assert!(combine(&subset[..usize::from(t) - 1], t).is_err());
            // t - 1 right shares and one from another split interpolate to some other key.
            let other = split(&key(seed.wrapping_add(1)), t, n).unwrap();
            let stranger = other.iter().find(|s| !subset[..usize::from(t) - 1].iter().any(|x| x.index == s.index)).unwrap();
            let mut mixed: Vec<&Share> = subset[..usize::from(t) - 1].to_vec();
            mixed.push(stranger);
            let wrong = combine(&mixed, t).unwrap();
            prop_assert_ne!(wrong.expose_secret(), secret.expose_secret());
        }
    }

    #[test]
    fn repeated_and_zero_indexes_are_refused() {
        let shares = split(&key(1), 2, 3).unwrap();
        assert!(combine(&[&shares[0], &shares[0]], 2).is_err());
        let zero = Share { index: 0, value: key(9) };
        assert!(combine(&[&zero, &shares[1]], 2).is_err());
        let fresh = split(&key(1), 2, 3).unwrap();
        assert_ne!(fresh[0].value.expose_secret(), shares[0].value.expose_secret(), "a new polynomial each time");
    }

    #[test]
    fn threshold_one_gives_the_key_itself() {
        let shares = split(&key(3), 1, 2).unwrap();
        assert!(shares.iter().all(|s| s.value.expose_secret() == key(3).expose_secret()));
        assert_eq!(combine(&[&shares[1]], 1).unwrap().expose_secret(), key(3).expose_secret());
        assert!(split(&key(3), 3, 2).is_err());
    }
}
