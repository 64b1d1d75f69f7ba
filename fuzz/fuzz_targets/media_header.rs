#![no_main]
//! The media header parser on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vault_core::fuzz_support::parse_media_header(data);
});
