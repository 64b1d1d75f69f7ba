#![no_main]
//! A chunk read from an arbitrary pack at an arbitrary offset and length.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vault_core::fuzz_support::open_pack_chunk(data);
});
