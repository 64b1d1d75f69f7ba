//! The whole `/v1` API, run identically on every storage backend: in memory, a local directory,
//! and a real S3 server (SeaweedFS, started by scripts/test.sh).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::io::Cursor;

use backup_api::client::{BackupClient, BearerToken, ClientError, Upload};
use backup_api::{ErrorCode, OpaqueSuite};
use backup_server::Limits;
use opaque_ke::ClientLogin;
use support::{Backend, Harness, ksf, test_limits, unique};

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match result {
        Err(e) => e.code().unwrap_or_else(|| panic!("expected a server error code, got {e:?}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn registered(client: &BackupClient, password: &[u8]) -> (String, BearerToken) {
    let account = unique("account");
    client.register(&account, password, ksf()).unwrap();
    let session = client.login(&account, password).unwrap();
    (account, session.token)
}

fn register_login_and_refusals(h: &Harness) {
    let client = &h.client;
    let account = unique("alice");
    client.register(&account, b"correct horse", ksf()).unwrap();
    assert_eq!(code(client.register(&account, b"other", ksf())), ErrorCode::AccountExists);

    let session = client.login(&account, b"correct horse").unwrap();
    assert_eq!(session.export_key.len(), 64);
    assert_eq!(session.server_public_key.len(), 32);
    let again = client.login(&account, b"correct horse").unwrap();
    assert_eq!(session.export_key, again.export_key, "the export key is stable per registration");
    assert_eq!(session.server_public_key, again.server_public_key);

    assert!(matches!(client.login(&account, b"wrong"), Err(ClientError::LoginFailed)));
    assert!(matches!(client.login(&unique("nobody"), b"x"), Err(ClientError::LoginFailed)));

    let status = client.account_status(&session.token).unwrap();
    assert_eq!(status.failed_logins, 1, "the wrong-password attempt is counted");
    client.login(&account, b"correct horse").unwrap();
    let status = client.account_status(&session.token).unwrap();
    assert_eq!(status.failed_logins, 0, "a successful login resets the counter");
    assert_eq!(status.next_login_at, 0, "no delay");

    let bogus = BearerToken::new("s1.AAAA.BBBB".into());
    assert_eq!(code(client.account_status(&bogus)), ErrorCode::Unauthorized);
}

fn a_delayed_account_gives_no_uncounted_evaluation(h: &Harness) {
    let client = &h.client;
    let account = unique("delayed");
    client.register(&account, b"right", ksf()).unwrap();
    let free = h.server.state.limits.login.delays.free;

    // The same OPAQUE request twice before the delay: the OPRF evaluation (the first 32 bytes of
    // the credential response) is the account's real one both times.
    let mut rng = rand_08::rngs::OsRng;
    let probe = ClientLogin::<OpaqueSuite>::start(&mut rng, b"guess").unwrap().message.serialize().to_vec();
    let before = client.login_start_raw(&account, &probe).unwrap();
    assert_eq!(before.response[..32], client.login_start_raw(&account, &probe).unwrap().response[..32]);

    for _ in 2..free {
        assert!(matches!(client.login(&account, b"wrong"), Err(ClientError::LoginFailed)));
    }
    // The free starts are spent: even the right password fails until the delay ends, and the
    // server no longer evaluates under the account's OPRF key: an uncounted evaluation would let
    // a stranger test guesses offline against an answer captured from a counted start. The decoy
    // is stable, keeps the account's parameters and the answer's shape.
    assert!(matches!(client.login(&account, b"right"), Err(ClientError::LoginFailed)));
    let after = client.login_start_raw(&account, &probe).unwrap();
    assert_ne!(before.response[..32], after.response[..32], "no real evaluation during a delay");
    assert_eq!(after.response[..32], client.login_start_raw(&account, &probe).unwrap().response[..32]);
    assert_eq!(after.ksf, before.ksf);
    assert_eq!(after.response.len(), before.response.len());
    let metrics = h.server.state.metrics.render();
    assert!(metrics.contains("backup_login_delays_total 1"), "{metrics}");
    // An unknown name answers alike, with the same shape and a stable evaluation.
    let nobody = unique("nobody");
    let decoy = client.login_start_raw(&nobody, &probe).unwrap();
    assert_eq!(decoy.response.len(), before.response.len());
    assert_eq!(decoy.response[..32], client.login_start_raw(&nobody, &probe).unwrap().response[..32]);
}

fn registration_is_not_an_oracle(h: &Harness) {
    let client = &h.client;
    let (account, session) = registered(client, b"pw");
    // Registration start for an existing account without its session is refused outright.
    let mut rng = rand_08::rngs::OsRng;
    let request = opaque_ke::ClientRegistration::<OpaqueSuite>::start(&mut rng, b"guess").unwrap().message;
    let body = serde_json::json!({
        "account": account,
        "request": base64url(&request.serialize()),
        "ksf": ksf(),
    });
    let (status, text) =
        support::raw(h.addr(), &post_json_head("/v1/register/start", &body), body.to_string().as_bytes());
    assert_eq!((status, support::error_code(&text).as_str()), (409, "account_exists"));

    // For a new account, two identical requests get different evaluations (fresh credential
    // nonce per registration), so evaluations collected in advance are useless.
    let fresh = unique("fresh");
    let body = serde_json::json!({ "account": fresh, "request": base64url(&request.serialize()), "ksf": ksf() });
    let first = support::raw(h.addr(), &post_json_head("/v1/register/start", &body), body.to_string().as_bytes());
    let second = support::raw(h.addr(), &post_json_head("/v1/register/start", &body), body.to_string().as_bytes());
    assert_eq!((first.0, second.0), (200, 200));
    let evaluation =
        |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap()["response"].as_str().unwrap().to_owned();
    assert_ne!(evaluation(&first.1), evaluation(&second.1));
    drop(session);
}

fn password_change(h: &Harness) {
    let client = &h.client;
    let (account, session) = registered(client, b"old password");
    let (_, device) = client.enrol_device(&session, "phone").unwrap();
    assert_eq!(code(client.change_password(&device, &account, b"new", ksf())), ErrorCode::Forbidden);
    let (_, other_session) = registered(client, b"x");
    assert_eq!(code(client.change_password(&other_session, &account, b"new", ksf())), ErrorCode::Forbidden);

    client.change_password(&session, &account, b"new password", ksf()).unwrap();
    assert!(matches!(client.login(&account, b"old password"), Err(ClientError::LoginFailed)));
    let new_session = client.login(&account, b"new password").unwrap();
    assert_eq!(client.account_status(&new_session.token).unwrap().failed_logins, 0);
    // Devices survive a password change.
    assert_eq!(client.list_devices(&device).unwrap().devices.len(), 1);
}

fn devices(h: &Harness) {
    let client = &h.client;
    let (_, session) = registered(client, b"pw");
    let (phone_id, phone) = client.enrol_device(&session, "phone").unwrap();
    let (tablet_id, tablet) = client.enrol_device(&session, "tablet").unwrap();
    let list = client.list_devices(&phone).unwrap().devices;
    assert_eq!(list.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["phone", "tablet"]);
    assert!(!format!("{list:?}").contains(phone.expose()), "listings never include tokens");

    // Device tokens do routine work but cannot reach the escrow or enrol devices.
    client.put_object(&phone, "pack-1", b"data").unwrap();
    client.put_head(&phone, b"head", 1, None).unwrap();
    assert_eq!(code(client.get_escrow(&phone)), ErrorCode::Forbidden);
    assert_eq!(code(client.put_escrow(&phone, b"x", None)), ErrorCode::Forbidden);
    assert_eq!(code(client.enrol_device(&phone, "evil")), ErrorCode::Forbidden);
    // A device may revoke only itself; a session any device.
    assert_eq!(code(client.revoke_device(&phone, &tablet_id)), ErrorCode::Forbidden);
    client.revoke_device(&phone, &phone_id).unwrap();
    assert_eq!(code(client.get_object(&phone, "pack-1", 100)), ErrorCode::Unauthorized);
    client.revoke_device(&session, &tablet_id).unwrap();
    assert_eq!(code(client.list_devices(&tablet)), ErrorCode::Unauthorized);
    assert_eq!(code(client.revoke_device(&session, &tablet_id)), ErrorCode::NotFound);
    assert!(client.list_devices(&session).unwrap().devices.is_empty());
    assert_eq!(code(client.enrol_device(&session, "")), ErrorCode::InvalidName);
    assert_eq!(code(client.enrol_device(&session, "a\nb")), ErrorCode::InvalidName);
}

fn escrow_and_head_compare_and_swap(h: &Harness) {
    let client = &h.client;
    let (_, session) = registered(client, b"pw");
    assert!(client.get_escrow(&session).unwrap().is_none());
    let first = client.put_escrow(&session, b"share v1", None).unwrap();
    assert_eq!(code(client.put_escrow(&session, b"share v1'", None)), ErrorCode::PreconditionFailed);
    let second = client.put_escrow(&session, b"share v2", Some(&first)).unwrap();
    assert_eq!(code(client.put_escrow(&session, b"share v3", Some(&first))), ErrorCode::PreconditionFailed);
    assert_eq!(client.get_escrow(&session).unwrap().unwrap(), (b"share v2".to_vec(), second.clone()));

    let head = client.put_head(&session, b"generation 1", 1, None).unwrap();
    client.put_head(&session, b"generation 2", 2, Some(&head)).unwrap();
    assert_eq!(code(client.put_head(&session, b"generation 1 again", 1, Some(&head))), ErrorCode::PreconditionFailed);
    assert_eq!(client.get_head(&session).unwrap().unwrap().0, b"generation 2");

    let too_big = vec![0u8; backup_api::MAX_ESCROW_LEN + 1];
    assert_eq!(code(client.put_escrow(&session, &too_big, Some(&second))), ErrorCode::PayloadTooLarge);
    assert_eq!(client.get_escrow(&session).unwrap().unwrap().0, b"share v2", "a refused write changes nothing");
}

fn objects_round_trip(h: &Harness) {
    let client = &h.client;
    let (_, auth) = registered(client, b"pw");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    client.put_object(&auth, "pack-a", &data).unwrap();
    assert_eq!(code(client.put_object(&auth, "pack-a", &data)), ErrorCode::ObjectExists);
    assert_eq!(code(client.put_object(&auth, "pack-a", b"different")), ErrorCode::ObjectExists);
    assert_eq!(client.get_object(&auth, "pack-a", 1 << 20).unwrap(), data);
    assert_eq!(client.head_object(&auth, "pack-a").unwrap(), Some(data.len() as u64));
    assert_eq!(client.head_object(&auth, "missing").unwrap(), None);
    assert_eq!(client.get_object_range(&auth, "pack-a", 1000, 500).unwrap(), data[1000..1500]);
    assert_eq!(client.get_object_range(&auth, "pack-a", 99_990, 100).unwrap(), data[99_990..], "clamped at the end");
    assert_eq!(code(client.get_object_range(&auth, "pack-a", 100_000, 1)), ErrorCode::RangeNotSatisfiable);
    assert_eq!(code(client.get_object(&auth, "missing", 10)), ErrorCode::NotFound);

    client.put_object(&auth, "empty", b"").unwrap();
    assert_eq!(client.get_object(&auth, "empty", 10).unwrap(), b"");

    // Listing pages in identifier order.
    for i in 0..7 {
        client.put_object(&auth, &format!("obj-{i}"), &[i as u8; 3]).unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = client.list_objects(&auth, after.as_deref(), Some(3)).unwrap();
        assert!(page.objects.len() <= 3);
        seen.extend(page.objects.iter().map(|o| (o.id.clone(), o.size)));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let mut expected: Vec<(String, u64)> = (0..7).map(|i| (format!("obj-{i}"), 3)).collect();
    expected.push(("empty".into(), 0));
    expected.push(("pack-a".into(), data.len() as u64));
    expected.sort();
    assert_eq!(seen, expected);

    client.delete_object(&auth, "pack-a").unwrap();
    assert_eq!(code(client.delete_object(&auth, "pack-a")), ErrorCode::NotFound);
    assert_eq!(client.head_object(&auth, "pack-a").unwrap(), None);
    // Kept for the grace period (restorable), so still counted; listed as deleted.
    let status = client.account_status(&auth).unwrap();
    assert_eq!((status.objects, status.used_bytes), (9, 21 + data.len() as u64));
    let deleted = client.list_deleted(&auth).unwrap().objects;
    assert_eq!(
        deleted.iter().map(|d| (d.id.as_str(), d.size)).collect::<Vec<_>>(),
        vec![("pack-a", data.len() as u64)]
    );
    client.restore_deleted(&auth, "pack-a").unwrap();
    assert_eq!(client.get_object(&auth, "pack-a", data.len() as u64).unwrap(), data);

    // A small object read (so cached on a local store), deleted, then written anew under its id:
    // each read answers what the store holds at that moment.
    client.put_object(&auth, "small", b"first").unwrap();
    assert_eq!(client.get_object(&auth, "small", 10).unwrap(), b"first");
    client.delete_object(&auth, "small").unwrap();
    assert_eq!(code(client.get_object(&auth, "small", 10)), ErrorCode::NotFound);
    client.put_object(&auth, "small", b"second").unwrap();
    assert_eq!(client.get_object(&auth, "small", 10).unwrap(), b"second");
    assert_eq!(code(client.restore_deleted(&auth, "small")), ErrorCode::ObjectExists);
}

fn large_objects_stream_through_staging(h: &Harness) {
    let client = &h.client;
    let (_, auth) = registered(client, b"pw");
    let len: u64 = 20 << 20;
    let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    client.put_object_stream(&auth, "big", Upload { len, reader: Cursor::new(data.clone()) }).unwrap();
    assert_eq!(client.head_object(&auth, "big").unwrap(), Some(len));
    let back = client.get_object(&auth, "big", len).unwrap();
    assert!(back == data, "the large object reads back byte for byte");
    assert_eq!(client.get_object_range(&auth, "big", (9 << 20) - 5, 10).unwrap(), data[(9 << 20) - 5..(9 << 20) + 5]);
    // Write-once holds for staged uploads too.
    let err = client.put_object_stream(&auth, "big", Upload { len, reader: Cursor::new(vec![0u8; len as usize]) });
    assert_eq!(code(err), ErrorCode::ObjectExists);
    assert!(client.get_object(&auth, "big", len).unwrap() == data);
    // Staged uploads never appear in listings.
    let ids: Vec<String> = client.list_objects(&auth, None, None).unwrap().objects.into_iter().map(|o| o.id).collect();
    assert_eq!(ids, ["big"]);
}

/// Several uploads of one identifier at once, small (single put) and large (staged): exactly one
/// is stored, whole, and every other one is told the object exists.
fn concurrent_puts_of_one_id_store_exactly_one(h: &Harness) {
    let (_, auth) = registered(&h.client, b"pw");
    for (id, len) in [("small", 1000usize), ("large", 9 << 20)] {
        let results: Vec<(u8, Result<(), ClientError>)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..=3u8)
                .map(|fill| {
                    let (client, auth) = (&h.client, &auth);
                    scope.spawn(move || {
                        let upload = Upload { len: len as u64, reader: Cursor::new(vec![fill; len]) };
                        (fill, client.put_object_stream(auth, id, upload))
                    })
                })
                .collect();
            handles.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let winners: Vec<u8> = results.iter().filter(|(_, r)| r.is_ok()).map(|(f, _)| *f).collect();
        assert_eq!(winners.len(), 1, "{id}: {results:?}");
        for (_, result) in &results {
            if let Err(e) = result {
                assert_eq!(e.code(), Some(ErrorCode::ObjectExists), "{id}: {e:?}");
            }
        }
        let stored = h.client.get_object(&auth, id, len as u64).unwrap();
        assert!(stored == vec![winners[0]; len], "{id}: the stored object is the winner's, whole");
    }
    let status = h.client.account_status(&auth).unwrap();
    assert_eq!((status.objects, status.used_bytes), (2, 1000 + (9 << 20)), "losers' reservations are released");
}

/// The primitives write-once rests on, checked directly against the backend: create-if-absent
/// puts and copy-if-not-exists (how staged uploads are placed) refuse to replace an object.
fn backend_refuses_to_replace(h: &Harness) {
    use object_store::path::Path;
    use object_store::{ObjectStoreExt as _, PutMode, PutOptions};
    let store = h.server.state.storage.store().clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let target = Path::from(unique("target"));
        let staged = Path::from(unique("staged"));
        let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
        store.put_opts(&target, b"first".to_vec().into(), create()).await.unwrap();
        let again = store.put_opts(&target, b"second".to_vec().into(), create()).await;
        assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })), "{again:?}");
        store.put(&staged, b"staged".to_vec().into()).await.unwrap();
        let placed = store.copy_if_not_exists(&staged, &target).await;
        assert!(matches!(placed, Err(object_store::Error::AlreadyExists { .. })), "{placed:?}");
        assert_eq!(&store.get(&target).await.unwrap().bytes().await.unwrap()[..], b"first");

        // A conditional update against a stale version is refused (what record updates rest on
        // across replicas; the local file system relies on its directory lock instead).
        if h.server.state.storage.kind() != backup_server::storage::BackendKind::LocalFs {
            let stale = store.head(&target).await.unwrap();
            let stale = object_store::UpdateVersion { e_tag: stale.e_tag, version: stale.version };
            let update = |v: object_store::UpdateVersion| PutOptions { mode: PutMode::Update(v), ..Default::default() };
            store.put_opts(&target, b"second".to_vec().into(), update(stale.clone())).await.unwrap();
            let lost = store.put_opts(&target, b"third".to_vec().into(), update(stale)).await;
            assert!(matches!(lost, Err(object_store::Error::Precondition { .. })), "{lost:?}");
            assert_eq!(&store.get(&target).await.unwrap().bytes().await.unwrap()[..], b"second");
        }
    });
}

/// Deleting one object from several threads at once releases its size once.
fn parallel_deletes_release_once(h: &Harness) {
    let (_, auth) = registered(&h.client, b"pw");
    h.client.put_object(&auth, "keep", &[0u8; 1000]).unwrap();
    h.client.put_object(&auth, "gone", &[0u8; 5000]).unwrap();
    let outcomes: Vec<Option<ErrorCode>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| h.client.delete_object(&auth, "gone").err().and_then(|e| e.code())))
            .collect();
        handles.into_iter().map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().flatten().all(|c| *c == ErrorCode::NotFound), "{outcomes:?}");
    let status = h.client.account_status(&auth).unwrap();
    assert_eq!((status.objects, status.used_bytes), (1, 1000));
}

fn quota_and_size_limits(h: &Harness) {
    let client = &h.client;
    let (_, auth) = registered(client, b"pw");
    let quota = h.server.state.limits.quota_bytes;
    let max = h.server.state.limits.max_object_bytes;
    assert_eq!((quota, max), (1 << 20, 512 << 10));
    client.put_object(&auth, "half", &vec![1u8; 512 << 10]).unwrap();
    client.put_object(&auth, "almost-half", &vec![1u8; (512 << 10) - 10]).unwrap();
    assert_eq!(code(client.put_object(&auth, "overflows", &[0u8; 11])), ErrorCode::QuotaExceeded);
    assert_eq!(client.head_object(&auth, "overflows").unwrap(), None);
    client.put_object(&auth, "exactly", &[0u8; 10]).unwrap();
    client.delete_object(&auth, "half").unwrap();
    client.put_object(&auth, "after-delete", &[0u8; 100]).unwrap();
    let status = client.account_status(&auth).unwrap();
    assert_eq!(status.used_bytes, (512 << 10) + 100);
    assert_eq!(status.objects, 3);
    let too_big = vec![0u8; (max + 1) as usize];
    assert_eq!(code(client.put_object(&auth, "too-big", &too_big)), ErrorCode::PayloadTooLarge);
    assert_eq!(client.head_object(&auth, "too-big").unwrap(), None);
}

fn accounts_are_isolated(h: &Harness) {
    let client = &h.client;
    let (_, alice) = registered(client, b"a");
    let (_, bob) = registered(client, b"b");
    client.put_object(&alice, "secret-pack", b"alice's bytes").unwrap();
    client.put_head(&alice, b"alice head", 1, None).unwrap();
    client.put_escrow(&alice, b"alice share", None).unwrap();
    // Bob sees his own (empty) namespace under the same names.
    assert_eq!(code(client.get_object(&bob, "secret-pack", 100)), ErrorCode::NotFound);
    assert_eq!(client.head_object(&bob, "secret-pack").unwrap(), None);
    assert!(client.list_objects(&bob, None, None).unwrap().objects.is_empty());
    assert!(client.get_head(&bob).unwrap().is_none());
    assert!(client.get_escrow(&bob).unwrap().is_none());
    assert_eq!(code(client.delete_object(&bob, "secret-pack")), ErrorCode::NotFound);
    client.put_object(&bob, "secret-pack", b"bob's bytes").unwrap();
    assert_eq!(client.get_object(&alice, "secret-pack", 100).unwrap(), b"alice's bytes");
    assert_eq!(client.get_object(&bob, "secret-pack", 100).unwrap(), b"bob's bytes");
}

fn health_and_metrics(h: &Harness) {
    let (status, body) = support::raw(h.addr(), "GET /healthz HTTP/1.1", b"");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (_, auth) = registered(&h.client, b"pw");
    h.client.put_object(&auth, "x", b"12345").unwrap();
    let (status, body) = support::raw(h.addr(), "GET /metrics HTTP/1.1", b"");
    assert_eq!(status, 200);
    for needle in [
        "backup_http_requests_total{route=\"/v1/objects/{id}\",method=\"PUT\",status=\"201\"} 1",
        "backup_http_request_duration_seconds_count{route=\"/v1/login/finish\"} 1",
        "backup_logins_ok_total 1",
        "backup_objects_stored_total 1",
        "backup_object_bytes_received_total 5",
    ] {
        assert!(body.contains(needle), "missing {needle} in\n{body}");
    }
}

fn post_json_head(path: &str, body: &serde_json::Value) -> String {
    format!("POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}", body.to_string().len())
}

fn base64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Deletions without a grace period (usage released at once).
fn immediate_deletes() -> Limits {
    Limits { deletion_grace: std::time::Duration::ZERO, ..test_limits() }
}

fn small_limits() -> Limits {
    Limits {
        quota_bytes: 1 << 20,
        max_object_bytes: 512 << 10,
        deletion_grace: std::time::Duration::ZERO,
        ..support::limits_with_delays(4, 3600, 3600)
    }
}

macro_rules! conformance {
    ($backend_mod:ident, $backend:expr $(, #[$attr:meta])*) => {
        mod $backend_mod {
            use super::*;

            fn run(case: fn(&Harness), limits: Limits) {
                case(&Harness::start($backend, limits));
            }

            #[test]
            $(#[$attr])*
            fn register_login_and_refusals() {
                run(super::register_login_and_refusals, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn a_delayed_account_gives_no_uncounted_evaluation() {
                run(super::a_delayed_account_gives_no_uncounted_evaluation, small_limits());
            }
            #[test]
            $(#[$attr])*
            fn registration_is_not_an_oracle() {
                run(super::registration_is_not_an_oracle, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn password_change() {
                run(super::password_change, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn devices() {
                run(super::devices, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn escrow_and_head_compare_and_swap() {
                run(super::escrow_and_head_compare_and_swap, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn objects_round_trip() {
                run(super::objects_round_trip, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn large_objects_stream_through_staging() {
                run(super::large_objects_stream_through_staging, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn concurrent_puts_of_one_id_store_exactly_one() {
                run(super::concurrent_puts_of_one_id_store_exactly_one, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn backend_refuses_to_replace() {
                run(super::backend_refuses_to_replace, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn parallel_deletes_release_once() {
                run(super::parallel_deletes_release_once, immediate_deletes());
            }
            #[test]
            $(#[$attr])*
            fn quota_and_size_limits() {
                run(super::quota_and_size_limits, small_limits());
            }
            #[test]
            $(#[$attr])*
            fn accounts_are_isolated() {
                run(super::accounts_are_isolated, test_limits());
            }
            #[test]
            $(#[$attr])*
            fn health_and_metrics() {
                run(super::health_and_metrics, test_limits());
            }
        }
    };
}

conformance!(memory, Backend::Memory);
conformance!(local_fs, Backend::LocalFs);
conformance!(s3, Backend::S3, #[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]);

/// Two independent `Storage` instances (separate in-process locks, as two replicas have) racing
/// read-modify-write updates on one record: the backend's compare-and-swap loses no update.
fn racing_replicas_lose_no_update(backend: Backend) {
    use backup_server::storage::{Change, StorageError};
    let (first, _dir) = support::storage(backend);
    let second = backup_server::Storage::new(first.store().clone(), first.kind(), "second".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    let path = object_store::path::Path::from(unique("counter"));
    let first = std::sync::Arc::new(first);
    let second = std::sync::Arc::new(second);
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for storage in [first.clone(), second.clone(), first.clone(), second.clone()] {
            let path = path.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..10 {
                    storage
                        .update::<(), StorageError>(&path, |current| {
                            let n: u32 = current.map_or(0, |b| String::from_utf8_lossy(b).parse().unwrap());
                            Ok(Change::Write((n + 1).to_string().into_bytes(), ()))
                        })
                        .await
                        .unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(&first.read(&path).await.unwrap().unwrap().bytes[..], b"40");
    });
}

#[test]
fn racing_replicas_lose_no_update_in_memory() {
    racing_replicas_lose_no_update(Backend::Memory);
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn racing_replicas_lose_no_update_on_s3() {
    racing_replicas_lose_no_update(Backend::S3);
}
