//! The backup server as a [`Transport`], over `backup-api`'s blocking HTTPS client with a device
//! (or session) token.

use std::io::Read;

use backup_api::ErrorCode;
use backup_api::client::{BackupClient, BearerToken, ClientError, Upload};
use vault_core::backup::{Transport, TransportError};

/// Largest object read whole (packs, index objects, manifests).
const MAX_OBJECT: u64 = 256 << 20;

/// One account on one backup server.
pub struct ServerTransport {
    client: BackupClient,
    token: BearerToken,
}

impl ServerTransport {
    /// A transport for the account `token` belongs to.
    pub fn new(client: BackupClient, token: BearerToken) -> Self {
        Self { client, token }
    }
}

fn failed(what: &str) -> impl Fn(ClientError) -> TransportError + '_ {
    move |e| match e.code() {
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
        self.client.put_object(&self.token, name, bytes).map_err(failed("uploading"))
    }

    fn put_reader(&self, name: &str, len: u64, reader: Box<dyn Read + Send>) -> Result<(), TransportError> {
        self.client.put_object_stream(&self.token, name, Upload { len, reader }).map_err(failed("uploading"))
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        match self.client.get_object(&self.token, name, MAX_OBJECT) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(failed("downloading")(e)),
        }
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, TransportError> {
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
