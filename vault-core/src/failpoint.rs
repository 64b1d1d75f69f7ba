//! Crash points for the crash-safety tests. In debug builds (the ones tests run), setting
//! `VAULT_FAILPOINT=<name>` makes the process abort, as a kill would, when it reaches that
//! point. In release builds [`hit`] compiles to nothing.

/// Aborts the process in a debug build when `VAULT_FAILPOINT` names `point`.
#[inline]
pub(crate) fn hit(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var("VAULT_FAILPOINT").is_ok_and(|p| p == point) {
        std::process::abort();
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
