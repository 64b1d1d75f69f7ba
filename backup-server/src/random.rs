//! Random bytes from the operating system.

/// Fills `buf` from the OS generator. Failure to read the OS generator leaves the process unable
/// to do anything safely, so it aborts rather than continue with predictable bytes.
pub fn fill(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        std::process::abort();
    }
}

/// A random lowercase hex string of `bytes` random bytes.
pub fn hex_id(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fill(&mut buf);
    hex::encode(buf)
}
