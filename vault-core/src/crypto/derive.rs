//! Every key and value the crate derives with BLAKE3, one [`Purpose`] each.
//!
//! A derivation is BLAKE3 in key-derivation mode, `derive_key(label, input)`, read as an extendable
//! output when more or fewer than 32 bytes are needed (the first 32 bytes of that output are the
//! `derive_key` result). The labels are part of the on-disk, backup and recovery formats and are
//! listed, with a known answer for each, in `docs/key-hierarchy.md`; never change one. A new
//! purpose gets a new label of the same shape (`vault-core <date> <purpose> v<n>`).
//!
//! Keyed BLAKE3 under a derived key (chunk ids, the chunker's gear table) is here too, so no other
//! module calls BLAKE3 with key material.

use crate::secret::SecretKey;

/// What a derivation is for; each purpose has its own label (the BLAKE3 context string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The SQLCipher raw database key, from the vault root key.
    Database,
    /// The key of the keyed hash that names a backup chunk, from the Backup Root Key.
    BackupChunkId,
    /// The key backup chunks are sealed under, from the Backup Root Key.
    BackupChunkSeal,
    /// The key backup index objects are sealed under, from the Backup Root Key.
    BackupIndexSeal,
    /// The key backup manifests are sealed under, from the Backup Root Key.
    BackupManifestSeal,
    /// The key the backup head record is sealed under, from the Backup Root Key.
    BackupHeadSeal,
    /// The key of the keyed output that fills the chunker's gear table, from the Backup Root Key.
    BackupCdcGear,
    /// The key-check value that confirms a Backup Root Key (first 16 bytes), from that key.
    BackupKeyCheck,
    /// The key a backup keyring (the keys of the earlier key epochs) is sealed under, from the
    /// current epoch's key.
    BackupKeyringSeal,
    /// The key an escrowed share is sealed under, from an OPAQUE `export_key`.
    EscrowShareSeal,
    /// The checksum of a recovery code (first 3 bytes), from the code's payload.
    RecoveryCodeChecksum,
    /// The safety number (60 bytes of output), from the account and its guardians' keys.
    SafetyNumber,
    /// The key one generation's manifest (version 3) is sealed under, from the key epoch's
    /// manifest key, the generation's token and the generation number.
    BackupGenerationSeal,
    /// The random stream that draws the polynomial of a generation token's split across the
    /// guardians (so any device holding the token makes the same shares), from the token and the
    /// generation number.
    BackupTokenShares,
}

impl Purpose {
    /// Every purpose, in declaration order (for the tests that pin them).
    #[cfg(test)]
    pub(crate) const ALL: [Purpose; 14] = [
        Purpose::Database,
        Purpose::BackupChunkId,
        Purpose::BackupChunkSeal,
        Purpose::BackupIndexSeal,
        Purpose::BackupManifestSeal,
        Purpose::BackupHeadSeal,
        Purpose::BackupCdcGear,
        Purpose::BackupKeyCheck,
        Purpose::BackupKeyringSeal,
        Purpose::EscrowShareSeal,
        Purpose::RecoveryCodeChecksum,
        Purpose::SafetyNumber,
        Purpose::BackupGenerationSeal,
        Purpose::BackupTokenShares,
    ];

    /// The BLAKE3 context string of this purpose (part of the formats; never change one).
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Purpose::Database => "vault-core 2026-11-27 sqlcipher database key v1",
            Purpose::BackupChunkId => "vault-core 2026-11-27 backup chunk id v1",
            Purpose::BackupChunkSeal => "vault-core 2026-11-27 backup chunk seal v1",
            Purpose::BackupIndexSeal => "vault-core 2026-11-27 backup index seal v1",
            Purpose::BackupManifestSeal => "vault-core 2026-11-27 backup manifest seal v1",
            Purpose::BackupHeadSeal => "vault-core 2026-11-27 backup head record seal v1",
            Purpose::BackupCdcGear => "vault-core 2026-11-27 backup cdc gear table v1",
            Purpose::BackupKeyCheck => "vault-core 2026-11-27 backup key check v1",
            Purpose::BackupKeyringSeal => "vault-core 2026-11-27 backup keyring seal v1",
            Purpose::EscrowShareSeal => "vault-core 2026-11-27 escrow share seal v1",
            Purpose::RecoveryCodeChecksum => "vault-core 2026-11-27 recovery code checksum v1",
            Purpose::SafetyNumber => "vault-core 2026-11-27 recovery safety number v1",
            Purpose::BackupGenerationSeal => "vault-core 2026-12-06 backup generation manifest seal v1",
            Purpose::BackupTokenShares => "vault-core 2026-12-06 backup token shares v1",
        }
    }
}

/// Derives the 32-byte key for `purpose` from `input`.
pub(crate) fn derive_key(purpose: Purpose, input: &[u8]) -> SecretKey {
    SecretKey::from_bytes(blake3::derive_key(purpose.label(), input))
}

/// Derives the subkey for `purpose` from the root key `root`.
pub(crate) fn derive_subkey(root: &SecretKey, purpose: Purpose) -> SecretKey {
    derive_key(purpose, root.expose_secret())
}

/// Derives `N` bytes for `purpose` from `input` (for values that are not keys, such as a
/// checksum or a key-check value).
pub(crate) fn derive_bytes<const N: usize>(purpose: Purpose, input: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    Derivation::new(purpose).update(input).fill(&mut out);
    out
}

/// A derivation over input given in parts, read as an extendable output.
pub(crate) struct Derivation(blake3::Hasher);

impl Derivation {
    /// Starts a derivation for `purpose`.
    pub(crate) fn new(purpose: Purpose) -> Self {
        Self(blake3::Hasher::new_derive_key(purpose.label()))
    }

    /// Appends `input`.
    pub(crate) fn update(&mut self, input: &[u8]) -> &mut Self {
        self.0.update(input);
        self
    }

    /// Fills `out` with the output.
    pub(crate) fn fill(&self, out: &mut [u8]) {
        self.0.finalize_xof().fill(out);
    }

    /// The output as a stream read in turn: a deterministic random generator seeded by the
    /// derivation's secret input.
    pub(crate) fn stream(&self) -> DerivedStream {
        DerivedStream(self.0.finalize_xof())
    }
}

/// The output of a [`Derivation`], read in turn.
pub(crate) struct DerivedStream(blake3::OutputReader);

impl DerivedStream {
    /// Fills `out` with the next bytes.
    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        self.0.fill(out);
    }
}

/// BLAKE3 keyed hash of `data` under `key`.
pub(crate) fn keyed_hash(key: &SecretKey, data: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key.expose_secret(), data).as_bytes()
}

/// Fills `out` with the BLAKE3 keyed extendable output of `data` under `key`.
pub(crate) fn keyed_output(key: &SecretKey, data: &[u8], out: &mut [u8]) {
    blake3::Hasher::new_keyed(key.expose_secret()).update(data).finalize_xof().fill(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The known answer of each purpose: its 32-byte derivation from the input bytes 0, 1, …, 31.
    /// Computed from the code before the derivations moved here, and independently with the Python
    /// `blake3` package. A new variant needs a vector here; a changed one breaks existing data.
    fn vector(purpose: Purpose) -> &'static str {
        match purpose {
            Purpose::Database => "84277b970a863c2d26812d5d4e6d4bb682134391f2bc46bceec424da2c7e4984",
            Purpose::BackupChunkId => "7c633413078f1ba5badab6ec348f9e8f9ed8dd0539a95b8ec0770c7da7c813f6",
            Purpose::BackupChunkSeal => "d8b3b5a04d1b76e009ec82803114425e620e7b71b842b7f1fb95d2fedd85e2bb",
            Purpose::BackupIndexSeal => "063f2ef2794e41b3662cca5b7a0b79f60e2e86d33528500a1dac294952785ac4",
            Purpose::BackupManifestSeal => "210efc05ca21cd40bec4806eff39e6616aaad0c3c28b0d159b7df0fd0b251f80",
            Purpose::BackupHeadSeal => "bd264a74d03497bc06385f76ea8c370b8ee49140784806f2002fd84119c40352",
            Purpose::BackupCdcGear => "445f27d50d86c685155dc045b7c224994aed6fad8fba39c0031adeb33eaf51fc",
            Purpose::BackupKeyCheck => "9597f56924d0da89dbad2fa60f97c6dea49dc55a3b4f862efd9970503d6eccdd",
            Purpose::BackupKeyringSeal => "da99258b2470201775051d811bd081dda05dd08cc7baaa66e48643a81f4c652a",
            Purpose::EscrowShareSeal => "1a71fe7e1442b33d51d5674f6e75649eecc8dd70cc2741ea069e416d29b4c8d9",
            Purpose::RecoveryCodeChecksum => "f8f331061a3ad7fb180290380ae22fbac7d1b39e484c7ecc399a080f88e8d01e",
            Purpose::SafetyNumber => "e7fa7b9338ea72d1ae3150b9eac2e52d28890318401abf86a23c8f09cfd06a3b",
            Purpose::BackupGenerationSeal => "f7a7b0929b05eb9b50743c444482c4d482206c5480a2372c6b1ce39e3a77c9d2",
            Purpose::BackupTokenShares => "f62fb87aafd40f993a1b318b61dbb5c1a22234f8684630d75765fcaf1fb41738",
        }
    }

    fn vector_input() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    /// Pins every derivation: a changed label or algorithm would make existing vaults, backups,
    /// escrow records or recovery codes unreadable, or safety numbers differ between builds.
    #[test]
    fn every_purpose_matches_its_known_answer() {
        for purpose in Purpose::ALL {
            let key = derive_key(purpose, &vector_input());
            assert_eq!(hex::encode(key.expose_secret()), vector(purpose), "{purpose:?}");
            let bytes: [u8; 32] = derive_bytes(purpose, &vector_input());
            assert_eq!(hex::encode(bytes), vector(purpose), "{purpose:?} as output");
        }
    }

    /// The key hierarchy document lists every label with its known answer.
    #[test]
    fn the_key_hierarchy_lists_every_purpose_and_vector() {
        let doc = include_str!("../../../docs/key-hierarchy.md");
        for purpose in Purpose::ALL {
            assert!(doc.contains(&format!("`{}`", purpose.label())), "{purpose:?} label");
            assert!(doc.contains(vector(purpose)), "{purpose:?} vector");
        }
    }

    #[test]
    fn labels_are_distinct_and_of_one_shape() {
        for (i, a) in Purpose::ALL.iter().enumerate() {
            let date = a.label().strip_prefix("vault-core ").and_then(|rest| rest.get(..10)).unwrap_or("");
            let shaped = date.len() == 10
                && date.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
            assert!(shaped && a.label()[21..].starts_with(' ') && a.label().ends_with(" v1"), "{a:?}");
            for b in &Purpose::ALL[i + 1..] {
                assert_ne!(a.label(), b.label());
            }
        }
    }

    #[test]
    fn output_is_a_prefix_of_longer_output_and_parts_concatenate() {
        let short: [u8; 3] = derive_bytes(Purpose::RecoveryCodeChecksum, b"payload");
        let long: [u8; 64] = derive_bytes(Purpose::RecoveryCodeChecksum, b"payload");
        assert_eq!(short, long[..3]);
        let mut parts = [0u8; 64];
        Derivation::new(Purpose::RecoveryCodeChecksum).update(b"pay").update(b"load").fill(&mut parts);
        assert_eq!(parts, long);
    }

    #[test]
    fn derivation_is_deterministic_and_root_dependent() {
        let a = derive_subkey(&SecretKey::from_bytes([7; 32]), Purpose::Database);
        let b = derive_subkey(&SecretKey::from_bytes([7; 32]), Purpose::Database);
        let c = derive_subkey(&SecretKey::from_bytes([8; 32]), Purpose::Database);
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.expose_secret(), c.expose_secret());
        assert_ne!(a.expose_secret(), &[7; 32]);
    }

    /// Pins the derivation so an accidental change of context string or algorithm is caught: it
    /// would make every existing vault database unreadable.
    #[test]
    fn database_key_derivation_is_pinned() {
        let key = derive_subkey(&SecretKey::from_bytes([0; 32]), Purpose::Database);
        let expected = "5e9a675c7a1a517e1e0e74661813afa89dd8e972f355de414f2f4b29aa0e0937";
        assert_eq!(hex::encode(key.expose_secret()), expected);
    }

    #[test]
    fn keyed_output_extends_the_keyed_hash() {
        let key = SecretKey::from_bytes([3; 32]);
        let mut out = [0u8; 40];
        keyed_output(&key, b"data", &mut out);
        assert_eq!(out[..32], keyed_hash(&key, b"data"));
    }
}
