//! The Rust side of `scripts/bench-kotlin.sh`: the same exported `Vault` methods the Kotlin
//! benchmark calls through the FFI, called directly from Rust, so the difference is the cost of
//! crossing the boundary. Usage: `call_baseline DIR` (DIR must not exist); prints one line per
//! call: `rust <name> <microseconds per call>`.

use std::time::Instant;

use vault_mobile::{Vault, VaultError};

/// Calls of each kind, after as many warm-up calls.
const GETS: u32 = 20_000;
const SEARCHES: u32 = 5_000;

fn main() -> Result<(), VaultError> {
    let dir = std::env::args().nth(1).ok_or(VaultError::InvalidInput { reason: "usage: call_baseline DIR".into() })?;
    let vault = Vault::create(dir, "benchmark passphrase".into(), None)?;
    fill(&vault)?;
    report("secret", GETS, || vault.secret("token".into()).map(|_| ()))?;
    report("search", SEARCHES, || vault.search("topic7".into(), 10).map(|_| ()))?;
    vault.lock();
    Ok(())
}

/// The vault both sides measure: 2,000 messages over 50 topics and one 32-byte secret.
fn fill(vault: &Vault) -> Result<(), VaultError> {
    for i in 0..2_000 {
        vault.add_message(
            "bench".into(),
            "ann".into(),
            format!("message {i} about topic{} and more words", i % 50),
            None,
        )?;
    }
    vault.put_secret("token".into(), vec![7; 32])
}

fn report(name: &str, calls: u32, mut call: impl FnMut() -> Result<(), VaultError>) -> Result<(), VaultError> {
    for _ in 0..calls {
        call()?;
    }
    let start = Instant::now();
    for _ in 0..calls {
        call()?;
    }
    println!("rust {name} {:.2}", start.elapsed().as_secs_f64() * 1e6 / f64::from(calls));
    Ok(())
}
