//! Device tokens are append-only and deletions wait out a grace period, against an embedded
//! server: a device token cannot delete or lower the head's generation; a session's deletion is
//! kept, listed, restorable, and purged once the grace period has passed (time injected, not
//! slept), releasing its usage only then.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::time::Duration;

use backup_api::ErrorCode;
use backup_server::Limits;
use support::{Backend, Harness, ksf, test_limits, unique};

const GRACE: u64 = 7 * 86_400;

fn registered(h: &Harness) -> (backup_api::client::BearerToken, backup_api::client::BearerToken) {
    let account = unique("append");
    h.client.register(&account, b"pw", ksf()).unwrap();
    let session = h.client.login(&account, b"pw").unwrap().token;
    let (_, device) = h.client.enrol_device(&session, "phone").unwrap();
    (session, device)
}

/// What a thief holding a device token can and cannot do.
#[test]
fn a_device_token_cannot_delete_or_rewind_the_head() {
    let h = Harness::start(Backend::Memory, test_limits());
    let (session, device) = registered(&h);
    h.client.put_object(&device, "pack-1", b"data").unwrap();
    let refused = h.client.delete_object(&device, "pack-1").unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden), "{refused}");
    assert_eq!(h.client.get_object(&device, "pack-1", 100).unwrap(), b"data");

    let at5 = h.client.put_head(&device, b"head 5", 5, None).unwrap();
    let rewind = h.client.put_head(&device, b"head 4", 4, Some(&at5)).unwrap_err();
    assert_eq!(rewind.code(), Some(ErrorCode::GenerationRegressed), "{rewind}");
    let same = h.client.put_head(&device, b"head 5 again", 5, Some(&at5)).unwrap();
    let at6 = h.client.put_head(&device, b"head 6", 6, Some(&same)).unwrap();
    assert_eq!(h.client.get_head(&device).unwrap().unwrap().0, b"head 6");
    // The owner's session may move it back (a deliberate repair).
    h.client.put_head(&session, b"head 2", 2, Some(&at6)).unwrap();
    // Without the generation header a PUT is refused.
    let head = format!(
        "PUT /v1/head HTTP/1.1\r\nAuthorization: Bearer {}\r\nIf-None-Match: *\r\nContent-Length: 1",
        device.expose()
    );
    let (status, body) = support::raw(h.addr(), &head, b"x");
    assert_eq!((status, support::error_code(&body).as_str()), (428, "precondition_required"));
}

/// A session's deletion is kept for the grace period, listed with its purge time, restorable,
/// and purged only after it, when its usage is released.
#[test]
fn deleted_objects_are_restorable_during_the_grace_period_and_purged_after_it() {
    let h = Harness::start(Backend::Memory, test_limits());
    let (session, device) = registered(&h);
    h.client.put_object(&device, "pack-1", b"0123456789").unwrap();
    h.client.put_object(&device, "pack-2", b"abc").unwrap();
    h.client.delete_object(&session, "pack-1").unwrap();
    assert!(h.client.head_object(&device, "pack-1").unwrap().is_none(), "gone from the objects");
    let listed = h.client.list_deleted(&session).unwrap().objects;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].id.as_str(), listed[0].size), ("pack-1", 10));
    assert_eq!(listed[0].purge_at, listed[0].deleted_at + GRACE);
    assert_eq!(h.client.list_deleted(&device).unwrap_err().code(), Some(ErrorCode::Forbidden));
    assert_eq!(h.client.account_status(&session).unwrap().used_bytes, 13, "kept objects still count");

    h.client.restore_deleted(&session, "pack-1").unwrap();
    assert_eq!(h.client.get_object(&device, "pack-1", 100).unwrap(), b"0123456789");
    assert!(h.client.list_deleted(&session).unwrap().objects.is_empty());
    assert_eq!(h.client.restore_deleted(&session, "pack-1").unwrap_err().code(), Some(ErrorCode::NotFound));

    h.client.delete_object(&session, "pack-1").unwrap();
    let deleted_at = h.client.list_deleted(&session).unwrap().objects[0].deleted_at;
    // A new object of the same name blocks a restore over it.
    h.client.put_object(&device, "pack-1", b"new").unwrap();
    assert_eq!(h.client.restore_deleted(&session, "pack-1").unwrap_err().code(), Some(ErrorCode::ObjectExists));

    let state = h.server.state.clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let purged = runtime.block_on(backup_server::http::purge_deleted(&state, deleted_at + GRACE - 1)).unwrap();
    assert_eq!(purged, 0, "still in its grace period");
    assert_eq!(h.client.list_deleted(&session).unwrap().objects.len(), 1);
    let purged = runtime.block_on(backup_server::http::purge_deleted(&state, deleted_at + GRACE)).unwrap();
    assert_eq!(purged, 1);
    assert!(h.client.list_deleted(&session).unwrap().objects.is_empty());
    let status = h.client.account_status(&session).unwrap();
    assert_eq!((status.used_bytes, status.objects), (6, 2), "the purged object's usage is released");
}

/// With a grace period of zero, a session's deletion is immediate.
#[test]
fn a_zero_grace_period_deletes_at_once() {
    let h = Harness::start(Backend::Memory, Limits { deletion_grace: Duration::ZERO, ..test_limits() });
    let (session, device) = registered(&h);
    h.client.put_object(&device, "pack-1", b"0123456789").unwrap();
    h.client.delete_object(&session, "pack-1").unwrap();
    assert!(h.client.list_deleted(&session).unwrap().objects.is_empty());
    assert_eq!(h.client.account_status(&session).unwrap().used_bytes, 0);
}
