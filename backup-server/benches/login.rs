//! Server CPU per OPAQUE login: `login/start` (counted attempt, OPRF evaluation, key exchange,
//! sealed state) and `login/finish` (unseal, verify, counter reset, session token), called as the
//! HTTP handlers are, on one thread, against the in-memory store. Client work (blinding, key
//! stretching) happens in setup, outside the measurement. Two accounts whose passwords were
//! registered with very different key-stretching costs show that the server's cost does not depend
//! on them; an unknown account's decoy answer costs the same as a real one.
//!
//! Run: `cargo bench -p backup-server --bench login`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use backup_api::client::BackupClient;
use backup_api::wire::{LoginFinishRequest, LoginStartRequest};
use backup_api::{KsfParams, OPAQUE_CONTEXT, OpaqueSuite};
use backup_server::http::extract::JsonBody;
use backup_server::http::login::{login_finish, login_start};
use backup_server::{AppState, Limits, RunningServer, ServerSecrets, Storage};
use criterion::{Criterion, criterion_group, criterion_main};
use opaque_ke::{ClientLogin, ClientLoginFinishParameters, CredentialResponse};

struct Prepared {
    account: String,
    requests: Vec<Vec<u8>>,
    finishes: Vec<LoginFinishRequest>,
}

fn prepare(server: &RunningServer, account: &str, ksf: KsfParams) -> Prepared {
    let client = BackupClient::new(&server.url()).unwrap();
    client.register(account, b"benchmark password", ksf).unwrap();
    let mut rng = rand_08::rngs::OsRng;
    let requests = (0..64)
        .map(|_| ClientLogin::<OpaqueSuite>::start(&mut rng, b"x").unwrap().message.serialize().to_vec())
        .collect();
    let argon2 = ksf.argon2().unwrap();
    let finishes = (0..8)
        .map(|_| {
            let start = ClientLogin::<OpaqueSuite>::start(&mut rng, b"benchmark password").unwrap();
            let answer = client.login_start_raw(account, &start.message.serialize()).unwrap();
            let response = CredentialResponse::<OpaqueSuite>::deserialize(&answer.response).unwrap();
            let params = ClientLoginFinishParameters::new(Some(OPAQUE_CONTEXT), Default::default(), Some(&argon2));
            let finish = start.state.finish(&mut rng, b"benchmark password", response, params).unwrap();
            LoginFinishRequest { state: answer.state, finalization: finish.message.serialize().to_vec() }
        })
        .collect();
    Prepared { account: account.to_owned(), requests, finishes }
}

/// The request head a handler sees (no client address: the per-address limit does not apply).
fn parts() -> axum::http::request::Parts {
    axum::http::Request::new(()).into_parts().0
}

fn bench(c: &mut Criterion) {
    // Sealed login states stay valid for the whole run; no rate limits; the counter never
    // delays (every finish resets it, and the free count is high).
    let mut limits = Limits {
        protocol_state_ttl: Duration::from_secs(24 * 3600),
        per_ip_rate: (0, 0),
        per_account_rate: (0, 0),
        ..Limits::default()
    };
    limits.login.delays.free = u32::MAX;
    limits.login.starts_per_ip_minute = (0, 0);
    let server = RunningServer::start(AppState::new(ServerSecrets::generate(), Storage::memory(), limits)).unwrap();
    let state: Arc<AppState> = server.state.clone();
    let cheap = prepare(&server, "ksf-8MiB-1pass", KsfParams::new(8 * 1024, 1, 1).unwrap());
    let costly = prepare(&server, "ksf-256MiB-3passes", KsfParams::new(256 * 1024, 3, 1).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    let mut group = c.benchmark_group("opaque_login_server_cpu");
    for prepared in [&cheap, &costly] {
        let mut i = 0usize;
        group.bench_function(format!("start/{}", prepared.account), |b| {
            b.iter(|| {
                i = (i + 1) % prepared.requests.len();
                let body = LoginStartRequest {
                    account: prepared.account.clone(),
                    request: prepared.requests[i].clone(),
                    ticket: None,
                };
                runtime.block_on(login_start(State(state.clone()), parts(), JsonBody(body))).unwrap()
            })
        });
        let mut j = 0usize;
        group.bench_function(format!("finish/{}", prepared.account), |b| {
            b.iter(|| {
                j = (j + 1) % prepared.finishes.len();
                let f = &prepared.finishes[j];
                let body = LoginFinishRequest { state: f.state.clone(), finalization: f.finalization.clone() };
                runtime.block_on(login_finish(State(state.clone()), JsonBody(body))).unwrap()
            })
        });
    }
    // An unknown account is answered with a decoy; its cost should match a real account's.
    let unknown =
        Prepared { account: "no-such-account".into(), requests: cheap.requests.clone(), finishes: Vec::new() };
    let mut k = 0usize;
    group.bench_function("start/unknown-account", |b| {
        b.iter(|| {
            k = (k + 1) % unknown.requests.len();
            let body = LoginStartRequest {
                account: unknown.account.clone(),
                request: unknown.requests[k].clone(),
                ticket: None,
            };
            runtime.block_on(login_start(State(state.clone()), parts(), JsonBody(body))).unwrap()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
