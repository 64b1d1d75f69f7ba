//! Streaming encryption into, and random-access decryption out of, one media file, in constant
//! memory (two segment buffers).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use super::stream::{
    HEADER_LEN, MediaFormatError, MediaHeader, SEALED_SEGMENT_LEN, SEGMENT_LEN, SegmentCipher, TAG_LEN, file_len,
    segment_count,
};

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Why streaming failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Format(#[from] MediaFormatError),
}

/// Encrypts everything `input` yields into `output` (header first). Returns the plaintext length.
pub(crate) fn encrypt(
    cipher: &SegmentCipher,
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> Result<u64, StreamError> {
    output.write_all(&cipher.header().encode())?;
    let mut current = vec![0u8; SEALED_SEGMENT_LEN];
    let mut next = vec![0u8; SEALED_SEGMENT_LEN];
    let mut current_len = read_full(input, &mut current[..SEGMENT_LEN])?;
    let mut index = 0u64;
    let mut total = 0u64;
    loop {
        // A short segment means the input ended; a full one needs a look ahead.
        let next_len = if current_len == SEGMENT_LEN { read_full(input, &mut next[..SEGMENT_LEN])? } else { 0 };
        let last = next_len == 0;
        let tag = cipher.seal(index, last, &mut current[..current_len])?;
        current[current_len..current_len + TAG_LEN].copy_from_slice(&tag);
        output.write_all(&current[..current_len + TAG_LEN])?;
        total += current_len as u64;
        if last {
            break;
        }
        std::mem::swap(&mut current, &mut next);
        current_len = next_len;
        index += 1;
    }
    current.fill(0);
    next.fill(0);
    Ok(total)
}

/// A decrypting, seekable view of one media file. Only authenticated bytes are ever returned;
/// at most one segment of plaintext is held in memory.
pub struct MediaReader<R = File> {
    file: R,
    cipher: SegmentCipher,
    len: u64,
    position: u64,
    segment: Vec<u8>,
    segment_index: Option<u64>,
    segment_plain_len: usize,
    segments_decrypted: u64,
}

impl<R> std::fmt::Debug for MediaReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaReader").field("len", &self.len).field("position", &self.position).finish_non_exhaustive()
    }
}

impl<R: Read + Seek> MediaReader<R> {
    /// Opens a media file whose plaintext length is known from the (authenticated) database.
    /// The header must carry `expected_id` and the file must have exactly the expected length,
    /// so a truncated, extended or swapped file is refused before any read.
    pub(crate) fn open(
        mut file: R,
        cipher_for: impl FnOnce(MediaHeader) -> SegmentCipher,
        expected_id: &[u8; super::stream::MEDIA_ID_LEN],
        len: u64,
    ) -> Result<Self, StreamError> {
        let actual = file.seek(SeekFrom::End(0))?;
        let expected = (len <= u64::MAX / 2).then(|| file_len(len));
        if Some(actual) != expected {
            return Err(MediaFormatError::Malformed("the file length does not match the stored length").into());
        }
        file.seek(SeekFrom::Start(0))?;
        let mut header = [0u8; HEADER_LEN];
        file.read_exact(&mut header)?;
        let header = MediaHeader::decode(&header)?;
        if &header.media_id != expected_id {
            return Err(MediaFormatError::Malformed("the file belongs to another media item").into());
        }
        Ok(Self {
            file,
            cipher: cipher_for(header),
            len,
            position: 0,
            segment: vec![0u8; SEALED_SEGMENT_LEN],
            segment_index: None,
            segment_plain_len: 0,
            segments_decrypted: 0,
        })
    }

    /// The plaintext length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many segments this reader has decrypted so far (to check random access cost).
    pub fn segments_decrypted(&self) -> u64 {
        self.segments_decrypted
    }

    fn load_segment(&mut self, index: u64) -> io::Result<()> {
        if self.segment_index == Some(index) {
            return Ok(());
        }
        self.segment_index = None;
        let last_index = segment_count(self.len) - 1;
        let plain_len = if index == last_index {
            usize::try_from(self.len - index * SEGMENT_LEN as u64).map_err(io::Error::other)?
        } else {
            SEGMENT_LEN
        };
        let offset = HEADER_LEN as u64 + index * SEALED_SEGMENT_LEN as u64;
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut self.segment[..plain_len + TAG_LEN])?;
        let (body, tag) = self.segment[..plain_len + TAG_LEN].split_at_mut(plain_len);
        self.segments_decrypted += 1;
        self.cipher
            .open(index, index == last_index, body, tag)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.segment_index = Some(index);
        self.segment_plain_len = plain_len;
        Ok(())
    }
}

impl<R: Read + Seek> Read for MediaReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.position >= self.len {
            return Ok(0);
        }
        let index = self.position / SEGMENT_LEN as u64;
        self.load_segment(index)?;
        let within = usize::try_from(self.position - index * SEGMENT_LEN as u64).map_err(io::Error::other)?;
        let available = self.segment_plain_len - within;
        let n = available.min(buf.len());
        buf[..n].copy_from_slice(&self.segment[within..within + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for MediaReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let target = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.position = target;
        Ok(target)
    }
}

impl<R> Drop for MediaReader<R> {
    fn drop(&mut self) {
        self.segment.fill(0);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::stream::MEDIA_ID_LEN;
    use super::*;
    use crate::secret::SecretKey;

    fn key() -> SecretKey {
        SecretKey::from_bytes([42; 32])
    }

    fn plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Encrypts into a temp file and returns an open reader.
    fn sealed_file(data: &[u8]) -> (tempfile::NamedTempFile, MediaReader) {
        let header = MediaHeader::generate([5; MEDIA_ID_LEN]).unwrap();
        let cipher = SegmentCipher::new(&key(), header);
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let len = encrypt(&cipher, &mut &data[..], tmp.as_file_mut()).unwrap();
        assert_eq!(len, data.len() as u64);
        let reader = reopen(&tmp, len);
        (tmp, reader)
    }

    fn reopen(tmp: &tempfile::NamedTempFile, len: u64) -> MediaReader {
        MediaReader::open(tmp.reopen().unwrap(), |h| SegmentCipher::new(&key(), h), &[5; MEDIA_ID_LEN], len).unwrap()
    }

    const BOUNDARY_SIZES: [usize; 9] = [
        0,
        1,
        SEGMENT_LEN - 1,
        SEGMENT_LEN,
        SEGMENT_LEN + 1,
        2 * SEGMENT_LEN,
        2 * SEGMENT_LEN + 7,
        3 * SEGMENT_LEN - 1,
        5 * SEGMENT_LEN,
    ];

    #[test]
    fn round_trip_at_every_size_around_segment_boundaries() {
        for size in BOUNDARY_SIZES {
            let data = plaintext(size);
            let (tmp, mut reader) = sealed_file(&data);
            assert_eq!(std::fs::metadata(tmp.path()).unwrap().len(), file_len(size as u64));
            let mut out = Vec::new();
            reader.read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "size {size}");
        }
    }

    #[test]
    fn a_64k_read_at_any_offset_decrypts_at_most_two_segments() {
        let data = plaintext(10 * SEGMENT_LEN + 123);
        let (_tmp, reader) = sealed_file(&data);
        let len = reader.len();
        drop(reader);
        let (tmp, _) = sealed_file(&data);
        for offset in [0u64, 1, 65_535, 65_536, 300_001, len - 65_536] {
            let mut r = reopen(&tmp, len);
            r.seek(SeekFrom::Start(offset)).unwrap();
            let mut buf = vec![0u8; SEGMENT_LEN];
            r.read_exact(&mut buf).unwrap();
            assert_eq!(&buf[..], &data[offset as usize..offset as usize + SEGMENT_LEN]);
            assert!(r.segments_decrypted() <= 2, "offset {offset}: {} segments", r.segments_decrypted());
        }
    }

    fn read_all(tmp: &tempfile::NamedTempFile, len: u64) -> Result<Vec<u8>, String> {
        let file = tmp.reopen().map_err(|e| e.to_string())?;
        let mut reader = MediaReader::open(file, |h| SegmentCipher::new(&key(), h), &[5; MEDIA_ID_LEN], len)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn truncation_reordering_and_swaps_are_detected() {
        let data = plaintext(3 * SEGMENT_LEN + 100);
        let (tmp, _) = sealed_file(&data);
        let len = data.len() as u64;
        let original = std::fs::read(tmp.path()).unwrap();
        let seg = |i: usize| HEADER_LEN + i * SEALED_SEGMENT_LEN;

        // Whole final segment dropped, with the stored length adjusted to match the file.
        std::fs::write(tmp.path(), &original[..seg(3)]).unwrap();
        assert!(read_all(&tmp, 3 * SEGMENT_LEN as u64).is_err(), "dropped final segment");
        // Truncated by a byte (length mismatch).
        std::fs::write(tmp.path(), &original[..original.len() - 1]).unwrap();
        assert!(read_all(&tmp, len).is_err());
        // Two segments swapped.
        let mut swapped = original.clone();
        swapped[seg(0)..seg(1)].copy_from_slice(&original[seg(1)..seg(2)]);
        swapped[seg(1)..seg(2)].copy_from_slice(&original[seg(0)..seg(1)]);
        std::fs::write(tmp.path(), &swapped).unwrap();
        assert!(read_all(&tmp, len).is_err());
        // A segment from another file with the same key and id but another nonce prefix.
        let (other, _) = sealed_file(&data);
        let other_bytes = std::fs::read(other.path()).unwrap();
        let mut spliced = original.clone();
        spliced[seg(1)..seg(2)].copy_from_slice(&other_bytes[seg(1)..seg(2)]);
        std::fs::write(tmp.path(), &spliced).unwrap();
        assert!(read_all(&tmp, len).is_err());
        std::fs::write(tmp.path(), &original).unwrap();
        assert_eq!(read_all(&tmp, len).unwrap(), data);
    }

    #[test]
    fn a_file_of_another_item_is_refused_at_open() {
        let (tmp, _) = sealed_file(b"hello");
        let result = MediaReader::open(tmp.reopen().unwrap(), |h| SegmentCipher::new(&key(), h), &[6; MEDIA_ID_LEN], 5);
        assert!(result.is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any single flipped bit anywhere in the file makes some read fail, and no read ever
        /// returns a byte that differs from the original.
        #[test]
        fn bit_flips_never_yield_wrong_bytes(size in 0usize..(3 * SEGMENT_LEN), bit in any::<u64>(), offset in any::<u64>()) {
            let data = plaintext(size);
            let (tmp, _) = sealed_file(&data);
            let mut bytes = std::fs::read(tmp.path()).unwrap();
            let bit = bit % (bytes.len() as u64 * 8);
            bytes[(bit / 8) as usize] ^= 1 << (bit % 8);
            std::fs::write(tmp.path(), &bytes).unwrap();
            prop_assert!(read_all(&tmp, size as u64).is_err());
            if let Ok(file) = tmp.reopen()
                && let Ok(mut r) = MediaReader::open(file, |h| SegmentCipher::new(&key(), h), &[5; MEDIA_ID_LEN], size as u64)
            {
                let start = if size == 0 { 0 } else { offset % size as u64 };
                r.seek(SeekFrom::Start(start)).unwrap();
                let mut buf = vec![0u8; 1000];
                if let Ok(n) = r.read(&mut buf) {
                    prop_assert_eq!(&buf[..n], &data[start as usize..start as usize + n]);
                }
            }
        }

        /// Arbitrary bytes as a media file, with any claimed length, never panic the reader and
        /// never yield a byte.
        #[test]
        fn arbitrary_files_never_panic_or_yield(bytes in proptest::collection::vec(any::<u8>(), 0..300), len in 0u64..400) {
            let opened = MediaReader::open(std::io::Cursor::new(bytes), |h| SegmentCipher::new(&key(), h), &[5; MEDIA_ID_LEN], len);
            if let Ok(mut reader) = opened {
                let mut out = Vec::new();
                prop_assert!(reader.read_to_end(&mut out).is_err() || (len == 0 && out.is_empty()));
            }
        }

        #[test]
        fn random_reads_match(size in 1usize..(4 * SEGMENT_LEN), offset in any::<u64>(), len in 0usize..(2 * SEGMENT_LEN)) {
            let data = plaintext(size);
            let (_tmp, mut r) = sealed_file(&data);
            let start = (offset % size as u64) as usize;
            r.seek(SeekFrom::Start(start as u64)).unwrap();
            let mut out = vec![0u8; len];
            let n = read_full(&mut r, &mut out).unwrap();
            prop_assert_eq!(&out[..n], &data[start..(start + len).min(size)]);
        }
    }
}
