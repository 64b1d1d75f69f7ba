//! Building blocks of the encrypted, deduplicated backup (`docs/backup.md`): the keys derived
//! from the Backup Root Key, keyed content-defined chunking, sealed chunks, size padding, and pack
//! objects. The backup run, restore and their transports are built on these.
//!
//! Every format here is versioned and specified in `docs/formats.md`.

pub mod chunker;
pub mod format;
pub mod keys;
pub(crate) mod maintain;
pub mod pack;
pub mod padding;
mod remote;
pub(crate) mod restore;
pub(crate) mod run;
pub mod transport;

pub use chunker::{ChunkParams, ChunkStream, Chunker};
pub use keys::{BackupKeys, ChunkId};
pub use maintain::{BackupCheck, PruneReport, SnapshotInfo};
pub use pack::{PackEntry, PackError, PackWriter, open_chunk};
pub use padding::padme_len;
pub use restore::{BackupRootKey, RestoreReport};
pub use run::{BackupReport, PACK_TARGET};
pub use transport::{DirTransport, Transport, TransportError};
