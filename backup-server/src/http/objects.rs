//! Per-account objects: write-once put, ranged get, head, paginated list, and delete (sessions
//! only; kept for a grace period in which the owner can restore them, then purged).
//!
//! Bodies stream end to end. Uploads of at most [`SINGLE_PUT_MAX`] bytes are collected and
//! written with one create-if-absent put; larger ones stream as a multipart upload into a staging
//! path (never listed or served) and are then moved into place with copy-if-not-exists, so on every
//! backend an object appears whole or not at all, and never replaces an existing one. Quota is
//! reserved before the body is read and released if the upload fails.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backup_api::names::is_valid_object_id;
use backup_api::wire::{DeletedList, DeletedObject, ObjectInfo, ObjectList};
use backup_api::{ErrorCode, MAX_LIST_PAGE};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, WriteMultipart,
};
use serde::Deserialize;

use super::extract::{Caller, CallerKind, PathId, read_bounded};
use super::object_common::{
    adjust_usage, checked_id, delete_if_present, exists, ignore_not_found, not_found, object_size, within_object_limit,
};
use crate::error::ApiError;
use crate::metrics::bump;
use crate::records::{self, DeletedEntry};
use crate::secrets::AccountHash;
use crate::state::{AppState, now_secs};
use crate::storage::{BackendKind, Storage};

/// Largest upload written with a single put; larger ones use a staged multipart upload.
pub const SINGLE_PUT_MAX: u64 = 8 << 20;
/// Largest download read whole before sending; larger ones stream.
const SMALL_READ_MAX: u64 = 256 << 10;
/// Part size of staged multipart uploads.
const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight to the store at once.
const PARTS_IN_FLIGHT: usize = 2;

/// `PUT /v1/objects/{id}`: 201 when stored; 409 if the id exists.
pub async fn put_object(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    checked_id(&id)?;
    let len = headers
        .get(header::CONTENT_LENGTH)
        .ok_or_else(|| ApiError::new(ErrorCode::LengthRequired, "uploads need a Content-Length"))?
        .to_str()
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| ApiError::bad_request("Content-Length is not a number"))?;
    within_object_limit(&state, len)?;
    let path = records::object_path(&caller.account, &id);
    if object_size(&state, &path).await?.is_some() {
        return Err(exists());
    }
    let reservation = Reservation::take(&state, caller.account, len).await?;
    if len <= SINGLE_PUT_MAX {
        put_small(&state, &path, len, body).await?;
    } else {
        put_staged(&state, &caller.account, &path, len, body).await?;
    }
    reservation.commit();
    state.metrics.bytes_in.fetch_add(len, Ordering::Relaxed);
    bump(&state.metrics.objects_stored);
    Ok(StatusCode::CREATED.into_response())
}

/// Quota held for an upload in progress. Unless committed, it is released when dropped: on an
/// error return, and also when the request is cancelled part-way (time limit, client gone, end of
/// the shutdown grace period), where no code after an `.await` would run.
struct Reservation {
    state: Arc<AppState>,
    account: AccountHash,
    bytes: u64,
    committed: bool,
}

impl Reservation {
    async fn take(state: &Arc<AppState>, account: AccountHash, bytes: u64) -> Result<Self, ApiError> {
        adjust_usage(state, &account, i128::from(bytes), 1).await?;
        Ok(Self { state: state.clone(), account, bytes, committed: false })
    }

    fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let (state, account, bytes) = (self.state.clone(), self.account, i128::from(self.bytes));
        // Runs on the server's runtime; if the runtime is already shutting down the release is
        // lost and the account's usage stays over-counted (never under-counted).
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = adjust_usage(&state, &account, -bytes, -1).await {
                    tracing::warn!(account = %account.tag(), error = %error.message, "quota release failed");
                }
            });
        }
    }
}

/// A multipart upload that is aborted if dropped before it finishes (a cancelled request), so S3
/// does not keep its parts.
struct StagedUpload(Option<WriteMultipart>);

impl StagedUpload {
    fn writer(&mut self) -> Result<&mut WriteMultipart, ApiError> {
        self.0.as_mut().ok_or_else(|| ApiError::new(ErrorCode::Internal, "staged upload already closed"))
    }

    async fn finish(mut self) -> Result<(), ApiError> {
        let writer = self.0.take().ok_or_else(|| ApiError::new(ErrorCode::Internal, "staged upload already closed"))?;
        writer.finish().await?;
        Ok(())
    }
}

impl Drop for StagedUpload {
    fn drop(&mut self) {
        if let (Some(writer), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(async move {
                if let Err(error) = writer.abort().await {
                    tracing::debug!(%error, "aborting a staged upload failed");
                }
            });
        }
    }
}

fn cut_short() -> ApiError {
    ApiError::bad_request("the body ended before Content-Length bytes")
}

async fn put_small(state: &AppState, path: &Path, len: u64, body: Body) -> Result<(), ApiError> {
    let limit = usize::try_from(len).map_err(|_| cut_short())?;
    let bytes = read_bounded(body, limit).await?;
    if bytes.len() as u64 != len {
        return Err(cut_short());
    }
    let options = PutOptions { mode: PutMode::Create, ..Default::default() };
    // Placements of one id take turns on this replica (see `put_staged`).
    let _turn = state.storage.lock_object(path).await;
    match state.storage.store().put_opts(path, PutPayload::from(bytes.clone()), options).await {
        Ok(_) => {
            state.storage.object_written(path, &bytes);
            Ok(())
        }
        Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
        Err(e) => Err(e.into()),
    }
}

async fn put_staged(
    state: &AppState,
    account: &AccountHash,
    path: &Path,
    len: u64,
    body: Body,
) -> Result<(), ApiError> {
    let store = state.storage.store();
    let staging = records::staging_path(account);
    let upload = store.put_multipart(&staging).await?;
    let mut upload = StagedUpload(Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)));
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| cut_short())?;
        received += chunk.len() as u64;
        if received > len {
            return Err(ApiError::bad_request("the body is longer than Content-Length"));
        }
        let writer = upload.writer()?;
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        writer.put(chunk);
    }
    if received != len {
        return Err(cut_short());
    }
    upload.finish().await?;
    // Placements of one id take turns on this replica, and each first checks that the id is
    // still free: some S3-compatible stores (SeaweedFS 4.48) check the conditional completion of
    // a multipart copy non-atomically, so two concurrent placements could both succeed.
    let placed = {
        let _turn = state.storage.lock_object(path).await;
        match object_size(state, path).await {
            Ok(Some(_)) => Err(exists()),
            Ok(None) => match store.copy_if_not_exists(&staging, path).await {
                Ok(()) => Ok(()),
                Err(object_store::Error::AlreadyExists { .. }) => Err(exists()),
                Err(e) => Err(e.into()),
            },
            Err(e) => Err(e),
        }
    };
    if let Err(error) = store.delete(&staging).await {
        tracing::debug!(%error, "removing a staged upload failed");
    }
    placed
}

/// A parsed single `Range: bytes=…` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    From(u64, Option<u64>),
    Suffix(u64),
}

fn parse_range(value: &str) -> Option<ByteRange> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    if start.is_empty() {
        return end.parse().ok().filter(|n| *n > 0).map(ByteRange::Suffix);
    }
    let start = start.parse().ok()?;
    if end.is_empty() {
        return Some(ByteRange::From(start, None));
    }
    let end: u64 = end.parse().ok()?;
    (end >= start).then_some(ByteRange::From(start, Some(end)))
}

/// The satisfiable `start..end` (exclusive) of `range` in an object of `size` bytes.
fn resolve(range: ByteRange, size: u64) -> Option<(u64, u64)> {
    match range {
        ByteRange::From(start, _) if start >= size => None,
        ByteRange::From(start, end) => Some((start, end.map_or(size, |e| e.saturating_add(1).min(size)))),
        ByteRange::Suffix(n) if size == 0 => (n == 0).then_some((0, 0)),
        ByteRange::Suffix(n) => Some((size - n.min(size), size)),
    }
}

/// `GET /v1/objects/{id}`, with optional single `Range`.
pub async fn get_object(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    checked_id(&id)?;
    let path = records::object_path(&caller.account, &id);
    let store = state.storage.store();
    let unsatisfiable = || {
        ApiError::new(ErrorCode::RangeNotSatisfiable, "the range lies outside the object or is not a single byte range")
    };
    let requested = match headers.get(header::RANGE) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(parse_range).ok_or_else(unsatisfiable)?),
    };
    let (options, range) = match requested {
        None => {
            if let Ok(found) = state.storage.read_small_local(&path, SMALL_READ_MAX).await {
                let bytes = found.ok_or_else(not_found)?;
                state.metrics.bytes_out.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                return Ok(object_response(StatusCode::OK, Body::from(bytes), None));
            }
            (GetOptions::default(), None)
        }
        Some(requested) => {
            let size = object_size(&state, &path).await?.ok_or_else(not_found)?;
            let (start, end) = resolve(requested, size).ok_or_else(unsatisfiable)?;
            (GetOptions { range: Some(GetRange::Bounded(start..end)), ..Default::default() }, Some((start, end, size)))
        }
    };
    let result = match store.get_opts(&path, options).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    let size = result.meta.size;
    let (status, length) = match range {
        None => (StatusCode::OK, size),
        Some((start, end, _)) => (StatusCode::PARTIAL_CONTENT, end - start),
    };
    state.metrics.bytes_out.fetch_add(length, Ordering::Relaxed);
    // Small bodies are read in one go (one file read on a local store); larger ones stream.
    let body = if length <= SMALL_READ_MAX {
        Body::from(result.bytes().await?)
    } else {
        Body::from_stream(result.into_stream().map_err(std::io::Error::other))
    };
    let mut response = object_response(status, body, range);
    response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

fn object_response(status: StatusCode, body: Body, range: Option<(u64, u64, u64)>) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some((start, end, total)) = range
        && let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end.saturating_sub(1)))
    {
        h.insert(header::CONTENT_RANGE, value);
    }
    response
}

/// `HEAD /v1/objects/{id}`.
pub async fn head_object(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    checked_id(&id)?;
    let size = object_size(&state, &records::object_path(&caller.account, &id)).await?.ok_or_else(not_found)?;
    let mut response = StatusCode::OK.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    Ok(response)
}

/// Query of `GET /v1/objects`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Return objects whose identifier sorts after this one.
    after: Option<String>,
    /// Page size (1 to 1000, default 1000).
    limit: Option<usize>,
}

/// `GET /v1/objects?after=ID&limit=N`: objects in identifier order, one page.
pub async fn list_objects(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::Json<ObjectList>, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::bad_request("query parameters are `after` and `limit`"))?;
    let limit = query.limit.unwrap_or(MAX_LIST_PAGE);
    if !(1..=MAX_LIST_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit is 1 to {MAX_LIST_PAGE}")));
    }
    if let Some(after) = &query.after {
        checked_id(after)?;
    }
    let prefix = records::objects_prefix(&caller.account);
    let store = state.storage.store();
    let mut listing = match &query.after {
        Some(after) => store.list_with_offset(Some(&prefix), &records::object_path(&caller.account, after)),
        None => store.list(Some(&prefix)),
    };
    // S3 lists in key order, so the first `limit + 1` entries are the page; other backends list in
    // no particular order, so keep the smallest `limit + 1`.
    let sorted_backend = state.storage.kind() == BackendKind::S3;
    let mut page: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        let Some(id) = meta.location.filename() else { continue };
        if !is_valid_object_id(id) {
            continue;
        }
        page.insert(id.to_owned(), meta.size);
        if page.len() > limit {
            if sorted_backend {
                break;
            }
            if page.len() > limit + 1 {
                page.pop_last();
            }
        }
    }
    let mut objects: Vec<ObjectInfo> = page.into_iter().map(|(id, size)| ObjectInfo { id, size }).collect();
    let next = if objects.len() > limit {
        objects.truncate(limit);
        objects.last().map(|o| o.id.clone())
    } else {
        None
    };
    Ok(axum::Json(ObjectList { objects, next }))
}

/// `DELETE /v1/objects/{id}`: 204, or 404 if absent.
pub async fn delete_object(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    checked_id(&id)?;
    // Device tokens are append-only: a thief's or a compromised app's copy cannot delete.
    if matches!(caller.kind, CallerKind::Device(_)) {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            "deleting needs a session from a password login; device tokens may only add and read",
        ));
    }
    // A presigned upload of this id not yet settled is settled first, so that its reservation is
    // released once: here if nothing arrived, or with the object below.
    if state.storage.can_presign() {
        super::direct::settle(&state, &caller.account, &id).await?;
    }
    let path = records::object_path(&caller.account, &id);
    let store = state.storage.store();
    // Concurrent deletes of one object on this replica take turns, so its size is released once.
    let _turn = state.storage.lock_object(&path).await;
    let size = object_size(&state, &path).await?.ok_or_else(not_found)?;
    let grace = state.limits.deletion_grace;
    if !grace.is_zero() {
        // Kept for the grace period (still counted in the usage), restorable by the owner.
        let kept = records::deleted_path(&caller.account, now_secs(), &id);
        store.copy(&path, &kept).await?;
    }
    let deleted = store.delete(&path).await;
    // Whether or not the store reports success, the object may be gone: stop serving a copy.
    state.storage.object_deleted(&path);
    ignore_not_found(deleted)?;
    if grace.is_zero() {
        adjust_usage(&state, &caller.account, -i128::from(size), -1).await?;
    }
    bump(&state.metrics.objects_deleted);
    Ok(StatusCode::NO_CONTENT)
}

/// The account's deleted objects still in their grace period and their sizes, oldest first (for
/// the operator's `list-deleted`).
pub async fn deleted_objects(storage: &Storage, account: &AccountHash) -> Result<Vec<(DeletedEntry, u64)>, ApiError> {
    Ok(deleted_of(storage, account).await?.into_iter().map(|(_, entry, size)| (entry, size)).collect())
}

/// The account's deleted objects with their paths and sizes, oldest first.
async fn deleted_of(storage: &Storage, account: &AccountHash) -> Result<Vec<(Path, DeletedEntry, u64)>, ApiError> {
    let mut found = Vec::new();
    let mut listing = storage.store().list(Some(&records::deleted_account_prefix(account)));
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        if let Some(entry) = DeletedEntry::parse(&meta.location) {
            found.push((meta.location, entry, meta.size));
        }
    }
    found.sort_by(|a, b| (a.1.deleted_at, &a.0).cmp(&(b.1.deleted_at, &b.0)));
    Ok(found)
}

/// `GET /v1/deleted` (session only): the deleted objects in their grace period.
pub async fn list_deleted(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<axum::Json<DeletedList>, ApiError> {
    caller.require_session()?;
    let grace = state.limits.deletion_grace.as_secs();
    let objects = deleted_of(&state.storage, &caller.account)
        .await?
        .into_iter()
        .map(|(_, entry, size)| DeletedObject {
            id: entry.id,
            size,
            deleted_at: entry.deleted_at,
            purge_at: entry.deleted_at.saturating_add(grace),
        })
        .collect();
    Ok(axum::Json(DeletedList { objects }))
}

/// `POST /v1/deleted/{id}` (session only): puts the most recently deleted object of this id back,
/// unless an object of that id exists again.
pub async fn restore_deleted(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    caller.require_session()?;
    checked_id(&id)?;
    let path = records::object_path(&caller.account, &id);
    let _turn = state.storage.lock_object(&path).await;
    let deleted = deleted_of(&state.storage, &caller.account).await?;
    let (kept, _, _) = deleted
        .into_iter()
        .rev()
        .find(|(_, entry, _)| entry.id == id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no deleted object of that id in its grace period"))?;
    let store = state.storage.store();
    match store.copy_if_not_exists(&kept, &path).await {
        Ok(()) => {}
        Err(object_store::Error::AlreadyExists { .. }) => {
            return Err(ApiError::new(ErrorCode::ObjectExists, "an object of that id exists again"));
        }
        Err(e) => return Err(e.into()),
    }
    delete_if_present(store, &kept).await?;
    tracing::info!(account = %caller.account.tag(), "deleted object restored");
    Ok(StatusCode::NO_CONTENT)
}

/// Removes deleted objects whose grace period ended by `now` (Unix seconds) and releases their
/// usage; returns how many were removed. The server runs it at start and every hour; tests call
/// it with the time they need.
pub async fn purge_deleted(state: &AppState, now: u64) -> Result<usize, ApiError> {
    let grace = state.limits.deletion_grace.as_secs();
    let store = state.storage.store();
    let mut expired = Vec::new();
    let mut listing = store.list(Some(&records::deleted_prefix()));
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        if let Some(entry) = DeletedEntry::parse(&meta.location)
            && entry.deleted_at.saturating_add(grace) <= now
        {
            expired.push((meta.location, entry, meta.size));
        }
    }
    drop(listing);
    let mut removed = 0;
    for (path, entry, size) in expired {
        match store.delete(&path).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
        removed += 1;
        if let Some(account) = AccountHash::from_hex(&entry.account_hex) {
            adjust_usage(state, &account, -i128::from(size), -1).await?;
        }
    }
    Ok(removed)
}

/// Deletes staged uploads older than `max_age` left by a crash (run at start-up).
pub async fn sweep_staging(state: &AppState, max_age: std::time::Duration) -> usize {
    let store = state.storage.store();
    let cutoff = chrono_cutoff(max_age);
    let mut removed = 0;
    let mut listing = store.list(Some(&records::staging_prefix()));
    while let Some(Ok(meta)) = listing.next().await {
        if meta.last_modified.timestamp() < cutoff && store.delete(&meta.location).await.is_ok() {
            removed += 1;
        }
    }
    removed
}

fn chrono_cutoff(max_age: std::time::Duration) -> i64 {
    let now = i64::try_from(crate::state::now_secs()).unwrap_or(i64::MAX);
    now.saturating_sub(i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_resolve() {
        assert_eq!(parse_range("bytes=0-9"), Some(ByteRange::From(0, Some(9))));
        assert_eq!(parse_range("bytes=5-"), Some(ByteRange::From(5, None)));
        assert_eq!(parse_range("bytes=-3"), Some(ByteRange::Suffix(3)));
        for bad in ["bytes=9-0", "bytes=-0", "bytes=a-b", "items=0-1", "bytes=0-1,3-4", "bytes=-"] {
            assert_eq!(parse_range(bad), None, "{bad}");
        }
        assert_eq!(resolve(ByteRange::From(0, Some(9)), 5), Some((0, 5)));
        assert_eq!(resolve(ByteRange::From(5, None), 5), None);
        assert_eq!(resolve(ByteRange::Suffix(3), 10), Some((7, 10)));
        assert_eq!(resolve(ByteRange::Suffix(30), 10), Some((0, 10)));
        assert_eq!(resolve(ByteRange::From(u64::MAX - 1, Some(u64::MAX)), u64::MAX), Some((u64::MAX - 1, u64::MAX)));
    }
}
