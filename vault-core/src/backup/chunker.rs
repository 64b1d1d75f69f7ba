//! Content-defined chunking: FastCDC v2020 (`fastcdc` 5.0.0, pinned) driven through `cut_gear`
//! with a gear table derived from the Backup Root Key, so cut points depend on a secret and cannot
//! be predicted or fingerprinted from chunk lengths by anyone without the key.

use fastcdc::v2020::{Normalization, cut_gear, select_masks};

/// Minimum, average and maximum chunk sizes (all even, within fastcdc's bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    /// Smallest chunk (except the last).
    pub min: usize,
    /// Target average chunk.
    pub avg: usize,
    /// Largest chunk.
    pub max: usize,
}

impl ChunkParams {
    /// For the database export: small chunks, so an edit re-uploads little (`docs/backup.md`).
    pub const EXPORT: Self = Self { min: 256, avg: 1024, max: 4096 };
    /// For snapshot trees (lists of 64-byte entries: chunk id and chunk key): about four entries
    /// per chunk, so a changed export chunk re-uploads little of the tree.
    pub const TREE: Self = Self { min: 64, avg: 256, max: 1024 };
}

/// A keyed FastCDC chunker.
pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    params: ChunkParams,
    masks: (u64, u64),
}

impl Chunker {
    /// A chunker over `gear` (from [`super::BackupKeys::gear`]) with `params`.
    pub fn new(gear: &[u64; 256], params: ChunkParams) -> Self {
        let mut gear_ls = Box::new([0u64; 256]);
        for (shifted, value) in gear_ls.iter_mut().zip(gear.iter()) {
            *shifted = value << 1;
        }
        Self { gear: Box::new(*gear), gear_ls, params, masks: select_masks(params.avg, Normalization::Level1) }
    }

    /// The length of the first chunk of `data`, given that `data` holds at least `max` bytes or
    /// reaches the end of the input.
    fn cut(&self, data: &[u8]) -> usize {
        let (mask_s, mask_l) = self.masks;
        let p = self.params;
        let (_, len) = cut_gear(
            data,
            p.min,
            p.avg,
            p.max,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
            &self.gear[..],
            &self.gear_ls[..],
        );
        len.clamp(1, data.len().max(1))
    }

    /// Splits a whole buffer into chunk lengths.
    pub fn chunk_lengths(&self, data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let len = self.cut(rest);
            out.push(len);
            rest = &rest[len..];
        }
        out
    }
}

/// A push-style chunker: feed it bytes as they are produced (for example by the database
/// export, which writes), and it hands out every chunk whose end is decided. Holds at most about
/// two maximum chunks.
pub struct ChunkStream<'a> {
    chunker: &'a Chunker,
    buf: zeroize::Zeroizing<Vec<u8>>,
}

impl<'a> ChunkStream<'a> {
    /// A stream over `chunker`.
    pub fn new(chunker: &'a Chunker) -> Self {
        Self { chunker, buf: zeroize::Zeroizing::new(Vec::with_capacity(chunker.params.max * 3)) }
    }

    /// Adds `data`; calls `each` for every chunk now complete.
    pub fn push<E>(&mut self, mut data: &[u8], each: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let max = self.chunker.params.max;
        while !data.is_empty() {
            let room = (max * 2).saturating_sub(self.buf.len()).max(1);
            let (now, later) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = later;
            self.drain(max, each)?;
        }
        Ok(())
    }

    /// Emits chunks while at least `keep` bytes stay buffered behind the cut.
    fn drain<E>(&mut self, keep: usize, each: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let mut start = 0;
        while self.buf.len() - start >= keep.max(1) {
            let len = self.chunker.cut(&self.buf[start..]);
            each(&self.buf[start..start + len])?;
            start += len;
        }
        self.buf.drain(..start);
        Ok(())
    }

    /// Emits the remaining chunks at the end of the input.
    pub fn finish<E>(mut self, each: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.drain(1, each)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupKeys;
    use crate::secret::SecretKey;
    use proptest::prelude::*;

    fn chunker(seed: u8) -> Chunker {
        Chunker::new(BackupKeys::derive(&SecretKey::from_bytes([seed; 32])).gear(), ChunkParams::EXPORT)
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    /// The chunks of `data` fed to a [`ChunkStream`] in pieces of `piece` bytes.
    fn streamed(chunker: &Chunker, data: &[u8], piece: usize) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut each = |c: &[u8]| -> Result<(), ()> {
            chunks.push(c.to_vec());
            Ok(())
        };
        let mut stream = ChunkStream::new(chunker);
        for part in data.chunks(piece) {
            stream.push(part, &mut each).unwrap();
        }
        stream.finish(&mut each).unwrap();
        chunks
    }

    #[test]
    fn sizes_stay_in_bounds_and_average_near_the_target() {
        let data = pseudo_random(4 << 20, 7);
        let lengths = chunker(1).chunk_lengths(&data);
        let p = ChunkParams::EXPORT;
        assert!(lengths[..lengths.len() - 1].iter().all(|l| (p.min..=p.max).contains(l)));
        let mean = data.len() / lengths.len();
        assert!((p.avg / 2..=p.avg * 2).contains(&mean), "mean chunk {mean}");
    }

    #[test]
    fn cut_points_depend_on_the_key() {
        let data = pseudo_random(1 << 20, 3);
        assert_eq!(chunker(1).chunk_lengths(&data), chunker(1).chunk_lengths(&data));
        assert_ne!(chunker(1).chunk_lengths(&data), chunker(2).chunk_lengths(&data));
    }

    #[test]
    fn an_insertion_changes_only_nearby_chunks() {
        let chunker = chunker(5);
        let data = pseudo_random(2 << 20, 11);
        let mut edited = data.clone();
        edited.splice(1 << 20..1 << 20, b"a few inserted bytes".iter().copied());
        let before: std::collections::HashSet<Vec<u8>> = streamed(&chunker, &data, 1 << 16).into_iter().collect();
        let after = streamed(&chunker, &edited, 1 << 16);
        let new = after.iter().filter(|c| !before.contains(*c)).count();
        assert!(new <= 3, "{new} new chunks after one insertion");
    }

    proptest! {
        #[test]
        fn pushing_matches_whole_buffer_chunking(len in 0usize..60_000, seed in any::<u64>(), piece in 1usize..20_000) {
            let chunker = chunker(9);
            let data = pseudo_random(len, seed);
            let mut stream = ChunkStream::new(&chunker);
            let mut lengths = Vec::new();
            let mut each = |c: &[u8]| -> Result<(), ()> {
                lengths.push(c.len());
                Ok(())
            };
            for part in data.chunks(piece) {
                stream.push(part, &mut each).unwrap();
            }
            stream.finish(&mut each).unwrap();
            prop_assert_eq!(lengths, chunker.chunk_lengths(&data));
        }

        #[test]
        fn streaming_matches_whole_buffer_chunking_and_reassembles(
            len in 0usize..60_000, seed in any::<u64>(), read_size in 1usize..20_000
        ) {
            let chunker = chunker(9);
            let data = pseudo_random(len, seed);
            let chunks = streamed(&chunker, &data, read_size);
            let lengths: Vec<usize> = chunks.iter().map(Vec::len).collect();
            prop_assert_eq!(lengths, chunker.chunk_lengths(&data));
            prop_assert_eq!(chunks.concat(), data);
        }
    }
}
