//! Keys derived from the Backup Root Key (BRK) and from each later key epoch's key, one derivation
//! purpose each (`crypto::derive::Purpose`, listed in `docs/key-hierarchy.md`), and the keyring
//! that carries earlier epochs' keys forward. Only the crate reads them.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::derive::{Derivation, Purpose, derive_bytes, derive_subkey, keyed_hash, keyed_output};
use crate::error::{DataKind, Error, Result};
use crate::secret::SecretKey;

/// The fewest chunks one task of [`BackupKeys::chunk_ids`] hashes (about 16 KiB of the export):
/// enough that handing the task to another core costs little beside the hashing.
const CHUNKS_PER_TASK: usize = 16;

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

/// The key one chunk is sealed under (`crypto::single_use`): drawn fresh for the chunk, carried
/// by the snapshot tree that holds the chunk, and found nowhere else, so a chunk that leaves every
/// live tree is forgotten with the trees that named it (`docs/adr/0017-forward-secret-backups.md`).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ChunkKey(pub(crate) [u8; 32]);

impl ChunkKey {
    /// The key as a [`SecretKey`], for opening the chunk.
    pub(crate) fn secret(&self) -> SecretKey {
        SecretKey::from_bytes(self.0)
    }

    /// Takes the key a sealing drew.
    pub(crate) fn from_secret(key: &SecretKey) -> Self {
        Self(*key.expose_secret())
    }
}

impl std::fmt::Debug for ChunkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkKey([REDACTED])")
    }
}

/// A generation's token: 32 random bytes drawn for each new generation and kept only in the head
/// records. The generation's manifest is sealed under a key derived from it, so once the holders
/// overwrite it, that manifest (and every chunk key only it reaches) is gone.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct GenerationToken(pub(crate) [u8; 32]);

impl GenerationToken {
    /// A fresh token from the operating system's CSPRNG.
    pub(crate) fn generate() -> Result<Self> {
        crate::crypto::random_array().map(Self).map_err(Error::from_rng)
    }
}

impl std::fmt::Debug for GenerationToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GenerationToken([REDACTED])")
    }
}

/// One holder's Shamir share of a generation token.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct TokenShare {
    /// How many shares recover the token (2 or more).
    pub(crate) threshold: u8,
    /// The share's index: the holder's position among the guardians plus one.
    pub(crate) index: u8,
    /// The share.
    pub(crate) value: [u8; 32],
}

impl std::fmt::Debug for TokenShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenShare({} of {}, [REDACTED])", self.index, self.threshold)
    }
}

/// What a holder's head record carries of its generation's token: the token itself, or (when the
/// backup's policy spreads it over the guardians) this holder's share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenPart {
    /// The token.
    Whole(GenerationToken),
    /// One share of it.
    Share(TokenShare),
}

/// How a backup spreads each generation's token over its holders: `threshold` of the `holders`
/// (the guardians, in enrolment order) recover it; with a threshold of 1 every holder keeps it
/// whole (a backup directory, one guardian, or a policy any single guardian plus the recovery code
/// meets, since a recovery must work with the code and one guardian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenPolicy {
    /// Shares that recover a token.
    pub(crate) threshold: u8,
    /// Holders, one share each.
    pub(crate) holders: u8,
}

impl TokenPolicy {
    /// Every holder keeps the token whole.
    pub(crate) const WHOLE: Self = Self { threshold: 1, holders: 1 };

    /// The policy of a backup whose key is split `threshold` of `servers` guardians plus the
    /// recovery code when `code`: the guardians any recovery reaches are at least `threshold`,
    /// less one when the code is one of the shares.
    pub(crate) fn for_guardians(threshold: u8, servers: u8, code: bool) -> Self {
        let needed = threshold.saturating_sub(u8::from(code)).clamp(1, servers.max(1));
        if needed == 1 { Self::WHOLE } else { Self { threshold: needed, holders: servers } }
    }

    /// What the holder at `position` (0-based) keeps of generation `generation`'s `token`. The
    /// split is drawn from the token itself, so every device that holds it makes the same shares.
    pub(crate) fn part(&self, token: &GenerationToken, generation: u64, position: usize) -> Result<TokenPart> {
        if self.threshold <= 1 {
            return Ok(TokenPart::Whole(token.clone()));
        }
        let index = u8::try_from(position + 1)
            .ok()
            .filter(|i| *i <= self.holders)
            .ok_or(Error::Internal("a token share for a holder the policy does not have"))?;
        let mut derivation = Derivation::new(Purpose::BackupTokenShares);
        derivation.update(&token.0).update(&generation.to_le_bytes());
        let secret = SecretKey::from_bytes(token.0);
        let shares =
            crate::recovery::shares::split_derived(&secret, self.threshold, self.holders, derivation.stream())?;
        let share = shares.into_iter().find(|s| s.index == index).ok_or(Error::Internal("token share"))?;
        Ok(TokenPart::Share(TokenShare { threshold: self.threshold, index, value: *share.value.expose_secret() }))
    }
}

/// Every token the parts held for one generation can give: a whole token as it is, and each
/// combination of `threshold` shares with distinct indexes (a holder may lie: the caller keeps the
/// one its manifest opens under). At most 70 candidates (4 of 8 holders).
pub(crate) fn token_candidates(parts: &[TokenPart]) -> Vec<GenerationToken> {
    let mut out: Vec<GenerationToken> = Vec::new();
    let mut shares: Vec<&TokenShare> = Vec::new();
    for part in parts {
        match part {
            TokenPart::Whole(token) if !out.contains(token) => out.push(token.clone()),
            TokenPart::Whole(_) => {}
            TokenPart::Share(share) if !shares.iter().any(|s| s.index == share.index) => shares.push(share),
            TokenPart::Share(_) => {}
        }
    }
    let Some(threshold) = shares.first().map(|s| usize::from(s.threshold)) else { return out };
    shares.retain(|s| usize::from(s.threshold) == threshold);
    for subset in subsets(shares.len().min(8), threshold) {
        let picked: Vec<crate::recovery::shares::Share> = subset
            .iter()
            .map(|&i| crate::recovery::shares::Share {
                index: shares[i].index,
                value: SecretKey::from_bytes(shares[i].value),
            })
            .collect();
        let refs: Vec<&crate::recovery::shares::Share> = picked.iter().collect();
        if let Ok(token) = crate::recovery::shares::combine(&refs, shares[0].threshold) {
            let token = GenerationToken(*token.expose_secret());
            if !out.contains(&token) {
                out.push(token);
            }
        }
    }
    out
}

/// Every `k`-element subset of `0..n`, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 || k > n {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut pick: Vec<usize> = (0..k).collect();
    loop {
        out.push(pick.clone());
        let Some(i) = (0..k).rev().find(|&i| pick[i] < n - k + i) else { return out };
        pick[i] += 1;
        for j in i + 1..k {
            pick[j] = pick[j - 1] + 1;
        }
    }
}

/// The keys of one key epoch, derived from that epoch's key (the Backup Root Key for epoch 0).
/// What an epoch writes (chunks, index objects, manifests, head records) is sealed under these.
pub(crate) struct EpochKeys {
    chunk_seal: SecretKey,
    index: SecretKey,
    manifest: SecretKey,
    head: SecretKey,
    keyring: SecretKey,
    key_check: [u8; 16],
}

impl EpochKeys {
    fn derive(key: &SecretKey) -> Self {
        Self {
            chunk_seal: derive_subkey(key, Purpose::BackupChunkSeal),
            index: derive_subkey(key, Purpose::BackupIndexSeal),
            manifest: derive_subkey(key, Purpose::BackupManifestSeal),
            head: derive_subkey(key, Purpose::BackupHeadSeal),
            keyring: derive_subkey(key, Purpose::BackupKeyringSeal),
            key_check: derive_bytes(Purpose::BackupKeyCheck, key.expose_secret()),
        }
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

    /// The key generation `generation`'s manifest (version 3) is sealed under: derived from this
    /// epoch's manifest key, the generation's token and the generation.
    pub(crate) fn generation_key(&self, token: &GenerationToken, generation: u64) -> SecretKey {
        let mut key = SecretKey::zeroed();
        Derivation::new(Purpose::BackupGenerationSeal)
            .update(self.manifest.expose_secret())
            .update(&token.0)
            .update(&generation.to_le_bytes())
            .fill(key.expose_secret_mut());
        key
    }

    /// The key this epoch's keyring object is sealed under.
    pub(crate) fn keyring_key(&self) -> &SecretKey {
        &self.keyring
    }

    /// This epoch's key-check value.
    pub(crate) fn key_check(&self) -> [u8; 16] {
        self.key_check
    }
}

/// The newest generation and its manifest hash when a key epoch began: the one head record the
/// epoch's key accepts sealed under the previous epoch's key (a rotation that stopped between the
/// guardians' new shares and the head record's re-seal), so whoever holds only an old key cannot
/// pass off a head record of their own making.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RotationPoint {
    /// The generation at the rotation (0 before any backup).
    pub(crate) generation: u64,
    /// Its manifest hash (zeros before any backup).
    pub(crate) manifest_hash: [u8; 32],
}

/// Every key a backup needs: the deduplication keys of the backup's first key (chunk ids and the
/// chunker's gear table stay the same across epochs, so a rotation re-uploads nothing), and the
/// sealing keys of every key epoch up to the current one (`docs/key-hierarchy.md`, "Key
/// epochs"). New objects are sealed under the current epoch; older ones open under theirs.
pub(crate) struct BackupKeys {
    chunk_id: SecretKey,
    gear: Box<[u64; 256]>,
    epochs: Vec<EpochKeys>,
    rotation: Option<RotationPoint>,
    /// The token of a generation this device holds whole (it wrote or restored that generation),
    /// for opening it when the head record carries only a share.
    known_token: Option<(u64, GenerationToken)>,
}

impl BackupKeys {
    /// The keys of a backup still in its first epoch, whose key is `brk`.
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
            gear,
            epochs: vec![EpochKeys::derive(brk)],
            rotation: None,
            known_token: None,
        }
    }

    /// The keys of a backup whose current epoch key is `current`, with the keyring that holds
    /// the earlier epochs' keys (`None`: the backup is in its first epoch).
    pub(crate) fn with_keyring(current: &SecretKey, keyring: Option<&Keyring>) -> Self {
        let Some(keyring) = keyring.filter(|k| !k.earlier.is_empty()) else { return Self::derive(current) };
        let mut keys = Self::derive(&keyring.earlier[0]);
        keys.epochs = keyring.earlier.iter().chain(std::iter::once(current)).map(EpochKeys::derive).collect();
        keys.rotation = Some(keyring.rotation);
        keys
    }

    /// These keys, knowing generation `generation`'s token.
    pub(crate) fn with_known_token(mut self, generation: u64, token: GenerationToken) -> Self {
        self.known_token = Some((generation, token));
        self
    }

    /// The token of generation `generation`, if these keys know it.
    pub(crate) fn known_token(&self, generation: u64) -> Option<&GenerationToken> {
        self.known_token.as_ref().filter(|(g, _)| *g == generation).map(|(_, t)| t)
    }

    /// The current epoch (0 for a backup never rotated).
    pub(crate) fn current_epoch(&self) -> u32 {
        u32::try_from(self.epochs.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// The current epoch's keys, which seal everything written now.
    pub(crate) fn current(&self) -> &EpochKeys {
        // `epochs` is never empty: every constructor puts at least the current epoch in.
        &self.epochs[self.epochs.len() - 1]
    }

    /// The keys of `epoch`; an epoch this keyring does not reach (newer than the current one)
    /// is an integrity failure of the object that names it.
    pub(crate) fn epoch(&self, epoch: u32) -> Result<&EpochKeys> {
        self.epochs.get(epoch as usize).ok_or_else(|| Error::Integrity {
            object: DataKind::BackupKeyring,
            problem: format!("a backup object names key epoch {epoch}, newer than this key's"),
        })
    }

    /// The head record a rotation to the current epoch started from, if the backup was rotated.
    pub(crate) fn rotation(&self) -> Option<RotationPoint> {
        self.rotation
    }

    /// The id of a chunk with this plaintext.
    pub(crate) fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(keyed_hash(&self.chunk_id, plaintext))
    }

    /// The ids of `chunks`, in order, computed on all cores (rayon's pool).
    pub(crate) fn chunk_ids(&self, chunks: &[&[u8]]) -> Vec<ChunkId> {
        use rayon::prelude::*;
        chunks.par_iter().with_min_len(CHUNKS_PER_TASK).map(|chunk| self.chunk_id(chunk)).collect()
    }

    /// The key chunks are sealed under now.
    pub(crate) fn chunk_seal_key(&self) -> &SecretKey {
        self.current().chunk_seal_key()
    }

    /// The key index objects are sealed under now.
    pub(crate) fn index_key(&self) -> &SecretKey {
        self.current().index_key()
    }

    /// The key manifests are sealed under now.
    pub(crate) fn manifest_key(&self) -> &SecretKey {
        self.current().manifest_key()
    }

    /// The key the head record is sealed under now.
    pub(crate) fn head_key(&self) -> &SecretKey {
        self.current().head_key()
    }

    /// The keyed gear table of the content-defined chunker.
    pub(crate) fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    /// A 16-byte value that confirms the current epoch's key without revealing it (recovery
    /// checks a recombined key against it before use; the keyring object is named by it).
    pub(crate) fn key_check(&self) -> [u8; 16] {
        self.current().key_check()
    }
}

/// The key-check value of an epoch key.
pub(crate) fn key_check_of(key: &SecretKey) -> [u8; 16] {
    derive_bytes(Purpose::BackupKeyCheck, key.expose_secret())
}

/// Most key epochs a backup may have (a rotation per new recovery code, share refresh or device
/// revocation; the keyring of the last one holds every earlier key).
pub(crate) const MAX_EPOCHS: usize = 1024;

/// What a key epoch's keyring holds: the keys of every earlier epoch, oldest first, and the head
/// the rotation started from. Stored sealed as the backup object `keyring-<key check>` and, in
/// the clear, in the vault's encrypted database (`docs/formats.md`, "Keyring").
pub(crate) struct Keyring {
    pub(crate) earlier: Vec<SecretKey>,
    pub(crate) rotation: RotationPoint,
}

const KEYRING_MAGIC: &[u8; 8] = b"VBAKKRNG";
const KEYRING_VERSION: u16 = 1;

impl Keyring {
    /// The epoch whose keyring this is (the number of earlier epochs).
    pub(crate) fn epoch(&self) -> u32 {
        u32::try_from(self.earlier.len()).unwrap_or(u32::MAX)
    }

    /// `u32 epoch ‖ u64 rotation generation ‖ rotation manifest hash (32) ‖ key (32)^epoch`.
    pub(crate) fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(44 + 32 * self.earlier.len()));
        out.extend_from_slice(&self.epoch().to_le_bytes());
        out.extend_from_slice(&self.rotation.generation.to_le_bytes());
        out.extend_from_slice(&self.rotation.manifest_hash);
        for key in &self.earlier {
            out.extend_from_slice(key.expose_secret());
        }
        out
    }

    /// Parses [`Keyring::encode`]'s bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let bad =
            || Error::Integrity { object: DataKind::BackupKeyring, problem: "the backup keyring is malformed".into() };
        if bytes.len() < 44 {
            return Err(bad());
        }
        let epoch = u32::from_le_bytes(bytes[..4].try_into().map_err(|_| bad())?) as usize;
        if epoch == 0 || epoch >= MAX_EPOCHS || bytes.len() != 44 + 32 * epoch {
            return Err(bad());
        }
        let generation = u64::from_le_bytes(bytes[4..12].try_into().map_err(|_| bad())?);
        let manifest_hash = bytes[12..44].try_into().map_err(|_| bad())?;
        let earlier = bytes[44..]
            .chunks_exact(32)
            .map(|k| SecretKey::try_from_slice(k).ok_or_else(bad))
            .collect::<Result<_>>()?;
        Ok(Self { earlier, rotation: RotationPoint { generation, manifest_hash } })
    }

    /// The name of the keyring object of the epoch whose key has this key check.
    pub(crate) fn object_name(key_check: &[u8; 16]) -> String {
        format!("keyring-{}", hex::encode(key_check))
    }

    /// Seals the keyring under the epoch key `current` (associated data
    /// `"VBAKKRNG" ‖ u16 1 ‖ object name`).
    pub(crate) fn seal(&self, current: &SecretKey) -> Vec<u8> {
        let epoch = EpochKeys::derive(current);
        let name = Self::object_name(&epoch.key_check());
        crate::crypto::aead::seal(epoch.keyring_key(), &keyring_aad(&name), &self.encode())
    }

    /// Opens the keyring object of the epoch key `current`.
    pub(crate) fn open(current: &SecretKey, sealed: &[u8]) -> Result<Self> {
        let epoch = EpochKeys::derive(current);
        let name = Self::object_name(&epoch.key_check());
        let plain = crate::crypto::aead::open(epoch.keyring_key(), &keyring_aad(&name), sealed).map_err(|_| {
            Error::Integrity {
                object: DataKind::BackupKeyring,
                problem: format!("backup {name} failed authentication"),
            }
        })?;
        Self::decode(plain.expose_secret())
    }
}

fn keyring_aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(10 + name.len());
    aad.extend_from_slice(KEYRING_MAGIC);
    aad.extend_from_slice(&KEYRING_VERSION.to_le_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
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

    /// A keyring object kept as a file, sealed once by `regenerate_golden_keyring`: epoch 2,
    /// earlier keys `[1; 32]` and `[2; 32]`, rotated at generation 7 with manifest hash `[9; 32]`,
    /// sealed under the epoch key `[3; 32]`.
    const GOLDEN_KEYRING: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keyring-v1.bin");

    fn golden_keyring() -> Keyring {
        Keyring {
            earlier: vec![SecretKey::from_bytes([1; 32]), SecretKey::from_bytes([2; 32])],
            rotation: RotationPoint { generation: 7, manifest_hash: [9; 32] },
        }
    }

    #[test]
    fn the_golden_keyring_opens_under_its_epoch_key_only() {
        let golden = std::fs::read(GOLDEN_KEYRING).unwrap();
        let keyring = Keyring::open(&SecretKey::from_bytes([3; 32]), &golden).unwrap();
        assert_eq!(keyring.encode(), golden_keyring().encode());
        assert_eq!(keyring.epoch(), 2);
        // nonce 24 ‖ (u32 epoch ‖ u64 generation ‖ hash 32 ‖ 2 keys of 32) ‖ tag 16
        assert_eq!(golden.len(), 24 + 4 + 8 + 32 + 2 * 32 + 16);
        for older in [[1; 32], [2; 32]] {
            assert!(Keyring::open(&SecretKey::from_bytes(older), &golden).is_err());
        }
        let keys = BackupKeys::with_keyring(&SecretKey::from_bytes([3; 32]), Some(&keyring));
        assert_eq!(keys.current_epoch(), 2);
        assert_eq!(keys.chunk_id(b"x"), BackupKeys::derive(&SecretKey::from_bytes([1; 32])).chunk_id(b"x"));
    }

    /// Rewrites the golden keyring (ignored: run by hand only for a new format version).
    #[test]
    #[ignore]
    fn regenerate_golden_keyring() {
        std::fs::write(GOLDEN_KEYRING, golden_keyring().seal(&SecretKey::from_bytes([3; 32]))).unwrap();
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    #[test]
    fn the_token_policy_follows_the_guardians_any_recovery_reaches() {
        // 2 of {A, code}: whole at A; 2 of {A, B, code}: whole at each (A and the code suffice);
        // 2 of {A, B, C}: 2 of 3; 3 of {A, B, C, code}: 2 of 3; 1 of {A} (single provider): whole.
        assert_eq!(TokenPolicy::for_guardians(2, 1, true), TokenPolicy::WHOLE);
        assert_eq!(TokenPolicy::for_guardians(2, 2, true), TokenPolicy::WHOLE);
        assert_eq!(TokenPolicy::for_guardians(2, 3, false), TokenPolicy { threshold: 2, holders: 3 });
        assert_eq!(TokenPolicy::for_guardians(3, 3, true), TokenPolicy { threshold: 2, holders: 3 });
        assert_eq!(TokenPolicy::for_guardians(1, 1, false), TokenPolicy::WHOLE);
    }

    /// Shares are drawn from the token: any device makes the same ones, and any two combine. The
    /// pinned share fixes the split (a change would strand guardians' shares written by an older
    /// build). Checked independently with the Python `blake3` package: with a threshold of 2, byte
    /// `j`'s coefficient is the first byte of the `j`-th 4-byte word of the `BackupTokenShares`
    /// stream over `token ‖ u64 generation`, and share 1 (x = 1 in GF(256)) is the token byte XOR
    /// that coefficient.
    #[test]
    fn token_shares_are_reproducible_and_any_threshold_combines() {
        let policy = TokenPolicy { threshold: 2, holders: 3 };
        let token = GenerationToken([7; 32]);
        let share = |position| match policy.part(&token, 5, position).unwrap() {
            TokenPart::Share(share) => share,
            TokenPart::Whole(_) => panic!("a split policy gives shares"),
        };
        let shares: Vec<TokenShare> = (0..3).map(share).collect();
        assert_eq!(shares.iter().map(|s| (s.threshold, s.index)).collect::<Vec<_>>(), [(2, 1), (2, 2), (2, 3)]);
        assert_eq!(shares, (0..3).map(share).collect::<Vec<_>>(), "the same token gives the same shares");
        assert_ne!(shares[0].value, token.0);
        assert_eq!(hex::encode(shares[0].value), PINNED_SHARE_1);
        for pair in [[0, 1], [0, 2], [1, 2]] {
            let parts: Vec<TokenPart> = pair.iter().map(|&i| TokenPart::Share(shares[i].clone())).collect();
            assert_eq!(token_candidates(&parts), vec![token.clone()], "{pair:?}");
        }
        // One share alone gives nothing; another generation's split differs.
        assert!(token_candidates(&[TokenPart::Share(shares[0].clone())]).is_empty());
        let other = match policy.part(&token, 6, 0).unwrap() {
            TokenPart::Share(share) => share,
            TokenPart::Whole(_) => panic!(),
        };
        assert_ne!(other.value, shares[0].value);
        assert!(policy.part(&token, 5, 3).is_err(), "no fourth holder");
        // A lying holder's share: the honest pair is still among the candidates.
        let mut liar = shares[2].clone();
        liar.value[0] ^= 1;
        let parts = [shares[0].clone(), shares[1].clone(), liar].map(TokenPart::Share);
        assert!(token_candidates(&parts).contains(&token));
    }

    const PINNED_SHARE_1: &str = "710434da75423d3363a931ee6d55a1fa91c281d5e32b930f25cf16f21181ff6f";
}
