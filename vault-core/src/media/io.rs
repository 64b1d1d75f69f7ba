//! Streaming encryption into, and random-access decryption out of, one media file, in constant
//! memory: imports and sequential reads work in batches of 16 segments sealed or opened in
//! parallel (at most four zeroizing 1 MiB batch buffers), random reads one segment at a time.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use zeroize::Zeroizing;

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

/// Segments sealed or opened together, in parallel (1 MiB of plaintext per batch).
const BATCH_SEGMENTS: usize = 16;
const BATCH_LEN: usize = BATCH_SEGMENTS * SEGMENT_LEN;

/// Runs `f(index, chunk)` over the `chunk_len`-sized chunks of `buf` in parallel (rayon's
/// pool), and returns the error of the lowest-indexed chunk that failed, if any: every chunk
/// before it succeeded.
fn for_each_chunk_parallel<E: Send>(
    buf: &mut [u8],
    chunk_len: usize,
    f: impl Fn(usize, &mut [u8]) -> Result<(), E> + Sync,
) -> Result<(), E> {
    use rayon::prelude::*;

    let results: Vec<Result<(), E>> = buf.par_chunks_mut(chunk_len).enumerate().map(|(j, c)| f(j, c)).collect();
    results.into_iter().collect()
}

/// A batch buffer: holds plaintext while it is read and sealed, so it is zeroed when dropped,
/// whichever way the import ends.
type Batch = Zeroizing<Vec<u8>>;

fn new_batch() -> Batch {
    Zeroizing::new(vec![0u8; BATCH_SEGMENTS * SEALED_SEGMENT_LEN])
}

/// Batch buffers an import may hold at once: one being filled and sealed, one read ahead, and
/// up to two queued for or being written (about 4 MiB).
const MAX_BATCH_BUFFERS: usize = 4;

/// Encrypts everything `input` yields into `output` (header first). Returns the plaintext
/// length. Works in batches of [`BATCH_SEGMENTS`] segments sealed in parallel, reading one batch
/// ahead so the final segment is known, while a writer thread writes the previous batch; memory
/// stays at [`MAX_BATCH_BUFFERS`] batch buffers.
pub(crate) fn encrypt(
    cipher: &SegmentCipher,
    input: &mut dyn Read,
    output: &mut (dyn Write + Send),
) -> Result<u64, StreamError> {
    use std::sync::mpsc::{channel, sync_channel};

    output.write_all(&cipher.header().encode())?;
    std::thread::scope(|scope| {
        let (to_writer, queued) = sync_channel::<(Batch, usize)>(1);
        let (to_pool, pool) = channel::<Batch>();
        let writer = scope.spawn(move || -> io::Result<()> {
            for (buf, n) in queued {
                output.write_all(&buf[..n])?;
                let _ = to_pool.send(buf);
            }
            Ok(())
        });
        let sealing = seal_batches(cipher, input, &to_writer, &pool);
        drop(to_writer);
        let written = writer.join().map_err(|_| io::Error::other("the media writer thread panicked"))?;
        // A write error stops the writer, which makes sealing fail too: report the write error.
        written?;
        // Every buffer is zeroed when dropped (`Batch`), on success and on error alike.
        let (total, _buffers) = sealing?;
        Ok(total)
    })
}

/// The sealing side of [`encrypt`]: reads, seals in parallel, hands batches to the writer.
/// Returns the plaintext length and the buffers it still holds (for zeroing).
fn seal_batches(
    cipher: &SegmentCipher,
    input: &mut dyn Read,
    to_writer: &std::sync::mpsc::SyncSender<(Batch, usize)>,
    pool: &std::sync::mpsc::Receiver<Batch>,
) -> Result<(u64, Vec<Batch>), StreamError> {
    let mut allocated = 2;
    let next_buffer = |allocated: &mut usize| -> Result<Batch, StreamError> {
        if let Ok(buf) = pool.try_recv() {
            return Ok(buf);
        }
        if *allocated < MAX_BATCH_BUFFERS {
            *allocated += 1;
            return Ok(new_batch());
        }
        pool.recv().map_err(|_| StreamError::Io(io::Error::other("the media writer stopped")))
    };
    // Plaintext is read straight into its place in the sealed layout (one segment per
    // SEALED_SEGMENT_LEN stride) and encrypted in place: no copy between read and write.
    let mut current = new_batch();
    let mut ahead = new_batch();
    let mut plain_len = read_batch(input, &mut current)?;
    let mut first_index = 0u64;
    let mut total = 0u64;
    loop {
        let ahead_len = if plain_len == BATCH_LEN { read_batch(input, &mut ahead)? } else { 0 };
        let final_batch = ahead_len == 0;
        // An empty input is still one (empty, final) segment.
        let segments = plain_len.div_ceil(SEGMENT_LEN).max(1);
        for_each_chunk_parallel(&mut current[..segments * SEALED_SEGMENT_LEN], SEALED_SEGMENT_LEN, |j, chunk| {
            let len = plain_len.saturating_sub(j * SEGMENT_LEN).min(SEGMENT_LEN);
            let last = final_batch && j + 1 == segments;
            let tag = cipher.seal(first_index + j as u64, last, &mut chunk[..len])?;
            chunk[len..len + TAG_LEN].copy_from_slice(&tag);
            Ok::<(), MediaFormatError>(())
        })?;
        // Full segments fill their stride exactly and only the last can be short, so the
        // sealed batch is contiguous.
        let sealed_len = plain_len + segments * TAG_LEN;
        total += plain_len as u64;
        if final_batch {
            to_writer
                .send((current, sealed_len))
                .map_err(|_| StreamError::Io(io::Error::other("the media writer stopped")))?;
            return Ok((total, vec![ahead]));
        }
        let spare = next_buffer(&mut allocated)?;
        let sealed = std::mem::replace(&mut current, std::mem::replace(&mut ahead, spare));
        to_writer
            .send((sealed, sealed_len))
            .map_err(|_| StreamError::Io(io::Error::other("the media writer stopped")))?;
        plain_len = ahead_len;
        first_index += segments as u64;
    }
}

/// Reads up to one batch of plaintext into the segment slots of `buf`; returns the bytes read
/// (less than a batch only when the input ended).
fn read_batch(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut total = 0;
    for slot in buf.chunks_mut(SEALED_SEGMENT_LEN) {
        let n = read_full(input, &mut slot[..SEGMENT_LEN])?;
        total += n;
        if n < SEGMENT_LEN {
            break;
        }
    }
    Ok(total)
}

/// A decrypting, seekable view of one media file. Only authenticated bytes are ever returned.
/// `Read` holds at most one segment of plaintext; [`MediaReader::copy_range_to`] one batch.
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
        let cipher = cipher_for(header);
        if len == 0 {
            // No read would ever touch the single empty final segment: authenticate it here.
            let mut tag = [0u8; TAG_LEN];
            file.read_exact(&mut tag)?;
            cipher.open(0, true, &mut [], &tag)?;
        }
        Ok(Self {
            file,
            cipher,
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

    /// Decrypts `len` plaintext bytes from `offset` into `out`, a batch of segments at a time
    /// in parallel (sequential export and verification). Stops at the first segment that fails
    /// authentication, before writing any of its bytes. Returns the bytes written.
    pub fn copy_range_to(&mut self, offset: u64, len: u64, out: &mut dyn Write) -> io::Result<u64> {
        let end = offset
            .checked_add(len)
            .filter(|end| *end <= self.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the range is past the end of the media"))?;
        if len == 0 {
            return Ok(0);
        }
        let seg = SEGMENT_LEN as u64;
        let last_index = segment_count(self.len) - 1;
        let mut batch = new_batch();
        let mut index = offset / seg;
        let end_index = (end - 1) / seg;
        let mut written = 0u64;
        while index <= end_index {
            let count = (end_index - index + 1).min(BATCH_SEGMENTS as u64) as usize;
            let batch_end = index + count as u64 - 1;
            let plain_in_batch = if batch_end == last_index {
                (count as u64 - 1) * seg + (self.len - last_index * seg)
            } else {
                count as u64 * seg
            };
            let bytes = usize::try_from(plain_in_batch).map_err(io::Error::other)? + count * TAG_LEN;
            self.file.seek(SeekFrom::Start(HEADER_LEN as u64 + index * SEALED_SEGMENT_LEN as u64))?;
            self.file.read_exact(&mut batch[..bytes])?;
            self.segments_decrypted += count as u64;
            let cipher = &self.cipher;
            // Groups are contiguous and their results are taken in order, so the error (if any)
            // names the earliest failing segment: everything before it is authenticated.
            let opened = for_each_chunk_parallel(&mut batch[..bytes], SEALED_SEGMENT_LEN, |j, chunk| {
                let i = index + j as u64;
                let (body, tag) = chunk.split_at_mut(chunk.len() - TAG_LEN);
                cipher.open(i, i == last_index, body, tag)
            });
            let good = match &opened {
                Ok(()) => count,
                Err(MediaFormatError::Authentication(i)) => {
                    usize::try_from(i.saturating_sub(index)).unwrap_or(0).min(count)
                }
                Err(_) => 0,
            };
            for j in 0..good {
                let i = index + j as u64;
                let seg_start = i * seg;
                let seg_len = if i == last_index { self.len - seg_start } else { seg };
                let from = offset.max(seg_start) - seg_start;
                let to = end.min(seg_start + seg_len) - seg_start;
                let base = j * SEALED_SEGMENT_LEN;
                out.write_all(&batch[base + from as usize..base + to as usize])?;
                written += to - from;
            }
            if let Err(e) = opened {
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            index += count as u64;
        }
        self.segment_index = None;
        self.position = end;
        Ok(written)
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
    fn parallel_range_copy_matches_at_every_boundary() {
        for size in BOUNDARY_SIZES.iter().copied().chain([17 * SEGMENT_LEN + 5, 33 * SEGMENT_LEN]) {
            let data = plaintext(size);
            let (tmp, _) = sealed_file(&data);
            for (offset, len) in [(0, size), (size / 3, size / 2), (size.saturating_sub(1), size.min(1)), (0, 0)] {
                let mut r = reopen(&tmp, size as u64);
                let mut out = Vec::new();
                let n = r.copy_range_to(offset as u64, len as u64, &mut out).unwrap();
                assert_eq!(n as usize, len);
                assert_eq!(out, &data[offset..offset + len], "size {size} offset {offset} len {len}");
            }
            let mut r = reopen(&tmp, size as u64);
            assert!(r.copy_range_to(0, size as u64 + 1, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn parallel_range_copy_stops_before_a_damaged_segment() {
        let data = plaintext(20 * SEGMENT_LEN);
        let (tmp, _) = sealed_file(&data);
        let mut bytes = std::fs::read(tmp.path()).unwrap();
        bytes[HEADER_LEN + 18 * SEALED_SEGMENT_LEN + 9] ^= 1;
        std::fs::write(tmp.path(), &bytes).unwrap();
        let mut r = reopen(&tmp, data.len() as u64);
        let mut out = Vec::new();
        assert!(r.copy_range_to(0, data.len() as u64, &mut out).is_err());
        assert!(out == data[..18 * SEGMENT_LEN], "every authenticated segment before the damaged one, nothing after");
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
    fn an_empty_items_tag_is_authenticated_at_open() {
        let (tmp, _) = sealed_file(&[]);
        let original = std::fs::read(tmp.path()).unwrap();
        for byte in HEADER_LEN..original.len() {
            let mut tampered = original.clone();
            tampered[byte] ^= 0x20;
            std::fs::write(tmp.path(), &tampered).unwrap();
            let opened =
                MediaReader::open(tmp.reopen().unwrap(), |h| SegmentCipher::new(&key(), h), &[5; MEDIA_ID_LEN], 0);
            assert!(opened.is_err(), "tag byte {byte} flipped");
        }
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
