#![no_main]
//! The key-slot file parser on arbitrary bytes: never panics, never allocates unboundedly.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vault_core::fuzz_support::parse_slot_file(data);
});
