//! Progress callbacks and cancellation for long operations, adapted to `vault_core::Progress`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress of a long operation (the app updates its UI from it).
#[uniffi::export(with_foreign)]
pub trait ProgressListener: Send + Sync {
    /// `done` bytes of `total` (when known) are processed; called about once per MiB.
    fn on_progress(&self, done: u64, total: Option<u64>);
}

/// Cancels the long operation it is passed to; the operation then fails with `Cancelled` and
/// keeps nothing.
#[derive(uniffi::Object, Default)]
pub struct CancelToken {
    cancelled: AtomicBool,
}

#[uniffi::export]
impl CancelToken {
    /// A token that has not been cancelled.
    #[uniffi::constructor]
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Requests cancellation.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// The listener and token of one call, as a `vault_core::Progress`.
pub(crate) struct Adapter {
    pub(crate) listener: Option<Arc<dyn ProgressListener>>,
    pub(crate) cancel: Option<Arc<CancelToken>>,
}

impl vault_core::Progress for Adapter {
    fn advance(&self, done: u64, total: Option<u64>) -> bool {
        if let Some(listener) = &self.listener {
            listener.on_progress(done, total);
        }
        !self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }
}
