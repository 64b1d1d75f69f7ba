//! Listing, verifying and pruning a backup.

use crate::error::DataKind;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::format::{
    Head, IndexRef, Location, Manifest, ObjectId, bridge_name, index_name, manifest_hash, manifest_name,
    media_object_name, pack_name, random_object_id, seal_bridge, seal_index,
};
use super::keys::{BackupKeys, ChunkId, ChunkKey, GenerationToken, TokenPart, TokenPolicy};
use super::pack::{PackError, PackWriter, open_chunk, sealed_chunk};
use super::padding::padme_len;
use super::remote::RemoteObject;
use super::run::{
    Current, chunk_keys, current, fetch_named, load_index, open_in_pack, read_tree, transport_error, verify_chain,
};
use super::transport::Transport;
use crate::error::{Error, Result};
use crate::media::io::MediaReader;
use crate::media::stream::SegmentCipher;
use crate::media::stream_error;
use crate::secret::SecretKey;

/// One snapshot, as listed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SnapshotInfo {
    /// The generation that wrote it.
    pub generation: u64,
    /// When, in milliseconds since the Unix epoch.
    #[serde(rename = "created_at_ms")]
    pub created_at: i64,
    /// Length of its database export.
    pub export_bytes: u64,
    /// Media items in it.
    #[serde(rename = "media")]
    pub media_count: u32,
}

/// What `verify` checked and found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackupCheck {
    /// The newest generation.
    pub generation: u64,
    /// Manifests whose hash chain was checked.
    pub manifests_checked: u64,
    /// Snapshots whose trees were read.
    pub snapshots: u64,
    /// Packs that hold chunks of the retained snapshot (a pack of dead chunks only waits for a
    /// prune; no key to authenticate it is left).
    pub packs_total: u64,
    /// Packs read in full: all, or with a read fraction `f` of `n` packs, `ceil(f × n)` chosen at
    /// random (at least one when `f > 0`).
    pub packs_read: u64,
    /// Chunks authenticated in those packs.
    pub chunks_authenticated: u64,
    /// Media objects whose presence and padded size were checked.
    pub media_checked: u64,
    /// Media objects read and authenticated segment by segment (with a read fraction `f`,
    /// `ceil(f × media_checked)` present objects chosen at random, under the key this vault holds
    /// for the item).
    pub media_authenticated: u64,
    /// Sampled media objects not authenticated because this vault no longer holds their key
    /// (items deleted since; their key is only inside the snapshot's export).
    pub media_without_key: u64,
    /// Problems found, each naming an object, never content.
    pub problems: Vec<String>,
}

/// What `prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// The backup's head generation afterwards: a new one when the prune rewrote the manifest
    /// (it holds no new snapshot, so `list` does not show it), else the existing one.
    pub generation: u64,
    /// Whether a new manifest and index were written (false when there was nothing to remove).
    pub rewritten: bool,
    /// Snapshots dropped.
    pub snapshots_removed: u64,
    /// The generations of the snapshots kept, oldest first, as `list` shows them.
    pub kept_generations: Vec<u64>,
    /// Packs deleted because nothing kept needs them.
    pub packs_deleted: u64,
    /// Packs rewritten because most of their chunks were dead.
    pub packs_repacked: u64,
    /// Media objects deleted.
    pub media_deleted: u64,
    /// Bytes of deleted packs and media (the replaced index is not counted: a new one is written).
    pub bytes_freed: u64,
}

fn existing(
    transport: &dyn Transport,
    keys: &BackupKeys,
    local: crate::store::backup_state::Position,
) -> Result<Current> {
    current(transport, keys, local)?.ok_or_else(|| Error::NotFound("no backup at this storage".into()))
}

/// The retained snapshots, oldest first.
pub(crate) fn list(
    transport: &dyn Transport,
    keys: &BackupKeys,
    local: crate::store::backup_state::Position,
) -> Result<Vec<SnapshotInfo>> {
    let head = existing(transport, keys, local)?;
    Ok(head
        .manifest
        .snapshots
        .iter()
        .map(|s| SnapshotInfo {
            generation: s.generation,
            created_at: s.created_at,
            export_bytes: s.export_len,
            media_count: s.media_count,
        })
        .collect())
}

/// The key and plaintext length this vault holds for a media item, if it still holds the item.
pub(crate) type MediaKeyLookup<'a> = dyn Fn(&[u8; 16]) -> Option<(SecretKey, u64)> + 'a;

/// Authenticates everything reachable from the newest manifest: the chain, the index, every
/// snapshot tree, every chunk's presence in the index, every media object's presence and size,
/// and with `read_fraction > 0` the chunks of that share of the packs and that share of the media
/// objects (segment by segment, under the key `media_key` finds; 1.0: all).
pub(crate) fn verify(
    transport: &dyn Transport,
    keys: &BackupKeys,
    local: crate::store::backup_state::Position,
    read_fraction: f64,
    media_key: &MediaKeyLookup<'_>,
) -> Result<BackupCheck> {
    let head = existing(transport, keys, local)?;
    let mut check = BackupCheck { generation: head.head.generation, ..BackupCheck::default() };
    check.manifests_checked = verify_chain(transport, keys, &head.manifest, head.head.manifest_hash, None)?;
    let known = load_index(transport, keys, &head.manifest)?;
    let sizes: HashMap<String, u64> =
        transport.list().map_err(transport_error("listing the backup"))?.into_iter().collect();
    let mut media_seen = HashSet::new();
    let mut present = Vec::new();
    // The chunks the retained snapshots reach, with their keys: only they can be authenticated
    // (a chunk no snapshot holds has no key any more, by design).
    let mut live_keys = HashMap::new();
    for snapshot in &head.manifest.snapshots {
        let tree = match read_tree(transport, keys, &known, snapshot) {
            Ok(tree) => tree,
            Err(e) => {
                check.problems.push(format!("snapshot {}: {e}", snapshot.generation));
                continue;
            }
        };
        check.snapshots += 1;
        live_keys.extend(chunk_keys(snapshot, &tree));
        let missing = tree.export_chunks.iter().filter(|c| !known.contains_key(&c.id)).count();
        if missing > 0 {
            check.problems.push(format!("snapshot {}: {missing} chunks missing from the index", snapshot.generation));
        }
        for media in &tree.media {
            if !media_seen.insert(media.media_id) {
                continue;
            }
            check.media_checked += 1;
            let name = media_object_name(keys, &media.media_id);
            match sizes.get(&name) {
                Some(size) if *size == padme_len(media.file_len) => {
                    present.push((name, media.media_id, media.file_len))
                }
                Some(_) => check.problems.push(format!("{name} has the wrong size")),
                None => check.problems.push(format!("{name} is missing")),
            }
        }
    }
    let chosen = sample(present.len(), read_fraction)?;
    for (name, media_id, file_len) in present.iter().zip(&chosen).filter(|(_, c)| **c).map(|(m, _)| m) {
        let Some((key, len)) = media_key(media_id) else {
            check.media_without_key += 1;
            continue;
        };
        let mut object = RemoteObject::new(transport, name, *file_len);
        let read = MediaReader::open(&mut object, |h| SegmentCipher::new(&key, h), media_id, len)
            .map_err(stream_error)
            .and_then(|mut reader| {
                std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| Error::Integrity {
                    object: DataKind::BackupMedia,
                    problem: format!("a media segment failed authentication: {e}"),
                })
            });
        match (read, object.take_failure()) {
            // The storage failed (not the data): the check cannot go on.
            (_, Some(failure @ (Error::BackupStorage(_) | Error::BackupAuthentication(_)))) => return Err(failure),
            (_, Some(failure)) => check.problems.push(format!("{name}: {failure}")),
            (Ok(_), None) => check.media_authenticated += 1,
            (Err(e), None) => check.problems.push(format!("{name}: {e}")),
        }
    }
    // The packs that hold some of the retained snapshots' chunks (a pack of dead chunks only is
    // for prune to remove; nothing can authenticate it).
    let mut by_pack: BTreeMap<ObjectId, Vec<Location>> = BTreeMap::new();
    for location in known.values().filter(|l| live_keys.contains_key(&l.entry.id)) {
        by_pack.entry(location.pack).or_default().push(*location);
    }
    check.packs_total = by_pack.len() as u64;
    let chosen = sample(by_pack.len(), read_fraction)?;
    for ((pack, locations), read) in by_pack.iter().zip(chosen) {
        let name = pack_name(pack);
        if !sizes.contains_key(&name) {
            check.problems.push(format!("{name} is missing"));
            continue;
        }
        if !read {
            continue;
        }
        let bytes = transport.get(&name).map_err(transport_error("reading a pack"))?.unwrap_or_default();
        check.packs_read += 1;
        for location in locations {
            let key = live_keys.get(&location.entry.id).and_then(Option::as_ref);
            match open_chunk(keys, location.epoch, &bytes, &location.entry, key) {
                Ok(_) => check.chunks_authenticated += 1,
                Err(e) => check.problems.push(format!("{name}: {e} ({:?})", location.entry.id)),
            }
        }
    }
    Ok(check)
}

/// How many of `n` objects a read fraction reads: `ceil(fraction × n)`, at least one when the
/// fraction is above zero (and there is anything), all from 1.0.
pub(crate) fn sample_size(n: usize, fraction: f64) -> usize {
    if n == 0 || fraction.is_nan() || fraction <= 0.0 {
        return 0;
    }
    if fraction >= 1.0 {
        return n;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let k = (fraction * n as f64).ceil() as usize;
    k.clamp(1, n)
}

/// Which of `n` objects to read: [`sample_size`] of them, chosen uniformly at random.
fn sample(n: usize, fraction: f64) -> Result<Vec<bool>> {
    let k = sample_size(n, fraction);
    let mut order: Vec<usize> = (0..n).collect();
    // A partial Fisher–Yates shuffle: the first `k` places get a uniform random subset.
    for i in 0..k {
        let draw: [u8; 8] = crate::crypto::random_array().map_err(Error::from_rng)?;
        let span = (n - i) as u64;
        let j = i + usize::try_from(u64::from_le_bytes(draw) % span).map_err(|_| Error::internal("sample"))?;
        order.swap(i, j);
    }
    let mut chosen = vec![false; n];
    for &i in &order[..k] {
        chosen[i] = true;
    }
    Ok(chosen)
}

/// Keeps the newest `keep` snapshots: writes a new generation that lists only them with a fresh
/// index, rewrites packs that are mostly dead, and only then deletes what nothing kept needs.
/// Returns the report and the new head (for the device's anti-rollback record).
pub(crate) fn prune(
    transport: &dyn Transport,
    keys: &BackupKeys,
    local: crate::store::backup_state::Position,
    keep: usize,
    policy: TokenPolicy,
) -> Result<(PruneReport, Head)> {
    if keep == 0 {
        return Err(Error::InvalidInput("keep at least one snapshot".into()));
    }
    let head = existing(transport, keys, local)?;
    let known = load_index(transport, keys, &head.manifest)?;
    let all = &head.manifest.snapshots;
    let kept = all[all.len().saturating_sub(keep)..].to_vec();
    let mut report = PruneReport {
        snapshots_removed: (all.len() - kept.len()) as u64,
        kept_generations: kept.iter().map(|s| s.generation).collect(),
        ..PruneReport::default()
    };

    let mut live: HashMap<ChunkId, Option<ChunkKey>> = HashMap::new();
    let mut live_media: HashSet<String> = HashSet::new();
    for snapshot in &kept {
        let tree = read_tree(transport, keys, &known, snapshot)?;
        live.extend(chunk_keys(snapshot, &tree));
        live_media.extend(tree.media.iter().map(|m| media_object_name(keys, &m.media_id)));
    }

    // Per pack: live and total sealed bytes.
    let mut packs: BTreeMap<ObjectId, (u64, u64, Vec<Location>)> = BTreeMap::new();
    for location in known.values() {
        let entry = packs.entry(location.pack).or_default();
        entry.1 += u64::from(location.entry.sealed_len);
        if live.contains_key(&location.entry.id) {
            entry.0 += u64::from(location.entry.sealed_len);
            entry.2.push(*location);
        }
    }
    let orphan_media = |names: &mut dyn Iterator<Item = &String>| -> Vec<String> {
        names.filter(|n| n.starts_with("media-") && !live_media.contains(*n)).cloned().collect()
    };
    let nothing_dead = report.snapshots_removed == 0 && packs.values().all(|(live, total, _)| *live * 2 >= *total);
    if nothing_dead {
        let listed = transport.list().map_err(transport_error("listing the backup"))?;
        if orphan_media(&mut listed.iter().map(|(name, _)| name)).is_empty() {
            // Nothing to remove: leave the backup exactly as it is (no new generation).
            report.generation = head.head.generation;
            return Ok((report, head.head));
        }
    }

    // A forward-secret backup's chunks move to new packs unchanged (their keys stay valid); an
    // older backup's are sealed again under the current epoch's key.
    let forward_secret = head.head.token.is_some();
    let new_writer = || if forward_secret { PackWriter::new() } else { PackWriter::epoch_keyed() };
    let mut new_locations: Vec<Location> = Vec::new();
    let mut doomed: Vec<ObjectId> = Vec::new();
    let mut writer = new_writer();
    for (pack, (live_bytes, total, locations)) in &packs {
        if *live_bytes == 0 {
            doomed.push(*pack);
            report.packs_deleted += 1;
        } else if *live_bytes * 2 < *total {
            let bytes = fetch_named(transport, &pack_name(pack), "pack")?;
            for location in locations {
                let key = live.get(&location.entry.id).and_then(Option::as_ref);
                // Authenticated before it moves, so a repack never carries damage forward.
                let plain = open_in_pack(keys, &bytes, location, key)?;
                let moved = if forward_secret {
                    let (_, sealed) = sealed_chunk(&bytes, &location.entry).map_err(pack_error)?;
                    writer.add_sealed(location.entry.id, sealed)
                } else {
                    writer.add_epoch_keyed(keys, location.entry.id, plain.expose_secret())
                };
                moved.map_err(pack_error)?;
                if writer.len() >= super::pack::PACK_TARGET {
                    upload_pack(transport, keys, std::mem::replace(&mut writer, new_writer()), &mut new_locations)?;
                }
            }
            doomed.push(*pack);
            report.packs_repacked += 1;
        } else {
            new_locations.extend(locations.iter().copied());
        }
    }
    if !writer.is_empty() {
        upload_pack(transport, keys, writer, &mut new_locations)?;
    }

    let index_id = random_object_id()?;
    let index = index_name(&index_id);
    transport
        .put(&index, &seal_index(keys, &index, &new_locations)?)
        .map_err(transport_error("uploading an index object"))?;
    let manifest = Manifest {
        generation: head.head.generation + 1,
        previous_generation: head.head.generation,
        previous: head.head.manifest_hash,
        previous_epoch: head.head.manifest_epoch,
        created_at: crate::store::now_millis(),
        indexes: vec![IndexRef { id: index_id, epoch: keys.current_epoch() }],
        snapshots: kept,
    };
    // A forward-secret backup's new generation gets a token of its own, like a run's, and a bridge
    // from the previous one (so a prune stopped between the guardians' head writes leaves it
    // restorable through the previous generation's shares).
    let token = if forward_secret { Some(GenerationToken::generate()?) } else { None };
    if let (Some(token), Some(previous)) = (&token, keys.token_for(&head.head)) {
        let bridge = seal_bridge(keys, &previous, head.head.generation, token, manifest.generation);
        match transport.put(&bridge_name(manifest.generation), &bridge) {
            Ok(()) | Err(super::transport::TransportError::Exists) => {}
            Err(e) => return Err(transport_error("writing the bridge")(e)),
        }
    }
    let sealed = match &token {
        Some(token) => manifest.seal_with_token(keys, token)?,
        None => manifest.seal(keys)?,
    };
    transport.put(&manifest_name(manifest.generation), &sealed).map_err(transport_error("writing the manifest"))?;
    // The writer stays: pruning does not change which device writes the backup.
    let new_head = Head {
        generation: manifest.generation,
        manifest_hash: manifest_hash(&sealed),
        writer: head.head.writer.clone(),
        manifest_epoch: keys.current_epoch(),
        token: token.as_ref().map(|t| policy.part(t, manifest.generation, 0)).transpose()?,
    };
    transport
        .put_head(&new_head.seal(keys), new_head.generation, Some(&head.version))
        .map_err(transport_error("updating the head record"))?;
    let new_head = Head { token: token.map(TokenPart::Whole), ..new_head };
    report.generation = new_head.generation;
    report.rewritten = true;

    // Only now, with the new generation in place, delete what it does not reference.
    let sizes: HashMap<String, u64> =
        transport.list().map_err(transport_error("listing the backup"))?.into_iter().collect();
    let delete = |name: String, report: &mut PruneReport| -> Result<()> {
        report.bytes_freed += sizes.get(&name).copied().unwrap_or(0);
        transport.delete(&name).map_err(transport_error("deleting an object"))
    };
    for pack in doomed {
        delete(pack_name(&pack), &mut report)?;
    }
    for old in &head.manifest.indexes {
        transport.delete(&index_name(&old.id)).map_err(transport_error("deleting an object"))?;
    }
    for name in orphan_media(&mut sizes.keys()) {
        report.media_deleted += 1;
        delete(name, &mut report)?;
    }
    Ok((report, new_head))
}

fn pack_error(e: PackError) -> Error {
    Error::Integrity { object: DataKind::BackupPack, problem: e.to_string() }
}

fn upload_pack(
    transport: &dyn Transport,
    keys: &BackupKeys,
    writer: PackWriter,
    out: &mut Vec<Location>,
) -> Result<()> {
    let (bytes, entries) = writer.finish().map_err(Error::from_rng)?;
    let pack = random_object_id()?;
    transport.put(&pack_name(&pack), &bytes).map_err(transport_error("uploading a pack"))?;
    out.extend(entries.into_iter().map(|entry| Location { pack, entry, epoch: keys.current_epoch() }));
    Ok(())
}
