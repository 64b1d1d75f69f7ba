//! A scripted in-memory guardian for the tests: it keeps accounts, escrow and head records with
//! compare-and-swap, devices and backup objects as a real guardian does, and can be told to
//! misbehave — be down, drop a call, answer slowly, serve an old escrow or head record, serve
//! garbage, or lie about its key. It complements the end-to-end tests against real server
//! processes; it never replaces them.
//!
//! Passwords are checked against a keyed hash and the export key is a keyed hash of the account
//! and password under the guardian's own secret: like OPAQUE's, it is reproducible only with the
//! password at this guardian. (No OPAQUE runs here; `vault-core-net` and the server do that.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::guardian::{
    AccessToken, DeletedObject, Guardian, GuardianDevice, GuardianError, GuardianEvent, GuardianEventKind,
    GuardianEvents, GuardianNetwork, GuardianSession, Versioned,
};
use crate::Passphrase;
use crate::backup::{Transport, TransportError};
use crate::secret::SecretBytes;

/// A guardian call, for scripting a fault on one kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    Register,
    Login,
    ChangePassword,
    Escrow,
    PutEscrow,
    EnrolDevice,
    Devices,
    RevokeDevice,
    Events,
    Deleted,
    GetHead,
    PutHead,
    PutObject,
    GetObject,
}

/// How a guardian misbehaves.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Every call fails as unreachable.
    Down,
    /// The next call of this kind fails as a dropped connection (after doing nothing).
    DropNext(Call),
    /// Every call waits this long first.
    Slow(Duration),
    /// The escrow record served is the `n`-th one ever stored for the account (a replay of an
    /// old record; writes still land).
    ReplayEscrow(usize),
    /// The escrow record served is random bytes.
    GarbageEscrow,
    /// The account's escrow record is gone.
    MissingEscrow,
    /// The head record served is the `n`-th one ever stored (a rollback).
    ReplayHead(usize),
    /// The head record served is random bytes.
    GarbageHead,
    /// Logins report this server key instead of the guardian's own.
    LieAboutKey(Vec<u8>),
}

#[derive(Default)]
struct Account {
    verifier: [u8; 32],
    escrow: Option<Versioned>,
    escrow_history: Vec<Vec<u8>>,
    head: Option<Versioned>,
    head_generation: u64,
    head_history: Vec<Vec<u8>>,
    objects: HashMap<String, Vec<u8>>,
    deleted: Vec<(String, Vec<u8>)>,
    devices: Vec<GuardianDevice>,
    events: Vec<GuardianEvent>,
}

impl Account {
    fn note(&mut self, kind: GuardianEventKind) {
        let seq = self.events.last().map_or(1, |e| e.seq + 1);
        self.events.push(GuardianEvent {
            seq,
            at_secs: 1_700_000_000 + seq,
            kind,
            authorised: false,
            retry_at_secs: None,
        });
    }
}

struct TokenGrant {
    account: String,
    /// The device the token belongs to; `None` for a login session.
    device: Option<String>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, Account>,
    tokens: HashMap<String, TokenGrant>,
    faults: Vec<Fault>,
    calls: Vec<Call>,
    next_version: u64,
}

/// One in-memory guardian, shared by every connection to it.
pub(crate) struct MemoryGuardian {
    secret: [u8; 32],
    server_key: Vec<u8>,
    state: Mutex<State>,
}

impl MemoryGuardian {
    fn new(seed: u8) -> Arc<Self> {
        Arc::new(Self { secret: [seed; 32], server_key: vec![seed; 32], state: Mutex::new(State::default()) })
    }

    /// Adds a fault to the script.
    pub(crate) fn script(&self, fault: Fault) {
        self.state.lock().unwrap().faults.push(fault);
    }

    /// Removes every scripted fault.
    pub(crate) fn heal(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// The guardian's own public key.
    pub(crate) fn server_key(&self) -> Vec<u8> {
        self.server_key.clone()
    }

    /// How many calls of `kind` were made.
    pub(crate) fn calls(&self, kind: Call) -> usize {
        self.state.lock().unwrap().calls.iter().filter(|c| **c == kind).count()
    }

    /// The devices enrolled for `account`, as the guardian sees them.
    pub(crate) fn devices_of(&self, account: &str) -> Vec<GuardianDevice> {
        self.state.lock().unwrap().accounts.get(account).map(|a| a.devices.clone()).unwrap_or_default()
    }

    /// Loses the account's backup (objects and head), as a server whose store was lost and
    /// rebuilt with only its account records would.
    pub(crate) fn lose_backup(&self, account: &str) {
        let mut state = self.state.lock().unwrap();
        if let Some(a) = state.accounts.get_mut(account) {
            a.objects.clear();
            a.head = None;
            a.head_generation = 0;
        }
    }

    /// Every head record ever stored for `account`, oldest first (what a guardian that kept
    /// them against the protocol would have).
    pub(crate) fn head_history_of(&self, account: &str) -> Vec<Vec<u8>> {
        self.state.lock().unwrap().accounts.get(account).map(|a| a.head_history.clone()).unwrap_or_default()
    }

    /// Every stored object of `account` (name and bytes), for tampering in tests.
    pub(crate) fn objects_of(&self, account: &str) -> Vec<(String, Vec<u8>)> {
        let state = self.state.lock().unwrap();
        let mut out: Vec<_> =
            state.accounts.get(account).map(|a| a.objects.clone().into_iter().collect()).unwrap_or_default();
        out.sort();
        out
    }

    fn keyed(&self, parts: &[&[u8]], out: &mut [u8]) {
        let mut hasher = blake3::Hasher::new_keyed(&self.secret);
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        hasher.finalize_xof().fill(out);
    }

    fn verifier(&self, account: &str, password: &Passphrase) -> [u8; 32] {
        let mut out = [0; 32];
        self.keyed(&[b"verifier", account.as_bytes(), password.expose_secret().as_bytes()], &mut out);
        out
    }

    /// Runs the script for one call: the faults that fail or delay it.
    fn enter(&self, call: Call) -> Result<(), GuardianError> {
        let delay = {
            let mut state = self.state.lock().unwrap();
            state.calls.push(call);
            if state.faults.iter().any(|f| matches!(f, Fault::Down)) {
                return Err(GuardianError::Unavailable("connection refused".into()));
            }
            if let Some(at) = state.faults.iter().position(|f| matches!(f, Fault::DropNext(c) if *c == call)) {
                state.faults.remove(at);
                return Err(GuardianError::Unavailable("the connection was dropped".into()));
            }
            state.faults.iter().find_map(|f| if let Fault::Slow(d) = f { Some(*d) } else { None })
        };
        if let Some(delay) = delay {
            std::thread::sleep(delay);
        }
        Ok(())
    }

    fn fault<T>(&self, pick: impl Fn(&Fault) -> Option<T>) -> Option<T> {
        self.state.lock().unwrap().faults.iter().find_map(pick)
    }

    fn new_token(state: &mut State, account: &str, device: Option<String>) -> AccessToken {
        let bytes: [u8; 16] = crate::crypto::random_array().unwrap();
        let token = hex::encode(bytes);
        state.tokens.insert(token.clone(), TokenGrant { account: account.to_owned(), device });
        AccessToken::new(token)
    }

    fn version(state: &mut State) -> String {
        state.next_version += 1;
        format!("v{}", state.next_version)
    }

    /// The account a token grants, if the token is valid (a device token whose device was
    /// revoked is not).
    fn account_of(state: &State, token: &AccessToken) -> Result<String, GuardianError> {
        let grant = state.tokens.get(token.expose_secret()).ok_or(GuardianError::TokenRefused)?;
        if let Some(device) = &grant.device {
            let enrolled =
                state.accounts.get(&grant.account).is_some_and(|a| a.devices.iter().any(|d| &d.id == device));
            if !enrolled {
                return Err(GuardianError::TokenRefused);
            }
        }
        Ok(grant.account.clone())
    }

    fn with_account<T>(
        &self,
        token: &AccessToken,
        f: impl FnOnce(&mut State, &str) -> Result<T, GuardianError>,
    ) -> Result<T, GuardianError> {
        let mut state = self.state.lock().unwrap();
        let account = Self::account_of(&state, token)?;
        f(&mut state, &account)
    }
}

fn garbage() -> Vec<u8> {
    let bytes: [u8; 64] = crate::crypto::random_array().unwrap();
    bytes.to_vec()
}

/// A handle on a shared [`MemoryGuardian`].
struct Connection(Arc<MemoryGuardian>);

impl Guardian for Connection {
    fn register(&self, account: &str, password: &Passphrase) -> Result<(), GuardianError> {
        self.0.enter(Call::Register)?;
        let verifier = self.0.verifier(account, password);
        let mut state = self.0.state.lock().unwrap();
        if state.accounts.contains_key(account) {
            return Err(GuardianError::AccountExists);
        }
        state.accounts.insert(account.to_owned(), Account { verifier, ..Account::default() });
        Ok(())
    }

    fn login(&self, account: &str, password: &Passphrase) -> Result<GuardianSession, GuardianError> {
        self.0.enter(Call::Login)?;
        let verifier = self.0.verifier(account, password);
        let mut export_key = vec![0; 64];
        self.0.keyed(&[b"export", account.as_bytes(), password.expose_secret().as_bytes()], &mut export_key);
        let server_key = self
            .0
            .fault(|f| if let Fault::LieAboutKey(k) = f { Some(k.clone()) } else { None })
            .unwrap_or_else(|| self.0.server_key());
        let mut state = self.0.state.lock().unwrap();
        let Some(a) = state.accounts.get_mut(account) else { return Err(GuardianError::LoginRefused) };
        a.note(GuardianEventKind::LoginStarted);
        if a.verifier != verifier {
            return Err(GuardianError::LoginRefused);
        }
        a.note(GuardianEventKind::LoginSucceeded);
        let token = MemoryGuardian::new_token(&mut state, account, None);
        Ok(GuardianSession { token, export_key: SecretBytes::new(export_key), server_key })
    }

    fn change_password(&self, session: &AccessToken, account: &str, new: &Passphrase) -> Result<(), GuardianError> {
        self.0.enter(Call::ChangePassword)?;
        let verifier = self.0.verifier(account, new);
        self.0.with_account(session, |state, owner| {
            if owner != account {
                return Err(GuardianError::TokenRefused);
            }
            let a = state.accounts.get_mut(owner).ok_or(GuardianError::TokenRefused)?;
            a.verifier = verifier;
            a.note(GuardianEventKind::PasswordChanged);
            Ok(())
        })
    }

    fn escrow(&self, session: &AccessToken) -> Result<Option<Versioned>, GuardianError> {
        self.0.enter(Call::Escrow)?;
        let replay = self.0.fault(|f| if let Fault::ReplayEscrow(n) = f { Some(*n) } else { None });
        let garbage_escrow = self.0.fault(|f| matches!(f, Fault::GarbageEscrow).then_some(()));
        let missing = self.0.fault(|f| matches!(f, Fault::MissingEscrow).then_some(())).is_some();
        self.0.with_account(session, |state, account| {
            let a = state.accounts.get_mut(account).ok_or(GuardianError::TokenRefused)?;
            a.note(GuardianEventKind::EscrowRead);
            let Some(current) = a.escrow.as_ref().filter(|_| !missing) else { return Ok(None) };
            let bytes = match (replay, garbage_escrow) {
                (_, Some(())) => garbage(),
                (Some(n), None) => a.escrow_history.get(n).cloned().unwrap_or_else(|| current.bytes.clone()),
                (None, None) => current.bytes.clone(),
            };
            Ok(Some(Versioned { bytes, version: current.version.clone() }))
        })
    }

    fn put_escrow(&self, session: &AccessToken, record: &[u8], expected: Option<&str>) -> Result<(), GuardianError> {
        self.0.enter(Call::PutEscrow)?;
        self.0.with_account(session, |state, account| {
            let version = MemoryGuardian::version(state);
            let a = state.accounts.get_mut(account).ok_or(GuardianError::TokenRefused)?;
            if a.escrow.as_ref().map(|r| r.version.as_str()) != expected {
                return Err(GuardianError::Conflict);
            }
            a.escrow = Some(Versioned { bytes: record.to_vec(), version });
            a.escrow_history.push(record.to_vec());
            Ok(())
        })
    }

    fn enrol_device(&self, session: &AccessToken, name: &str) -> Result<(String, AccessToken), GuardianError> {
        self.0.enter(Call::EnrolDevice)?;
        self.0.with_account(session, |state, account| {
            let id = hex::encode(crate::crypto::random_array::<16>().unwrap());
            let a = state.accounts.get_mut(account).ok_or(GuardianError::TokenRefused)?;
            a.devices.push(GuardianDevice { id: id.clone(), name: name.to_owned(), enrolled_at_secs: 1 });
            a.note(GuardianEventKind::DeviceEnrolled);
            let token = MemoryGuardian::new_token(state, account, Some(id.clone()));
            Ok((id, token))
        })
    }

    fn devices(&self, auth: &AccessToken) -> Result<Vec<GuardianDevice>, GuardianError> {
        self.0.enter(Call::Devices)?;
        self.0.with_account(auth, |state, account| {
            Ok(state.accounts.get(account).map(|a| a.devices.clone()).unwrap_or_default())
        })
    }

    fn revoke_device(&self, auth: &AccessToken, device_id: &str) -> Result<(), GuardianError> {
        self.0.enter(Call::RevokeDevice)?;
        self.0.with_account(auth, |state, account| {
            if let Some(a) = state.accounts.get_mut(account) {
                a.devices.retain(|d| d.id != device_id);
                a.note(GuardianEventKind::DeviceRevoked);
            }
            Ok(())
        })
    }

    fn deleted_objects(&self, session: &AccessToken) -> Result<Vec<DeletedObject>, GuardianError> {
        self.0.enter(Call::Deleted)?;
        self.0.with_account(session, |state, account| {
            if state.tokens.get(session.expose_secret()).is_none_or(|g| g.device.is_some()) {
                return Err(GuardianError::TokenRefused);
            }
            let a = state.accounts.get(account).ok_or(GuardianError::TokenRefused)?;
            Ok(a.deleted
                .iter()
                .map(|(id, bytes)| DeletedObject {
                    id: id.clone(),
                    size: bytes.len() as u64,
                    deleted_at_secs: 1,
                    purge_at_secs: 2,
                })
                .collect())
        })
    }

    fn restore_deleted(&self, session: &AccessToken, id: &str) -> Result<(), GuardianError> {
        self.0.enter(Call::Deleted)?;
        self.0.with_account(session, |state, account| {
            if state.tokens.get(session.expose_secret()).is_none_or(|g| g.device.is_some()) {
                return Err(GuardianError::TokenRefused);
            }
            let a = state.accounts.get_mut(account).ok_or(GuardianError::TokenRefused)?;
            let position = a
                .deleted
                .iter()
                .rposition(|(name, _)| name == id)
                .ok_or(GuardianError::Refused("no such deleted object".into()))?;
            if a.objects.contains_key(id) {
                return Err(GuardianError::Conflict);
            }
            let (name, bytes) = a.deleted.remove(position);
            a.objects.insert(name, bytes);
            Ok(())
        })
    }

    fn account_events(&self, auth: &AccessToken, after: u64) -> Result<GuardianEvents, GuardianError> {
        self.0.enter(Call::Events)?;
        self.0.with_account(auth, |state, account| {
            let a = state.accounts.get(account).ok_or(GuardianError::TokenRefused)?;
            Ok(GuardianEvents { events: a.events.iter().filter(|e| e.seq > after).cloned().collect(), dropped: 0 })
        })
    }

    fn transport(&self, auth: &AccessToken) -> Box<dyn Transport + Send + Sync> {
        Box::new(MemoryTransport { guardian: Arc::clone(&self.0), token: auth.clone() })
    }
}

/// One account's backup storage at an in-memory guardian.
struct MemoryTransport {
    guardian: Arc<MemoryGuardian>,
    token: AccessToken,
}

fn transport_error(e: GuardianError) -> TransportError {
    match e {
        GuardianError::TokenRefused => TransportError::Unauthorized("the guardian refused this device's token".into()),
        GuardianError::Conflict => TransportError::Conflict,
        other => TransportError::Failed(other.to_string()),
    }
}

impl MemoryTransport {
    /// Whether this transport holds a device token (append-only, as on a real server).
    fn is_device(&self) -> bool {
        let state = self.guardian.state.lock().unwrap();
        state.tokens.get(self.token.expose_secret()).is_some_and(|grant| grant.device.is_some())
    }

    fn objects<T>(
        &self,
        call: Call,
        f: impl FnOnce(&mut Account, &mut State) -> Result<T, TransportError>,
    ) -> Result<T, TransportError> {
        self.guardian.enter(call).map_err(transport_error)?;
        let mut state = self.guardian.state.lock().unwrap();
        let account = MemoryGuardian::account_of(&state, &self.token).map_err(transport_error)?;
        let mut taken = state.accounts.remove(&account).ok_or(TransportError::NotFound)?;
        let result = f(&mut taken, &mut state);
        state.accounts.insert(account, taken);
        result
    }
}

impl Transport for MemoryTransport {
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), TransportError> {
        self.objects(Call::PutObject, |a, _| {
            if a.objects.contains_key(name) {
                return Err(TransportError::Exists);
            }
            a.objects.insert(name.to_owned(), bytes.to_vec());
            Ok(())
        })
    }

    fn put_reader(&self, name: &str, len: u64, reader: Box<dyn Read + Send>) -> Result<(), TransportError> {
        let mut bytes = Vec::new();
        reader.take(len).read_to_end(&mut bytes).map_err(|e| TransportError::Failed(e.to_string()))?;
        if bytes.len() as u64 != len {
            return Err(TransportError::Failed("the object's source ended early".into()));
        }
        self.put(name, &bytes)
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, TransportError> {
        self.objects(Call::GetObject, |a, _| Ok(a.objects.get(name).cloned()))
    }

    fn get_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>, TransportError> {
        self.objects(Call::GetObject, |a, _| {
            let bytes = a.objects.get(name).ok_or(TransportError::NotFound)?;
            let start = usize::try_from(offset).map_err(|_| TransportError::OutOfRange)?;
            if start >= bytes.len() {
                return Err(TransportError::OutOfRange);
            }
            let end = bytes.len().min(start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX)));
            Ok(bytes[start..end].to_vec())
        })
    }

    fn list(&self) -> Result<Vec<(String, u64)>, TransportError> {
        self.objects(Call::GetObject, |a, _| {
            let mut out: Vec<_> = a.objects.iter().map(|(n, b)| (n.clone(), b.len() as u64)).collect();
            out.sort();
            Ok(out)
        })
    }

    fn delete(&self, name: &str) -> Result<(), TransportError> {
        if self.is_device() {
            return Err(TransportError::NotAllowed("a device token may not delete".into()));
        }
        self.objects(Call::PutObject, |a, _| {
            if let Some(bytes) = a.objects.remove(name) {
                a.deleted.push((name.to_owned(), bytes));
            }
            Ok(())
        })
    }

    fn get_head(&self) -> Result<Option<(Vec<u8>, String)>, TransportError> {
        let replay = self.guardian.fault(|f| if let Fault::ReplayHead(n) = f { Some(*n) } else { None });
        let garbage_head = self.guardian.fault(|f| matches!(f, Fault::GarbageHead).then_some(()));
        self.objects(Call::GetHead, |a, _| {
            let Some(current) = &a.head else { return Ok(None) };
            let bytes = match (replay, garbage_head) {
                (_, Some(())) => garbage(),
                (Some(n), None) => a.head_history.get(n).cloned().unwrap_or_else(|| current.bytes.clone()),
                (None, None) => current.bytes.clone(),
            };
            Ok(Some((bytes, current.version.clone())))
        })
    }

    fn put_head(&self, bytes: &[u8], generation: u64, expected: Option<&str>) -> Result<(), TransportError> {
        let device = self.is_device();
        self.objects(Call::PutHead, |a, state| {
            if a.head.as_ref().map(|r| r.version.as_str()) != expected {
                return Err(TransportError::Conflict);
            }
            if device && generation < a.head_generation {
                return Err(TransportError::NotAllowed("a device token may not lower the head".into()));
            }
            a.head_generation = generation;
            let version = MemoryGuardian::version(state);
            a.head = Some(Versioned { bytes: bytes.to_vec(), version });
            a.head_history.push(bytes.to_vec());
            Ok(())
        })
    }
}

/// Guardians by URL; an unknown URL is unreachable.
#[derive(Default)]
pub(crate) struct MemoryNetwork {
    guardians: Mutex<HashMap<String, Arc<MemoryGuardian>>>,
}

impl MemoryNetwork {
    /// A network of `n` guardians at `mem://g0`, `mem://g1`, …; returns their URLs.
    pub(crate) fn with_guardians(n: u8) -> (Self, Vec<String>) {
        let network = Self::default();
        let urls = (0..n).map(|i| network.add(&format!("mem://g{i}"), i + 1)).collect();
        (network, urls)
    }

    /// Adds a guardian at `url` whose secret and key derive from `seed`.
    pub(crate) fn add(&self, url: &str, seed: u8) -> String {
        self.guardians.lock().unwrap().insert(url.to_owned(), MemoryGuardian::new(seed));
        url.to_owned()
    }

    /// The guardian at `url`.
    pub(crate) fn guardian(&self, url: &str) -> Arc<MemoryGuardian> {
        Arc::clone(self.guardians.lock().unwrap().get(url).expect("a guardian of this network"))
    }

    /// Makes the guardian at `url` reachable at `alias` too (another spelling of its URL, a
    /// proxy): one server, two URLs.
    pub(crate) fn alias(&self, url: &str, alias: &str) -> String {
        let guardian = self.guardian(url);
        self.guardians.lock().unwrap().insert(alias.to_owned(), guardian);
        alias.to_owned()
    }

    /// Replaces the guardian at `url` with a fresh one (another secret and key): a replaced
    /// or impersonated server.
    pub(crate) fn replace(&self, url: &str, seed: u8) {
        self.add(url, seed);
    }
}

impl GuardianNetwork for MemoryNetwork {
    fn connect(&self, url: &str) -> Result<Box<dyn Guardian>, GuardianError> {
        let guardians = self.guardians.lock().unwrap();
        let guardian = guardians.get(url).ok_or_else(|| GuardianError::Unavailable("no such host".into()))?;
        Ok(Box::new(Connection(Arc::clone(guardian))))
    }
}
