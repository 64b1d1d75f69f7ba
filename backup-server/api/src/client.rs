//! A blocking client for the whole `/v1` API (feature `client`).
//!
//! HTTPS through rustls with the platform's certificate verifier (or given roots); plain `http://`
//! only to loopback addresses unless explicitly allowed. Every error response becomes a
//! [`ClientError::Api`] with the server's [`ErrorCode`]; idempotent requests (GET, HEAD, DELETE,
//! and conditional PUTs) are retried with backoff on transport errors and transient codes.

use std::io::Read;
use std::sync::Arc;

use base64::Engine as _;
use std::time::Duration;

use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration, ClientRegistrationFinishParameters,
    CredentialResponse, RegistrationResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::wire::{
    AccountEvents, AccountStatus, CreateDeviceRequest, DeletedList, DeviceList, DeviceTokenResponse,
    DirectUploadRequest, DirectUrl, ErrorBody, LoginFinishRequest, LoginStartRequest, LoginStartResponse, ObjectList,
    RegisterFinishRequest, RegisterStartRequest, RegisterStartResponse, SessionResponse,
};
use crate::{ErrorCode, KsfParams, OPAQUE_CONTEXT, OpaqueSuite};

/// Largest JSON or record response read into memory.
const MAX_SMALL_RESPONSE: u64 = 1 << 20;
const ATTEMPTS: u32 = 4;
/// Uploads from memory larger than this wait for the server's `100 Continue` before the body.
const EXPECT_CONTINUE_ABOVE: usize = 64 << 10;

/// What went wrong talking to the server. Never contains passwords, tokens or keys.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("server refused the request ({status} {code}): {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// The object store refused a presigned request (its answer, without the URL or the store's
    /// own message, which names the bucket and key).
    #[error("the object store refused the request ({status} {code}): {message}")]
    Store {
        /// HTTP status from the store.
        status: u16,
        /// The matching error code.
        code: ErrorCode,
        /// What it means.
        message: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach the backup server: {0}")]
    Transport(String),
    /// The OPAQUE exchange failed on this side: wrong password, unknown or locked account, or a
    /// server that does not hold the account's registration.
    #[error("login failed: wrong password, or no usable account on this server")]
    LoginFailed,
    /// The server's answer does not follow the API.
    #[error("the server's answer does not follow the API: {0}")]
    Protocol(String),
    /// A caller-supplied value is not acceptable.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Failed logins delay the account: the next login start is admitted after this many seconds
    /// (a server says so only to a requester with a valid login ticket).
    #[error("too many failed logins: retry in {retry_after_secs} s")]
    LoginDelayed {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
}

impl ClientError {
    /// The server's error code, if the server answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } | Self::Store { code, .. } => Some(*code),
            _ => None,
        }
    }

    fn is_transient(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::Api { code, .. } | Self::Store { code, .. } => code.is_transient(),
            _ => false,
        }
    }
}

/// A bearer token (session or device); zeroized on drop, never printed.
#[derive(Clone)]
pub struct BearerToken(Zeroizing<String>);

impl BearerToken {
    /// Wraps a token string.
    pub fn new(token: String) -> Self {
        Self(Zeroizing::new(token))
    }

    /// The token text, for storing it in the platform keystore.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

/// The result of a successful password login.
pub struct Session {
    /// The session token (short-lived).
    pub token: BearerToken,
    /// Seconds until the token expires.
    pub expires_in_secs: u64,
    /// OPAQUE's export key: a secret only this password and this registration reproduce.
    pub export_key: Zeroizing<Vec<u8>>,
    /// The server's static OPAQUE public key (for pinning).
    pub server_public_key: Vec<u8>,
}

/// How the client connects.
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// Extra trusted root certificates (DER), used instead of the platform verifier when present.
    pub root_certificates: Vec<Vec<u8>>,
    /// Allow plain `http://` to a non-loopback host (only for a TLS-terminating proxy on a trusted
    /// network; never the default).
    pub allow_insecure_http: bool,
    /// Connect and response timeout [default: 30 s].
    pub timeout: Option<Duration>,
    /// A login ticket from the app's account service, sent with every login start
    /// ([`crate::ticket`]); needed only by servers configured to require one.
    pub login_ticket: Option<LoginTicket>,
}

/// A login ticket as the client holds it; redacted in `Debug` (it lets its holder spend the
/// account's guesses until it expires).
#[derive(Clone)]
pub struct LoginTicket(Zeroizing<String>);

impl LoginTicket {
    /// Wraps a ticket string.
    pub fn new(ticket: String) -> Self {
        Self(Zeroizing::new(ticket))
    }
}

impl std::fmt::Debug for LoginTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginTicket(..)")
    }
}

/// A blocking client for one backup server.
#[derive(Clone)]
pub struct BackupClient {
    agent: ureq::Agent,
    /// For presigned requests to the object store: the platform's roots, whatever roots the
    /// server's own connections trust.
    store_agent: ureq::Agent,
    base: String,
    login_ticket: Option<LoginTicket>,
    allow_insecure_http: bool,
}

/// An object body to upload: its exact length and a reader producing it.
pub struct Upload<R> {
    /// Exact number of bytes `reader` yields.
    pub len: u64,
    /// The bytes.
    pub reader: R,
}

impl BackupClient {
    /// A client for `base_url` (`https://host[:port]`, or `http://` on loopback).
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_options(base_url, ClientOptions::default())
    }

    /// A client with explicit options.
    pub fn with_options(base_url: &str, options: ClientOptions) -> Result<Self, ClientError> {
        let base = checked_base_url(base_url, options.allow_insecure_http)?;
        let roots = if options.root_certificates.is_empty() {
            ureq::tls::RootCerts::PlatformVerifier
        } else {
            let certs =
                options.root_certificates.iter().map(|der| ureq::tls::Certificate::from_der(der).to_owned()).collect();
            ureq::tls::RootCerts::Specific(Arc::new(certs))
        };
        let timeout = options.timeout.unwrap_or(Duration::from_secs(30));
        let agent = |roots: ureq::tls::RootCerts| {
            let tls = ureq::tls::TlsConfig::builder()
                .provider(ureq::tls::TlsProvider::Rustls)
                .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .root_certs(roots)
                .build();
            ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .timeout_connect(Some(timeout))
                .timeout_recv_response(Some(timeout))
                // Bodies may take long in total but must keep moving.
                .timeout_per_read(Some(timeout))
                .timeout_per_write(Some(timeout))
                .tls_config(tls)
                .build()
                .new_agent()
        };
        Ok(Self {
            agent: agent(roots),
            store_agent: agent(ureq::tls::RootCerts::PlatformVerifier),
            base,
            login_ticket: options.login_ticket,
            allow_insecure_http: options.allow_insecure_http,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}{path}", self.base, crate::API_PREFIX)
    }

    // ---- OPAQUE ----

    /// Registers a new account with `password`, stretched with `ksf` on this device.
    pub fn register(&self, account: &str, password: &[u8], ksf: KsfParams) -> Result<(), ClientError> {
        self.register_inner(account, password, ksf, None)
    }

    /// Changes the password of the account a session belongs to. Other sessions keep working until
    /// they expire; logins in progress with the old password fail.
    pub fn change_password(
        &self,
        session: &BearerToken,
        account: &str,
        new_password: &[u8],
        ksf: KsfParams,
    ) -> Result<(), ClientError> {
        self.register_inner(account, new_password, ksf, Some(session))
    }

    fn register_inner(
        &self,
        account: &str,
        password: &[u8],
        ksf: KsfParams,
        session: Option<&BearerToken>,
    ) -> Result<(), ClientError> {
        if !crate::names::is_valid_account(account) {
            return Err(ClientError::InvalidInput(
                "the account identifier is empty, too long or has control characters".into(),
            ));
        }
        let argon2 = ksf.argon2().map_err(|e| ClientError::InvalidInput(e.to_string()))?;
        let mut rng = rand_08::rngs::OsRng;
        let start = ClientRegistration::<OpaqueSuite>::start(&mut rng, password)
            .map_err(|_| ClientError::InvalidInput("the password cannot be used".into()))?;
        let body =
            RegisterStartRequest { account: account.to_owned(), request: start.message.serialize().to_vec(), ksf };
        let answer: RegisterStartResponse = self.post_json("/register/start", &body, session)?;
        let response = RegistrationResponse::<OpaqueSuite>::deserialize(&answer.response)
            .map_err(|_| ClientError::Protocol("malformed registration response".into()))?;
        let finish = start
            .state
            .finish(
                &mut rng,
                password,
                response,
                ClientRegistrationFinishParameters::new(Default::default(), Some(&argon2)),
            )
            .map_err(|_| ClientError::Protocol("registration response rejected".into()))?;
        let body = RegisterFinishRequest { state: answer.state, upload: finish.message.serialize().to_vec() };
        self.send_expect_empty("POST", "/register/finish", Some(json_bytes(&body)?), session, &[])
    }

    /// Logs in with `password`; on success the server resets the account's failed-login counter.
    pub fn login(&self, account: &str, password: &[u8]) -> Result<Session, ClientError> {
        let mut rng = rand_08::rngs::OsRng;
        let start = ClientLogin::<OpaqueSuite>::start(&mut rng, password)
            .map_err(|_| ClientError::InvalidInput("the password cannot be used".into()))?;
        let answer = self.login_start_raw(account, &start.message.serialize())?;
        let argon2 =
            answer.ksf.argon2().map_err(|_| ClientError::Protocol("unusable key-stretching parameters".into()))?;
        let response = CredentialResponse::<OpaqueSuite>::deserialize(&answer.response)
            .map_err(|_| ClientError::Protocol("malformed credential response".into()))?;
        let finish = start
            .state
            .finish(
                &mut rng,
                password,
                response,
                ClientLoginFinishParameters::new(Some(OPAQUE_CONTEXT), Default::default(), Some(&argon2)),
            )
            .map_err(|_| ClientError::LoginFailed)?;
        let body = LoginFinishRequest { state: answer.state, finalization: finish.message.serialize().to_vec() };
        let session: SessionResponse = self.post_json("/login/finish", &body, None)?;
        Ok(Session {
            token: BearerToken::new(session.session_token),
            expires_in_secs: session.expires_in_secs,
            export_key: Zeroizing::new(finish.export_key.to_vec()),
            server_public_key: finish.server_s_pk.serialize().to_vec(),
        })
    }

    /// The first login round trip alone, with a caller-built OPAQUE credential request (for tests
    /// and tools that drive OPAQUE themselves).
    pub fn login_start_raw(&self, account: &str, request: &[u8]) -> Result<LoginStartResponse, ClientError> {
        let ticket = self.login_ticket.as_ref().map(|t| t.0.to_string());
        let body = LoginStartRequest { account: account.to_owned(), request: request.to_vec(), ticket };
        self.post_json("/login/start", &body, None)
    }

    // ---- account and devices ----

    /// The account's events after `after` (0: every kept event), with a session or device token.
    pub fn account_events(&self, auth: &BearerToken, after: u64) -> Result<AccountEvents, ClientError> {
        self.get_json(&format!("/events?after={after}"), auth)
    }

    /// The caller's account status.
    pub fn account_status(&self, auth: &BearerToken) -> Result<AccountStatus, ClientError> {
        self.get_json("/account", auth)
    }

    /// Enrols a device (needs a session token); the returned token is shown only once.
    pub fn enrol_device(&self, session: &BearerToken, name: &str) -> Result<(String, BearerToken), ClientError> {
        let body = CreateDeviceRequest { name: name.to_owned() };
        let answer: DeviceTokenResponse = self.post_json("/devices", &body, Some(session))?;
        Ok((answer.device_id, BearerToken::new(answer.token)))
    }

    /// Every enrolled device.
    pub fn list_devices(&self, auth: &BearerToken) -> Result<DeviceList, ClientError> {
        self.get_json("/devices", auth)
    }

    /// Revokes a device (a session may revoke any, a device only itself).
    pub fn revoke_device(&self, auth: &BearerToken, device_id: &str) -> Result<(), ClientError> {
        if !crate::names::is_valid_device_id(device_id) {
            return Err(ClientError::InvalidInput("a device identifier is 32 lowercase hex characters".into()));
        }
        self.send_expect_empty("DELETE", &format!("/devices/{device_id}"), None, Some(auth), &[])
    }

    // ---- escrow and head records ----

    /// The escrow record and its ETag, `None` if none is stored (needs a session token).
    pub fn get_escrow(&self, session: &BearerToken) -> Result<Option<(Vec<u8>, String)>, ClientError> {
        self.get_record("/escrow", session)
    }

    /// Stores the escrow record: create if `expected_etag` is `None`, else replace only that
    /// version. Returns the new ETag.
    pub fn put_escrow(
        &self,
        session: &BearerToken,
        bytes: &[u8],
        expected_etag: Option<&str>,
    ) -> Result<String, ClientError> {
        self.put_record("/escrow", session, bytes, expected_etag, None)
    }

    /// The head record and its ETag, `None` if none is stored.
    pub fn get_head(&self, auth: &BearerToken) -> Result<Option<(Vec<u8>, String)>, ClientError> {
        self.get_record("/head", auth)
    }

    /// Stores the head record with compare-and-swap, like [`Self::put_escrow`].
    pub fn put_head(
        &self,
        auth: &BearerToken,
        bytes: &[u8],
        generation: u64,
        expected_etag: Option<&str>,
    ) -> Result<String, ClientError> {
        self.put_record("/head", auth, bytes, expected_etag, Some(generation))
    }

    fn get_record(&self, path: &str, auth: &BearerToken) -> Result<Option<(Vec<u8>, String)>, ClientError> {
        self.retrying(|| {
            let mut response = self.request("GET", path, Some(auth)).send_empty().map_err(transport)?;
            if response.status().as_u16() == 404 {
                return Ok(None);
            }
            let response = check(&mut response).map(|()| response)?;
            let etag = header(&response, "etag").ok_or_else(|| ClientError::Protocol("no ETag".into()))?;
            Ok(Some((read_small(response)?, etag)))
        })
    }

    fn put_record(
        &self,
        path: &str,
        auth: &BearerToken,
        bytes: &[u8],
        expected: Option<&str>,
        generation: Option<u64>,
    ) -> Result<String, ClientError> {
        let (name, value) = match expected {
            None => ("If-None-Match", "*"),
            Some(etag) => ("If-Match", etag),
        };
        let mut retried_after_transport_error = false;
        let result = self.retrying(|| {
            let mut request = self.request("PUT", path, Some(auth)).header(name, value);
            if let Some(generation) = generation {
                request = request.header(crate::HEAD_GENERATION_HEADER, &generation.to_string());
            }
            let mut response = request.send(bytes).map_err(|e| {
                retried_after_transport_error = true;
                transport(e)
            })?;
            check(&mut response)?;
            header(&response, "etag").ok_or_else(|| ClientError::Protocol("no ETag".into()))
        });
        match result {
            // An attempt whose answer was lost may have been applied: if the record now holds
            // exactly these bytes, it was.
            Err(e) if retried_after_transport_error && e.code() == Some(ErrorCode::PreconditionFailed) => {
                match self.get_record(path, auth)? {
                    Some((_, etag)) if etag == crate::record_etag(bytes) => Ok(etag),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    // ---- objects ----

    /// Stores a write-once object from memory. `ObjectExists` if the id is taken.
    pub fn put_object(&self, auth: &BearerToken, id: &str, bytes: &[u8]) -> Result<(), ClientError> {
        check_object_id(id)?;
        let mut retried_after_transport_error = false;
        let result = self.retrying(|| {
            let mut request = self.request("PUT", &format!("/objects/{id}"), Some(auth));
            if bytes.len() > EXPECT_CONTINUE_ABOVE {
                // The server refuses (exists, quota, size) from the headers and closes the
                // connection: without the wait, a body larger than the socket's buffers would
                // fail to send ("broken pipe") instead of reporting the refusal.
                request = request.header("Expect", "100-continue");
            }
            let mut response = request.send(bytes).map_err(|e| {
                retried_after_transport_error = true;
                transport(e)
            })?;
            check(&mut response)
        });
        match result {
            // An attempt whose answer was lost may have stored the object: if it holds exactly
            // these bytes, it did.
            Err(e) if retried_after_transport_error && e.code() == Some(ErrorCode::ObjectExists) => {
                match self.get_object(auth, id, bytes.len() as u64 + 1) {
                    Ok(stored) if stored == bytes => Ok(()),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    /// Stores a write-once object streamed from a reader (not retried: the reader is consumed).
    pub fn put_object_stream<R: Read + Send + 'static>(
        &self,
        auth: &BearerToken,
        id: &str,
        upload: Upload<R>,
    ) -> Result<(), ClientError> {
        check_object_id(id)?;
        let request = self
            .request("PUT", &format!("/objects/{id}"), Some(auth))
            .header("Content-Length", &upload.len.to_string())
            // The server refuses (exists, quota, size) before reading the body.
            .header("Expect", "100-continue");
        let mut response = send_reader(request, upload.reader, transport)?;
        check(&mut response)
    }

    /// Reads a whole object into memory (at most `max_len` bytes).
    pub fn get_object(&self, auth: &BearerToken, id: &str, max_len: u64) -> Result<Vec<u8>, ClientError> {
        check_object_id(id)?;
        self.retrying(|| {
            let mut response =
                self.request("GET", &format!("/objects/{id}"), Some(auth)).send_empty().map_err(transport)?;
            check(&mut response)?;
            response.body_mut().with_config().limit(max_len).read_to_vec().map_err(transport)
        })
    }

    /// Reads `len` bytes of an object from `offset`.
    pub fn get_object_range(
        &self,
        auth: &BearerToken,
        id: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, ClientError> {
        check_object_id(id)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={offset}-{}", offset.saturating_add(len - 1));
        self.retrying(|| {
            let mut response = self
                .request("GET", &format!("/objects/{id}"), Some(auth))
                .header("Range", &range)
                .send_empty()
                .map_err(transport)?;
            check(&mut response)?;
            response.body_mut().with_config().limit(len).read_to_vec().map_err(transport)
        })
    }

    /// An object's size, `None` if absent.
    pub fn head_object(&self, auth: &BearerToken, id: &str) -> Result<Option<u64>, ClientError> {
        check_object_id(id)?;
        self.retrying(|| {
            let response =
                self.request("HEAD", &format!("/objects/{id}"), Some(auth)).send_empty().map_err(transport)?;
            let status = response.status().as_u16();
            if status == 404 {
                return Ok(None);
            }
            if status >= 400 {
                // HEAD answers carry no body: the status alone names the error.
                let code =
                    ErrorCode::for_status(status).ok_or_else(|| ClientError::Protocol(format!("HTTP {status}")))?;
                return Err(ClientError::Api { status, code, message: format!("HEAD refused with HTTP {status}") });
            }
            header(&response, "content-length")
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| ClientError::Protocol("no Content-Length".into()))
        })
    }

    /// One page of the object listing.
    pub fn list_objects(
        &self,
        auth: &BearerToken,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<ObjectList, ClientError> {
        let mut query = Vec::new();
        if let Some(after) = after {
            check_object_id(after)?;
            query.push(format!("after={after}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let path = if query.is_empty() { "/objects".to_owned() } else { format!("/objects?{}", query.join("&")) };
        self.get_json(&path, auth)
    }

    /// Deletes an object (`NotFound` if absent).
    pub fn delete_object(&self, auth: &BearerToken, id: &str) -> Result<(), ClientError> {
        check_object_id(id)?;
        self.send_expect_empty("DELETE", &format!("/objects/{id}"), None, Some(auth), &[])
    }

    /// The deleted objects still in their grace period (session only).
    pub fn list_deleted(&self, session: &BearerToken) -> Result<DeletedList, ClientError> {
        self.get_json("/deleted", session)
    }

    /// Puts the most recently deleted object `id` back (session only).
    pub fn restore_deleted(&self, session: &BearerToken, id: &str) -> Result<(), ClientError> {
        check_object_id(id)?;
        self.send_expect_empty("POST", &format!("/deleted/{id}"), None, Some(session), &[])
    }

    // ---- plumbing ----

    // ---- presigned transfers (S3 stores) ----

    /// Asks for a presigned upload of `id`: `size` bytes whose SHA-256 is `sha256` (standard
    /// base64). The server reserves the size against the quota. `None` when the server hands out
    /// no presigned URLs (then upload through it).
    pub fn direct_upload_url(
        &self,
        auth: &BearerToken,
        id: &str,
        size: u64,
        sha256: &str,
    ) -> Result<Option<DirectUrl>, ClientError> {
        check_object_id(id)?;
        let request = DirectUploadRequest { size, sha256: sha256.to_owned() };
        direct_or_none(self.post_json(&format!("/objects/{id}/upload-url"), &request, Some(auth)))
    }

    /// Tells the server a presigned upload of `id` is done, so that it settles it now rather than
    /// when the URL expires. `NotFound` while the object has not arrived.
    pub fn direct_upload_done(&self, auth: &BearerToken, id: &str) -> Result<(), ClientError> {
        check_object_id(id)?;
        self.retrying(|| self.send_expect_empty("POST", &format!("/objects/{id}/upload-done"), None, Some(auth), &[]))
    }

    /// Asks for a presigned download of `id`. `None` when the server hands out no presigned URLs.
    pub fn direct_download_url(&self, auth: &BearerToken, id: &str) -> Result<Option<DirectUrl>, ClientError> {
        check_object_id(id)?;
        direct_or_none(self.get_json(&format!("/objects/{id}/download-url"), auth))
    }

    /// Stores a write-once object from memory straight in the object store when the server hands
    /// out presigned URLs (an S3 store), else through the server (as [`BackupClient::put_object`]).
    /// Returns whether it went straight to the store.
    pub fn put_object_direct(&self, auth: &BearerToken, id: &str, bytes: &[u8]) -> Result<bool, ClientError> {
        use sha2_10::Digest as _;
        let len = bytes.len() as u64;
        let sha256 = base64::engine::general_purpose::STANDARD.encode(sha2_10::Sha256::digest(bytes));
        let Some(direct) = self.direct_upload_url(auth, id, len, &sha256)? else {
            return self.put_object(auth, id, bytes).map(|()| false);
        };
        let url = self.checked_store_url(&direct.url)?;
        let stored = self.retrying(|| {
            let mut request = self.store_agent.put(url);
            for (name, value) in signed_headers(&direct) {
                request = request.header(name, value);
            }
            let mut response = request.send(bytes).map_err(store_transport)?;
            check_store(&mut response, StoreRequest::Upload)
        });
        self.finish_direct(auth, id, stored, || {
            Ok(self.head_object(auth, id)? == Some(len) && self.get_object(auth, id, len)? == bytes)
        })
    }

    /// Stores a write-once object of `len` bytes, which each call of `open` reads again from the
    /// start, straight in the object store when the server hands out presigned URLs: a first
    /// reading gives the content's SHA-256 (the URL binds it), a later one is sent, and a send
    /// that fails for a transient reason is made again from a new reading (the same content gets
    /// the same reservation). Else one reading goes through the server (as
    /// [`BackupClient::put_object_stream`]). Returns whether it went straight to the store.
    pub fn put_object_direct_repeatable<R: Read + Send + 'static>(
        &self,
        auth: &BearerToken,
        id: &str,
        len: u64,
        open: &dyn Fn() -> std::io::Result<R>,
    ) -> Result<bool, ClientError> {
        let unreadable = |e: std::io::Error| ClientError::InvalidInput(format!("the content could not be read: {e}"));
        let sha256 = content_sha256(open().map_err(unreadable)?, len).map_err(unreadable)?;
        let mut sent = false;
        let stored = self.retrying(|| {
            let Some(direct) = self.direct_upload_url(auth, id, len, &sha256)? else { return Ok(false) };
            let reader = open().map_err(unreadable)?;
            sent = true;
            self.put_direct(&direct, Upload { len, reader }).map(|()| true)
        });
        if let Ok(false) = stored {
            let reader = open().map_err(unreadable)?;
            return self.put_object_stream(auth, id, Upload { len, reader }).map(|()| false);
        }
        // The URL takes only this content: an object of its size under the id is this one.
        self.finish_direct(auth, id, stored.map(|_| ()), || Ok(sent && self.head_object(auth, id)? == Some(len)))
    }

    /// Ends a presigned upload whose sending ended with `stored`, and tells the server it is
    /// done. An attempt whose answer was lost may have stored the object, so `ObjectExists` counts
    /// as stored when `is_ours` finds this upload's object under the id.
    fn finish_direct(
        &self,
        auth: &BearerToken,
        id: &str,
        stored: Result<(), ClientError>,
        is_ours: impl FnOnce() -> Result<bool, ClientError>,
    ) -> Result<bool, ClientError> {
        match stored {
            Ok(()) => {}
            Err(e) if e.code() == Some(ErrorCode::ObjectExists) => {
                if !is_ours()? {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        self.direct_upload_done(auth, id).map(|()| true)
    }

    /// Uploads `upload` with a presigned URL from [`BackupClient::direct_upload_url`], straight to
    /// the object store. `ObjectExists` if the id is taken, `Forbidden` if the URL expired or the
    /// request does not match it, `BadRequest` if the content is not the declared one.
    pub fn put_direct<R: Read + Send + 'static>(
        &self,
        direct: &DirectUrl,
        upload: Upload<R>,
    ) -> Result<(), ClientError> {
        let url = self.checked_store_url(&direct.url)?;
        let mut request = self.store_agent.put(url).header("Content-Length", &upload.len.to_string());
        for (name, value) in signed_headers(direct) {
            request = request.header(name, value);
        }
        let mut response = send_reader(request, upload.reader, store_transport)?;
        check_store(&mut response, StoreRequest::Upload)
    }

    /// Reads `len` bytes from `offset` of an object with a presigned URL from
    /// [`BackupClient::direct_download_url`], straight from the object store.
    pub fn get_direct_range(&self, direct: &DirectUrl, offset: u64, len: u64) -> Result<Vec<u8>, ClientError> {
        let url = self.checked_store_url(&direct.url)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={offset}-{}", offset.saturating_add(len - 1));
        self.retrying(|| {
            let mut response = self.store_agent.get(url).header("Range", &range).call().map_err(store_transport)?;
            check_store(&mut response, StoreRequest::Download)?;
            response.body_mut().with_config().limit(len).read_to_vec().map_err(store_transport)
        })
    }

    /// A presigned URL the server handed out, held to the rules of the server's own URL: HTTPS,
    /// or plain HTTP to a loopback address unless insecure HTTP was allowed.
    fn checked_store_url<'u>(&self, url: &'u str) -> Result<&'u str, ClientError> {
        let refused = || ClientError::Protocol("the server handed out a presigned URL this client may not use".into());
        let uri: http::Uri = url.parse().map_err(|_| refused())?;
        let host = uri.host().ok_or_else(refused)?.trim_start_matches('[').trim_end_matches(']');
        match uri.scheme_str() {
            Some("https") => Ok(url),
            Some("http") if self.allow_insecure_http || is_loopback_host(host) => Ok(url),
            _ => Err(refused()),
        }
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        auth: Option<&BearerToken>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
        let url = self.url(path);
        let builder = match method {
            "GET" => self.agent.get(&url).force_send_body(),
            "HEAD" => self.agent.head(&url).force_send_body(),
            "DELETE" => self.agent.delete(&url).force_send_body(),
            "PUT" => self.agent.put(&url),
            _ => self.agent.post(&url),
        };
        match auth {
            Some(token) => builder.header("Authorization", &format!("Bearer {}", token.expose())),
            None => builder,
        }
    }

    fn retrying<T>(&self, mut attempt: impl FnMut() -> Result<T, ClientError>) -> Result<T, ClientError> {
        let mut tries = 0;
        loop {
            match attempt() {
                Err(e) if e.is_transient() && tries + 1 < ATTEMPTS => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(200 * 2u64.pow(tries)));
                }
                other => return other,
            }
        }
    }

    fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        auth: Option<&BearerToken>,
    ) -> Result<T, ClientError> {
        let bytes = json_bytes(body)?;
        let mut response = self
            .request("POST", path, auth)
            .header("Content-Type", "application/json")
            .send(&bytes[..])
            .map_err(transport)?;
        check(&mut response)?;
        parse_json(response)
    }

    fn get_json<T: DeserializeOwned>(&self, path: &str, auth: &BearerToken) -> Result<T, ClientError> {
        self.retrying(|| {
            let mut response = self.request("GET", path, Some(auth)).send_empty().map_err(transport)?;
            check(&mut response)?;
            parse_json(response)
        })
    }

    fn send_expect_empty(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        auth: Option<&BearerToken>,
        headers: &[(&str, &str)],
    ) -> Result<(), ClientError> {
        let mut builder = self.request(method, path, auth);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let mut response = match body {
            Some(bytes) => builder.header("Content-Type", "application/json").send(&bytes[..]),
            None => builder.send_empty(),
        }
        .map_err(transport)?;
        check(&mut response)
    }
}

fn json_bytes<B: Serialize>(body: &B) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(body).map_err(|_| ClientError::InvalidInput("cannot encode the request".into()))
}

fn check_object_id(id: &str) -> Result<(), ClientError> {
    if crate::names::is_valid_object_id(id) {
        Ok(())
    } else {
        Err(ClientError::InvalidInput("an object identifier has 1 to 128 characters from A-Z a-z 0-9 _ - .".into()))
    }
}

fn transport(error: ureq::Error) -> ClientError {
    ClientError::Transport(error.to_string())
}

/// A transport error of a request to the object store, without its URL (which carries the
/// signature).
fn store_transport(error: ureq::Error) -> ClientError {
    let kind = match error {
        ureq::Error::Timeout(_) => "timed out",
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => "connection failed",
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) => "TLS failed",
        _ => "request failed",
    };
    ClientError::Transport(format!("object store: {kind}"))
}

/// Sends `request` with the bytes of `reader` as its body. A failure to read them is reported as
/// such (`InvalidInput`, not retried), not as the connection's failure (`on_error`).
fn send_reader<R: Read + Send + 'static>(
    request: ureq::RequestBuilder<ureq::typestate::WithBody>,
    reader: R,
    on_error: fn(ureq::Error) -> ClientError,
) -> Result<http::Response<ureq::Body>, ClientError> {
    let failure = Arc::new(std::sync::Mutex::new(None));
    let body = WatchedBody { inner: reader, failure: Arc::clone(&failure) };
    request.send(ureq::SendBody::from_owned_reader(body)).map_err(|error| {
        match failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            Some(read_error) => ClientError::InvalidInput(format!("the content could not be read: {read_error}")),
            None => on_error(error),
        }
    })
}

/// A request body's reader that keeps the text of its first read error.
struct WatchedBody<R> {
    inner: R,
    failure: Arc<std::sync::Mutex<Option<String>>>,
}

impl<R: Read> Read for WatchedBody<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(out).inspect_err(|error| {
            // An interrupted read is retried by the HTTP stack, not a failure.
            if error.kind() != std::io::ErrorKind::Interrupted {
                let mut failure = self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                failure.get_or_insert_with(|| error.to_string());
            }
        })
    }
}

/// The headers a presigned request must carry, but `Content-Length`, which the HTTP stack sets
/// from the body (the signed value is the body's length).
fn signed_headers(direct: &DirectUrl) -> impl Iterator<Item = (&str, &str)> {
    direct
        .headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("content-length"))
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

/// The base64 SHA-256 of exactly `len` bytes from `reader` (an earlier end is an error), as a
/// presigned upload declares it.
fn content_sha256(mut reader: impl Read, len: u64) -> std::io::Result<String> {
    use sha2_10::Digest as _;
    let mut hasher = sha2_10::Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
        let n = reader.read(&mut buffer[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the content ended early"));
        }
        hasher.update(&buffer[..n]);
        left -= n as u64;
    }
    Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
}

/// `None` for a server that hands out no presigned URLs (or predates them).
fn direct_or_none(answer: Result<DirectUrl, ClientError>) -> Result<Option<DirectUrl>, ClientError> {
    match answer {
        Ok(direct) => Ok(Some(direct)),
        Err(e) if matches!(e.code(), Some(ErrorCode::DirectTransfersOff | ErrorCode::UnknownRoute)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What a presigned request to the object store was doing, for the meaning of its refusals.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreRequest {
    Upload,
    Download,
}

/// Turns an object store's error status into [`ClientError::Store`] with the matching code (its
/// XML body is not read: it names the bucket and key). A 404 answers a download for an object
/// that is not there, but an upload only when the store lacks the bucket: the server's store is
/// misconfigured, which no retry or resume changes.
fn check_store(response: &mut http::Response<ureq::Body>, request: StoreRequest) -> Result<(), ClientError> {
    let status = response.status().as_u16();
    if status < 400 {
        return Ok(());
    }
    let (code, message) = match status {
        404 if request == StoreRequest::Upload => {
            (ErrorCode::Internal, "the object store has no bucket for this upload: the server's store is misconfigured")
        }
        412 => (ErrorCode::ObjectExists, "an object with this identifier exists; objects are write-once"),
        403 => (
            ErrorCode::Forbidden,
            "the object store refused the presigned request: expired (or a clock is off), or not the signed one",
        ),
        400 => (ErrorCode::BadRequest, "the object store refused the content: not the declared one"),
        404 => (ErrorCode::NotFound, "no such object"),
        416 => (ErrorCode::RangeNotSatisfiable, "the range lies outside the object"),
        // A conditional write racing another (S3's ConditionalRequestConflict): try again.
        409 | 500.. => (ErrorCode::Unavailable, "the object store failed or is busy"),
        _ => (ErrorCode::BadRequest, "the object store refused the request"),
    };
    Err(ClientError::Store { status, code, message: message.into() })
}

fn header(response: &http::Response<ureq::Body>, name: &str) -> Option<String> {
    response.headers().get(name)?.to_str().ok().map(str::to_owned)
}

/// Turns an error status into [`ClientError::Api`].
fn check(response: &mut http::Response<ureq::Body>) -> Result<(), ClientError> {
    let status = response.status().as_u16();
    if status < 400 {
        return Ok(());
    }
    let body = response.body_mut().with_config().limit(MAX_SMALL_RESPONSE).read_to_vec().unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(error) if error.error == ErrorCode::LoginDelayed => {
            let retry_after_secs = header(response, "retry-after").and_then(|v| v.trim().parse().ok()).unwrap_or(60);
            Err(ClientError::LoginDelayed { retry_after_secs })
        }
        Ok(error) => Err(ClientError::Api { status, code: error.error, message: error.message }),
        Err(_) => Err(ClientError::Protocol(format!("HTTP {status} without an error body"))),
    }
}

fn read_small(mut response: http::Response<ureq::Body>) -> Result<Vec<u8>, ClientError> {
    response.body_mut().with_config().limit(MAX_SMALL_RESPONSE).read_to_vec().map_err(transport)
}

fn parse_json<T: DeserializeOwned>(response: http::Response<ureq::Body>) -> Result<T, ClientError> {
    let bytes = read_small(response)?;
    serde_json::from_slice(&bytes).map_err(|_| ClientError::Protocol("malformed JSON answer".into()))
}

/// Parses and checks the server URL the way the HTTP stack will: `https://host[:port]`, or
/// `http://` to a loopback host (unless insecure HTTP is explicitly allowed); no user
/// information, path or query. Returns it without a trailing slash.
fn checked_base_url(url: &str, allow_insecure_http: bool) -> Result<String, ClientError> {
    let invalid = |why: &str| ClientError::InvalidInput(format!("server URL: {why}"));
    let uri: http::Uri = url.parse().map_err(|_| invalid("not a URL"))?;
    let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user information (`user@`) is not allowed"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid("must be scheme://host[:port] with no path or query"));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if allow_insecure_http || is_loopback_host(host) => {}
        Some("http") => return Err(invalid("plain http:// is allowed only to a loopback address; use https://")),
        _ => return Err(invalid("must start with https:// or http://")),
    }
    Ok(format!("{}://{}", uri.scheme_str().unwrap_or("https"), authority.as_str()))
}

/// Whether `host` (without brackets) is `localhost` or a loopback IP address.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(BackupClient::new("http://127.0.0.1:8371").is_ok());
        assert!(BackupClient::new("http://localhost:8371").is_ok());
        assert!(BackupClient::new("http://[::1]:8371").is_ok());
        assert!(BackupClient::new("https://backup.example.org").is_ok());
        assert!(matches!(BackupClient::new("http://backup.example.org"), Err(ClientError::InvalidInput(_))));
        assert!(matches!(BackupClient::new("http://10.0.0.1:80"), Err(ClientError::InvalidInput(_))));
        assert!(matches!(BackupClient::new("ftp://x"), Err(ClientError::InvalidInput(_))));
        assert!(matches!(BackupClient::new("https://x/path"), Err(ClientError::InvalidInput(_))));
        for sneaky in [
            "http://127.0.0.1:80@evil.example",
            "http://[::1]:1@evil.example",
            "http://127.0.0.1@evil.example",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example:80",
            "https://user:pw@backup.example.org",
            "http://127.0.0.1:8371?x=1",
        ] {
            assert!(matches!(BackupClient::new(sneaky), Err(ClientError::InvalidInput(_))), "{sneaky}");
        }
        assert_eq!(checked_base_url("http://127.0.0.1:8371/", false).unwrap(), "http://127.0.0.1:8371");
        let options = ClientOptions { allow_insecure_http: true, ..Default::default() };
        assert!(BackupClient::with_options("http://10.0.0.1:80", options).is_ok());
    }

    /// A store on loopback that answers every request with `404` and no body, as a store without
    /// the bucket (or the object) does; returns its URL for an object.
    fn store_answering_404() -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/bucket/object", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ =
                    (&stream).write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        url
    }

    #[test]
    fn a_store_404_means_a_missing_object_on_download_and_a_misconfigured_store_on_upload() {
        let client = BackupClient::new("http://127.0.0.1:8371").unwrap();
        let direct = DirectUrl { url: store_answering_404(), headers: Vec::new(), expires_at: u64::MAX };
        let upload = client.put_direct(&direct, Upload { reader: std::io::empty(), len: 0 });
        let Err(ClientError::Store { status: 404, code, message }) = upload else { panic!("{upload:?}") };
        assert_eq!(code, ErrorCode::Internal);
        assert!(message.contains("no bucket") && !message.contains("127.0.0.1"), "{message}");
        let download = client.get_direct_range(&direct, 0, 10);
        assert!(
            matches!(download, Err(ClientError::Store { status: 404, code: ErrorCode::NotFound, .. })),
            "{download:?}"
        );
    }

    /// A source that cannot be read gives every read this error.
    struct Unreadable;

    impl Read for Unreadable {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("the disk failed"))
        }
    }

    #[test]
    fn a_source_that_cannot_be_read_is_reported_as_such_not_as_the_connection() {
        let client = BackupClient::new("http://127.0.0.1:8371").unwrap();
        let direct = DirectUrl { url: store_answering_404(), headers: Vec::new(), expires_at: u64::MAX };
        let upload = client.put_direct(&direct, Upload { reader: Unreadable, len: 10 });
        let Err(ClientError::InvalidInput(message)) = upload else { panic!("{upload:?}") };
        assert!(message.contains("could not be read") && message.contains("the disk failed"), "{message}");
    }
}
