//! What the object routes share, proxied and presigned alike: identifier checks, the answers for
//! a missing or existing object, object sizes, deletions, the size limit and quota usage.

use std::sync::Arc;

use backup_api::ErrorCode;
use backup_api::names::is_valid_object_id;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt as _};

use crate::error::ApiError;
use crate::records::{self, Usage};
use crate::secrets::AccountHash;
use crate::state::AppState;
use crate::storage::Change;

/// Refuses an identifier the API does not allow.
pub(super) fn checked_id(id: &str) -> Result<(), ApiError> {
    if is_valid_object_id(id) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidName,
            "an object identifier has 1 to 128 characters from A-Z a-z 0-9 _ - . and does not start with a dot",
        ))
    }
}

/// Deletes the object at `path`; one already gone is not an error.
pub(super) async fn delete_if_present(store: &Arc<dyn ObjectStore>, path: &Path) -> Result<(), ApiError> {
    ignore_not_found(store.delete(path).await)
}

/// A deletion's outcome, with "not found" (already gone) counted as done.
pub(super) fn ignore_not_found(deleted: object_store::Result<()>) -> Result<(), ApiError> {
    match deleted {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The size of the object at `path`, `None` if absent.
pub(super) async fn object_size(state: &AppState, path: &Path) -> Result<Option<u64>, ApiError> {
    match state.storage.store().head(path).await {
        Ok(meta) => Ok(Some(meta.size)),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Refuses an object larger than the server takes.
pub(super) fn within_object_limit(state: &AppState, len: u64) -> Result<(), ApiError> {
    if len > state.limits.max_object_bytes {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("objects are limited to {} bytes", state.limits.max_object_bytes),
        ));
    }
    Ok(())
}

/// The answer for an object that does not exist.
pub(super) fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such object")
}

/// Adds (or with negative values, releases) bytes and objects on the account's usage record,
/// refusing to exceed the quota when adding.
pub(super) async fn adjust_usage(
    state: &AppState,
    account: &AccountHash,
    bytes: i128,
    objects: i128,
) -> Result<(), ApiError> {
    let path = records::usage_path(account);
    let quota = state.limits.quota_bytes;
    state
        .storage
        .update::<_, ApiError>(&path, |current| {
            let usage: Usage = match current {
                Some(b) => records::parse(b, &path)?,
                None => Usage::default(),
            };
            let new_bytes = (i128::from(usage.bytes) + bytes).max(0);
            if bytes > 0 && new_bytes > i128::from(quota) {
                return Err(ApiError::new(
                    ErrorCode::QuotaExceeded,
                    format!("the account's quota of {quota} bytes would be exceeded"),
                ));
            }
            let updated = Usage {
                bytes: u64::try_from(new_bytes).unwrap_or(u64::MAX),
                objects: u64::try_from((i128::from(usage.objects) + objects).max(0)).unwrap_or(u64::MAX),
            };
            Ok(Change::Write(records::encode(&updated), ()))
        })
        .await
}

/// The answer for an identifier that is taken.
pub(super) fn exists() -> ApiError {
    ApiError::new(ErrorCode::ObjectExists, "an object with this identifier exists; objects are write-once")
}
