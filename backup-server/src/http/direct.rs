//! Presigned transfers: on an S3 store the server authorises an object transfer and hands the
//! client a short-lived presigned URL, and the bytes go straight between the client and the
//! object store (ADR 0019).
//!
//! An upload URL is issued only for an id that is free, after the object's size is reserved
//! against the quota, and it binds two headers into its signature: `If-None-Match: *` (the store
//! refuses to replace an object: write-once) and `x-amz-checksum-sha256` (the store accepts only
//! the content the client declared, hence only its size). The server notes the authorised upload
//! (`direct/<account>/<id>`) and settles it when the client reports it done, or once the URL has
//! expired: the reservation is kept for an object of the declared size, released when nothing
//! arrived, and an object of another size (a client that declared a size its content does not
//! have) is deleted and its reservation released. On a local store, or with `--direct-url-ttl-secs
//! 0`, every route here answers `direct_transfers_off` and clients transfer through the server.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use backup_api::ErrorCode;
use backup_api::wire::{DirectUploadRequest, DirectUrl};
use base64::Engine as _;
use futures::StreamExt as _;
use object_store::{PutMode, PutOptions, PutPayload};

use super::extract::{Caller, JsonBody, PathId};
use super::object_common::{
    adjust_usage, checked_id, delete_if_present, exists, not_found, object_size, within_object_limit,
};
use crate::error::ApiError;
use crate::metrics::bump;
use crate::records::{self, DirectUpload};
use crate::secrets::AccountHash;
use crate::state::{AppState, now_secs};
use crate::storage::Change;

/// Seconds after a URL's expiry before the sweep settles its upload (clock skew between the
/// server and the store, and an upload still finishing when the URL expired).
const SETTLE_AFTER_EXPIRY_SECS: u64 = 300;

/// Seconds after which a claimed note whose settlement never finished (its replica stopped) is
/// removed by the next caller that meets it.
const STALE_CLAIM_SECS: u64 = 600;

/// How long URLs live, or `direct_transfers_off`.
fn url_ttl(state: &AppState) -> Result<Duration, ApiError> {
    let ttl = state.limits.direct_url_ttl;
    if ttl.is_zero() || !state.storage.can_presign() {
        return Err(ApiError::new(
            ErrorCode::DirectTransfersOff,
            "this server hands out no presigned URLs; transfer the object through the server",
        ));
    }
    Ok(ttl)
}

async fn presigned(
    state: &AppState,
    method: &str,
    path: &object_store::path::Path,
    headers: &[(&str, &str)],
    ttl: Duration,
) -> Result<String, ApiError> {
    state
        .storage
        .presign(method, path, headers, ttl)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::Internal, "no signer"))
}

/// `POST /v1/objects/{id}/upload-url`: reserves the object's size and answers a presigned `PUT`
/// that only the declared content, of the declared length, can use, only while the id is free.
pub async fn upload_url(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
    JsonBody(request): JsonBody<DirectUploadRequest>,
) -> Result<Json<DirectUrl>, ApiError> {
    checked_id(&id)?;
    let ttl = url_ttl(&state)?;
    let digest = base64::engine::general_purpose::STANDARD.decode(&request.sha256).ok();
    if digest.as_ref().is_none_or(|d| d.len() != 32) {
        return Err(ApiError::bad_request("sha256 is the content's SHA-256 in standard base64 (44 characters)"));
    }
    within_object_limit(&state, request.size)?;
    let path = records::object_path(&caller.account, &id);
    if object_size(&state, &path).await?.is_some() {
        return Err(exists());
    }
    let noted = records::direct_upload_path(&caller.account, &id);
    let now = now_secs();
    if let Some(record) = state.storage.read(&noted).await? {
        let pending: DirectUpload = records::parse(&record.bytes, &noted)?;
        if pending.settled || pending.expires_at.saturating_add(SETTLE_AFTER_EXPIRY_SECS) <= now {
            // An earlier upload of this id whose URL is long expired: settle it, then start anew
            // (unless it did arrive).
            match settle(&state, &caller.account, &id).await? {
                Settled::Stored => return Err(exists()),
                Settled::InProgress => {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "an earlier upload of this identifier is being settled; retry in a few minutes",
                    ));
                }
                Settled::NotArrived | Settled::WrongSize | Settled::NothingNoted => {}
            }
        } else if pending.expires_at <= now {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "an earlier upload of this identifier is being settled; retry in a few minutes",
            ));
        } else if pending.size == request.size && pending.sha256 == request.sha256 {
            // A retry of the same upload (its answer lost): a new URL for the same reservation.
            return Ok(Json(upload_answer(&state, &path, &request, pending.expires_at, now).await?));
        } else {
            // Not `object_exists`: nothing is stored yet, and the other upload may never arrive.
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "another upload of this identifier is under way; retry after its URL expires",
            ));
        }
    }
    // Reserved first, released again if the note cannot be made. A request cancelled between the
    // two leaves the reservation counted (never under-counted), like an upload cut short.
    adjust_usage(&state, &caller.account, i128::from(request.size), 1).await?;
    let pending = DirectUpload {
        size: request.size,
        sha256: request.sha256.clone(),
        expires_at: now + ttl.as_secs(),
        settled: false,
        claimed_at: 0,
    };
    let options = PutOptions { mode: PutMode::Create, ..Default::default() };
    let noted_put = state.storage.store().put_opts(&noted, PutPayload::from(records::encode(&pending)), options).await;
    if let Err(error) = noted_put {
        adjust_usage(&state, &caller.account, -i128::from(request.size), -1).await?;
        return Err(match error {
            object_store::Error::AlreadyExists { .. } => {
                ApiError::new(ErrorCode::Unavailable, "another upload of this identifier is under way")
            }
            e => e.into(),
        });
    }
    bump(&state.metrics.direct_uploads);
    Ok(Json(upload_answer(&state, &path, &request, pending.expires_at, now).await?))
}

/// The presigned `PUT` of a noted upload: its signature covers the length, the checksum and
/// `If-None-Match: *`.
async fn upload_answer(
    state: &AppState,
    path: &object_store::path::Path,
    request: &DirectUploadRequest,
    expires_at: u64,
    now: u64,
) -> Result<DirectUrl, ApiError> {
    let length = request.size.to_string();
    let signed =
        [("content-length", length.as_str()), ("if-none-match", "*"), ("x-amz-checksum-sha256", &request.sha256)];
    let remaining = Duration::from_secs(expires_at.saturating_sub(now).max(1));
    let url = presigned(state, "PUT", path, &signed, remaining).await?;
    Ok(DirectUrl {
        url,
        headers: vec![
            ("Content-Length".into(), length),
            ("If-None-Match".into(), "*".into()),
            ("x-amz-checksum-sha256".into(), request.sha256.clone()),
        ],
        expires_at,
    })
}

/// `POST /v1/objects/{id}/upload-done`: settles a presigned upload now rather than at expiry. 201
/// when the object is stored as declared; 404 while it has not arrived.
pub async fn upload_done(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    checked_id(&id)?;
    url_ttl(&state)?;
    let path = records::object_path(&caller.account, &id);
    if object_size(&state, &path).await?.is_none() {
        return Err(ApiError::new(ErrorCode::NotFound, "the object has not arrived at the store"));
    }
    match settle(&state, &caller.account, &id).await? {
        Settled::Stored | Settled::NothingNoted => Ok(StatusCode::CREATED),
        Settled::InProgress => {
            Err(ApiError::new(ErrorCode::Unavailable, "the upload is being settled; retry in a few seconds"))
        }
        Settled::WrongSize => Err(ApiError::bad_request(
            "the stored object's size is not the size declared for it; it was deleted and its reservation released",
        )),
        Settled::NotArrived => Err(not_found()),
    }
}

/// `GET /v1/objects/{id}/download-url`: a presigned `GET` of an existing object (ranges allowed).
pub async fn download_url(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    PathId(id): PathId,
) -> Result<Json<DirectUrl>, ApiError> {
    checked_id(&id)?;
    let ttl = url_ttl(&state)?;
    let path = records::object_path(&caller.account, &id);
    object_size(&state, &path).await?.ok_or_else(not_found)?;
    let url = presigned(&state, "GET", &path, &[], ttl).await?;
    bump(&state.metrics.direct_downloads);
    Ok(Json(DirectUrl { url, headers: Vec::new(), expires_at: now_secs() + ttl.as_secs() }))
}

/// What settling a noted upload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    /// The object is stored with the declared size: the reservation stays.
    Stored,
    /// Nothing arrived: the reservation was released.
    NotArrived,
    /// An object of another size arrived: it was deleted and the reservation released.
    WrongSize,
    /// No upload was noted (already settled, or the object came through the server).
    NothingNoted,
    /// Another caller (perhaps another replica) is settling it now.
    InProgress,
}

/// What claiming an upload note found.
enum Claim {
    /// No note: the object came through the server, or its upload was settled and removed.
    NoNote,
    /// A note another caller claimed at this time (Unix seconds) and has not removed yet.
    AlreadyClaimed(u64),
    /// The note, now claimed by this caller.
    Claimed(DirectUpload),
}

/// Settles the noted upload of `id`, if any: claims the note (only one caller, on any replica,
/// gets it), then keeps or releases its reservation, then removes the note. A settlement that
/// fails before its reservation is released puts the note back unclaimed, for the next sweep.
pub(super) async fn settle(state: &AppState, account: &AccountHash, id: &str) -> Result<Settled, ApiError> {
    let noted = records::direct_upload_path(account, id);
    let now = now_secs();
    let claimed = state
        .storage
        .update::<_, ApiError>(&noted, |current| {
            let Some(bytes) = current else { return Ok(Change::Keep(Claim::NoNote)) };
            let pending: DirectUpload = records::parse(bytes, &noted)?;
            if pending.settled {
                return Ok(Change::Keep(Claim::AlreadyClaimed(pending.claimed_at)));
            }
            let claimed = DirectUpload { settled: true, claimed_at: now, ..pending.clone() };
            Ok(Change::Write(records::encode(&claimed), Claim::Claimed(pending)))
        })
        .await?;
    let store = state.storage.store();
    let pending = match claimed {
        Claim::Claimed(pending) => pending,
        Claim::NoNote => return Ok(Settled::NothingNoted),
        Claim::AlreadyClaimed(at) if at.saturating_add(STALE_CLAIM_SECS) > now => return Ok(Settled::InProgress),
        Claim::AlreadyClaimed(_) => {
            // Its replica stopped mid-settlement, perhaps after releasing the reservation: the
            // note goes (a reservation it still held stays counted: never under-counted).
            delete_if_present(store, &noted).await?;
            return Ok(Settled::NothingNoted);
        }
    };
    let settled = match keep_or_release(state, account, id, &pending).await {
        Ok(settled) => settled,
        Err(error) => {
            // Nothing was released: the note goes back unclaimed for the next sweep.
            let _ = store.put_opts(&noted, PutPayload::from(records::encode(&pending)), PutOptions::default()).await;
            return Err(error);
        }
    };
    delete_if_present(store, &noted).await?;
    if settled == Settled::Stored {
        bump(&state.metrics.objects_stored);
    }
    Ok(settled)
}

/// Keeps the reservation of a claimed upload whose object arrived with the declared size, or
/// releases it (deleting an object of another size).
async fn keep_or_release(
    state: &AppState,
    account: &AccountHash,
    id: &str,
    pending: &DirectUpload,
) -> Result<Settled, ApiError> {
    let path = records::object_path(account, id);
    let settled = {
        // Settlements, placements and deletions of one id take turns on this replica.
        let _turn = state.storage.lock_object(&path).await;
        match object_size(state, &path).await? {
            Some(size) if size == pending.size => Settled::Stored,
            Some(_) => {
                delete_if_present(state.storage.store(), &path).await?;
                Settled::WrongSize
            }
            None => Settled::NotArrived,
        }
    };
    if settled != Settled::Stored {
        adjust_usage(state, account, -i128::from(pending.size), -1).await?;
    }
    Ok(settled)
}

/// Settles every noted upload whose URL expired more than [`SETTLE_AFTER_EXPIRY_SECS`] before
/// `now`; returns how many were settled.
pub async fn sweep_direct_uploads(state: &AppState, now: u64) -> Result<usize, ApiError> {
    let mut due = Vec::new();
    let mut listing = state.storage.store().list(Some(&records::direct_uploads_prefix()));
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        let parts: Vec<_> = meta.location.parts().map(|p| p.as_ref().to_owned()).collect();
        let [_, account, id] = parts.as_slice() else { continue };
        let Some(account) = AccountHash::from_hex(account) else { continue };
        // One unreadable note is logged and left for the next sweep; the others are settled.
        let pending = match state.storage.read(&meta.location).await {
            Ok(Some(record)) => records::parse::<DirectUpload>(&record.bytes, &meta.location),
            Ok(None) => continue,
            Err(error) => Err(error),
        };
        match pending {
            Ok(pending) if pending.settled || pending.expires_at.saturating_add(SETTLE_AFTER_EXPIRY_SECS) <= now => {
                due.push((account, id.clone()));
            }
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(account = %account.tag(), %error, "unreadable upload note skipped")
            }
        }
    }
    let mut settled = 0;
    for (account, id) in due {
        match settle(state, &account, &id).await {
            Ok(Settled::NothingNoted | Settled::InProgress) => {}
            Ok(_) => settled += 1,
            Err(error) => {
                tracing::warn!(account = %account.tag(), error = %error.message, "settling an upload failed; retried next sweep")
            }
        }
    }
    Ok(settled)
}
