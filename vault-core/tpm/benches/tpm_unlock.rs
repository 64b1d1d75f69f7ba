//! Unlock through a TPM slot against a passphrase slot at the default Argon2id parameters, and the
//! TPM's share of it (one unseal: connect, storage key, sessions, load, unseal, flush).
//!
//! Needs the `tpm` feature and a TPM named by TPM2TOOLS_TCTI (scripts/bench-tpm.sh starts a
//! swtpm); without them it says so and measures nothing. With swtpm the figures are the cost of
//! the protocol and the TSS stack, not of a TPM chip (chips are slower, see docs/benchmarks.md).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[cfg(feature = "tpm")]
mod tpm {
    use std::hint::black_box;
    use std::time::{Duration, Instant};

    use criterion::Criterion;
    use tempfile::TempDir;
    use vault_core::{CreateOptions, KdfParams, KeyWrapper, Passphrase, Vault};
    use vault_tpm::{TpmConfig, TpmKeyWrapper, TpmPin};

    fn timed_unlock(b: &mut criterion::Bencher<'_>, unlock: impl Fn() -> Vault) {
        // Only the unlock call is timed; locking (dropping the vault) happens outside the timer.
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let vault = unlock();
                timed += start.elapsed();
                vault.lock();
            }
            timed
        })
    }

    pub fn bench(c: &mut Criterion) {
        let Ok(config) = TpmConfig::from_env() else {
            eprintln!("no TPM named by TPM2TOOLS_TCTI: run scripts/bench-tpm.sh");
            return;
        };
        let dir = TempDir::new().unwrap();
        let passphrase = Passphrase::new("bench passphrase".to_owned());
        let tpm = TpmKeyWrapper::open(config.clone(), None).unwrap();
        let tpm_pin = TpmKeyWrapper::open(config, Some(TpmPin::new("2580".to_owned()).unwrap())).unwrap();
        let make = |name: &str, wrapper: &TpmKeyWrapper| {
            let path = dir.path().join(name);
            let options = CreateOptions { kdf: KdfParams::DEFAULT, wrapper: Some(wrapper) };
            Vault::create(&path, &passphrase, options).unwrap().lock();
            path
        };
        let vault = make("tpm", &tpm);
        let vault_pin = make("tpm-pin", &tpm_pin);
        let blob = tpm.wrap(&[7; 32]).unwrap();

        let mut group = c.benchmark_group("tpm_unlock");
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(15));
        group.bench_function("passphrase_argon2_default", |b| {
            timed_unlock(b, || Vault::unlock_with_passphrase(black_box(&vault), black_box(&passphrase)).unwrap())
        });
        group.bench_function("tpm_slot", |b| {
            timed_unlock(b, || Vault::unlock_with_wrapper(black_box(&vault), black_box(&tpm)).unwrap())
        });
        group.bench_function("tpm_slot_with_pin", |b| {
            timed_unlock(b, || Vault::unlock_with_wrapper(black_box(&vault_pin), black_box(&tpm_pin)).unwrap())
        });
        group.bench_function("tpm_unseal_only", |b| b.iter(|| tpm.unwrap(black_box(&blob)).unwrap()));
        group.bench_function("tpm_seal_only", |b| b.iter(|| tpm.wrap(black_box(&[7; 32])).unwrap()));
        group.finish();
    }
}

#[cfg(feature = "tpm")]
criterion::criterion_group!(benches, tpm::bench);
#[cfg(feature = "tpm")]
criterion::criterion_main!(benches);

#[cfg(not(feature = "tpm"))]
fn main() {
    eprintln!("the TPM unlock benchmark needs `--features tpm`");
}
