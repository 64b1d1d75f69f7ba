//! Bearer tokens.
//!
//! - **Session tokens** (`s1.` prefix) come from a password login and expire after a short time.
//!   They are stateless: `s1.` ‖ base64url(account hash (32) ‖ expiry (u64 BE) ‖ random (16)) ‖ `.`
//!   ‖ base64url(BLAKE3-keyed MAC over the payload). Nothing about them is stored, so every replica
//!   can check them; they cannot be revoked individually and are kept short-lived for that reason.
//! - **Device tokens** (`d1.` prefix) are enrolled with a session and live until revoked:
//!   `d1.` ‖ base64url(account hash (32) ‖ device id (16) ‖ secret (32)). The account record keeps
//!   only a keyed hash of the secret, so a copy of the store cannot be used to authenticate.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::secrets::AccountHash;

const SESSION_PREFIX: &str = "s1.";
const DEVICE_PREFIX: &str = "d1.";
const SESSION_PAYLOAD_LEN: usize = 32 + 8 + 16;
const DEVICE_PAYLOAD_LEN: usize = 32 + 16 + 32;
/// Longest `Authorization` value considered at all.
pub const MAX_TOKEN_LEN: usize = 256;

/// A bearer token after parsing (its MAC or hash not yet checked for device tokens).
pub enum Token {
    /// A session token whose MAC and expiry were checked.
    Session {
        /// The account it is for.
        account: AccountHash,
    },
    /// A device token; the caller checks `secret` against the account record.
    Device {
        /// The account it claims.
        account: AccountHash,
        /// The device identifier (lowercase hex).
        device_id: String,
        /// The secret to check against the stored hash.
        secret: Zeroizing<[u8; 32]>,
    },
}

impl Token {
    /// The account the token is for.
    pub fn account(&self) -> &AccountHash {
        match self {
            Self::Session { account } | Self::Device { account, .. } => account,
        }
    }
}

/// Mints a session token for `account` valid until `expires_at` (Unix seconds).
pub fn mint_session(key: &[u8; 32], account: &AccountHash, expires_at: u64) -> String {
    let mut payload = [0u8; SESSION_PAYLOAD_LEN];
    payload[..32].copy_from_slice(account.as_bytes());
    payload[32..40].copy_from_slice(&expires_at.to_be_bytes());
    crate::random::fill(&mut payload[40..]);
    let mac = session_mac(key, &payload);
    format!("{SESSION_PREFIX}{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(mac.as_bytes()))
}

/// A new device token for `account`: returns `(device id, token, secret hash to store)`.
pub fn mint_device(device_key: &[u8; 32], account: &AccountHash) -> (String, String, String) {
    let mut id = [0u8; 16];
    crate::random::fill(&mut id);
    let mut payload = Zeroizing::new([0u8; DEVICE_PAYLOAD_LEN]);
    payload[..32].copy_from_slice(account.as_bytes());
    payload[32..48].copy_from_slice(&id);
    crate::random::fill(&mut payload[48..]);
    let secret_hash = device_secret_hash(device_key, &payload[48..]);
    let token = format!("{DEVICE_PREFIX}{}", URL_SAFE_NO_PAD.encode(&payload[..]));
    (hex::encode(id), token, secret_hash)
}

/// The stored form of a device secret: hex of its BLAKE3-keyed hash.
pub fn device_secret_hash(device_key: &[u8; 32], secret: &[u8]) -> String {
    blake3::keyed_hash(device_key, secret).to_hex().to_string()
}

/// Whether `secret` matches a stored hash, compared in constant time.
pub fn device_secret_matches(device_key: &[u8; 32], secret: &[u8], stored_hex: &str) -> bool {
    let Ok(stored) = blake3::Hash::from_hex(stored_hex) else { return false };
    bool::from(blake3::keyed_hash(device_key, secret).as_bytes().ct_eq(stored.as_bytes()))
}

/// Parses a bearer token. Session tokens are fully checked here (MAC, expiry); device tokens are
/// only parsed. `None` for anything malformed, forged or expired.
pub fn parse(key: &[u8; 32], token: &str, now: u64) -> Option<Token> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    if let Some(rest) = token.strip_prefix(SESSION_PREFIX) {
        let (payload, mac) = rest.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let mac: [u8; 32] = URL_SAFE_NO_PAD.decode(mac).ok()?.try_into().ok()?;
        // The MAC is compared in constant time; the payload's length is public.
        if payload.len() != SESSION_PAYLOAD_LEN || !bool::from(session_mac(key, &payload).as_bytes().ct_eq(&mac)) {
            return None;
        }
        let expires_at = u64::from_be_bytes(payload[32..40].try_into().ok()?);
        if now > expires_at {
            return None;
        }
        let account = AccountHash::from_bytes(payload[..32].try_into().ok()?);
        return Some(Token::Session { account });
    }
    if let Some(rest) = token.strip_prefix(DEVICE_PREFIX) {
        let payload = Zeroizing::new(URL_SAFE_NO_PAD.decode(rest).ok()?);
        if payload.len() != DEVICE_PAYLOAD_LEN {
            return None;
        }
        let account = AccountHash::from_bytes(payload[..32].try_into().ok()?);
        let device_id = hex::encode(&payload[32..48]);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&payload[48..]);
        return Some(Token::Device { account, device_id, secret });
    }
    None
}

fn session_mac(key: &[u8; 32], payload: &[u8]) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(key);
    hasher.update(b"session v1");
    hasher.update(payload);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [3; 32];

    #[test]
    fn session_tokens_check_mac_and_expiry() {
        let account = AccountHash::from_bytes([9; 32]);
        let token = mint_session(&KEY, &account, 1000);
        assert!(matches!(parse(&KEY, &token, 1000), Some(Token::Session { account: a }) if a == account));
        assert!(parse(&KEY, &token, 1001).is_none(), "expired");
        assert!(parse(&[4; 32], &token, 0).is_none(), "other key");
        // Any changed character is refused (or decodes to a different, unauthenticated payload).
        for i in SESSION_PREFIX.len()..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            if tampered != token {
                assert!(parse(&KEY, &tampered, 0).is_none(), "tampered at {i}");
            }
        }
    }

    #[test]
    fn device_tokens_parse_and_match_only_their_hash() {
        let account = AccountHash::from_bytes([5; 32]);
        let (id, token, stored) = mint_device(&KEY, &account);
        let Some(Token::Device { account: a, device_id, secret }) = parse(&KEY, &token, 0) else {
            panic!("device token did not parse");
        };
        assert_eq!(a, account);
        assert_eq!(device_id, id);
        assert!(device_secret_matches(&KEY, &secret[..], &stored));
        assert!(!device_secret_matches(&KEY, &[0; 32], &stored));
        assert!(!device_secret_matches(&[1; 32], &secret[..], &stored));
        assert!(!stored.contains(&hex::encode(&secret[..])));
        // Equality is exact: a stored hash differing in its last digit, or not a hash, matches nothing.
        let mut last_differs = stored.clone();
        let last = if stored.ends_with('0') { "1" } else { "0" };
        last_differs.replace_range(63.., last);
        for other in [&last_differs, &stored[..62], "", "zz"] {
            assert!(!device_secret_matches(&KEY, &secret[..], other), "{other:?}");
        }
    }

    #[test]
    fn garbage_is_refused() {
        for bad in ["", "s1.", "s1.x.y", "d1.", "d1.AAAA", "bearer", &"s".repeat(1000)] {
            assert!(parse(&KEY, bad, 0).is_none(), "{bad}");
        }
    }
}
