//! Workspace-level end-to-end tests (in `tests/`); what the crash harness's writer and checker
//! share. The helpers the suites share with the other crates' tests are in `test-support`.

/// What the crash harness's writer writes, so the checker can recompute it.
pub mod crash {
    /// Whether item `n` is a media import (else a message).
    pub fn is_media(n: u64) -> bool {
        n % 4 == 3
    }

    /// The body of message `n`.
    pub fn message_body(n: u64) -> String {
        format!("crash message {n} {}", "x".repeat((n % 97) as usize))
    }

    /// The content of media item `n`: up to ~300 KB, crossing segment boundaries.
    pub fn media_content(n: u64) -> Vec<u8> {
        let len = (n.wrapping_mul(7919) % 300_000) as usize;
        (0..len).map(|i| (i as u64).wrapping_mul(31).wrapping_add(n) as u8).collect()
    }
}
