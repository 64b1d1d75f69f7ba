//! The backup's holders: with two or more guardians, the data guardian (position 1) and a mirror
//! (position 2) both hold every object of the backup, so losing one server's store loses nothing.
//!
//! [`Mirrored`] is the two as one [`Transport`]: every write goes to both (a failure at the mirror
//! is remembered, not raised, and repaired later), reads go to the data guardian and fall back to
//! the mirror. [`sync`] repairs: it reads both heads, copies to each holder the objects the newest
//! manifest needs that it lacks (objects are write-once and named by their content, so a copy is
//! idempotent and an interrupted sync resumes without duplicates), then moves the mirror's head, or
//! the head of a data server that has none (a lost store), forward; and it reports, per holder,
//! whether it fully holds the newest generation. A data server serving an older head is not
//! repaired: the run refuses it as rolled back.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;

use crate::backup::format::{Head, Manifest, index_name, manifest_name, pack_name};
use crate::backup::keys::Keyring;
use crate::backup::run::{fetch_manifest, load_index};
use crate::backup::{BackupKeys, RepeatableSource, Transport, TransportError};
use crate::error::Result;

/// Bytes read per range request when copying a large object between holders.
const COPY_RANGE: u64 = 4 << 20;
/// Objects copied whole (read into memory) below this size.
const COPY_WHOLE_MAX: u64 = 16 << 20;

/// The data guardian and, when there is one, its mirror, as one transport.
pub(crate) struct Mirrored<'a> {
    primary: &'a (dyn Transport + Send + Sync),
    mirror: Option<&'a (dyn Transport + Send + Sync)>,
    mirror_failure: Mutex<Option<String>>,
}

impl<'a> Mirrored<'a> {
    /// Writes to `primary` and `mirror`; reads from `primary`, falling back to `mirror`.
    pub(crate) fn new(
        primary: &'a (dyn Transport + Send + Sync),
        mirror: Option<&'a (dyn Transport + Send + Sync)>,
    ) -> Self {
        Self { primary, mirror, mirror_failure: Mutex::new(None) }
    }

    /// The first write the mirror failed, if any (the next [`sync`] repairs it).
    pub(crate) fn mirror_failure(&self) -> Option<String> {
        self.mirror_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Runs the mirror's upload on a thread of its own beside the primary's; answers the
    /// primary's outcome and notes the mirror's failure, if any.
    fn side_by_side(
        &self,
        mirror_upload: impl FnOnce() -> std::result::Result<(), TransportError> + Send,
        primary_upload: impl FnOnce() -> std::result::Result<(), TransportError>,
    ) -> std::result::Result<(), TransportError> {
        std::thread::scope(|scope| {
            let mirrored = scope.spawn(|| written(mirror_upload()));
            let primary = primary_upload();
            let mirrored =
                mirrored.join().unwrap_or_else(|_| Err(TransportError::Failed("the mirror upload failed".into())));
            self.note(mirrored);
            primary
        })
    }

    fn note(&self, result: std::result::Result<(), TransportError>) {
        if let Err(e) = result {
            let mut failure = self.mirror_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            failure.get_or_insert_with(|| e.to_string());
        }
    }
}

/// A write to the mirror succeeded if the object is there, whoever wrote it.
fn written(result: std::result::Result<(), TransportError>) -> std::result::Result<(), TransportError> {
    match result {
        Err(TransportError::Exists) => Ok(()),
        other => other,
    }
}

impl Transport for Mirrored<'_> {
    fn put(&self, name: &str, bytes: &[u8]) -> std::result::Result<(), TransportError> {
        self.primary.put(name, bytes)?;
        if let Some(mirror) = self.mirror {
            self.note(written(mirror.put(name, bytes)));
        }
        Ok(())
    }

    fn put_reader(
        &self,
        name: &str,
        len: u64,
        reader: Box<dyn Read + Send>,
    ) -> std::result::Result<(), TransportError> {
        let Some(mirror) = self.mirror else { return self.primary.put_reader(name, len, reader) };
        // One read of the source feeds both uploads: the mirror's runs on its own thread from a
        // bounded channel, so memory stays bounded and the slower upload paces the faster.
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
        self.side_by_side(
            move || mirror.put_reader(name, len, Box::new(ChannelReader::new(receiver, len))),
            || self.primary.put_reader(name, len, Box::new(TeeReader { inner: reader, copy: Some(sender) })),
        )
    }

    fn put_repeatable(
        &self,
        name: &str,
        len: u64,
        open: &RepeatableSource<'_>,
    ) -> std::result::Result<(), TransportError> {
        let Some(mirror) = self.mirror else { return self.primary.put_repeatable(name, len, open) };
        // The source can be read again: each upload reads it on its own (a presigned upload reads
        // it twice), side by side.
        self.side_by_side(|| mirror.put_repeatable(name, len, open), || self.primary.put_repeatable(name, len, open))
    }

    fn get(&self, name: &str) -> std::result::Result<Option<Vec<u8>>, TransportError> {
        let first = self.primary.get(name);
        match (&first, self.mirror) {
            (Ok(Some(_)), _) | (_, None) => first,
            (_, Some(mirror)) => match mirror.get(name) {
                Ok(Some(bytes)) => Ok(Some(bytes)),
                _ => first,
            },
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> std::result::Result<Vec<u8>, TransportError> {
        let first = self.primary.get_range(name, offset, len);
        match (&first, self.mirror) {
            (Err(TransportError::NotFound | TransportError::Failed(_)), Some(mirror)) => {
                mirror.get_range(name, offset, len).or(first)
            }
            _ => first,
        }
    }

    fn list(&self) -> std::result::Result<Vec<(String, u64)>, TransportError> {
        self.primary.list()
    }

    fn delete(&self, name: &str) -> std::result::Result<(), TransportError> {
        self.primary.delete(name)?;
        if let Some(mirror) = self.mirror {
            self.note(mirror.delete(name));
        }
        Ok(())
    }

    fn get_head(&self) -> std::result::Result<Option<(Vec<u8>, String)>, TransportError> {
        self.primary.get_head()
    }

    fn put_head(
        &self,
        bytes: &[u8],
        generation: u64,
        expected: Option<&str>,
    ) -> std::result::Result<(), TransportError> {
        // The mirror's head is a head copy, written after the run like every other guardian's.
        self.primary.put_head(bytes, generation, expected)
    }
}

/// Passes a source through and sends a copy of every read to a channel (dropped on failure: the
/// other side then sees a short body and fails).
struct TeeReader {
    inner: Box<dyn Read + Send>,
    copy: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0
            && let Some(copy) = &self.copy
            && copy.send(buf[..n].to_vec()).is_err()
        {
            self.copy = None;
        }
        Ok(n)
    }
}

/// Reads what a [`TeeReader`] sent: `len` bytes, or an error if the sender goes away before (the
/// primary upload failed). An early end of input must not read as the end of the object: an
/// HTTP client sending a body of a fixed length then waits for bytes that never come.
struct ChannelReader {
    receiver: std::sync::mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    at: usize,
    left: u64,
}

impl ChannelReader {
    fn new(receiver: std::sync::mpsc::Receiver<Vec<u8>>, len: u64) -> Self {
        Self { receiver, pending: Vec::new(), at: 0, left: len }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.pending.len() {
            match self.receiver.recv() {
                Ok(next) => (self.pending, self.at) = (next, 0),
                Err(_) if self.left == 0 => return Ok(0),
                Err(_) => return Err(std::io::Error::other("the upload to the data server stopped")),
            }
        }
        let n = buf.len().min(self.pending.len() - self.at);
        buf[..n].copy_from_slice(&self.pending[self.at..self.at + n]);
        self.at += n;
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

/// One holder after a [`sync`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HolderState {
    /// The server.
    pub server: String,
    /// The newest generation of the backup, when this server fully holds it (its head states it
    /// and it stores every object that generation needs); `None` otherwise.
    pub generation: Option<u64>,
    /// Objects the newest manifest needs that this server still lacks.
    pub missing: u64,
}

/// What a [`sync`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    /// The newest generation either holder's head states.
    pub newest: Option<u64>,
    /// Objects copied from one holder to the other.
    pub objects_copied: u64,
    /// Bytes copied.
    pub bytes_copied: u64,
    /// The data server, then the mirror.
    pub holders: Vec<HolderState>,
}

/// A holder's head record, if it authenticates.
struct HeldHead {
    head: Head,
    version: String,
}

/// A holder's head record: `None` when it has none (or cannot be read); `Some(None)` when it has
/// one that does not authenticate under these keys.
fn held_head(transport: &dyn Transport, keys: &BackupKeys) -> Option<Option<HeldHead>> {
    let (bytes, version) = transport.get_head().ok()??;
    Some(Head::open(keys, &bytes).ok().map(|head| HeldHead { head, version }))
}

/// Brings both holders to the newest generation either holds: copies what the newest manifest
/// needs to the holder that lacks it, then moves its head forward (never backwards). A holder
/// that cannot be reached is reported as holding nothing; the other is still repaired from. With
/// `repair` false it only reports.
pub(crate) fn sync(
    holders: [(&str, &(dyn Transport + Send + Sync)); 2],
    keys: &BackupKeys,
    policy: crate::backup::keys::TokenPolicy,
    repair: bool,
) -> Result<SyncReport> {
    let records: Vec<Option<Option<HeldHead>>> = holders.iter().map(|(_, t)| held_head(*t, keys)).collect();
    let has_record: Vec<bool> = records.iter().map(Option::is_some).collect();
    let heads: Vec<Option<HeldHead>> = records.into_iter().map(Option::flatten).collect();
    let newest = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|h| (h.head.generation, std::cmp::Reverse(i), i)))
        .max()
        .map(|(_, _, i)| i);
    let mut report = SyncReport::default();
    let Some(source) = newest else {
        report.holders = holders
            .iter()
            .map(|(url, _)| HolderState { server: (*url).to_owned(), generation: None, missing: 0 })
            .collect();
        return Ok(report);
    };
    let newest_head = heads[source].as_ref().map(|h| &h.head).ok_or(crate::Error::Internal("newest head"))?;
    report.newest = Some(newest_head.generation);
    // What the newest generation needs, read through both (an object one lacks, the other has).
    let both = Mirrored::new(holders[source].1, Some(holders[1 - source].1));
    let listings: Vec<Option<BTreeMap<String, u64>>> =
        holders.iter().map(|(_, t)| t.list().ok().map(|list| list.into_iter().collect())).collect();
    let needed = needed_objects(&both, keys, newest_head, &listings)?;
    for (i, (url, transport)) in holders.iter().enumerate() {
        let Some(listed) = &listings[i] else {
            report.holders.push(HolderState {
                server: (*url).to_owned(),
                generation: None,
                missing: needed.len() as u64,
            });
            continue;
        };
        let other = holders[1 - i].1;
        let mut missing = 0u64;
        for (name, size) in &needed {
            if listed.get(name).is_some_and(|have| size.is_none_or(|s| s == *have)) {
                continue;
            }
            if !repair {
                missing += 1;
                continue;
            }
            match copy_object(other, *transport, name, *size) {
                Ok(bytes) => {
                    report.objects_copied += 1;
                    report.bytes_copied += bytes;
                }
                Err(_) => missing += 1,
            }
            crate::failpoint::hit("mirror:after-object-copied");
        }
        let behind = heads[i].as_ref().is_none_or(|h| h.head.generation < newest_head.generation);
        let complete = missing == 0;
        let mut generation = heads[i].as_ref().filter(|_| !behind && complete).map(|h| h.head.generation);
        // A data server that lost the backup (no head) gets it back; one that serves an older head
        // is left for the run to refuse as rolled back (a lost store has no head; an older head
        // is a rollback the user must hear of). The mirror's head copy only ever moves forward.
        let may_move = i == 1 || !has_record[i];
        if behind && complete && repair && may_move {
            let expected = heads[i].as_ref().map(|h| h.version.as_str());
            // Only the objects' copies made this head's generation whole here: it moves forward,
            // with this holder's own part of the generation's token.
            let moved = super::lifecycle::head_for(keys, newest_head, policy, i)
                .is_ok_and(|sealed| transport.put_head(&sealed, newest_head.generation, expected).is_ok());
            if moved {
                generation = Some(newest_head.generation);
            }
        }
        report.holders.push(HolderState { server: (*url).to_owned(), generation, missing });
    }
    Ok(report)
}

/// Every object a restore of the newest generation reads: the keyring (after a rotation), the
/// manifest, its index objects and every pack they name (read from the manifest), and every media
/// object either holder stores, with its size (media objects are deleted only by a prune, so the
/// holders' listings name the ones the kept snapshots use without reading every snapshot's tree).
fn needed_objects(
    transport: &dyn Transport,
    keys: &BackupKeys,
    head: &Head,
    listings: &[Option<BTreeMap<String, u64>>],
) -> Result<BTreeMap<String, Option<u64>>> {
    let manifest: Manifest = fetch_manifest(transport, keys, head)?;
    let mut needed = BTreeMap::new();
    if keys.current_epoch() > 0 {
        needed.insert(Keyring::object_name(&keys.key_check()), None);
    }
    needed.insert(manifest_name(head.generation), None);
    // The bridge into this generation, where a run wrote one (a restore that recovers only the
    // previous generation's token crosses it).
    let bridge = crate::backup::format::bridge_name(head.generation);
    if listings.iter().flatten().any(|listed| listed.contains_key(&bridge)) {
        needed.insert(bridge, None);
    }
    for index in &manifest.indexes {
        needed.insert(index_name(&index.id), None);
    }
    let known = load_index(transport, keys, &manifest)?;
    for location in known.values() {
        needed.insert(pack_name(&location.pack), None);
    }
    for listed in listings.iter().flatten() {
        for (name, size) in listed.iter().filter(|(name, _)| name.starts_with("media-")) {
            needed.entry(name.clone()).or_insert(Some(*size));
        }
    }
    Ok(needed)
}

/// Copies one object from `from` to `to` (already there: done); returns the bytes copied.
fn copy_object(
    from: &(dyn Transport + Send + Sync),
    to: &(dyn Transport + Send + Sync),
    name: &str,
    size: Option<u64>,
) -> std::result::Result<u64, TransportError> {
    let len = match size {
        Some(len) if len > COPY_WHOLE_MAX => len,
        _ => {
            let bytes = from.get(name)?.ok_or(TransportError::NotFound)?;
            written(to.put(name, &bytes))?;
            return Ok(bytes.len() as u64);
        }
    };
    let reader = RangeReader { from, name, at: 0, len, buffer: Vec::new(), buffered_at: 0 };
    // The reader borrows `from`; put_reader needs a 'static reader, so copy through a scoped
    // thread and a channel.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
    std::thread::scope(|scope| {
        let feeding = scope.spawn(move || {
            let mut reader = reader;
            let mut chunk = vec![0u8; 1 << 20];
            loop {
                match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if sender.send(chunk[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let result = written(to.put_reader(name, len, Box::new(ChannelReader::new(receiver, len))));
        let _ = feeding.join();
        result.map(|()| len)
    })
}

/// Reads an object in ranges.
struct RangeReader<'a> {
    from: &'a (dyn Transport + Send + Sync),
    name: &'a str,
    at: u64,
    len: u64,
    buffer: Vec<u8>,
    buffered_at: usize,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.buffered_at == self.buffer.len() {
            if self.at >= self.len {
                return Ok(0);
            }
            let want = COPY_RANGE.min(self.len - self.at);
            self.buffer = self.from.get_range(self.name, self.at, want).map_err(std::io::Error::other)?;
            self.buffered_at = 0;
            if self.buffer.is_empty() {
                return Ok(0);
            }
            self.at += self.buffer.len() as u64;
        }
        let n = buf.len().min(self.buffer.len() - self.buffered_at);
        buf[..n].copy_from_slice(&self.buffer[self.buffered_at..self.buffered_at + n]);
        self.buffered_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_stream_cut_short_is_an_error_not_an_early_end() {
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        sender.send(b"abc".to_vec()).unwrap();
        drop(sender);
        let mut reader = ChannelReader::new(receiver, 5);
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err(), "3 of 5 bytes, then the sender went away");
        assert_eq!(out, b"abc");

        let (sender, receiver) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        sender.send(b"ab".to_vec()).unwrap();
        sender.send(b"cde".to_vec()).unwrap();
        drop(sender);
        let mut whole = Vec::new();
        ChannelReader::new(receiver, 5).read_to_end(&mut whole).unwrap();
        assert_eq!(whole, b"abcde");
    }
}
