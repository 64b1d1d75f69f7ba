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

    /// Splits a whole buffer into its chunks.
    pub fn chunks<'d>(&self, data: &'d [u8]) -> Vec<&'d [u8]> {
        let mut out = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(self.cut(rest));
            out.push(chunk);
            rest = tail;
        }
        out
    }

    /// The lengths of the chunks at the start of `data`, each starting at least `keep` bytes
    /// before the end of `data`, until they add up to `run` bytes or more.
    fn cut_run(&self, data: &[u8], run: usize, keep: usize) -> Vec<usize> {
        let mut lengths = Vec::new();
        let mut start = 0;
        while start < run && data.len() - start >= keep.max(1) {
            let len = self.cut(&data[start..]);
            lengths.push(len);
            start += len;
        }
        lengths
    }

    /// Splits a whole buffer into chunk lengths.
    #[cfg(test)]
    pub fn chunk_lengths(&self, data: &[u8]) -> Vec<usize> {
        self.chunks(data).iter().map(|chunk| chunk.len()).collect()
    }
}

/// About how many bytes of chunks a [`ChunkStream`] hands out at once: some thousand export
/// chunks, so that their ids and seals are shared out over the cores in few hand-overs.
const STREAM_RUN: usize = 1 << 20;

/// A push-style chunker: feed it bytes as they are produced (for example by the database
/// export, which writes), and it hands out the chunks whose ends are decided, in runs of about
/// [`STREAM_RUN`] bytes. It finds the next run's cut points on rayon's pool (another core, when
/// the caller is not itself one of the pool's threads) while the caller works on a run. Holds at
/// most two runs and one maximum chunk, in a buffer allocated once and zeroized when dropped.
pub struct ChunkStream<'a> {
    chunker: &'a Chunker,
    buf: zeroize::Zeroizing<Vec<u8>>,
    /// The lengths of the chunks at the front of `buf` whose cut points are found, not yet handed
    /// out.
    decided: Vec<usize>,
    /// About how many bytes of chunks are handed out at once ([`STREAM_RUN`] but in tests).
    run: usize,
}

impl<'a> ChunkStream<'a> {
    /// A stream over `chunker`.
    pub fn new(chunker: &'a Chunker) -> Self {
        Self::with_run(chunker, STREAM_RUN)
    }

    fn with_run(chunker: &'a Chunker, run: usize) -> Self {
        let run = run.max(1);
        let buf = zeroize::Zeroizing::new(Vec::with_capacity(2 * run + chunker.params.max));
        Self { chunker, buf, decided: Vec::new(), run }
    }

    /// The most the buffer holds: it never grows past this, so no copy of the bytes is left
    /// behind by a reallocation.
    fn capacity(&self) -> usize {
        2 * self.run + self.chunker.params.max
    }

    /// Adds `data`; calls `each` with the chunks now complete, in order, whenever a run of them
    /// is ready. After an error from `each` the stream is spent: it would hand that run out again.
    pub fn push<E>(&mut self, mut data: &[u8], each: &mut impl FnMut(&[&[u8]]) -> Result<(), E>) -> Result<(), E> {
        let full = self.capacity();
        while !data.is_empty() {
            let (now, later) = data.split_at((full - self.buf.len()).min(data.len()));
            self.buf.extend_from_slice(now);
            data = later;
            // The first time, nothing is decided yet: the first run is cut, then handed out.
            while self.buf.len() >= full {
                self.advance(self.run, self.chunker.params.max, each)?;
            }
        }
        Ok(())
    }

    /// Hands the decided chunks to `each` on this thread while the pool finds the next
    /// chunks' cut points: at least `run` bytes of them, or all those that leave `keep` bytes
    /// buffered behind their cut (a cut looks at most one maximum chunk ahead, so with `keep` at
    /// the maximum these are decided).
    fn advance<E>(
        &mut self,
        run: usize,
        keep: usize,
        each: &mut impl FnMut(&[&[u8]]) -> Result<(), E>,
    ) -> Result<(), E> {
        let decided_len: usize = self.decided.iter().sum();
        let (decided, undecided) = self.buf.split_at(decided_len);
        let chunker = self.chunker;
        let mut next = Vec::new();
        let handed_out = rayon::in_place_scope(|scope| {
            scope.spawn(|_| next = chunker.cut_run(undecided, run, keep));
            let mut chunks = Vec::with_capacity(self.decided.len());
            let mut rest = decided;
            for &len in &self.decided {
                let (chunk, tail) = rest.split_at(len);
                chunks.push(chunk);
                rest = tail;
            }
            if chunks.is_empty() { Ok(()) } else { each(&chunks) }
        });
        handed_out?;
        self.buf.drain(..decided_len);
        self.decided = next;
        Ok(())
    }

    /// Hands out the remaining chunks at the end of the input.
    pub fn finish<E>(mut self, each: &mut impl FnMut(&[&[u8]]) -> Result<(), E>) -> Result<(), E> {
        self.advance(usize::MAX, 1, each)?;
        self.advance(usize::MAX, 1, each)
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
    fn streamed(chunker: &Chunker, data: &[u8], piece: usize, run: usize) -> Vec<Vec<u8>> {
        let mut chunks = Vec::new();
        let mut each = |run: &[&[u8]]| -> Result<(), ()> {
            chunks.extend(run.iter().map(|c| c.to_vec()));
            Ok(())
        };
        let mut stream = ChunkStream::with_run(chunker, run);
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
        let before: std::collections::HashSet<Vec<u8>> =
            streamed(&chunker, &data, 1 << 16, STREAM_RUN).into_iter().collect();
        let after = streamed(&chunker, &edited, 1 << 16, STREAM_RUN);
        let new = after.iter().filter(|c| !before.contains(*c)).count();
        assert!(new <= 3, "{new} new chunks after one insertion");
    }

    #[test]
    fn chunks_come_in_runs_and_the_buffer_never_grows() {
        let chunker = chunker(4);
        let data = pseudo_random(5 << 20, 5);
        let mut stream = ChunkStream::new(&chunker);
        let capacity = stream.buf.capacity();
        let mut runs = Vec::new();
        let mut each = |run: &[&[u8]]| -> Result<(), ()> {
            runs.push(run.iter().map(|c| c.len()).sum::<usize>());
            Ok(())
        };
        for part in data.chunks(3000) {
            stream.push(part, &mut each).unwrap();
            assert_eq!(stream.buf.capacity(), capacity, "the buffer was reallocated");
        }
        stream.finish(&mut each).unwrap();
        assert_eq!(runs.iter().sum::<usize>(), data.len());
        let max = ChunkParams::EXPORT.max;
        let (last, whole) = runs.split_last().unwrap();
        assert!(whole.len() >= 3, "runs {runs:?}");
        assert!(whole.iter().all(|&run| (STREAM_RUN - max..STREAM_RUN + max).contains(&run)), "runs {runs:?}");
        assert!(*last <= 2 * STREAM_RUN + max, "runs {runs:?}");
    }

    proptest! {
        #[test]
        fn pushing_matches_whole_buffer_chunking(
            len in 0usize..300_000, seed in any::<u64>(), piece in 1usize..20_000, run in 1usize..50_000
        ) {
            let chunker = chunker(9);
            let data = pseudo_random(len, seed);
            let mut stream = ChunkStream::with_run(&chunker, run);
            let mut lengths = Vec::new();
            let mut each = |run: &[&[u8]]| -> Result<(), ()> {
                lengths.extend(run.iter().map(|c| c.len()));
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
            len in 0usize..300_000, seed in any::<u64>(), read_size in 1usize..20_000, run in 1usize..50_000
        ) {
            let chunker = chunker(9);
            let data = pseudo_random(len, seed);
            let chunks = streamed(&chunker, &data, read_size, run);
            let lengths: Vec<usize> = chunks.iter().map(Vec::len).collect();
            prop_assert_eq!(lengths, chunker.chunk_lengths(&data));
            prop_assert_eq!(chunks.concat(), data);
        }
    }
}
