#![no_main]
//! Manifests, index objects, head records and snapshot trees: their decoders behind
//! authentication on arbitrary plaintext, and the sealed objects themselves on arbitrary bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = vault_core::fuzz_support::decode_backup_objects(data);
});
