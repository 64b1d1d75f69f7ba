//! Login tickets: a short-lived statement, signed by the app's account service with Ed25519, that
//! the holder may try a password login for one account. A server configured with the service's
//! public keys counts (and answers) only login starts that carry a valid ticket, so a stranger who
//! knows an account name cannot spend the account's guesses.
//!
//! Format version 1 (121 bytes, sent as unpadded base64url, specified in `docs/server-api.md`):
//!
//! ```text
//! version (1) = 0x01 ‖ expires_at (u64 BE, Unix seconds) ‖ nonce (16) ‖ account digest (32) ‖ signature (64)
//! account digest = SHA-256(account identifier, UTF-8, as sent to the server)
//! signature      = Ed25519(signing key, TICKET_CONTEXT ‖ the first 57 bytes)
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2_10::{Digest as _, Sha256};

/// Domain separation for ticket signatures.
pub const TICKET_CONTEXT: &[u8] = b"vault-backup login ticket v1";
/// The ticket format version.
pub const TICKET_VERSION: u8 = 1;
/// The longest lifetime a server accepts: a ticket expiring later than this from now is refused.
pub const MAX_TICKET_LIFETIME_SECS: u64 = 3600;
/// Length of an encoded ticket before base64url.
pub const TICKET_LEN: usize = SIGNED_LEN + 64;
const SIGNED_LEN: usize = 1 + 8 + 16 + 32;

/// Why a ticket was refused. The reasons are for logs and tests; the server answers every one
/// alike (`login_ticket_required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not base64url, the wrong length or an unknown version.
    #[error("malformed login ticket")]
    Malformed,
    /// No configured key made this signature.
    #[error("login ticket signature does not verify")]
    BadSignature,
    /// Issued for another account.
    #[error("login ticket is for another account")]
    WrongAccount,
    /// Expired, or expiring further ahead than [`MAX_TICKET_LIFETIME_SECS`].
    #[error("login ticket expired or lives too long")]
    Expired,
}

/// What a verified ticket says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketClaims {
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// The issuer's random nonce: makes every ticket distinct (servers do not track nonces; a
    /// ticket may be used until it expires).
    pub nonce: [u8; 16],
}

/// The digest a ticket carries for `account`.
pub fn account_digest(account: &str) -> [u8; 32] {
    Sha256::digest(account.as_bytes()).into()
}

/// The public key of an issuer's 32-byte signing-key seed.
pub fn public_key(signing_seed: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(signing_seed).verifying_key().to_bytes()
}

/// Issues a ticket for `account` (the account service's side; also used by the test issuer).
pub fn issue(signing_seed: &[u8; 32], account: &str, expires_at: u64, nonce: [u8; 16]) -> String {
    let mut bytes = Vec::with_capacity(TICKET_LEN);
    bytes.push(TICKET_VERSION);
    bytes.extend_from_slice(&expires_at.to_be_bytes());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&account_digest(account));
    let signature = SigningKey::from_bytes(signing_seed).sign(&signed_message(&bytes));
    bytes.extend_from_slice(&signature.to_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Verifies `ticket` for `account` at time `now` against any of `keys` (Ed25519 public keys).
pub fn verify(ticket: &str, account: &str, now: u64, keys: &[VerifyingKey]) -> Result<TicketClaims, TicketError> {
    if ticket.len() > TICKET_LEN * 2 {
        return Err(TicketError::Malformed);
    }
    let bytes = URL_SAFE_NO_PAD.decode(ticket).map_err(|_| TicketError::Malformed)?;
    if bytes.len() != TICKET_LEN || bytes[0] != TICKET_VERSION {
        return Err(TicketError::Malformed);
    }
    let (signed, signature) = bytes.split_at(SIGNED_LEN);
    let signature = Signature::from_slice(signature).map_err(|_| TicketError::Malformed)?;
    let message = signed_message(signed);
    if !keys.iter().any(|key| key.verify_strict(&message, &signature).is_ok()) {
        return Err(TicketError::BadSignature);
    }
    let expires_at = u64::from_be_bytes(signed[1..9].try_into().map_err(|_| TicketError::Malformed)?);
    let nonce: [u8; 16] = signed[9..25].try_into().map_err(|_| TicketError::Malformed)?;
    if signed[25..57] != account_digest(account) {
        return Err(TicketError::WrongAccount);
    }
    if expires_at < now || expires_at - now > MAX_TICKET_LIFETIME_SECS {
        return Err(TicketError::Expired);
    }
    Ok(TicketClaims { expires_at, nonce })
}

/// Parses an issuer's public key (32 bytes, unpadded base64url).
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(text.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

fn signed_message(signed: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(TICKET_CONTEXT.len() + signed.len());
    message.extend_from_slice(TICKET_CONTEXT);
    message.extend_from_slice(signed);
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: [u8; 32] = [7; 32];

    fn keys() -> Vec<VerifyingKey> {
        vec![VerifyingKey::from_bytes(&public_key(&SEED)).unwrap()]
    }

    #[test]
    fn a_ticket_verifies_for_its_account_until_it_expires() {
        let ticket = issue(&SEED, "alice@example.org", 1_000_600, [1; 16]);
        let claims = verify(&ticket, "alice@example.org", 1_000_000, &keys()).unwrap();
        assert_eq!(claims, TicketClaims { expires_at: 1_000_600, nonce: [1; 16] });
        assert_eq!(verify(&ticket, "bob@example.org", 1_000_000, &keys()), Err(TicketError::WrongAccount));
        assert_eq!(verify(&ticket, "alice@example.org", 1_000_601, &keys()), Err(TicketError::Expired));
        let far = issue(&SEED, "alice@example.org", 1_000_000 + MAX_TICKET_LIFETIME_SECS + 1, [1; 16]);
        assert_eq!(verify(&far, "alice@example.org", 1_000_000, &keys()), Err(TicketError::Expired));
    }

    #[test]
    fn another_issuer_or_a_changed_byte_is_refused() {
        let other = issue(&[8; 32], "alice@example.org", 1_000_600, [1; 16]);
        assert_eq!(verify(&other, "alice@example.org", 1_000_000, &keys()), Err(TicketError::BadSignature));
        let mut bytes = URL_SAFE_NO_PAD.decode(issue(&SEED, "alice@example.org", 1_000_600, [1; 16])).unwrap();
        bytes[3] ^= 1;
        let changed = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(verify(&changed, "alice@example.org", 1_000_000, &keys()), Err(TicketError::BadSignature));
        bytes[0] = 2;
        let version = URL_SAFE_NO_PAD.encode(&bytes);
        assert_eq!(verify(&version, "alice@example.org", 1_000_000, &keys()), Err(TicketError::Malformed));
        assert_eq!(verify("not a ticket", "alice@example.org", 1_000_000, &keys()), Err(TicketError::Malformed));
        assert_eq!(verify("", "alice@example.org", 1_000_000, &[]), Err(TicketError::Malformed));
    }

    /// The known-answer vector of `docs/server-api.md`, computed independently with Python's
    /// `cryptography` (Ed25519 signatures are deterministic).
    #[test]
    fn known_answer_vector() {
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        let ticket = issue(&seed, "alice@example.org", 1_767_225_600, [0xab; 16]);
        assert_eq!(URL_SAFE_NO_PAD.encode(public_key(&seed)), KAT_PUBLIC_KEY);
        assert_eq!(ticket, KAT_TICKET);
        let key = parse_public_key(KAT_PUBLIC_KEY).unwrap();
        assert!(verify(&ticket, "alice@example.org", 1_767_225_000, &[key]).is_ok());
        let docs = include_str!("../../../docs/server-api.md");
        assert!(docs.contains(KAT_PUBLIC_KEY) && docs.contains(KAT_TICKET), "the vector is in docs/server-api.md");
    }

    const KAT_PUBLIC_KEY: &str = "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg";
    const KAT_TICKET: &str = "AQAAAABpVbkAq6urq6urq6urq6urq6urq3pkrfKHN-qQcZy98LGoel7__zdTt5yR1xf09BU-rQSYuRBrdxypv8oSXATGHXM5K_91L7EMX9rGFnxg3cssLy0lsNkD0pt97CRFNiugHt65hKF0MJcAMyReLqOCUHoSDA";
}
