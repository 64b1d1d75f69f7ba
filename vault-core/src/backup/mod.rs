//! The encrypted, deduplicated backup (`docs/backup.md`): backup runs, restore, maintenance and
//! the transports they store objects through.
//!
//! The building blocks (the keys derived from the Backup Root Key, keyed content-defined chunking,
//! sealed chunks, size padding, pack objects and the other sealed objects) stay inside the crate;
//! the benchmarks reach the chunk-and-seal step through `bench_support`, the fuzz targets the
//! decoders through `fuzz_support`. Every format here is versioned and specified in
//! `docs/formats.md`.

pub(crate) mod chunker;
pub(crate) mod format;
pub(crate) mod keys;
pub(crate) mod maintain;
pub(crate) mod pack;
pub(crate) mod padding;
mod remote;
pub(crate) mod restore;
pub(crate) mod run;
pub(crate) mod transport;

pub(crate) use keys::BackupKeys;
#[cfg(fuzzing)]
pub(crate) use keys::ChunkId;
pub use maintain::{BackupCheck, PruneReport, SnapshotInfo};
#[cfg(fuzzing)]
pub(crate) use pack::PackEntry;
pub use padding::padme_len;
pub use restore::{BackupRootKey, RestoreReport};
pub use run::BackupReport;
pub use transport::{DirTransport, RepeatableSource, Transport, TransportError};
