//! AWS Signature Version 4 presigned URLs (query-string authentication) whose signature covers
//! chosen request headers, `Content-Length` included.
//!
//! `object_store`'s signer covers any header except `Content-Length` (its canonicalisation drops
//! that header), and an upload URL must bound the object's size in its signature (ADR 0019). This
//! module follows the published algorithm
//! (<https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html>) on RustCrypto's
//! HMAC-SHA-256, and is checked against AWS's published example. The S3 store keeps the key; this
//! module only computes signatures with it.

use hmac::{Hmac, Mac as _};
use sha2_10::{Digest as _, Sha256};

/// Where a presigned request goes and with what key.
pub struct PresignTarget<'a> {
    /// `scheme://host[:port]` of the store, without a trailing slash.
    pub endpoint: &'a str,
    /// The path after the endpoint, starting with `/`: `/bucket/key` (path style) or `/key`.
    pub path: &'a str,
    /// The store's region.
    pub region: &'a str,
    /// The access key id.
    pub key_id: &'a str,
    /// The secret access key.
    pub secret: &'a str,
    /// A session token, for temporary credentials.
    pub token: Option<&'a str>,
}

/// Characters SigV4 leaves unencoded: `A-Z a-z 0-9 - _ . ~` (and `/` in paths).
fn encode(value: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `YYYYMMDD` and `YYYYMMDDTHHMMSSZ` of a Unix time (UTC, proleptic Gregorian).
fn stamp(unix: u64) -> (String, String) {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX);
    let secs = unix % 86_400;
    // Days to civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{date}T{:02}{:02}{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60);
    (date, time)
}

/// A presigned URL for one `method` request on `target`, valid for `expires_secs` from `now`
/// (Unix seconds), whose signature covers `host` and `headers` (names in lower case, values as
/// the request will carry them exactly). The payload is unsigned.
pub fn presign(
    method: &str,
    target: &PresignTarget<'_>,
    headers: &[(&str, &str)],
    now: u64,
    expires_secs: u64,
) -> String {
    let (date, time) = stamp(now);
    let scope = format!("{date}/{}/s3/aws4_request", target.region);
    let host = target.endpoint.split_once("://").map_or(target.endpoint, |(_, rest)| rest);
    let mut signed: Vec<(String, String)> =
        headers.iter().map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_owned())).collect();
    signed.push(("host".to_owned(), host.to_owned()));
    signed.sort();
    let signed_names = signed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(";");
    let canonical_headers: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();

    let mut query = vec![
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("X-Amz-Credential", format!("{}/{scope}", target.key_id)),
        ("X-Amz-Date", time.clone()),
        ("X-Amz-Expires", expires_secs.to_string()),
        ("X-Amz-SignedHeaders", signed_names.clone()),
    ];
    if let Some(token) = target.token {
        query.push(("X-Amz-Security-Token", token.to_owned()));
    }
    query.sort();
    let canonical_query =
        query.iter().map(|(n, v)| format!("{}={}", encode(n, false), encode(v, false))).collect::<Vec<_>>().join("&");
    let canonical_path = encode(target.path, true);

    let canonical_request =
        format!("{method}\n{canonical_path}\n{canonical_query}\n{canonical_headers}\n{signed_names}\nUNSIGNED-PAYLOAD");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{time}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));
    let key = [date.as_bytes(), target.region.as_bytes(), b"s3", b"aws4_request"]
        .iter()
        .fold(zeroize::Zeroizing::new(format!("AWS4{}", target.secret).into_bytes()), |key, part| {
            zeroize::Zeroizing::new(hmac(&key, part).to_vec())
        });
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!("{}{canonical_path}?{canonical_query}&X-Amz-Signature={signature}", target.endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's published example of a presigned GET (Amazon S3 API Reference, "Authenticating
    /// Requests: Using Query Parameters (AWS Signature Version 4)").
    #[test]
    fn matches_the_published_aws_example() {
        let target = PresignTarget {
            endpoint: "https://examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            region: "us-east-1",
            key_id: "AKIAIOSFODNN7EXAMPLE",
            secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            token: None,
        };
        let url = presign("GET", &target, &[], 1_369_353_600, 86_400);
        assert_eq!(
            url,
            "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(stamp(0), ("19700101".into(), "19700101T000000Z".into()));
        assert_eq!(stamp(951_782_400).0, "20000229");
        // Python: datetime.utcfromtimestamp(1795003661).
        assert_eq!(stamp(1_795_000_000 + 3_661).1, "20261118T120741Z");
    }

    #[test]
    fn headers_are_signed_sorted_and_the_token_is_carried() {
        let target = PresignTarget {
            endpoint: "http://127.0.0.1:8333",
            path: "/bucket/accounts/ab/objects/pack-1",
            region: "us-east-1",
            key_id: "k",
            secret: "s",
            token: Some("t/o+k"),
        };
        let url = presign("PUT", &target, &[("If-None-Match", "*"), ("content-length", "5")], 1_795_000_000, 600);
        assert!(url.starts_with("http://127.0.0.1:8333/bucket/accounts/ab/objects/pack-1?"), "{url}");
        assert!(url.contains("X-Amz-SignedHeaders=content-length%3Bhost%3Bif-none-match"), "{url}");
        assert!(url.contains("X-Amz-Security-Token=t%2Fo%2Bk"), "{url}");
        let other = presign("PUT", &target, &[("If-None-Match", "*"), ("content-length", "6")], 1_795_000_000, 600);
        assert_ne!(url, other, "the length is in the signature");
    }
}
