#![no_main]
//! Escrow records (header and sealed share) and recovery codes on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vault_core::fuzz_support::parse_escrow_record(data);
    let _ = vault_core::fuzz_support::parse_recovery_code(data);
});
