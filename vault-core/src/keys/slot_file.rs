//! The key-slot file: a small, versioned, self-describing file next to the database. Each slot
//! holds the vault root key sealed under one unlock method. Byte layout in `docs/formats.md`.
//!
//! Parsing treats every byte as hostile: lengths and counts are bounded, unknown versions and
//! kinds are typed errors, and nothing here panics.

use crate::crypto::aead;
use crate::crypto::kdf::KdfParams;

/// Leading magic bytes of a key-slot file.
pub(crate) const MAGIC: &[u8; 8] = b"VLTSLOTS";
/// The only format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u16 = 1;
/// Length of the random vault identifier.
pub(crate) const VAULT_ID_LEN: usize = 16;
/// Length of the Argon2id salt of a passphrase slot.
pub(crate) const SALT_LEN: usize = 16;
/// Most slots a file may hold.
pub(crate) const MAX_SLOTS: usize = 32;
/// Largest wrapped key a key wrapper may return.
pub(crate) const MAX_WRAPPED_LEN: usize = 4096;
/// Longest key-wrapper label.
pub(crate) const MAX_LABEL_LEN: usize = 64;
/// A sealed 32-byte root key: nonce, ciphertext, tag.
pub(crate) const SEALED_KEY_LEN: usize = 32 + aead::OVERHEAD;
/// Largest slot body (bounded so a hostile length cannot make us allocate much).
const MAX_BODY_LEN: usize = 8192;
/// Largest possible key-slot file: the header and `MAX_SLOTS` records of the largest body.
pub(crate) const MAX_FILE_LEN: u64 = 31 + MAX_SLOTS as u64 * (15 + MAX_BODY_LEN as u64);
/// Most Argon2id work (memory in KiB × passes, summed over passphrase slots) one file may ask an
/// unlock attempt to do: 4 GiB-passes, about twenty times the default slot. Bounds what a
/// hostile slot file can cost; each slot is also bounded on its own.
pub(crate) const MAX_TOTAL_KDF_COST: u64 = 4 * 1024 * 1024;
const KDF_ARGON2ID_V13: u8 = 1;
const WRAPPER_FLAG_HARDWARE: u8 = 0b0000_0001;

/// A stable slot number, unique within one vault for its whole life (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotId(pub u32);

impl std::fmt::Display for SlotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How a slot's key-encryption key is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SlotKind {
    /// The KEK is Argon2id(passphrase, salt, params).
    Passphrase { params: KdfParams, salt: [u8; SALT_LEN] },
    /// The KEK is random and stored wrapped by a [`crate::KeyWrapper`].
    Wrapper { hardware_backed: bool, label: String, wrapped_kek: Vec<u8> },
}

impl SlotKind {
    fn code(&self) -> u8 {
        match self {
            SlotKind::Passphrase { .. } => 1,
            SlotKind::Wrapper { .. } => 2,
        }
    }
}

/// One slot: the root key sealed under the slot's KEK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) id: SlotId,
    pub(crate) created_at: u64,
    pub(crate) kind: SlotKind,
    pub(crate) sealed_root_key: [u8; SEALED_KEY_LEN],
}

/// The whole key-slot file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotFile {
    pub(crate) vault_id: [u8; VAULT_ID_LEN],
    pub(crate) next_slot_id: u32,
    pub(crate) slots: Vec<Slot>,
}

/// Why a key-slot file could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotFileError {
    /// The file does not start with the key-slot magic.
    #[error("not a key-slot file (bad magic)")]
    BadMagic,
    /// The file is a key-slot file of a version this build does not know.
    #[error("unsupported key-slot file version {0}")]
    UnsupportedVersion(u16),
    /// The file ends early or has bytes after its last slot.
    #[error("key-slot file is truncated or has trailing bytes")]
    BadLength,
    /// A field holds a value outside its allowed range.
    #[error("key-slot file field {0} is invalid")]
    InvalidField(&'static str),
}

impl Slot {
    /// The associated data that binds a sealed root key to its vault, slot and parameters:
    /// everything in the slot record before the sealed key, under a domain label.
    pub(crate) fn aad(&self, vault_id: &[u8; VAULT_ID_LEN]) -> Vec<u8> {
        let mut aad = b"vault-core keyslot v1".to_vec();
        aad.extend_from_slice(vault_id);
        aad.extend_from_slice(&self.id.0.to_le_bytes());
        aad.extend_from_slice(&self.created_at.to_le_bytes());
        aad.push(self.kind.code());
        aad.extend_from_slice(&encode_kind_fields(&self.kind));
        aad
    }
}

fn encode_kind_fields(kind: &SlotKind) -> Vec<u8> {
    let mut out = Vec::new();
    match kind {
        SlotKind::Passphrase { params, salt } => {
            out.push(KDF_ARGON2ID_V13);
            out.extend_from_slice(&params.memory_kib.to_le_bytes());
            out.extend_from_slice(&params.iterations.to_le_bytes());
            out.extend_from_slice(&params.parallelism.to_le_bytes());
            out.extend_from_slice(salt);
        }
        SlotKind::Wrapper { hardware_backed, label, wrapped_kek } => {
            out.push(if *hardware_backed { WRAPPER_FLAG_HARDWARE } else { 0 });
            // Lengths are bounded on construction; saturate rather than panic.
            out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(label.as_bytes());
            out.extend_from_slice(&u16::try_from(wrapped_kek.len()).unwrap_or(u16::MAX).to_le_bytes());
            out.extend_from_slice(wrapped_kek);
        }
    }
    out
}

impl SlotFile {
    /// Serialises the file.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.slots.len() * 160);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&self.vault_id);
        out.extend_from_slice(&self.next_slot_id.to_le_bytes());
        out.push(u8::try_from(self.slots.len()).unwrap_or(u8::MAX));
        for slot in &self.slots {
            let mut body = encode_kind_fields(&slot.kind);
            body.extend_from_slice(&slot.sealed_root_key);
            out.extend_from_slice(&slot.id.0.to_le_bytes());
            out.push(slot.kind.code());
            out.extend_from_slice(&slot.created_at.to_le_bytes());
            out.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_le_bytes());
            out.extend_from_slice(&body);
        }
        out
    }

    /// Parses a file, refusing anything malformed.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, SlotFileError> {
        let mut r = Reader::new(bytes);
        if r.take(MAGIC.len())? != MAGIC {
            return Err(SlotFileError::BadMagic);
        }
        let version = r.u16()?;
        if version != FORMAT_VERSION {
            return Err(SlotFileError::UnsupportedVersion(version));
        }
        let vault_id = r.array::<VAULT_ID_LEN>()?;
        let next_slot_id = r.u32()?;
        let count = usize::from(r.u8()?);
        if count == 0 || count > MAX_SLOTS {
            return Err(SlotFileError::InvalidField("slot count"));
        }
        let mut slots = Vec::with_capacity(count);
        for _ in 0..count {
            let id = SlotId(r.u32()?);
            if id.0 >= next_slot_id || slots.iter().any(|s: &Slot| s.id == id) {
                return Err(SlotFileError::InvalidField("slot id"));
            }
            let kind_code = r.u8()?;
            let created_at = r.u64()?;
            let body_len = usize::from(r.u16()?);
            if body_len > MAX_BODY_LEN {
                return Err(SlotFileError::InvalidField("slot length"));
            }
            let mut body = Reader::new(r.take(body_len)?);
            let kind = match kind_code {
                1 => decode_passphrase(&mut body)?,
                2 => decode_wrapper(&mut body)?,
                _ => return Err(SlotFileError::InvalidField("slot kind")),
            };
            let sealed_root_key = body.array::<SEALED_KEY_LEN>()?;
            body.finish()?;
            slots.push(Slot { id, created_at, kind, sealed_root_key });
        }
        r.finish()?;
        let passphrase_slots = slots.iter().filter(|s| matches!(s.kind, SlotKind::Passphrase { .. })).count();
        if passphrase_slots > super::MAX_PASSPHRASE_SLOTS {
            return Err(SlotFileError::InvalidField("too many passphrase slots"));
        }
        if total_kdf_cost(&slots) > MAX_TOTAL_KDF_COST {
            return Err(SlotFileError::InvalidField("total kdf cost"));
        }
        Ok(SlotFile { vault_id, next_slot_id, slots })
    }
}

/// Argon2id work of every passphrase slot, summed (memory in KiB × passes).
pub(crate) fn total_kdf_cost(slots: &[Slot]) -> u64 {
    slots
        .iter()
        .map(|s| match &s.kind {
            SlotKind::Passphrase { params, .. } => u64::from(params.memory_kib) * u64::from(params.iterations),
            SlotKind::Wrapper { .. } => 0,
        })
        .sum()
}

fn decode_passphrase(body: &mut Reader<'_>) -> Result<SlotKind, SlotFileError> {
    if body.u8()? != KDF_ARGON2ID_V13 {
        return Err(SlotFileError::InvalidField("kdf algorithm"));
    }
    let params = KdfParams { memory_kib: body.u32()?, iterations: body.u32()?, parallelism: body.u32()? };
    params.validate().map_err(|_| SlotFileError::InvalidField("kdf parameters"))?;
    let salt = body.array::<SALT_LEN>()?;
    Ok(SlotKind::Passphrase { params, salt })
}

fn decode_wrapper(body: &mut Reader<'_>) -> Result<SlotKind, SlotFileError> {
    let flags = body.u8()?;
    if flags & !WRAPPER_FLAG_HARDWARE != 0 {
        return Err(SlotFileError::InvalidField("wrapper flags"));
    }
    let label_len = usize::from(body.u8()?);
    if label_len == 0 || label_len > MAX_LABEL_LEN {
        return Err(SlotFileError::InvalidField("wrapper label"));
    }
    let label = std::str::from_utf8(body.take(label_len)?)
        .map_err(|_| SlotFileError::InvalidField("wrapper label"))?
        .to_owned();
    let wrapped_len = usize::from(body.u16()?);
    if wrapped_len == 0 || wrapped_len > MAX_WRAPPED_LEN {
        return Err(SlotFileError::InvalidField("wrapped key length"));
    }
    let wrapped_kek = body.take(wrapped_len)?.to_vec();
    Ok(SlotKind::Wrapper { hardware_backed: flags & WRAPPER_FLAG_HARDWARE != 0, label, wrapped_kek })
}

/// A bounds-checked cursor over untrusted bytes.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SlotFileError> {
        if n > self.bytes.len() {
            return Err(SlotFileError::BadLength);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SlotFileError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, SlotFileError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, SlotFileError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, SlotFileError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SlotFileError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn finish(&self) -> Result<(), SlotFileError> {
        if self.bytes.is_empty() { Ok(()) } else { Err(SlotFileError::BadLength) }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample() -> SlotFile {
        SlotFile {
            vault_id: [9; VAULT_ID_LEN],
            next_slot_id: 3,
            slots: vec![
                Slot {
                    id: SlotId(0),
                    created_at: 1_700_000_000,
                    kind: SlotKind::Passphrase { params: KdfParams::DEFAULT, salt: [1; SALT_LEN] },
                    sealed_root_key: [2; SEALED_KEY_LEN],
                },
                Slot {
                    id: SlotId(2),
                    created_at: 1_700_000_001,
                    kind: SlotKind::Wrapper {
                        hardware_backed: false,
                        label: "software-key-file".to_owned(),
                        wrapped_kek: vec![3; 73],
                    },
                    sealed_root_key: [4; SEALED_KEY_LEN],
                },
            ],
        }
    }

    #[test]
    fn round_trip() {
        let file = sample();
        assert_eq!(SlotFile::decode(&file.encode()), Ok(file));
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(SlotFile::decode(&bytes[..len]).is_err(), "length {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(SlotFile::decode(&longer), Err(SlotFileError::BadLength));
    }

    #[test]
    fn unknown_version_is_a_typed_error() {
        let mut bytes = sample().encode();
        bytes[8] = 2;
        assert_eq!(SlotFile::decode(&bytes), Err(SlotFileError::UnsupportedVersion(2)));
        bytes[0] ^= 1;
        assert_eq!(SlotFile::decode(&bytes), Err(SlotFileError::BadMagic));
    }

    #[test]
    fn hostile_kdf_parameters_are_refused() {
        let mut file = sample();
        file.slots[0].kind = SlotKind::Passphrase {
            params: KdfParams { memory_kib: u32::MAX, iterations: 3, parallelism: 4 },
            salt: [1; SALT_LEN],
        };
        assert_eq!(SlotFile::decode(&file.encode()), Err(SlotFileError::InvalidField("kdf parameters")));
    }

    #[test]
    fn the_total_argon2_work_of_a_file_is_bounded() {
        let big = KdfParams { memory_kib: KdfParams::MAX_MEMORY_KIB, iterations: 2, parallelism: 4 };
        let mut file = sample();
        file.slots[1] = Slot {
            id: SlotId(2),
            created_at: 1,
            kind: SlotKind::Passphrase { params: big, salt: [1; SALT_LEN] },
            sealed_root_key: [4; SEALED_KEY_LEN],
        };
        file.slots[0].kind = SlotKind::Passphrase { params: big, salt: [1; SALT_LEN] };
        assert_eq!(SlotFile::decode(&file.encode()), Err(SlotFileError::InvalidField("total kdf cost")));
    }

    #[test]
    fn duplicate_or_future_slot_ids_are_refused() {
        let mut file = sample();
        file.slots[1].id = SlotId(0);
        assert!(SlotFile::decode(&file.encode()).is_err());
        let mut file = sample();
        file.next_slot_id = 2;
        assert!(SlotFile::decode(&file.encode()).is_err());
    }

    proptest! {
        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = SlotFile::decode(&bytes);
        }

        /// Flipping any bit of a valid file either fails to parse or yields a file that differs
        /// (and therefore fails authentication, as the fields are in the AAD).
        #[test]
        fn bit_flips_never_parse_to_the_same_file(bit in 0usize..(8 * 300)) {
            let file = sample();
            let mut bytes = file.encode();
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            if let Ok(parsed) = SlotFile::decode(&bytes) {
                prop_assert_ne!(parsed, file);
            }
        }
    }
}
