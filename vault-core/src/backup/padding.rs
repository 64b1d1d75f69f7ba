//! Padmé padding (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and
//! Communication with PURBs", PETS 2019): rounds a length up so that only O(log log L) bits of it
//! remain, with at most about 12 % overhead. Packs and media objects are padded to these lengths
//! before upload, so the server learns only a coarse size class.

/// The Padmé length for a payload of `len` bytes (`len` itself for `len < 2`).
pub fn padme_len(len: u64) -> u64 {
    if len < 2 {
        return len;
    }
    // e = floor(log2 L), s = floor(log2 e) + 1, low e - s bits of the result are zero.
    let e = 63 - u64::from(len.leading_zeros());
    let s = 64 - u64::from(e.leading_zeros());
    let last_bits = e - s;
    let mask = (1u64 << last_bits) - 1;
    len.saturating_add(mask) & !mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // From the paper's definition: 9 → 10 (e = 3, s = 2, one zero bit), 1000 → 1024.
        assert_eq!(padme_len(0), 0);
        assert_eq!(padme_len(1), 1);
        assert_eq!(padme_len(9), 10);
        assert_eq!(padme_len(1000), 1024);
        assert_eq!(padme_len(4 << 20), 4 << 20);
        assert_eq!(padme_len((4 << 20) + 1), (4 << 20) + (1 << 17));
    }

    proptest! {
        #[test]
        fn never_shorter_and_overhead_bounded(len in 2u64..(1u64 << 40)) {
            let padded = padme_len(len);
            prop_assert!(padded >= len);
            prop_assert!((padded - len) as f64 <= len as f64 * 0.12 + 1.0, "{len} -> {padded}");
            prop_assert_eq!(padme_len(padded), padded, "padding is idempotent");
        }
    }
}
