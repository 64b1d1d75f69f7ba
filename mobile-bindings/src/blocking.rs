//! Runs blocking vault work on its own thread and exposes it as a future, so long operations are
//! `suspend` / `async` in Kotlin, Swift and Python without a Rust async runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::VaultError;

struct Shared<T> {
    result: Option<T>,
    waker: Option<Waker>,
}

/// The future of [`run`].
pub(crate) struct Blocking<T> {
    shared: Arc<Mutex<Shared<T>>>,
}

/// Starts `work` on a new thread; the returned future completes with its result. A panic in
/// the work (an app callback that threw, say) completes it with an error instead of leaving the
/// caller waiting forever.
pub(crate) fn run<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, VaultError> + Send + 'static,
) -> Blocking<Result<T, VaultError>> {
    let shared = Arc::new(Mutex::new(Shared { result: None, waker: None }));
    let for_thread = Arc::clone(&shared);
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
            Err(VaultError::Other { detail: "the operation failed unexpectedly (an app callback threw)".into() })
        });
        if let Ok(mut state) = for_thread.lock() {
            state.result = Some(result);
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        }
    });
    Blocking { shared }
}

impl<T> Future for Blocking<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let Ok(mut state) = self.shared.lock() else {
            return Poll::Pending;
        };
        match state.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
