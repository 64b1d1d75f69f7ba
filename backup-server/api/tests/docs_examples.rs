//! The JSON examples in `docs/server-api.md` match the wire types: every example parses, each
//! request or response example has exactly the fields of its type, and examples without elided
//! values (`…`) deserialize into it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;

use backup_api::KsfParams;
use backup_api::wire::*;
use serde_json::Value;

fn examples() -> Vec<(usize, Value)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/server-api.md");
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (number, line) in text.lines().enumerate() {
        match (&mut block, line.trim_start()) {
            (None, "```json") => block = Some((number + 1, String::new())),
            (Some((start, body)), "```") => {
                let value = serde_json::from_str(body).unwrap_or_else(|e| panic!("server-api.md:{start}: {e}"));
                out.push((*start, value));
                block = None;
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

/// A wire type: its name, a sample as JSON, and a check that deserializes an example into it.
type WireType = (&'static str, Value, fn(&Value) -> bool);

/// One sample of every wire type.
fn types() -> Vec<WireType> {
    let ksf = KsfParams::recommended();
    fn de<T: serde::de::DeserializeOwned>(v: &Value) -> bool {
        serde_json::from_value::<T>(v.clone()).is_ok()
    }
    vec![
        ("KsfParams", serde_json::to_value(ksf).unwrap(), de::<KsfParams>),
        (
            "RegisterStartRequest",
            serde_json::to_value(RegisterStartRequest { account: "a".into(), request: vec![1], ksf }).unwrap(),
            de::<RegisterStartRequest>,
        ),
        (
            "RegisterStartResponse",
            serde_json::to_value(RegisterStartResponse { response: vec![1], state: vec![2] }).unwrap(),
            de::<RegisterStartResponse>,
        ),
        (
            "RegisterFinishRequest",
            serde_json::to_value(RegisterFinishRequest { state: vec![1], upload: vec![2] }).unwrap(),
            de::<RegisterFinishRequest>,
        ),
        (
            "LoginStartRequest",
            serde_json::to_value(LoginStartRequest { account: "a".into(), request: vec![1], ticket: None }).unwrap(),
            de::<LoginStartRequest>,
        ),
        (
            "LoginStartRequest with a ticket",
            serde_json::to_value(LoginStartRequest { account: "a".into(), request: vec![1], ticket: Some("t".into()) })
                .unwrap(),
            de::<LoginStartRequest>,
        ),
        (
            "LoginStartResponse",
            serde_json::to_value(LoginStartResponse { response: vec![1], state: vec![2], ksf }).unwrap(),
            de::<LoginStartResponse>,
        ),
        (
            "LoginFinishRequest",
            serde_json::to_value(LoginFinishRequest { state: vec![1], finalization: vec![2] }).unwrap(),
            de::<LoginFinishRequest>,
        ),
        (
            "SessionResponse",
            serde_json::to_value(SessionResponse { session_token: "s1.x".into(), expires_in_secs: 1 }).unwrap(),
            de::<SessionResponse>,
        ),
        (
            "AccountStatus",
            serde_json::to_value(AccountStatus {
                failed_logins: 0,
                login_limit: 10,
                next_login_at: 0,
                used_bytes: 0,
                objects: 0,
                quota_bytes: 1,
            })
            .unwrap(),
            de::<AccountStatus>,
        ),
        (
            "CreateDeviceRequest",
            serde_json::to_value(CreateDeviceRequest { name: "n".into() }).unwrap(),
            de::<CreateDeviceRequest>,
        ),
        (
            "DeviceTokenResponse",
            serde_json::to_value(DeviceTokenResponse { device_id: "d".into(), token: "t".into() }).unwrap(),
            de::<DeviceTokenResponse>,
        ),
        (
            "DeviceList",
            serde_json::to_value(DeviceList {
                devices: vec![DeviceInfo { id: "i".into(), name: "n".into(), created_at: 1 }],
            })
            .unwrap(),
            de::<DeviceList>,
        ),
        (
            "ObjectList",
            serde_json::to_value(ObjectList {
                objects: vec![ObjectInfo { id: "i".into(), size: 1 }],
                next: Some("i".into()),
            })
            .unwrap(),
            de::<ObjectList>,
        ),
        (
            "AccountEvents",
            serde_json::to_value(AccountEvents {
                events: vec![AccountEvent {
                    seq: 1,
                    at: 1,
                    kind: AccountEventKind::LoginDelayed,
                    authorised: true,
                    retry_at: Some(2),
                }],
                dropped: 0,
            })
            .unwrap(),
            de::<AccountEvents>,
        ),
        (
            "DeletedList",
            serde_json::to_value(DeletedList {
                objects: vec![DeletedObject { id: "i".into(), size: 1, deleted_at: 2, purge_at: 3 }],
            })
            .unwrap(),
            de::<DeletedList>,
        ),
        (
            "DirectUploadRequest",
            serde_json::to_value(DirectUploadRequest { size: 1, sha256: "s".into() }).unwrap(),
            de::<DirectUploadRequest>,
        ),
        (
            "DirectUrl",
            serde_json::to_value(DirectUrl { url: "u".into(), headers: vec![("h".into(), "v".into())], expires_at: 1 })
                .unwrap(),
            de::<DirectUrl>,
        ),
        ("ErrorBody", serde_json::json!({"error": "not_found", "message": "m"}), de::<ErrorBody>),
    ]
}

#[test]
fn every_api_example_is_json_with_the_fields_of_its_type() {
    let examples = examples();
    assert!(examples.len() >= 14, "found {} JSON examples", examples.len());
    let types = types();
    let mut matched = BTreeSet::new();
    for (line, example) in &examples {
        // The account record (§6.x) is the server's storage format, not a wire type.
        if example.get("password_file").is_some() {
            continue;
        }
        let fields = keys(example);
        let (name, _, deserializes) = types
            .iter()
            .find(|(_, sample, _)| keys(sample) == fields)
            .unwrap_or_else(|| panic!("server-api.md:{line}: no wire type has exactly the fields {fields:?}"));
        matched.insert(*name);
        if !example.to_string().contains('…') {
            assert!(deserializes(example), "server-api.md:{line}: does not deserialize as {name}");
        }
    }
    for (name, _, _) in &types {
        assert!(matched.contains(name), "docs/server-api.md has no example of {name}");
    }
}
