//! Entry points for the fuzz targets in `fuzz/`: every parser of untrusted bytes. Not part of the
//! API, and compiled only under `--cfg fuzzing` (set by cargo-fuzz), so the sealing helpers the
//! targets need never reach a normal build.

use std::io::Read;

/// Parses a key-slot file; true if it parsed.
pub fn parse_slot_file(bytes: &[u8]) -> bool {
    crate::keys::slot_file::SlotFile::decode(bytes).is_ok()
}

/// Parses a media header; true if it parsed.
pub fn parse_media_header(bytes: &[u8]) -> bool {
    crate::media::stream::MediaHeader::decode(bytes).is_ok()
}

/// Opens `file` as a media file of plaintext length `len` under a fixed key and id, and reads
/// it all; returns the bytes read before the first error.
pub fn read_media_file(file: &[u8], len: u64) -> usize {
    let key = crate::secret::SecretKey::from_bytes([7; 32]);
    let cipher_for = |h| crate::media::stream::SegmentCipher::new(&key, h);
    let Ok(mut reader) = crate::media::io::MediaReader::open(std::io::Cursor::new(file), cipher_for, &[0; 16], len)
    else {
        return 0;
    };
    let mut out = Vec::new();
    let _ = reader.read_to_end(&mut out);
    out.len()
}

fn backup_key() -> crate::secret::SecretKey {
    crate::secret::SecretKey::from_bytes([9; 32])
}

fn backup_keys() -> crate::backup::BackupKeys {
    crate::backup::BackupKeys::derive(&backup_key())
}

/// Decodes `data` as the plaintext of a manifest, an index object, a head record and a keyring
/// (sealed under a fixed key, then opened as a restore does), as a snapshot tree, and as each of
/// those sealed objects itself; returns how many decoded.
pub fn decode_backup_objects(data: &[u8]) -> usize {
    use crate::backup::format::{FUZZ_TOKEN, FuzzObject, Head, Manifest, Tree, open_index, seal_for_fuzzing};
    use crate::backup::keys::GenerationToken;
    let keys = backup_keys();
    let token = GenerationToken(FUZZ_TOKEN);
    let mut decoded = 0;
    let (manifest, _) = seal_for_fuzzing(&keys, FuzzObject::Manifest, data);
    decoded += usize::from(Manifest::open(&keys, 0, 1, &manifest, None).is_ok());
    let (manifest, _) = seal_for_fuzzing(&keys, FuzzObject::GenerationManifest, data);
    decoded += usize::from(Manifest::open(&keys, 0, 1, &manifest, Some(&token)).is_ok());
    decoded += usize::from(Manifest::link(&keys, 0, 1, data).is_ok());
    let (index, name) = seal_for_fuzzing(&keys, FuzzObject::Index, data);
    decoded += usize::from(open_index(&keys, 0, &name, &index).is_ok());
    let (head, _) = seal_for_fuzzing(&keys, FuzzObject::Head, data);
    decoded += usize::from(Head::open(&keys, &head).is_ok());
    let (keyring, _) = seal_for_fuzzing(&keys, FuzzObject::Keyring, data);
    decoded += usize::from(crate::backup::keys::Keyring::open(&backup_key(), &keyring).is_ok());
    decoded += usize::from(Tree::decode(data).is_ok());
    decoded += usize::from(Manifest::open(&keys, 0, 1, data, Some(&token)).is_ok());
    decoded += usize::from(open_index(&keys, 0, &name, data).is_ok());
    decoded += usize::from(Head::open(&keys, data).is_ok());
    decoded
}

/// Reads a chunk from a pack: the first 8 bytes of `data` are the entry's offset and sealed
/// length, the rest is the pack. True if the chunk opened.
pub fn open_pack_chunk(data: &[u8]) -> bool {
    use crate::backup::pack::open_chunk;
    use crate::backup::{ChunkId, PackEntry};
    let Some((meta, pack)) = data.split_first_chunk::<8>() else { return false };
    let offset = u32::from_le_bytes([meta[0], meta[1], meta[2], meta[3]]);
    let sealed_len = u32::from_le_bytes([meta[4], meta[5], meta[6], meta[7]]);
    let entry = PackEntry { id: ChunkId([0; 32]), offset, sealed_len };
    let _ = crate::backup::pack::check_header(pack);
    let keyed = open_chunk(&backup_keys(), 0, pack, &entry, Some(&crate::backup::keys::ChunkKey([3; 32]))).is_ok();
    keyed || open_chunk(&backup_keys(), 0, pack, &entry, None).is_ok()
}

/// Parses an escrow record's header and tries to open it; true if either worked.
pub fn parse_escrow_record(data: &[u8]) -> bool {
    let header = crate::recovery::escrow_header(data).is_ok();
    let opened = crate::recovery::open_escrow(data, &[1; 64], "account", &[2; 32]).is_ok();
    header || opened
}

/// Reads `data` (lossily as UTF-8) as a recovery code; true if it decoded.
pub fn parse_recovery_code(data: &[u8]) -> bool {
    crate::recovery::RecoveryCode::new(String::from_utf8_lossy(data).into_owned()).decode().is_ok()
}

/// Imports `data` as a database export into an empty in-memory database of the current
/// schema; true if it imported.
pub fn import_database_export(data: &[u8]) -> bool {
    let Ok(mut conn) = rusqlite::Connection::open_in_memory() else { return false };
    if crate::store::migrations::migrate(&mut conn).is_err() {
        return false;
    }
    crate::store::export::import(&mut conn, data).is_ok()
}
