#![no_main]
//! The database export importer (what a restore feeds the new vault) on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vault_core::fuzz_support::import_database_export(data);
});
