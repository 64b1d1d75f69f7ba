//! The wrapped-key format of the TPM wrapper, version 1: what a TPM key-wrapper slot stores as its
//! wrapped KEK ([docs/formats.md](../../../docs/formats.md#tpm-wrapped-key)).
//!
//! It holds only what the TPM needs to load and unseal the sealed object again — the object's
//! public and private areas (the private area is encrypted by the TPM under its parent), which
//! parent it was made under, and the unseal policy's parameters — and nothing secret: the KEK
//! never leaves the TPM in the clear except as the result of an unseal.
//!
//! ```text
//! offset  size  field
//! 0       4     magic "VTPM"
//! 4       1     version = 1
//! 5       1     flags: bit 0 = a PIN (the object's auth value), bit 1 = a PCR policy; others 0
//! 6       1     parent: 1 = the storage primary key made from the owner hierarchy's SRK
//!               template (ECC NIST P-256, AES-128-CFB), 2 = a persistent key
//! 7       4     parent handle, big-endian: 0 for 1; 0x81000000..=0x81FFFFFF for 2
//! 11      2+n   parent name (TPM2B_NAME): u16 length n, 2..=66, then the name
//! …       5     only with flag bit 1: PCR bank (TPM_ALG_ID, 0x000B = SHA-256, the only one)
//!               and 3 bytes selecting PCRs 0..=23 (TPMS_PCR_SELECTION's bitmap: byte i bit j
//!               is PCR 8i + j), not all zero
//! …       2+n   public area (TPM2B_PUBLIC): u16 length n, 1..=1024, then TPMT_PUBLIC
//! …       2+n   private area (TPM2B_PRIVATE): u16 length n, 1..=1024, then its bytes
//! ```
//!
//! Every integer is big-endian (as the TPM marshals); nothing may follow the private area, and the
//! whole blob is at most 4096 bytes (the key-slot file's bound on a wrapped KEK). The public and
//! private areas are byte for byte what `tpm2_create -u … -r …` writes, so `tpm2_load` can load
//! them for diagnosis.

/// The first bytes of every blob.
pub const MAGIC: &[u8; 4] = b"VTPM";
/// The version this build writes and reads.
pub const VERSION: u8 = 1;
/// The longest blob (the key-slot file's bound on a wrapped KEK).
pub const MAX_BLOB_LEN: usize = 4096;
/// The longest public or private area accepted.
pub const MAX_AREA_LEN: usize = 1024;
/// The longest TPM object name (a 2-byte algorithm id and a SHA-512 digest).
pub const MAX_NAME_LEN: usize = 66;
/// The first persistent object handle.
pub const PERSISTENT_FIRST: u32 = 0x8100_0000;
/// The last persistent object handle.
pub const PERSISTENT_LAST: u32 = 0x81FF_FFFF;
/// The TPM's algorithm id of SHA-256.
pub const ALG_SHA256: u16 = 0x000B;
/// PCRs a selection may name: 0..=23, the PC Client platform's set.
pub const PCR_COUNT: u8 = 24;

const FLAG_PIN: u8 = 0x01;
const FLAG_PCR: u8 = 0x02;
const PARENT_SRK: u8 = 1;
const PARENT_PERSISTENT: u8 = 2;

/// Why bytes are not a TPM blob this build can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The bytes do not start with `VTPM`.
    #[error("not a TPM wrapped key (bad magic)")]
    BadMagic,
    /// A version this build does not know.
    #[error("unsupported TPM wrapped key version {0}")]
    UnsupportedVersion(u8),
    /// A flag bit this version does not define.
    #[error("unknown flags in a TPM wrapped key")]
    UnknownFlags,
    /// A parent kind this version does not define, or a handle that does not fit it.
    #[error("unknown parent in a TPM wrapped key")]
    BadParent,
    /// A PCR bank other than SHA-256, or an empty selection.
    #[error("unsupported PCR selection in a TPM wrapped key")]
    BadPcrSelection,
    /// A length field out of its bounds.
    #[error("a length in a TPM wrapped key is out of bounds ({0})")]
    BadLength(&'static str),
    /// The bytes end early.
    #[error("TPM wrapped key is truncated")]
    Truncated,
    /// Bytes follow the private area.
    #[error("TPM wrapped key has trailing bytes")]
    TrailingBytes,
    /// Longer than a key-slot file may hold.
    #[error("TPM wrapped key is too long")]
    TooLong,
}

/// The parent key a sealed object was created under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parent {
    /// The storage primary key of the owner hierarchy, made again at each use from the SRK
    /// template (ECC NIST P-256, AES-128-CFB): the same key as long as the TPM is not cleared.
    Srk,
    /// A key persisted at this handle (0x81000000..=0x81FFFFFF), such as the SRK at 0x81000001.
    Persistent(u32),
}

/// A set of PCRs of the SHA-256 bank whose values the unseal policy requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcrSelection {
    bitmap: [u8; 3],
}

impl PcrSelection {
    /// Selects PCRs of the SHA-256 bank. Refuses an empty list or a PCR above 23.
    pub fn sha256(pcrs: &[u8]) -> Result<Self, BlobError> {
        let mut bitmap = [0u8; 3];
        for &pcr in pcrs {
            if pcr >= PCR_COUNT {
                return Err(BlobError::BadPcrSelection);
            }
            bitmap[usize::from(pcr / 8)] |= 1 << (pcr % 8);
        }
        Self::from_bitmap(bitmap)
    }

    /// Parses a comma-separated list such as `0,2,7`.
    pub fn parse_list(list: &str) -> Result<Self, BlobError> {
        let pcrs = list
            .split(',')
            .map(|p| p.trim().parse::<u8>().map_err(|_| BlobError::BadPcrSelection))
            .collect::<Result<Vec<_>, _>>()?;
        Self::sha256(&pcrs)
    }

    fn from_bitmap(bitmap: [u8; 3]) -> Result<Self, BlobError> {
        if bitmap == [0; 3] {
            return Err(BlobError::BadPcrSelection);
        }
        Ok(Self { bitmap })
    }

    /// The selected PCR numbers, ascending.
    pub fn pcrs(&self) -> Vec<u8> {
        (0..PCR_COUNT).filter(|&i| self.bitmap[usize::from(i / 8)] & (1 << (i % 8)) != 0).collect()
    }

    /// The selection as TPMS_PCR_SELECTION's bitmap.
    pub fn bitmap(&self) -> [u8; 3] {
        self.bitmap
    }
}

/// A parsed blob. Parsing checks the structure only; the TPM checks the areas themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmBlob {
    /// Whether the sealed object has a PIN as its auth value (and so counts failures towards the
    /// TPM's dictionary-attack lockout).
    pub pin: bool,
    /// The parent key.
    pub parent: Parent,
    /// The parent's TPM name when the object was created: another name means the TPM was
    /// cleared or this is another TPM.
    pub parent_name: Vec<u8>,
    /// The PCRs whose values the unseal policy requires, if any.
    pub pcrs: Option<PcrSelection>,
    /// TPMT_PUBLIC of the sealed object.
    pub public: Vec<u8>,
    /// The TPM2B_PRIVATE contents of the sealed object (encrypted by the TPM).
    pub private: Vec<u8>,
}

fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), BlobError> {
    let len = u16::try_from(bytes.len()).map_err(|_| BlobError::TooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlobError> {
        if self.0.len() < n {
            return Err(BlobError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, BlobError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, BlobError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, BlobError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn sized(&mut self, min: usize, max: usize, what: &'static str) -> Result<&'a [u8], BlobError> {
        let len = usize::from(self.u16()?);
        if len < min || len > max {
            return Err(BlobError::BadLength(what));
        }
        self.take(len)
    }
}

impl TpmBlob {
    /// The blob's bytes. Fails only if a field is out of the bounds [`TpmBlob::parse`] enforces.
    pub fn encode(&self) -> Result<Vec<u8>, BlobError> {
        self.check()?;
        let mut out = Vec::with_capacity(64 + self.public.len() + self.private.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(if self.pin { FLAG_PIN } else { 0 } | if self.pcrs.is_some() { FLAG_PCR } else { 0 });
        match self.parent {
            Parent::Srk => {
                out.push(PARENT_SRK);
                out.extend_from_slice(&0u32.to_be_bytes());
            }
            Parent::Persistent(handle) => {
                out.push(PARENT_PERSISTENT);
                out.extend_from_slice(&handle.to_be_bytes());
            }
        }
        put_sized(&mut out, &self.parent_name)?;
        if let Some(pcrs) = &self.pcrs {
            out.extend_from_slice(&ALG_SHA256.to_be_bytes());
            out.extend_from_slice(&pcrs.bitmap);
        }
        put_sized(&mut out, &self.public)?;
        put_sized(&mut out, &self.private)?;
        if out.len() > MAX_BLOB_LEN {
            return Err(BlobError::TooLong);
        }
        Ok(out)
    }

    fn check(&self) -> Result<(), BlobError> {
        if let Parent::Persistent(handle) = self.parent
            && !(PERSISTENT_FIRST..=PERSISTENT_LAST).contains(&handle)
        {
            return Err(BlobError::BadParent);
        }
        if !(2..=MAX_NAME_LEN).contains(&self.parent_name.len()) {
            return Err(BlobError::BadLength("parent name"));
        }
        if !(1..=MAX_AREA_LEN).contains(&self.public.len()) {
            return Err(BlobError::BadLength("public area"));
        }
        if !(1..=MAX_AREA_LEN).contains(&self.private.len()) {
            return Err(BlobError::BadLength("private area"));
        }
        Ok(())
    }

    /// Parses a blob: hostile bytes get a [`BlobError`], never a panic.
    pub fn parse(bytes: &[u8]) -> Result<Self, BlobError> {
        if bytes.len() > MAX_BLOB_LEN {
            return Err(BlobError::TooLong);
        }
        let mut r = Reader(bytes);
        if r.take(MAGIC.len()).map_err(|_| BlobError::BadMagic)? != MAGIC {
            return Err(BlobError::BadMagic);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(BlobError::UnsupportedVersion(version));
        }
        let flags = r.u8()?;
        if flags & !(FLAG_PIN | FLAG_PCR) != 0 {
            return Err(BlobError::UnknownFlags);
        }
        let parent = match (r.u8()?, r.u32()?) {
            (PARENT_SRK, 0) => Parent::Srk,
            (PARENT_PERSISTENT, handle) if (PERSISTENT_FIRST..=PERSISTENT_LAST).contains(&handle) => {
                Parent::Persistent(handle)
            }
            _ => return Err(BlobError::BadParent),
        };
        let parent_name = r.sized(2, MAX_NAME_LEN, "parent name")?.to_vec();
        let pcrs = if flags & FLAG_PCR != 0 {
            if r.u16()? != ALG_SHA256 {
                return Err(BlobError::BadPcrSelection);
            }
            let b = r.take(3)?;
            Some(PcrSelection::from_bitmap([b[0], b[1], b[2]])?)
        } else {
            None
        };
        let public = r.sized(1, MAX_AREA_LEN, "public area")?.to_vec();
        let private = r.sized(1, MAX_AREA_LEN, "private area")?.to_vec();
        if !r.0.is_empty() {
            return Err(BlobError::TrailingBytes);
        }
        Ok(Self { pin: flags & FLAG_PIN != 0, parent, parent_name, pcrs, public, private })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> TpmBlob {
        TpmBlob {
            pin: true,
            parent: Parent::Persistent(0x8100_0001),
            parent_name: vec![0, 0x0B, 1, 2, 3],
            pcrs: Some(PcrSelection::sha256(&[0, 7, 23]).unwrap()),
            public: vec![9; 10],
            private: vec![8; 20],
        }
    }

    #[test]
    fn round_trips_and_rejects_what_it_cannot_write() {
        let blob = sample();
        let bytes = blob.encode().unwrap();
        assert_eq!(TpmBlob::parse(&bytes), Ok(blob.clone()));
        assert_eq!(blob.pcrs.map(|p| p.pcrs()), Some(vec![0, 7, 23]));
        let bad_handle = TpmBlob { parent: Parent::Persistent(0x8000_0000), ..blob.clone() };
        assert_eq!(bad_handle.encode(), Err(BlobError::BadParent));
        let empty_private = TpmBlob { private: Vec::new(), ..blob };
        assert_eq!(empty_private.encode(), Err(BlobError::BadLength("private area")));
    }

    #[test]
    fn pcr_lists_are_bounded_and_not_empty() {
        assert_eq!(PcrSelection::parse_list("0, 2,7").map(|p| p.pcrs()), Ok(vec![0, 2, 7]));
        assert_eq!(PcrSelection::parse_list("24"), Err(BlobError::BadPcrSelection));
        assert_eq!(PcrSelection::parse_list(""), Err(BlobError::BadPcrSelection));
        assert_eq!(PcrSelection::sha256(&[]), Err(BlobError::BadPcrSelection));
    }

    #[test]
    fn every_field_is_checked() {
        let bytes = sample().encode().unwrap();
        let with = |at: usize, value: u8| {
            let mut b = bytes.clone();
            b[at] = value;
            TpmBlob::parse(&b)
        };
        assert_eq!(with(0, b'X'), Err(BlobError::BadMagic));
        assert_eq!(with(4, 2), Err(BlobError::UnsupportedVersion(2)));
        assert_eq!(with(5, 0x07), Err(BlobError::UnknownFlags));
        assert_eq!(with(6, 3), Err(BlobError::BadParent));
        assert_eq!(with(7, 0x80), Err(BlobError::BadParent));
        assert_eq!(with(12, 1), Err(BlobError::BadLength("parent name")));
        assert_eq!(with(19, 0), Err(BlobError::BadPcrSelection));
        assert_eq!(TpmBlob::parse(&bytes[..bytes.len() - 1]), Err(BlobError::Truncated));
        assert_eq!(TpmBlob::parse(&[bytes.as_slice(), &[0]].concat()), Err(BlobError::TrailingBytes));
        assert_eq!(TpmBlob::parse(&vec![0; MAX_BLOB_LEN + 1]), Err(BlobError::TooLong));
        assert_eq!(TpmBlob::parse(b"VT"), Err(BlobError::BadMagic));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = TpmBlob::parse(&bytes);
            let mut prefixed = b"VTPM\x01".to_vec();
            prefixed.extend_from_slice(&bytes);
            if let Ok(blob) = TpmBlob::parse(&prefixed) {
                prop_assert_eq!(blob.encode().ok(), Some(prefixed));
            }
        }
    }
}
