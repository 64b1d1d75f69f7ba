//! The media stream format: STREAM-style chunked XChaCha20-Poly1305 over 64 KiB segments.
//!
//! ```text
//! header (46 bytes) = "VLTMEDIA" ‖ version u16 LE (1) ‖ segment-size log2 u8 (16)
//!                     ‖ media id (16) ‖ nonce prefix (19, random)
//! segment i         = XChaCha20-Poly1305(key, nonce_i, aad = header, plaintext_i) ‖ tag (16)
//! nonce_i           = nonce prefix (19) ‖ i as u32 BE ‖ last flag (0x01 on the final segment)
//! ```
//!
//! Every segment but the last holds exactly 64 KiB of plaintext; the last holds 0..=64 KiB (an
//! empty file is one empty final segment). The counter and last flag in the nonce detect
//! reordering and truncation; the header (with the media id) in the AAD detects swapping
//! segments or files between items. This module frames bytes in memory (no I/O) over the
//! crypto module's [`DetachedAead`] and never returns unauthenticated bytes.

use crate::crypto::aead::DetachedAead;
use crate::crypto::random_array;
use crate::secret::SecretKey;

/// Leading magic bytes of a media file.
pub(crate) const MAGIC: &[u8; 8] = b"VLTMEDIA";
/// The media format version this build writes and reads.
pub(crate) const VERSION: u16 = 1;
/// Plaintext bytes per segment.
pub const SEGMENT_LEN: usize = 64 * 1024;
const SEGMENT_LOG2: u8 = 16;
/// Authentication tag bytes per segment.
pub(crate) const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full segment.
pub(crate) const SEALED_SEGMENT_LEN: usize = SEGMENT_LEN + TAG_LEN;
/// Length of a media id.
pub const MEDIA_ID_LEN: usize = 16;
const NONCE_PREFIX_LEN: usize = 19;
/// Length of the header.
pub(crate) const HEADER_LEN: usize = 8 + 2 + 1 + MEDIA_ID_LEN + NONCE_PREFIX_LEN;

/// Why a media header or segment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaFormatError {
    /// Not a media file.
    #[error("not a media file (bad magic)")]
    BadMagic,
    /// A media format version this build does not know.
    #[error("unsupported media format version {0}")]
    UnsupportedVersion(u16),
    /// The header is malformed or the file has the wrong length.
    #[error("media file is malformed: {0}")]
    Malformed(&'static str),
    /// A segment failed authentication (tampered, truncated, reordered or swapped).
    #[error("media segment {0} failed authentication")]
    Authentication(u64),
    /// The stream would need more segments than the nonce counter allows.
    #[error("media stream is too long")]
    TooLong,
}

/// A parsed media header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MediaHeader {
    pub(crate) media_id: [u8; MEDIA_ID_LEN],
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl MediaHeader {
    /// A header for a new file with a fresh random nonce prefix.
    pub(crate) fn generate(media_id: [u8; MEDIA_ID_LEN]) -> Result<Self, getrandom::Error> {
        Ok(Self { media_id, nonce_prefix: random_array()? })
    }

    /// The header bytes (also the AAD of every segment).
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(MAGIC);
        out[8..10].copy_from_slice(&VERSION.to_le_bytes());
        out[10] = SEGMENT_LOG2;
        out[11..27].copy_from_slice(&self.media_id);
        out[27..].copy_from_slice(&self.nonce_prefix);
        out
    }

    /// Parses header bytes from an untrusted file.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, MediaFormatError> {
        if bytes.len() < HEADER_LEN {
            return Err(MediaFormatError::Malformed("header is truncated"));
        }
        if &bytes[..8] != MAGIC {
            return Err(MediaFormatError::BadMagic);
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(MediaFormatError::UnsupportedVersion(version));
        }
        if bytes[10] != SEGMENT_LOG2 {
            return Err(MediaFormatError::Malformed("segment size"));
        }
        let mut media_id = [0u8; MEDIA_ID_LEN];
        media_id.copy_from_slice(&bytes[11..27]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[27..HEADER_LEN]);
        Ok(Self { media_id, nonce_prefix })
    }

    fn nonce(&self, index: u64, last: bool) -> Result<[u8; 24], MediaFormatError> {
        let counter = u32::try_from(index).map_err(|_| MediaFormatError::TooLong)?;
        let mut nonce = [0u8; 24];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(&self.nonce_prefix);
        nonce[NONCE_PREFIX_LEN..23].copy_from_slice(&counter.to_be_bytes());
        nonce[23] = u8::from(last);
        Ok(nonce)
    }
}

/// Number of segments for a plaintext of `len` bytes (at least one).
pub(crate) fn segment_count(len: u64) -> u64 {
    len.div_ceil(SEGMENT_LEN as u64).max(1)
}

/// Exact file length of a media file holding `len` plaintext bytes.
pub(crate) fn file_len(len: u64) -> u64 {
    HEADER_LEN as u64 + len + segment_count(len) * TAG_LEN as u64
}

/// Seals and opens the segments of one media file.
pub(crate) struct SegmentCipher {
    cipher: DetachedAead,
    header: MediaHeader,
    aad: [u8; HEADER_LEN],
}

impl SegmentCipher {
    pub(crate) fn new(key: &SecretKey, header: MediaHeader) -> Self {
        let aad = header.encode();
        Self { cipher: DetachedAead::new(key), header, aad }
    }

    pub(crate) fn header(&self) -> &MediaHeader {
        &self.header
    }

    /// Encrypts `buf` (≤ one segment) in place and returns the tag to append.
    pub(crate) fn seal(&self, index: u64, last: bool, buf: &mut [u8]) -> Result<[u8; TAG_LEN], MediaFormatError> {
        let nonce = self.header.nonce(index, last)?;
        self.cipher.seal_in_place(&nonce, &self.aad, buf).ok_or(MediaFormatError::TooLong)
    }

    /// Authenticates and decrypts `buf` in place. On failure `buf` is zeroed, so no
    /// unauthenticated byte can leak to a caller.
    pub(crate) fn open(&self, index: u64, last: bool, buf: &mut [u8], tag: &[u8]) -> Result<(), MediaFormatError> {
        let nonce = self.header.nonce(index, last)?;
        self.cipher.open_in_place(&nonce, &self.aad, buf, tag).map_err(|_| MediaFormatError::Authentication(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> SegmentCipher {
        let header = MediaHeader::generate([7; MEDIA_ID_LEN]).unwrap();
        SegmentCipher::new(&SecretKey::from_bytes([1; 32]), header)
    }

    #[test]
    fn header_round_trip_and_refusals() {
        let header = MediaHeader::generate([3; MEDIA_ID_LEN]).unwrap();
        let bytes = header.encode();
        assert_eq!(MediaHeader::decode(&bytes), Ok(header));
        assert!(matches!(MediaHeader::decode(&bytes[..HEADER_LEN - 1]), Err(MediaFormatError::Malformed(_))));
        let mut bad = bytes;
        bad[0] ^= 1;
        assert_eq!(MediaHeader::decode(&bad), Err(MediaFormatError::BadMagic));
        let mut bad = bytes;
        bad[8] = 2;
        assert_eq!(MediaHeader::decode(&bad), Err(MediaFormatError::UnsupportedVersion(2)));
        let mut bad = bytes;
        bad[10] = 20;
        assert!(matches!(MediaHeader::decode(&bad), Err(MediaFormatError::Malformed(_))));
    }

    #[test]
    fn segment_position_and_last_flag_are_authenticated() {
        let c = cipher();
        let mut buf = b"segment payload".to_vec();
        let tag = c.seal(5, false, &mut buf).unwrap();
        let sealed = buf.clone();
        for (index, last) in [(4, false), (6, false), (5, true)] {
            let mut attempt = sealed.clone();
            assert_eq!(c.open(index, last, &mut attempt, &tag), Err(MediaFormatError::Authentication(index)));
            assert!(attempt.iter().all(|&b| b == 0), "failed open leaves no bytes");
        }
        let mut ok = sealed.clone();
        assert!(c.open(5, false, &mut ok, &tag).is_ok());
        assert_eq!(ok, b"segment payload");
    }

    #[test]
    fn another_header_or_key_does_not_open() {
        let c = cipher();
        let mut buf = vec![9u8; 100];
        let tag = c.seal(0, true, &mut buf).unwrap();
        let other_id = SegmentCipher::new(
            &SecretKey::from_bytes([1; 32]),
            MediaHeader { media_id: [8; MEDIA_ID_LEN], ..c.header().clone() },
        );
        assert!(other_id.open(0, true, &mut buf.clone(), &tag).is_err());
        let other_key = SegmentCipher::new(&SecretKey::from_bytes([2; 32]), c.header().clone());
        assert!(other_key.open(0, true, &mut buf.clone(), &tag).is_err());
    }

    #[test]
    fn lengths() {
        assert_eq!(segment_count(0), 1);
        assert_eq!(segment_count(1), 1);
        assert_eq!(segment_count(SEGMENT_LEN as u64), 1);
        assert_eq!(segment_count(SEGMENT_LEN as u64 + 1), 2);
        assert_eq!(file_len(0), (HEADER_LEN + TAG_LEN) as u64);
        assert_eq!(file_len(SEGMENT_LEN as u64 * 2), (HEADER_LEN + 2 * SEALED_SEGMENT_LEN) as u64);
    }
}
