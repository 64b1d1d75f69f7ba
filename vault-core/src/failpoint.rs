//! Crash points for the crash-safety tests. With the `failpoints` feature, setting
//! `VAULT_FAILPOINT=<name>` makes the process abort (as a kill would) when it reaches that
//! point; without the feature, [`hit`] compiles to nothing.

/// Aborts the process if the `failpoints` feature is on and `VAULT_FAILPOINT` names `point`.
#[inline]
pub(crate) fn hit(point: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("VAULT_FAILPOINT").is_ok_and(|p| p == point) {
        std::process::abort();
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = point;
}
