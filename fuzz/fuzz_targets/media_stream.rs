#![no_main]
//! A whole media file from arbitrary bytes (the first 4 bytes claim the plaintext length):
//! opening and reading it must never panic, and can never authenticate without the key.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let claimed = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]) % (1 << 20));
    let read = vault_core::fuzz_support::read_media_file(&data[4..], claimed);
    assert_eq!(read, 0, "bytes authenticated without the key");
});
