//! Media encryption throughput, side by side in one run on the same bytes: the raw in-memory
//! XChaCha20-Poly1305 on one core, both RustCrypto's `chacha20poly1305` (the reference) and the
//! vault's own backend (`bench_support::AEAD_BACKEND`: aws-lc-rs under RustCrypto's HChaCha20 on
//! desktop and server builds), against a full vault import (stream framing, file write, fsync,
//! rename, database row) and export (read, authenticate, decrypt), which seal and open batches of
//! 16 segments in parallel on every core, plus the latency of a 64 KiB read at a random offset.
//!
//! `VAULT_BENCH_MEDIA_MIB` sets the size (default 1024); `VAULT_BENCH_DIR` the directory the
//! vault lives in (default /dev/shm when present, so the disk does not hide the cipher cost;
//! point it at a disk directory to include the disk).
// Benchmark setup may abort on failure; the workspace lints deny that in library code only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::inout::InOutBuf;
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vault_core::bench_support::{AEAD_BACKEND, RawAead};
use vault_core::{CreateOptions, KdfParams, MEDIA_SEGMENT_LEN, MediaImport, Passphrase, Vault};

fn size() -> usize {
    let mib: usize = std::env::var("VAULT_BENCH_MEDIA_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024);
    mib << 20
}

fn bench_dir() -> PathBuf {
    match std::env::var_os("VAULT_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None if std::path::Path::new("/dev/shm").is_dir() => PathBuf::from("/dev/shm"),
        None => std::env::temp_dir(),
    }
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn media(c: &mut Criterion) {
    let len = size();
    let data = pseudo_random(len);
    let cipher = XChaCha20Poly1305::new(&[7u8; 32].into());
    let nonce = XNonce::from([1u8; 24]);

    let mut group = c.benchmark_group("media");
    group.throughput(Throughput::Bytes(len as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(15));
    group.warm_up_time(Duration::from_secs(1));

    // The ceiling: the same AEAD over the same bytes in memory, 64 KiB at a time, in place.
    let mut scratch = data.clone();
    group.bench_function("aead_encrypt_in_memory", |b| {
        b.iter(|| {
            for chunk in scratch.chunks_mut(MEDIA_SEGMENT_LEN) {
                black_box(cipher.encrypt_inout_detached(&nonce, b"aad", chunk.into()).unwrap());
            }
        })
    });
    // Decrypt: authenticate and decrypt into a separate buffer, as a reader must.
    let mut sealed = data.clone();
    let tags: Vec<_> = sealed
        .chunks_mut(MEDIA_SEGMENT_LEN)
        .map(|chunk| cipher.encrypt_inout_detached(&nonce, b"aad", chunk.into()).unwrap())
        .collect();
    let mut out = vec![0u8; MEDIA_SEGMENT_LEN];
    group.bench_function("aead_decrypt_in_memory", |b| {
        b.iter(|| {
            for (chunk, tag) in sealed.chunks(MEDIA_SEGMENT_LEN).zip(&tags) {
                let buf = InOutBuf::new(chunk, &mut out[..chunk.len()]).unwrap();
                cipher.decrypt_inout_detached(&nonce, b"aad", buf, tag).unwrap();
                black_box(&out);
            }
        })
    });
    // In place, as the media reader decrypts: each sealed segment copied into a buffer, then
    // authenticated and decrypted there (the copy is part of the figure, for both backends).
    group.bench_function("aead_decrypt_in_place", |b| {
        b.iter(|| {
            for (chunk, tag) in sealed.chunks(MEDIA_SEGMENT_LEN).zip(&tags) {
                let buf = &mut out[..chunk.len()];
                buf.copy_from_slice(chunk);
                cipher.decrypt_inout_detached(&nonce, b"aad", buf.into(), tag).unwrap();
                black_box(&out);
            }
        })
    });

    // The vault's own backend, the same way.
    println!("vault AEAD backend: {AEAD_BACKEND}");
    let vault_cipher = RawAead::new([7u8; 32]);
    let nonce = [1u8; 24];
    group.bench_function("vault_aead_encrypt_in_memory", |b| {
        b.iter(|| {
            for chunk in scratch.chunks_mut(MEDIA_SEGMENT_LEN) {
                black_box(vault_cipher.seal_in_place(&nonce, b"aad", chunk).unwrap());
            }
        })
    });
    let mut vault_sealed = data.clone();
    let vault_tags: Vec<_> = vault_sealed
        .chunks_mut(MEDIA_SEGMENT_LEN)
        .map(|chunk| vault_cipher.seal_in_place(&nonce, b"aad", chunk).unwrap())
        .collect();
    assert!(vault_tags.iter().zip(&tags).all(|(a, b)| a[..] == b[..]), "the backends disagree");
    group.bench_function("vault_aead_decrypt_in_place", |b| {
        b.iter(|| {
            for (chunk, tag) in vault_sealed.chunks(MEDIA_SEGMENT_LEN).zip(&vault_tags) {
                let buf = &mut out[..chunk.len()];
                buf.copy_from_slice(chunk);
                assert!(vault_cipher.open_in_place(&nonce, b"aad", buf, tag));
                black_box(&out);
            }
        })
    });
    drop(vault_sealed);
    drop(sealed);
    drop(scratch);

    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let dir = tmp.path().join("vault");
    let kdf = KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 };
    let mut vault =
        Vault::create(&dir, &Passphrase::new("bench".into()), CreateOptions { kdf, wrapper: None }).unwrap();

    group.bench_function("vault_import", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let id = vault.media().import(&mut &data[..], MediaImport::default()).unwrap();
                total += started.elapsed();
                vault.media().delete(&id).unwrap();
            }
            total
        })
    });
    let id = vault.media().import(&mut &data[..], MediaImport::default()).unwrap();
    group.bench_function("vault_export", |b| {
        b.iter(|| {
            // The path `Media::export` and `verify` take: batches decrypted in parallel.
            let mut reader = vault.media().open(&id).unwrap();
            let len = reader.len();
            black_box(reader.copy_range_to(0, len, &mut std::io::sink()).unwrap())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("media_random_read");
    group.throughput(Throughput::Bytes(MEDIA_SEGMENT_LEN as u64));
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut buf = vec![0u8; MEDIA_SEGMENT_LEN];
    let mut most_segments = 0;
    group.bench_function("read_64k_at_random_offset", |b| {
        b.iter(|| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let offset = state % (len - MEDIA_SEGMENT_LEN) as u64;
            let mut fresh = vault.media().open(&id).unwrap();
            fresh.seek(SeekFrom::Start(offset)).unwrap();
            fresh.read_exact(&mut buf).unwrap();
            most_segments = most_segments.max(fresh.segments_decrypted());
            black_box(&buf);
        })
    });
    group.finish();
    println!("media_random_read: at most {most_segments} segments decrypted per 64 KiB read");
}

criterion_group!(benches, media);
criterion_main!(benches);
