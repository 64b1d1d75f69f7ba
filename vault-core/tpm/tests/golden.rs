//! Golden files of the TPM wrapped-key format, version 1: real blobs written by `TpmKeyWrapper`
//! on swtpm must keep parsing to the same fields and re-encode byte for byte, and the `fail-*`
//! files must fail with the error their name gives. No TPM needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use vault_tpm::blob::{BlobError, Parent, TpmBlob};

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_blob_with_a_pin_and_a_pcr_policy() {
    let bytes = data("tpm-blob-v1-pin-pcr16.bin");
    assert_eq!(&bytes[..6], b"VTPM\x01\x03");
    let blob = TpmBlob::parse(&bytes).unwrap();
    assert!(blob.pin);
    assert_eq!(blob.parent, Parent::Srk);
    assert_eq!(blob.pcrs.map(|p| p.pcrs()), Some(vec![16]));
    // A SHA-256 name: TPM_ALG_SHA256 then 32 bytes.
    assert_eq!((blob.parent_name.len(), &blob.parent_name[..2]), (34, &[0x00, 0x0B][..]));
    // TPMT_PUBLIC of a keyed-hash object with SHA-256 names: type 0x0008, nameAlg 0x000B, and a
    // 32-byte authPolicy (the PCR and auth-value policy).
    assert_eq!(&blob.public[..4], &[0x00, 0x08, 0x00, 0x0B]);
    assert_eq!(&blob.public[8..10], &[0x00, 0x20]);
    assert_eq!(blob.encode().unwrap(), bytes);
}

#[test]
fn a_plain_blob() {
    let bytes = data("tpm-blob-v1-plain.bin");
    let blob = TpmBlob::parse(&bytes).unwrap();
    assert!(!blob.pin);
    assert_eq!((blob.parent, blob.pcrs), (Parent::Srk, None));
    // No policy: an empty authPolicy.
    assert_eq!(&blob.public[8..10], &[0x00, 0x00]);
    assert_eq!(blob.encode().unwrap(), bytes);
}

#[test]
fn failing_files_fail_as_named() {
    let cases = [
        ("fail-version-2.bin", BlobError::UnsupportedVersion(2)),
        ("fail-unknown-flag.bin", BlobError::UnknownFlags),
        ("fail-sha1-pcr-bank.bin", BlobError::BadPcrSelection),
        ("fail-truncated.bin", BlobError::Truncated),
        ("fail-trailing-byte.bin", BlobError::TrailingBytes),
        ("fail-bad-magic.bin", BlobError::BadMagic),
    ];
    for (name, expected) in cases {
        assert_eq!(TpmBlob::parse(&data(name)), Err(expected), "{name}");
    }
}
