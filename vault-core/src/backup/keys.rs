//! Keys derived from the Backup Root Key (BRK), one derivation purpose each
//! (`crypto::derive::Purpose`, listed in `docs/key-hierarchy.md`). Only the crate reads them.

use crate::crypto::derive::{Purpose, derive_bytes, derive_subkey, keyed_hash, keyed_output};
use crate::secret::SecretKey;

/// A chunk identifier: the BLAKE3 keyed hash of the chunk's plaintext under the chunk-id key.
/// Equal plaintexts have equal ids (deduplication); without the key nobody can compute or confirm
/// one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId(pub [u8; 32]);

impl std::fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkId({})", hex::encode(&self.0[..8]))
    }
}

/// Every key a backup needs, derived from one BRK.
pub(crate) struct BackupKeys {
    chunk_id: SecretKey,
    chunk_seal: SecretKey,
    index: SecretKey,
    manifest: SecretKey,
    head: SecretKey,
    gear: Box<[u64; 256]>,
    key_check: [u8; 16],
}

impl BackupKeys {
    /// Derives every key from the Backup Root Key.
    pub(crate) fn derive(brk: &SecretKey) -> Self {
        let gear_key = derive_subkey(brk, Purpose::BackupCdcGear);
        let mut gear_bytes = zeroize::Zeroizing::new([0u8; 256 * 8]);
        keyed_output(&gear_key, b"", &mut gear_bytes[..]);
        let mut gear = Box::new([0u64; 256]);
        for (entry, bytes) in gear.iter_mut().zip(gear_bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *entry = u64::from_le_bytes(word);
        }
        Self {
            chunk_id: derive_subkey(brk, Purpose::BackupChunkId),
            chunk_seal: derive_subkey(brk, Purpose::BackupChunkSeal),
            index: derive_subkey(brk, Purpose::BackupIndexSeal),
            manifest: derive_subkey(brk, Purpose::BackupManifestSeal),
            head: derive_subkey(brk, Purpose::BackupHeadSeal),
            gear,
            key_check: derive_bytes(Purpose::BackupKeyCheck, brk.expose_secret()),
        }
    }

    /// The id of a chunk with this plaintext.
    pub(crate) fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(keyed_hash(&self.chunk_id, plaintext))
    }

    /// The key chunks are sealed under.
    pub(crate) fn chunk_seal_key(&self) -> &SecretKey {
        &self.chunk_seal
    }

    /// The key index objects are sealed under.
    pub(crate) fn index_key(&self) -> &SecretKey {
        &self.index
    }

    /// The key manifests are sealed under.
    pub(crate) fn manifest_key(&self) -> &SecretKey {
        &self.manifest
    }

    /// The key the head record is sealed under.
    pub(crate) fn head_key(&self) -> &SecretKey {
        &self.head
    }

    /// The keyed gear table of the content-defined chunker.
    pub(crate) fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    /// A 16-byte value that confirms a BRK without revealing it (recovery checks a recombined key
    /// against it before use).
    pub(crate) fn key_check(&self) -> [u8; 16] {
        self.key_check
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_deterministic_and_brk_dependent() {
        let a = BackupKeys::derive(&SecretKey::from_bytes([1; 32]));
        let b = BackupKeys::derive(&SecretKey::from_bytes([1; 32]));
        let c = BackupKeys::derive(&SecretKey::from_bytes([2; 32]));
        assert_eq!(a.chunk_id(b"x"), b.chunk_id(b"x"));
        assert_ne!(a.chunk_id(b"x"), c.chunk_id(b"x"));
        assert_ne!(a.chunk_id(b"x"), a.chunk_id(b"y"));
        assert_eq!(a.gear()[..], b.gear()[..]);
        assert_ne!(a.gear()[..], c.gear()[..]);
        let keys = [a.chunk_seal_key(), a.index_key(), a.manifest_key(), a.head_key()];
        for (i, x) in keys.iter().enumerate() {
            for y in &keys[i + 1..] {
                assert_ne!(x.expose_secret(), y.expose_secret());
            }
        }
        assert_ne!(a.key_check(), c.key_check());
    }

    /// Pins the derivations: a change would make every existing backup unreadable.
    #[test]
    fn derivations_are_pinned() {
        let keys = BackupKeys::derive(&SecretKey::from_bytes([0; 32]));
        assert_eq!(hex::encode(keys.chunk_id(b"").0), PINNED_EMPTY_CHUNK_ID);
        assert_eq!(format!("{:016x}", keys.gear()[0]), PINNED_GEAR_0);
        assert_eq!(hex::encode(keys.key_check()), PINNED_KEY_CHECK);
    }

    // Computed independently with the Python `blake3` package (BRK = 32 zero bytes):
    // keyed_hash(derive_key(backup chunk id label, brk), b""), the first little-endian u64 of the
    // keyed XOF under derive_key(backup cdc gear table label, brk), and
    // derive_key(backup key check label, brk)[..16].
    const PINNED_EMPTY_CHUNK_ID: &str = "9fd167ac76939fbb06c8a242e6885867f9681351ebf406b4944dfd16e9381dd7";
    const PINNED_GEAR_0: &str = "4da85be6805957eb";
    const PINNED_KEY_CHECK: &str = "08380b27ecc2d4859735eb4442585df5";
}
