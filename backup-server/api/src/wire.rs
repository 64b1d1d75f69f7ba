//! JSON bodies of the `/v1` API. Binary fields travel as unpadded base64url strings.

use serde::{Deserialize, Serialize};

use crate::{ErrorCode, KsfParams};

/// Serde helpers for binary fields as unpadded base64url.
pub mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialises bytes as unpadded base64url.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses unpadded base64url into bytes.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <&str>::deserialize(deserializer)?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| serde::de::Error::custom("invalid base64url"))
    }
}

/// `POST /v1/register/start`: the first OPAQUE registration message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterStartRequest {
    /// The account identifier chosen by the app (the server stores only a keyed hash of it).
    pub account: String,
    /// The serialised OPAQUE `RegistrationRequest`.
    #[serde(with = "b64")]
    pub request: Vec<u8>,
    /// The key-stretching parameters the client will use for this password.
    pub ksf: KsfParams,
}

/// Answer to `POST /v1/register/start`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterStartResponse {
    /// The serialised OPAQUE `RegistrationResponse`.
    #[serde(with = "b64")]
    pub response: Vec<u8>,
    /// Sealed server state to send back with the finish message (opaque to the client).
    #[serde(with = "b64")]
    pub state: Vec<u8>,
}

/// `POST /v1/register/finish`: the OPAQUE registration upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinishRequest {
    /// The `state` from the start answer.
    #[serde(with = "b64")]
    pub state: Vec<u8>,
    /// The serialised OPAQUE `RegistrationUpload`.
    #[serde(with = "b64")]
    pub upload: Vec<u8>,
}

/// `POST /v1/login/start`: the first OPAQUE login message (KE1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginStartRequest {
    /// The account identifier.
    pub account: String,
    /// The serialised OPAQUE `CredentialRequest`.
    #[serde(with = "b64")]
    pub request: Vec<u8>,
    /// A login ticket from the app's account service ([`crate::ticket`]); required by a server
    /// configured with authoriser keys, ignored by one without.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// Answer to `POST /v1/login/start` (KE2).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginStartResponse {
    /// The serialised OPAQUE `CredentialResponse`.
    #[serde(with = "b64")]
    pub response: Vec<u8>,
    /// Sealed server state to send back with the finish message (opaque to the client; valid for a
    /// short time; accepted by every replica).
    #[serde(with = "b64")]
    pub state: Vec<u8>,
    /// The key-stretching parameters registered for this password.
    pub ksf: KsfParams,
}

/// `POST /v1/login/finish`: the last OPAQUE login message (KE3).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginFinishRequest {
    /// The `state` from the start answer.
    #[serde(with = "b64")]
    pub state: Vec<u8>,
    /// The serialised OPAQUE `CredentialFinalization`.
    #[serde(with = "b64")]
    pub finalization: Vec<u8>,
}

/// Answer to a successful login.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionResponse {
    /// A bearer token for this account, valid for `expires_in_secs`.
    pub session_token: String,
    /// Seconds until the token expires.
    pub expires_in_secs: u64,
}

impl std::fmt::Debug for SessionResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionResponse").field("expires_in_secs", &self.expires_in_secs).finish_non_exhaustive()
    }
}

/// `POST /v1/devices`: enrol a device (needs a session token).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDeviceRequest {
    /// A label for the device list (1 to 64 characters, no control characters).
    pub name: String,
}

/// Answer to `POST /v1/devices`. The token is shown once; the server keeps only its hash.
#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceTokenResponse {
    /// The new device's identifier.
    pub device_id: String,
    /// A bearer token for routine uploads from this device, valid until revoked.
    pub token: String,
}

impl std::fmt::Debug for DeviceTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTokenResponse").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

/// One enrolled device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The device identifier (32 lowercase hex characters).
    pub id: String,
    /// The label given at enrolment.
    pub name: String,
    /// Enrolment time, seconds since the Unix epoch.
    pub created_at: u64,
}

/// Answer to `GET /v1/devices`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceList {
    /// Every device enrolled for the account.
    pub devices: Vec<DeviceInfo>,
}

/// One stored object in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    /// The object identifier.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Body of `POST /v1/objects/{id}/upload-url`: the object the client is about to upload straight
/// to the object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectUploadRequest {
    /// Its size in bytes (reserved against the quota when the URL is issued).
    pub size: u64,
    /// The SHA-256 of its content, standard base64 (44 characters): the URL binds it, so the store
    /// accepts these exact bytes only.
    pub sha256: String,
}

/// Answer to `POST /v1/objects/{id}/upload-url` and `GET /v1/objects/{id}/download-url`: a
/// presigned request straight to the object store. Its `Debug` form leaves the URL out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectUrl {
    /// The presigned URL (it carries the credential scope and signature; treat it as a secret
    /// until it expires).
    pub url: String,
    /// Headers the request must carry exactly (signed into the URL), as name and value.
    pub headers: Vec<(String, String)>,
    /// When the URL stops working, in Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for DirectUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectUrl")
            .field("url", &"[REDACTED]")
            .field("headers", &self.headers)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Answer to `GET /v1/objects`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectList {
    /// Objects in identifier order.
    pub objects: Vec<ObjectInfo>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Answer to `GET /v1/account`: the state of the caller's own account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccountStatus {
    /// Counted login starts since the last successful login.
    pub failed_logins: u32,
    /// Counted login starts admitted without delay; each one beyond waits longer.
    pub login_limit: u32,
    /// When the next counted login start is admitted (Unix seconds; 0: now, no delay in force).
    pub next_login_at: u64,
    /// Bytes stored in objects.
    pub used_bytes: u64,
    /// Objects stored.
    pub objects: u64,
    /// The account's storage quota in bytes.
    pub quota_bytes: u64,
}

/// Body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The machine-readable code.
    pub error: ErrorCode,
    /// A human-readable explanation (never contains secrets or stored content).
    pub message: String,
}

/// What happened to an account at the server, as its event log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountEventKind {
    /// A login start was counted against the account's guesses (a wrong password shows as a start
    /// without a success).
    LoginStarted,
    /// A password login succeeded.
    LoginSucceeded,
    /// A login start came before the delay after failed logins had ended and was refused
    /// (`retry_at` says when the delay ends); noted once per delay.
    LoginDelayed,
    /// The escrow record was read (a recovery, or a password-authenticated change).
    EscrowRead,
    /// The password was changed.
    PasswordChanged,
    /// A device was enrolled.
    DeviceEnrolled,
    /// A device was revoked.
    DeviceRevoked,
    /// An operator reset the failed-login count.
    Unlocked,
    /// A kind this build does not know (sent by a newer server); never sent by this one.
    #[serde(other)]
    Other,
}

/// One entry of an account's event log. Carries no secret, no client address and no account name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEvent {
    /// Position in the account's log, from 1, increasing.
    pub seq: u64,
    /// When, in Unix seconds (the server's clock).
    pub at: u64,
    /// What happened.
    pub kind: AccountEventKind,
    /// Whether a login start carried a valid ticket from the app's account service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorised: bool,
    /// For [`AccountEventKind::LoginDelayed`]: when the delay ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
}

/// Answer to `GET /v1/events?after=SEQ`: the events after `SEQ` the server still keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountEvents {
    /// Events in order.
    pub events: Vec<AccountEvent>,
    /// Events after `SEQ` that are no longer kept (the log keeps the newest
    /// [`crate::MAX_ACCOUNT_EVENTS`]).
    pub dropped: u64,
}

/// One deleted object in its grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletedObject {
    /// The object identifier.
    pub id: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was deleted (Unix seconds).
    pub deleted_at: u64,
    /// When the server purges it (Unix seconds).
    pub purge_at: u64,
}

/// Answer to `GET /v1/deleted`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeletedList {
    /// Deleted objects still restorable, oldest deletion first.
    pub objects: Vec<DeletedObject>,
}
