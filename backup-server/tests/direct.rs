//! Presigned transfers against a real S3 server (SeaweedFS, started by `scripts/test.sh`): bytes
//! go straight between the client and the object store, and the store enforces what the server
//! signed into each URL — write-once, the declared content (hence size), the expiry. The server
//! reserves the quota first and settles each upload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::io::Cursor;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backup_api::ErrorCode;
use backup_api::client::{BackupClient, BearerToken, ClientError, Upload};
use base64::Engine as _;
use sha2_10::{Digest as _, Sha256};
use support::{Backend, Harness, ksf, test_limits, unique};

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    match result {
        Err(e) => e.code().unwrap_or_else(|| panic!("no code in {e:?}")),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// A device token of a new account (the routine-upload credential).
fn device(client: &BackupClient) -> BearerToken {
    let account = unique("direct");
    client.register(&account, b"pw", ksf()).unwrap();
    let session = client.login(&account, b"pw").unwrap();
    client.enrol_device(&session.token, "phone").unwrap().1
}

fn sha256(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn upload(bytes: Vec<u8>) -> Upload<Cursor<Vec<u8>>> {
    Upload { len: bytes.len() as u64, reader: Cursor::new(bytes) }
}

/// `len` bytes of a pattern that repeats only every 251 bytes.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn limits_with_ttl(ttl: Duration) -> backup_server::Limits {
    backup_server::Limits { direct_url_ttl: ttl, ..test_limits() }
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn a_100_mib_object_goes_up_and_down_through_presigned_urls_not_through_the_server() {
    let h = Harness::start(Backend::S3, test_limits());
    let auth = device(&h.client);
    let data = pattern(100 << 20);
    let direct = h.client.direct_upload_url(&auth, "media-big", data.len() as u64, &sha256(&data)).unwrap().unwrap();
    assert!(direct.url.contains("X-Amz-Signature="), "a presigned URL");
    let status = h.client.account_status(&auth).unwrap();
    assert_eq!((status.objects, status.used_bytes), (1, data.len() as u64), "reserved when the URL is issued");
    h.client.put_direct(&direct, upload(data.clone())).unwrap();
    h.client.direct_upload_done(&auth, "media-big").unwrap();
    assert_eq!(h.client.head_object(&auth, "media-big").unwrap(), Some(data.len() as u64));
    let status = h.client.account_status(&auth).unwrap();
    assert_eq!((status.objects, status.used_bytes), (1, data.len() as u64), "the reservation is kept");

    let direct = h.client.direct_download_url(&auth, "media-big").unwrap().unwrap();
    let mut read = Vec::with_capacity(data.len());
    while read.len() < data.len() {
        let piece = (data.len() - read.len()).min(8 << 20) as u64;
        read.extend(h.client.get_direct_range(&direct, read.len() as u64, piece).unwrap());
    }
    assert!(read == data, "the download is the upload");
    let metrics = &h.server.state.metrics;
    assert_eq!(metrics.bytes_in.load(Ordering::Relaxed), 0, "no object byte went through the server");
    assert_eq!(metrics.bytes_out.load(Ordering::Relaxed), 0);
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn a_presigned_upload_is_write_once_and_takes_only_the_declared_content() {
    let h = Harness::start(Backend::S3, test_limits());
    let auth = device(&h.client);
    let content = b"the declared content".to_vec();
    let direct = h.client.direct_upload_url(&auth, "pack-a", content.len() as u64, &sha256(&content)).unwrap().unwrap();
    let other = b"another content, same".to_vec();
    assert_eq!(other.len(), content.len() + 1);
    assert_eq!(code(h.client.put_direct(&direct, upload(other[..content.len()].to_vec()))), ErrorCode::BadRequest);
    assert_eq!(
        code(h.client.put_direct(&direct, upload(other))),
        ErrorCode::Forbidden,
        "a longer body: the length is signed"
    );
    assert_eq!(h.client.head_object(&auth, "pack-a").unwrap(), None, "nothing stored");
    // Another content for the id while the URL lives: busy, not taken (nothing is stored, and a
    // client told `object_exists` would count the object as stored and leave it out of its backup).
    let busy = h.client.direct_upload_url(&auth, "pack-a", content.len() as u64, &sha256(b"other content"));
    assert_eq!(code(busy), ErrorCode::Unavailable);
    // The same content again: a retry, answered with a URL for the same reservation.
    assert!(h.client.direct_upload_url(&auth, "pack-a", content.len() as u64, &sha256(&content)).unwrap().is_some());

    // The signed headers cannot be left out: without If-None-Match the signature does not match.
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let checksum = &direct.headers.iter().find(|(n, _)| n == "x-amz-checksum-sha256").unwrap().1;
    let bare = agent.put(&direct.url).header("x-amz-checksum-sha256", checksum).send(&content[..]).unwrap();
    assert_eq!(bare.status().as_u16(), 403);
    assert_eq!(h.client.head_object(&auth, "pack-a").unwrap(), None);

    h.client.put_direct(&direct, upload(content.clone())).unwrap();
    assert_eq!(code(h.client.put_direct(&direct, upload(content.clone()))), ErrorCode::ObjectExists, "write-once");
    h.client.direct_upload_done(&auth, "pack-a").unwrap();
    assert_eq!(h.client.get_object(&auth, "pack-a", 100).unwrap(), content);
    assert_eq!(
        code(h.client.direct_upload_url(&auth, "pack-a", 1, &sha256(b"x"))),
        ErrorCode::ObjectExists,
        "no URL for an id that is taken"
    );
    // Nor through the server.
    assert_eq!(code(h.client.put_object(&auth, "pack-a", b"x")), ErrorCode::ObjectExists);
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn an_expired_url_is_refused_and_its_reservation_released() {
    let h = Harness::start(Backend::S3, limits_with_ttl(Duration::from_secs(1)));
    let auth = device(&h.client);
    let content = b"too late".to_vec();
    let upload_url =
        h.client.direct_upload_url(&auth, "late", content.len() as u64, &sha256(&content)).unwrap().unwrap();
    h.client.put_object(&auth, "present", b"here").unwrap();
    let download_url = h.client.direct_download_url(&auth, "present").unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(code(h.client.put_direct(&upload_url, upload(content))), ErrorCode::Forbidden);
    assert_eq!(h.client.head_object(&auth, "late").unwrap(), None);
    assert_eq!(code(h.client.get_direct_range(&download_url, 0, 4)), ErrorCode::Forbidden);
    assert_eq!(h.client.account_status(&auth).unwrap().used_bytes, 8 + 4, "reserved until settled");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let later = backup_server::state::now_secs() + 3600;
    let settled = runtime.block_on(backup_server::http::sweep_direct_uploads(&h.server.state, later)).unwrap();
    assert_eq!(settled, 1);
    let status = h.client.account_status(&auth).unwrap();
    assert_eq!((status.objects, status.used_bytes), (1, 4), "the unused reservation is released");
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn quota_is_reserved_first_and_the_size_is_bound_in_the_signature() {
    let limits = backup_server::Limits { quota_bytes: 1000, ..test_limits() };
    let h = Harness::start(Backend::S3, limits);
    let auth = device(&h.client);
    let big = vec![7u8; 600];
    h.client.direct_upload_url(&auth, "first", 600, &sha256(&big)).unwrap().unwrap();
    assert_eq!(code(h.client.direct_upload_url(&auth, "second", 600, &sha256(&big))), ErrorCode::QuotaExceeded);
    assert_eq!(code(h.client.direct_upload_url(&auth, "huge", 1 << 40, &sha256(&big))), ErrorCode::PayloadTooLarge);

    // Declaring 10 bytes for 300 bytes of content (to reserve less than it stores): the store
    // refuses the body, whose length is not the signed one.
    let content = vec![9u8; 300];
    let lie = h.client.direct_upload_url(&auth, "liar", 10, &sha256(&content)).unwrap().unwrap();
    assert_eq!(code(h.client.put_direct(&lie, upload(content))), ErrorCode::Forbidden);
    assert_eq!(h.client.head_object(&auth, "liar").unwrap(), None);
    assert_eq!(code(h.client.direct_upload_done(&auth, "liar")), ErrorCode::NotFound, "nothing arrived");
    assert_eq!(h.client.account_status(&auth).unwrap().used_bytes, 610, "reserved until settled");
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn a_reservation_is_released_once_whoever_settles_it() {
    let limits = backup_server::Limits { deletion_grace: Duration::ZERO, ..test_limits() };
    let h = Harness::start(Backend::S3, limits);
    let account = unique("direct");
    h.client.register(&account, b"pw", ksf()).unwrap();
    let session = h.client.login(&account, b"pw").unwrap().token;
    let content = vec![3u8; 100];
    // Uploaded, never reported done, then deleted with a session: the deletion settles the upload
    // first, so the size is released once, by the deletion.
    let direct = h.client.direct_upload_url(&session, "kept", 100, &sha256(&content)).unwrap().unwrap();
    h.client.put_direct(&direct, upload(content.clone())).unwrap();
    h.client.delete_object(&session, "kept").unwrap();
    // Never uploaded: released by the sweep, once, however many replicas sweep.
    h.client.direct_upload_url(&session, "never", 100, &sha256(&content)).unwrap().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let later = backup_server::state::now_secs() + 3600;
    let sweep = || runtime.block_on(backup_server::http::sweep_direct_uploads(&h.server.state, later)).unwrap();
    assert_eq!(sweep(), 1);
    assert_eq!(sweep(), 0);
    let status = h.client.account_status(&session).unwrap();
    assert_eq!((status.objects, status.used_bytes), (0, 0));
}

/// The noted upload of `id` (the only one of that id in the store), read and rewritten as another
/// replica's claim made at `claimed_at`.
fn claim_note_as_another_replica(h: &Harness, runtime: &tokio::runtime::Runtime, id: &str, claimed_at: u64) {
    use futures::StreamExt as _;
    use object_store::{ObjectStoreExt as _, PutPayload};
    let store = h.server.state.storage.store();
    runtime.block_on(async {
        let listed: Vec<_> = store.list(Some(&backup_server::records::direct_uploads_prefix())).collect().await;
        let path = listed
            .into_iter()
            .map(|meta| meta.unwrap().location)
            .find(|location| location.filename() == Some(id))
            .expect("the upload is noted");
        let bytes = store.get(&path).await.unwrap().bytes().await.unwrap();
        let mut note: backup_server::records::DirectUpload = serde_json::from_slice(&bytes).unwrap();
        note.settled = true;
        note.claimed_at = claimed_at;
        store.put(&path, PutPayload::from(serde_json::to_vec(&note).unwrap())).await.unwrap();
    });
}

/// Whether an upload of `id` is noted.
fn noted(h: &Harness, runtime: &tokio::runtime::Runtime, id: &str) -> bool {
    use futures::StreamExt as _;
    let store = h.server.state.storage.store();
    runtime.block_on(async {
        let listed: Vec<_> = store.list(Some(&backup_server::records::direct_uploads_prefix())).collect().await;
        listed.into_iter().any(|meta| meta.unwrap().location.filename() == Some(id))
    })
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn a_settlement_another_replica_holds_is_left_to_it_and_a_stale_claim_is_removed() {
    let h = Harness::start(Backend::S3, test_limits());
    let auth = device(&h.client);
    let content = vec![5u8; 100];
    let direct = h.client.direct_upload_url(&auth, "claimed", 100, &sha256(&content)).unwrap().unwrap();
    h.client.put_direct(&direct, upload(content)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // Another replica claimed it just now and is still settling it.
    claim_note_as_another_replica(&h, &runtime, "claimed", backup_server::state::now_secs());
    assert_eq!(code(h.client.direct_upload_done(&auth, "claimed")), ErrorCode::Unavailable);
    let later = backup_server::state::now_secs() + 3600;
    let sweep = || runtime.block_on(backup_server::http::sweep_direct_uploads(&h.server.state, later)).unwrap();
    assert_eq!(sweep(), 0);
    assert!(noted(&h, &runtime, "claimed"), "a claim in progress is left to its replica");
    // That replica stopped long ago: the next sweep removes the claim, keeping the reservation.
    claim_note_as_another_replica(&h, &runtime, "claimed", 1);
    assert_eq!(sweep(), 0, "nothing settled: the note is only removed");
    assert!(!noted(&h, &runtime, "claimed"));
    let status = h.client.account_status(&auth).unwrap();
    assert_eq!((status.objects, status.used_bytes), (1, 100), "the stored object stays counted");
}

#[test]
fn a_local_store_hands_out_no_presigned_urls_and_clients_use_the_server() {
    let h = Harness::start(Backend::LocalFs, test_limits());
    let auth = device(&h.client);
    assert!(h.client.direct_upload_url(&auth, "a", 1, &sha256(b"a")).unwrap().is_none());
    h.client.put_object(&auth, "a", b"a").unwrap();
    assert!(h.client.direct_download_url(&auth, "a").unwrap().is_none());
    assert_eq!(code(h.client.direct_upload_done(&auth, "a")), ErrorCode::DirectTransfersOff);
}

#[test]
#[cfg_attr(not(s3_available), ignore = "needs an S3 server: run scripts/test.sh")]
fn an_operator_can_turn_presigned_urls_off() {
    let h = Harness::start(Backend::S3, limits_with_ttl(Duration::ZERO));
    let auth = device(&h.client);
    assert!(h.client.direct_upload_url(&auth, "a", 1, &sha256(b"a")).unwrap().is_none());
}
