//! Hostile input against a running server: malformed OPAQUE messages and JSON, oversized bodies,
//! bad tokens, path tricks in object identifiers, unknown routes. Each gets the right 4xx, the
//! server never panics or answers 500, and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::collections::BTreeMap;

use backup_api::client::BearerToken;
use backup_server::Limits;
use futures::StreamExt as _;
use support::{Backend, Harness, error_code, ksf, raw, test_limits, unique};

/// Every stored path and its size.
fn stored(h: &Harness) -> BTreeMap<String, u64> {
    let store = h.server.state.storage.store().clone();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(async {
        let mut out = BTreeMap::new();
        let mut listing = store.list(None);
        while let Some(meta) = listing.next().await {
            let meta = meta.unwrap();
            out.insert(meta.location.to_string(), meta.size);
        }
        out
    })
}

fn harness() -> (Harness, BearerToken) {
    let limits = Limits { max_object_bytes: 1 << 20, ..test_limits() };
    let h = Harness::start(Backend::Memory, limits);
    let account = unique("hostile");
    h.client.register(&account, b"pw", ksf()).unwrap();
    let token = h.client.login(&account, b"pw").unwrap().token;
    (h, token)
}

fn json_post(path: &str, body: &str, token: Option<&str>) -> String {
    let auth = token.map(|t| format!("\r\nAuthorization: Bearer {t}")).unwrap_or_default();
    format!("POST {path} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}{auth}", body.len())
}

fn expect(h: &Harness, head: &str, body: &[u8], status: u16, code: &str) {
    let (got, text) = raw(h.addr(), head, body);
    assert_eq!((got, error_code(&text).as_str()), (status, code), "{head:?} answered {text:?}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn malformed_opaque_messages_and_json() {
    let (h, _) = harness();
    let before = stored(&h);
    let valid_b64 = "AAAA";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("/v1/login/start", "{".into(), 400, "bad_request"),
        ("/v1/login/start", "[]".into(), 400, "bad_request"),
        ("/v1/login/start", r#"{"account":"a"}"#.into(), 400, "bad_request"),
        ("/v1/login/start", r#"{"account":"a","request":"!!!"}"#.into(), 400, "bad_request"),
        ("/v1/login/start", format!(r#"{{"account":"a","request":"{valid_b64}"}}"#), 400, "bad_request"),
        ("/v1/login/start", format!(r#"{{"account":"a","request":"{}"}}"#, "A".repeat(128)), 400, "bad_request"),
        ("/v1/login/start", format!(r#"{{"account":"","request":"{valid_b64}"}}"#), 400, "invalid_name"),
        ("/v1/login/start", format!(r#"{{"account":"a\u0000b","request":"{valid_b64}"}}"#), 400, "invalid_name"),
        ("/v1/login/start", format!(r#"{{"account":"a","request":"{valid_b64}","extra":1}}"#), 400, "bad_request"),
        ("/v1/login/finish", format!(r#"{{"state":"{valid_b64}","finalization":"{valid_b64}"}}"#), 401, "login_failed"),
        (
            "/v1/register/start",
            format!(
                r#"{{"account":"a","request":"{valid_b64}","ksf":{{"version":1,"memory_kib":8192,"passes":1,"lanes":1}}}}"#
            ),
            400,
            "bad_request",
        ),
        (
            "/v1/register/start",
            format!(
                r#"{{"account":"a","request":"{}","ksf":{{"version":9,"memory_kib":8192,"passes":1,"lanes":1}}}}"#,
                "A".repeat(43)
            ),
            400,
            "bad_request",
        ),
        ("/v1/register/finish", format!(r#"{{"state":"{valid_b64}","upload":"{valid_b64}"}}"#), 400, "bad_request"),
    ];
    for (path, body, status, code) in &cases {
        expect(&h, &json_post(path, body, None), body.as_bytes(), *status, code);
    }
    assert_eq!(stored(&h), before, "malformed requests wrote nothing");
}

#[test]
fn oversized_bodies_are_refused_before_anything_is_stored() {
    let (h, token) = harness();
    let t = token.expose();
    let before = stored(&h);
    let big_json = format!(r#"{{"account":"{}","request":"AAAA"}}"#, "a".repeat(backup_api::MAX_JSON_BODY_LEN));
    expect(&h, &json_post("/v1/login/start", &big_json, None), big_json.as_bytes(), 413, "payload_too_large");
    let big_record = vec![b'x'; backup_api::MAX_HEAD_LEN + 1];
    let head = format!(
        "PUT /v1/head HTTP/1.1\r\nAuthorization: Bearer {t}\r\nIf-None-Match: *\r\nX-Head-Generation: 1\r\nContent-Length: {}",
        big_record.len()
    );
    expect(&h, &head, &big_record, 413, "payload_too_large");
    // An object over the size limit is refused from its Content-Length, before the body.
    let head =
        format!("PUT /v1/objects/big HTTP/1.1\r\nAuthorization: Bearer {t}\r\nContent-Length: {}", (1 << 20) + 1);
    expect(&h, &head, b"", 413, "payload_too_large");
    // Chunked uploads have no Content-Length and are refused.
    let head = format!("PUT /v1/objects/chunked HTTP/1.1\r\nAuthorization: Bearer {t}\r\nTransfer-Encoding: chunked");
    expect(&h, &head, b"5\r\nhello\r\n0\r\n\r\n", 411, "length_required");
    // A body cut short of its Content-Length stores nothing.
    let head = format!("PUT /v1/objects/short HTTP/1.1\r\nAuthorization: Bearer {t}\r\nContent-Length: 1000");
    let (status, _) = support::raw_then_close(h.addr(), &head, &[7u8; 10]);
    assert!(status == 400 || status == 0, "a truncated upload is refused (or the connection dropped): {status}");
    // A record PUT without a precondition is refused.
    let head = format!("PUT /v1/head HTTP/1.1\r\nAuthorization: Bearer {t}\r\nContent-Length: 2");
    expect(&h, &head, b"hi", 428, "precondition_required");
    let head = format!(
        "PUT /v1/head HTTP/1.1\r\nAuthorization: Bearer {t}\r\nIf-Match: \"x\"\r\nIf-None-Match: *\r\nX-Head-Generation: 1\r\nContent-Length: 2"
    );
    expect(&h, &head, b"hi", 400, "bad_request");
    let after = stored(&h);
    let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    assert!(new.iter().all(|k| k.ends_with("/usage")), "only the usage counter may change: {new:?}");
    let listing = h.client.list_objects(&token, None, None).unwrap();
    assert!(listing.objects.is_empty(), "{listing:?}");
    assert_eq!(h.client.account_status(&token).unwrap().used_bytes, 0, "reservations were released");
}

#[test]
fn bad_tokens_are_unauthorized() {
    let (h, token) = harness();
    let other = Harness::start(Backend::Memory, test_limits());
    let account = unique("other");
    other.client.register(&account, b"pw", ksf()).unwrap();
    let foreign = other.client.login(&account, b"pw").unwrap().token;
    let forged_device = format!("d1.{}", "A".repeat(107));
    let t = token.expose();
    let mut tampered = t.to_owned().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for auth in [
        String::new(),
        "Authorization: Basic dXNlcjpwdw==".into(),
        "Authorization: Bearer".into(),
        "Authorization: Bearer garbage".into(),
        format!("Authorization: Bearer {}", foreign.expose()),
        format!("Authorization: Bearer {forged_device}"),
        format!("Authorization: Bearer {tampered}"),
        format!("Authorization: Bearer {}", "s1.".repeat(200)),
    ] {
        let sep = if auth.is_empty() { "" } else { "\r\n" };
        for route in ["GET /v1/objects", "GET /v1/account", "GET /v1/head", "GET /v1/objects/x"] {
            expect(&h, &format!("{route} HTTP/1.1{sep}{auth}"), b"", 401, "unauthorized");
        }
    }
}

#[test]
fn path_tricks_and_unknown_routes() {
    let (h, token) = harness();
    h.client.put_head(&token, b"head", 1, None).unwrap();
    let before = stored(&h);
    let t = token.expose();
    let long = "x".repeat(129);
    for path in [
        "/v1/objects/..%2Fhead",
        "/v1/objects/%2e%2e",
        "/v1/objects/.hidden",
        "/v1/objects/a%2Fb",
        "/v1/objects/a%00b",
        "/v1/objects/%C3%A9",
        "/v1/objects/a%20b",
        "/v1/objects/%FF",
        &format!("/v1/objects/{long}"),
    ] {
        for method in ["PUT", "GET", "DELETE", "HEAD"] {
            let head = format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer {t}\r\nContent-Length: 3");
            let (status, text) = raw(h.addr(), &head, b"abc");
            assert_eq!(status, 400, "{method} {path}: {text}");
            if method != "HEAD" {
                assert_eq!(error_code(&text), "invalid_name", "{method} {path}");
            }
        }
    }
    for head in [
        "GET /v2/objects HTTP/1.1",
        "GET /v1 HTTP/1.1",
        "GET /v1/objects/a/b HTTP/1.1",
        "GET /../../etc/passwd HTTP/1.1",
        "PATCH /v1/objects/x HTTP/1.1",
        "POST /v1/objects/x HTTP/1.1",
        "DELETE /v1/head HTTP/1.1",
    ] {
        let head = format!("{head}\r\nAuthorization: Bearer {t}\r\nContent-Length: 0");
        expect(&h, &head, b"", 404, "unknown_route");
    }
    for query in ["limit=0", "limit=1001", "limit=x", "after=..%2Fhead", "bogus=1"] {
        let head = format!("GET /v1/objects?{query} HTTP/1.1\r\nAuthorization: Bearer {t}");
        let (status, _) = raw(h.addr(), &head, b"");
        assert_eq!(status, 400, "{query}");
    }
    assert_eq!(h.client.get_head(&token).unwrap().unwrap().0, b"head", "the head record is untouched");
    assert_eq!(stored(&h), before, "nothing was written");
    // Client-chosen methods do not become metric labels (they would grow without bound).
    for method in ["AAAAAAAAAAAAAAAAAAAA", "BREW", "X-CUSTOM"] {
        let (status, _) = raw(h.addr(), &format!("{method} /healthz HTTP/1.1"), b"");
        assert_eq!(status, 404, "{method}");
    }
    let metrics = h.server.state.metrics.render();
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
    assert!(!metrics.contains("BREW") && !metrics.contains("AAAAAAAA"), "{metrics}");
}

#[test]
fn a_stalled_upload_times_out_and_releases_its_quota() {
    let limits = Limits { transfer_timeout: std::time::Duration::from_secs(1), ..test_limits() };
    let h = Harness::start(Backend::Memory, limits);
    let account = unique("stalled");
    h.client.register(&account, b"pw", ksf()).unwrap();
    let token = h.client.login(&account, b"pw").unwrap().token;
    for (id, len) in [("small", 100_000usize), ("staged", 20 << 20)] {
        let head = format!(
            "PUT /v1/objects/{id} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Length: {len}",
            token.expose()
        );
        // Sends a tenth of the body and stalls (the helper keeps the connection open).
        let (status, text) = raw(h.addr(), &head, &vec![1u8; len / 10]);
        assert_eq!((status, error_code(&text).as_str()), (408, "timeout"), "{id}");
    }
    // The reservations are released by the cancelled requests' clean-up.
    let mut used = u64::MAX;
    for _ in 0..50 {
        let status = h.client.account_status(&token).unwrap();
        used = status.used_bytes + status.objects;
        if used == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(used, 0, "quota held by timed-out uploads was released");
    assert!(h.client.list_objects(&token, None, None).unwrap().objects.is_empty());
}

#[test]
fn rate_limits_answer_429_with_retry_after() {
    let limits = Limits { per_account_rate: (1, 3), ..test_limits() };
    let h = Harness::start(Backend::Memory, limits);
    let account = unique("busy");
    h.client.register(&account, b"pw", ksf()).unwrap();
    let token = h.client.login(&account, b"pw").unwrap().token;
    let head = format!("GET /v1/objects HTTP/1.1\r\nAuthorization: Bearer {}", token.expose());
    let statuses: Vec<u16> = (0..6).map(|_| raw(h.addr(), &head, b"").0).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    let refused = support::raw_head(h.addr(), &head).to_ascii_lowercase();
    assert!(refused.contains(" 429 ") && refused.contains("retry-after: 1"), "{refused}");
    let per_ip = Harness::start(Backend::Memory, Limits { per_ip_rate: (1, 2), ..test_limits() });
    let statuses: Vec<u16> = (0..5).map(|_| raw(per_ip.addr(), "GET /healthz HTTP/1.1", b"").0).collect();
    assert_eq!(statuses[..2], [200, 200]);
    assert!(statuses[2..].contains(&429), "{statuses:?}");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use std::io::{Read as _, Write as _};
    let limits = Limits { header_read_timeout: std::time::Duration::from_secs(1), ..test_limits() };
    let h = Harness::start(Backend::Memory, limits);
    let mut stream = std::net::TcpStream::connect(h.addr()).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(waited < std::time::Duration::from_secs(10), "the server held the connection for {waited:?}");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "no request was served");
}
