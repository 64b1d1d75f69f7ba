//! Keys derived from the Backup Root Key (BRK), one BLAKE3 `derive_key` context per purpose. The
//! contexts are part of the backup format (listed in `docs/key-hierarchy.md`); never change one.

use crate::secret::SecretKey;

/// Derivation contexts.
mod context {
    pub const CHUNK_ID: &str = "vault-core 2026-11-27 backup chunk id v1";
    pub const CHUNK_SEAL: &str = "vault-core 2026-11-27 backup chunk seal v1";
    pub const INDEX: &str = "vault-core 2026-11-27 backup index seal v1";
    pub const MANIFEST: &str = "vault-core 2026-11-27 backup manifest seal v1";
    pub const HEAD: &str = "vault-core 2026-11-27 backup head record seal v1";
    pub const CDC_GEAR: &str = "vault-core 2026-11-27 backup cdc gear table v1";
    pub const KEY_CHECK: &str = "vault-core 2026-11-27 backup key check v1";
}

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
pub struct BackupKeys {
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
        let derive = |ctx: &str| SecretKey::from_bytes(blake3::derive_key(ctx, brk.expose_secret()));
        let gear_key = derive(context::CDC_GEAR);
        let mut gear_bytes = zeroize::Zeroizing::new([0u8; 256 * 8]);
        blake3::Hasher::new_keyed(gear_key.expose_secret()).finalize_xof().fill(&mut gear_bytes[..]);
        let mut gear = Box::new([0u64; 256]);
        for (entry, bytes) in gear.iter_mut().zip(gear_bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(bytes);
            *entry = u64::from_le_bytes(word);
        }
        let mut key_check = [0u8; 16];
        key_check.copy_from_slice(&blake3::derive_key(context::KEY_CHECK, brk.expose_secret())[..16]);
        Self {
            chunk_id: derive(context::CHUNK_ID),
            chunk_seal: derive(context::CHUNK_SEAL),
            index: derive(context::INDEX),
            manifest: derive(context::MANIFEST),
            head: derive(context::HEAD),
            gear,
            key_check,
        }
    }

    /// Every key, from a caller-held Backup Root Key.
    pub fn from_root(key: &super::BackupRootKey) -> Self {
        Self::derive(&key.0)
    }

    /// The id of a chunk with this plaintext.
    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(self.chunk_id.expose_secret(), plaintext).as_bytes())
    }

    /// The key chunks are sealed under.
    pub fn chunk_seal_key(&self) -> &SecretKey {
        &self.chunk_seal
    }

    /// The key index objects are sealed under.
    pub fn index_key(&self) -> &SecretKey {
        &self.index
    }

    /// The key manifests are sealed under.
    pub fn manifest_key(&self) -> &SecretKey {
        &self.manifest
    }

    /// The key the head record is sealed under.
    pub fn head_key(&self) -> &SecretKey {
        &self.head
    }

    /// The keyed gear table of the content-defined chunker.
    pub fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    /// A 16-byte value that confirms a BRK without revealing it (recovery checks a recombined key
    /// against it before use).
    pub fn key_check(&self) -> [u8; 16] {
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
    // keyed_hash(derive_key(CHUNK_ID, brk), b""), the first little-endian u64 of the keyed XOF
    // under derive_key(CDC_GEAR, brk), and derive_key(KEY_CHECK, brk)[..16].
    const PINNED_EMPTY_CHUNK_ID: &str = "9fd167ac76939fbb06c8a242e6885867f9681351ebf406b4944dfd16e9381dd7";
    const PINNED_GEAR_0: &str = "4da85be6805957eb";
    const PINNED_KEY_CHECK: &str = "08380b27ecc2d4859735eb4442585df5";
}
