//! The backup server as a [`Transport`], over `backup-api`'s blocking HTTPS client with a device
//! (or session) token.
//!
//! When the server hands out presigned URLs (an S3 store, ADR 0019), these go straight between
//! the device and the object store, the server only authorising them: uploads of at least
//! [`DIRECT_MIN`] bytes from memory (packs) or from a source read twice (media: once for the
//! SHA-256 a presigned upload binds, once to send), and ranged reads of at least [`DIRECT_MIN`]
//! bytes (media during a restore). Everything else, and everything on a server that hands out no
//! URLs, goes through the server; so do one-shot streams (`put_reader`), whose hash cannot be
//! known before they are sent.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use backup_api::ErrorCode;
use backup_api::client::{BackupClient, BearerToken, ClientError, Upload};
use backup_api::wire::DirectUrl;
use vault_core::backup::{RepeatableSource, Transport, TransportError};

/// Largest object read whole (packs, index objects, manifests).
const MAX_OBJECT: u64 = 256 << 20;
/// Smallest transfer that goes straight to the object store when the server allows it (smaller
/// ones cost fewer round trips through the server).
pub const DIRECT_MIN: u64 = 1 << 20;
/// A download URL is asked for again this long before it expires.
const URL_MARGIN_SECS: u64 = 30;

/// One account on one backup server.
pub struct ServerTransport {
    client: BackupClient,
    token: BearerToken,
    /// Set once the server answered that it hands out no presigned URLs.
    direct_off: AtomicBool,
    /// Download URLs already handed out, by object, until shortly before they expire.
    download_urls: Mutex<HashMap<String, DirectUrl>>,
}

impl ServerTransport {
    /// A transport for the account `token` belongs to.
    pub fn new(client: BackupClient, token: BearerToken) -> Self {
        Self { client, token, direct_off: AtomicBool::new(false), download_urls: Mutex::new(HashMap::new()) }
    }

    /// A download URL for `name` (cached while it lives), `None` when the server hands out none.
    fn download_url(&self, name: &str) -> Result<Option<DirectUrl>, ClientError> {
        if self.direct_off.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut urls = self.download_urls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(url) = urls.get(name).filter(|u| u.expires_at > now + URL_MARGIN_SECS) {
            return Ok(Some(url.clone()));
        }
        urls.retain(|_, u| u.expires_at > now + URL_MARGIN_SECS);
        drop(urls);
        let Some(url) = self.client.direct_download_url(&self.token, name)? else {
            self.direct_off.store(true, Ordering::Relaxed);
            return Ok(None);
        };
        self.download_urls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), url.clone());
        Ok(Some(url))
    }

    fn get_range_direct(&self, name: &str, offset: u64, len: u64) -> Result<Option<Vec<u8>>, ClientError> {
        let Some(url) = self.download_url(name)? else { return Ok(None) };
        match self.client.get_direct_range(&url, offset, len) {
            // Expired early (clock skew): one more try with a fresh URL.
            Err(e) if e.code() == Some(ErrorCode::Forbidden) => {
                self.download_urls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(name);
                let Some(url) = self.download_url(name)? else { return Ok(None) };
                self.client.get_direct_range(&url, offset, len).map(Some)
            }
            other => other.map(Some),
        }
    }
}

fn failed(what: &str) -> impl Fn(ClientError) -> TransportError + '_ {
    move |e| match e.code() {
        // The store refused a presigned request (expired, or a clock is off): not a device-token
        // restriction.
        Some(ErrorCode::Forbidden) if matches!(e, ClientError::Store { .. }) => {
            TransportError::Failed(format!("{what}: {e}"))
        }
        Some(ErrorCode::ObjectExists) => TransportError::Exists,
        Some(ErrorCode::PreconditionFailed) => TransportError::Conflict,
        Some(ErrorCode::NotFound) => TransportError::NotFound,
        Some(ErrorCode::RangeNotSatisfiable) => TransportError::OutOfRange,
        Some(ErrorCode::Forbidden | ErrorCode::GenerationRegressed) => TransportError::NotAllowed(format!(
            "{what}: the server allows this only with a session from a password login (device tokens may only \
             add objects, read and advance the head)"
        )),
        Some(ErrorCode::Unauthorized) => TransportError::Unauthorized(format!(
            "{what}: the server refused this device's token (revoked, or the account was set up again): \
             set up recovery on this device again"
        )),
        _ => TransportError::Failed(format!("{what}: {e}")),
    }
}

impl Transport for ServerTransport {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), TransportError> {
        if bytes.len() as u64 >= DIRECT_MIN && !self.direct_off.load(Ordering::Relaxed) {
            let direct = self.client.put_object_direct(&self.token, name, bytes).map_err(failed("uploading"))?;
            if !direct {
                self.direct_off.store(true, Ordering::Relaxed);
            }
            return Ok(());
        }
        self.client.put_object(&self.token, name, bytes).map_err(failed("uploading"))
    }

    fn put_reader(&self, name: &str, len: u64, reader: Box<dyn Read + Send>) -> Result<(), TransportError> {
        self.client.put_object_stream(&self.token, name, Upload { len, reader }).map_err(failed("uploading"))
    }

    fn put_repeatable(&self, name: &str, len: u64, open: &RepeatableSource<'_>) -> Result<(), TransportError> {
        if len < DIRECT_MIN || self.direct_off.load(Ordering::Relaxed) {
            return self.put_reader(name, len, open()?);
        }
        // The source's own failure is kept apart from the server's answers.
        let source_failure = Mutex::new(None);
        let reopen = || {
            open().map_err(|e| {
                let message = e.to_string();
                *source_failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                std::io::Error::other(message)
            })
        };
        let direct = self.client.put_object_direct_repeatable(&self.token, name, len, &reopen);
        if let Some(e) = source_failure.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Err(e);
        }
        if !direct.map_err(failed("uploading"))? {
            self.direct_off.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match self.client.get_object(&self.token, name, MAX_OBJECT) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(failed("downloading")(e)),
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, TransportError> {
        if len >= DIRECT_MIN
            && let Some(bytes) = self.get_range_direct(name, offset, len).map_err(failed("downloading"))?
        {
            return Ok(bytes);
        }
        self.client.get_object_range(&self.token, name, offset, len).map_err(failed("downloading"))
    }

    fn list(&self) -> Result<Vec<(String, u64)>, TransportError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.client.list_objects(&self.token, after.as_deref(), None).map_err(failed("listing"))?;
            out.extend(page.objects.into_iter().map(|o| (o.id, o.size)));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(out),
            }
        }
    }

    fn delete(&self, name: &str) -> Result<(), TransportError> {
        match self.client.delete_object(&self.token, name) {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
            Err(e) => Err(failed("deleting")(e)),
        }
    }

    fn get_head(&self) -> Result<Option<(Vec<u8>, String)>, TransportError> {
        self.client.get_head(&self.token).map_err(failed("reading the head record"))
    }

    fn put_head(&self, bytes: &[u8], generation: u64, expected: Option<&str>) -> Result<(), TransportError> {
        self.client
            .put_head(&self.token, bytes, generation, expected)
            .map(|_| ())
            .map_err(failed("updating the head record"))
    }
}
