//! Chunk + seal throughput of the backup pipeline against the raw AEAD on the same bytes.
//!
//! `raw_aead`: RustCrypto's XChaCha20-Poly1305 over the input in 64 KiB pieces (the reference
//! cipher's own speed); `raw_vault_aead`: the same with the vault's backend
//! (`bench_support::AEAD_BACKEND`); `raw_vault_aead_1k`: the vault's backend over 1 KiB pieces.
//! `chunk_and_seal_export`: keyed FastCDC with the export parameters (1 KiB average), the keyed
//! BLAKE3 chunk id of every chunk, and sealing into packs — what a first backup does per byte.
//!
//! Run: `cargo bench -p vault-core --bench backup`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vault_core::backup::BackupRootKey;
use vault_core::bench_support::{AEAD_BACKEND, BackupPipeline, RawAead};

fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = data(32 << 20);
    let root = BackupRootKey::from_bytes(&[7; 32]).unwrap();
    let mut group = c.benchmark_group("backup_pipeline");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("raw_aead", |b| {
        let cipher = XChaCha20Poly1305::new(&[1u8; 32].into());
        let mut buf = input.clone();
        b.iter(|| {
            for (i, piece) in buf.chunks_mut(64 << 10).enumerate() {
                let mut nonce = [0u8; 24];
                nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let _ = cipher.encrypt_inout_detached(&XNonce::from(nonce), b"", piece.into()).unwrap();
            }
        })
    });
    println!("vault AEAD backend: {AEAD_BACKEND}");
    // The vault's cipher over 64 KiB pieces, and over 1 KiB pieces (the export's average chunk:
    // the AEAD's own per-call cost at the size the export path seals).
    for (label, piece_len) in [("raw_vault_aead", 64 << 10), ("raw_vault_aead_1k", 1 << 10)] {
        group.bench_function(label, |b| {
            let cipher = RawAead::new([1u8; 32]);
            let mut buf = input.clone();
            b.iter(|| {
                for (i, piece) in buf.chunks_mut(piece_len).enumerate() {
                    let mut nonce = [0u8; 24];
                    nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    cipher.seal_in_place(&nonce, b"", piece).unwrap();
                }
            })
        });
    }
    for (label, pipeline) in [
        ("chunk_and_seal_export", BackupPipeline::export(&root)),
        ("chunk_and_seal_64k", BackupPipeline::with_chunk_sizes(&root, 16 << 10, 64 << 10, 256 << 10)),
    ] {
        group.bench_function(label, |b| b.iter(|| pipeline.chunk_and_seal(&input).unwrap()));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10));
    targets = bench
}
criterion_main!(benches);
