//! The recovery flows on an existing vault (`docs/recovery.md`): enrolment with guardian servers,
//! backups to them, password change, share refresh, devices, and status. Restoring on a new
//! device is `crate::recovery::restore_from_guardians`.

use backup_api::client::{BearerToken, Session};
use zeroize::Zeroizing;

use super::Vault;
use crate::backup::format::Head;
use crate::backup::{BackupKeys, ServerTransport, Transport};
use crate::error::{Error, Result};
use crate::recovery::{
    EscrowHeader, GuardianBackupReport, GuardianDevices, RecoveryCode, RecoverySetup, RecoveryStatus, Server,
    ServerOptions, SetupReport, Share, in_parallel, safety_number, split,
};
use crate::secret::SecretKey;
use crate::store::recovery_state::{self, Enrolment, Guardian};
use crate::{Passphrase, Progress, SecurityEventKind};

impl Vault {
    /// Sets up recovery: registers `setup.account` with OPAQUE on every server (or logs in where
    /// it exists), creates the Backup Root Key if the vault has none, splits it per
    /// `setup.policy`, seals one share in each server's escrow record, enrols this device at
    /// each, and pins each server's key. Returns the recovery code (shown once) and the safety
    /// number. Running it again makes a new split (the old recovery code stops working).
    pub fn recovery_setup(
        &mut self,
        setup: &RecoverySetup<'_>,
        password: &Passphrase,
        options: &ServerOptions,
    ) -> Result<SetupReport> {
        let policy = setup.policy;
        if setup.servers.len() != usize::from(policy.servers) {
            return Err(Error::InvalidInput("the policy's server count differs from the servers given".into()));
        }
        let mut unique = setup.servers.to_vec();
        unique.sort();
        unique.dedup();
        if unique.len() != setup.servers.len() {
            return Err(Error::InvalidInput("a server is given twice".into()));
        }
        if password.is_empty() {
            return Err(Error::InvalidInput("the backup password is empty".into()));
        }
        let key = self.backup_root_key_or_create()?;
        let key_check = BackupKeys::derive(&key).key_check();
        let share_set: [u8; 16] = crate::crypto::random_array().map_err(Error::from_rng)?;
        let shares = split(&key, policy.threshold, policy.shares())?;
        // This device's tokens of an earlier enrolment, revoked once the new one is complete.
        let previous_devices: Vec<(String, String)> = recovery_state::load(&self.store.conn)?
            .map(|e| e.guardians.into_iter().map(|g| (g.url, g.device_id)).collect())
            .unwrap_or_default();

        let positions: Vec<usize> = (0..setup.servers.len()).collect();
        let outcomes = in_parallel(&positions, |&position| {
            let header =
                EscrowHeader { share_set, policy, index: shares[position].index, holds_data: position == 0, key_check };
            enrol_at(&setup.servers[position], setup, password, &header, &shares[position], options)
        });
        let mut enrolled = Vec::new();
        let mut failures = Vec::new();
        for outcome in outcomes {
            match outcome {
                Ok(done) => enrolled.push(done),
                Err(e) => failures.push(e),
            }
        }
        if let Some(first) = failures.into_iter().next() {
            // The servers that took part hold a split nothing will use: withdraw this attempt's
            // device tokens there and say which they are; running setup again replaces them.
            let updated: Vec<&str> = enrolled.iter().map(|(g, _, _)| g.url.as_str()).collect();
            for (guardian, server, session) in &enrolled {
                let _ = server.client.revoke_device(&session.token, &guardian.device_id);
            }
            if updated.is_empty() {
                return Err(first);
            }
            return Err(Error::BackupStorage(format!(
                "{first}; the escrow records at [{}] were replaced by this unfinished setup: set up recovery again",
                updated.join(", ")
            )));
        }
        for (guardian, server, session) in &enrolled {
            if let Some((_, old)) = previous_devices.iter().find(|(url, _)| *url == guardian.url) {
                // Best effort: it may be gone already.
                let _ = server.client.revoke_device(&session.token, old);
            }
        }
        let guardians: Vec<Guardian> = enrolled.into_iter().map(|(g, _, _)| g).collect();
        let enrolment = Enrolment { account: setup.account.to_owned(), policy, share_set, guardians };
        self.save_enrolment(&enrolment)?;
        self.record_event(SecurityEventKind::RecoveryEnrolled, &policy.describe())?;
        let recovery_code = policy.code_index().map(|index| RecoveryCode::encode(&shares[usize::from(index) - 1]));
        Ok(SetupReport { policy, recovery_code, safety_number: enrolment_safety_number(&enrolment) })
    }

    /// The recovery enrolment, if recovery is set up.
    pub fn recovery_status(&self) -> Result<Option<RecoveryStatus>> {
        Ok(recovery_state::load(&self.store.conn)?.map(|e| RecoveryStatus {
            safety_number: enrolment_safety_number(&e),
            account: e.account,
            policy: e.policy,
            servers: e.guardians.into_iter().map(|g| g.url).collect(),
        }))
    }

    /// The backup transport on the guardian server that holds the data, with this device's
    /// token; `None` if recovery is not set up.
    pub fn guardian_transport(&self, options: &ServerOptions) -> Result<Option<ServerTransport>> {
        let Some(enrolment) = recovery_state::load(&self.store.conn)? else { return Ok(None) };
        let data = enrolment.guardians.first().ok_or(Error::Internal("enrolment without guardians"))?;
        let server = Server::connect(&data.url, options)?;
        Ok(Some(server.transport(BearerToken::new(data.device_token.to_string()))))
    }

    /// Backs up to the guardian server that holds the data, then copies the new head record to
    /// every other guardian (so a new device detects a data server that hides newer snapshots).
    pub fn backup_to_guardians(
        &mut self,
        progress: Option<&dyn Progress>,
        options: &ServerOptions,
    ) -> Result<GuardianBackupReport> {
        let enrolment = recovery_state::load(&self.store.conn)?
            .ok_or_else(|| Error::NotFound("recovery is not set up for this vault".into()))?;
        let transports = enrolment
            .guardians
            .iter()
            .map(|g| Ok(Server::connect(&g.url, options)?.transport(BearerToken::new(g.device_token.to_string()))))
            .collect::<Result<Vec<_>>>()?;
        let written = crate::backup::run::run(&mut self.store.conn, &self.media, &transports[0], progress)?;
        let key = crate::store::backup_state::root_key(&self.store.conn)?.ok_or(Error::Internal("no backup key"))?;
        let keys = BackupKeys::derive(&key);
        let backup = written.report;
        let mut head_copies_failed = Vec::new();
        for (guardian, transport) in enrolment.guardians.iter().zip(&transports).skip(1) {
            if let Err(message) = copy_head(transport, &keys, &written.head, backup.generation) {
                head_copies_failed.push(format!("{}: {message}", guardian.url));
            }
        }
        Ok(GuardianBackupReport { backup, head_copies_failed })
    }

    /// Changes the backup password on every guardian: logs in with `old` (or, where an earlier
    /// change got that far, with `new`), re-registers, and re-seals the server's share under the
    /// new password. The shares and the recovery code stay valid.
    pub fn recovery_change_password(
        &mut self,
        old: &Passphrase,
        new: &Passphrase,
        options: &ServerOptions,
    ) -> Result<()> {
        if new.is_empty() {
            return Err(Error::InvalidInput("the new backup password is empty".into()));
        }
        let mut enrolment = self.enrolment()?;
        for position in 0..enrolment.guardians.len() {
            let guardian = &enrolment.guardians[position];
            let server = Server::connect(&guardian.url, options)?;
            let (session, with_old) = match server.login(&enrolment.account, old) {
                Ok(session) => (session, true),
                Err(Error::BackupAuthentication(_)) => (server.login(&enrolment.account, new)?, false),
                Err(e) => return Err(e),
            };
            self.check_pin(guardian, &session)?;
            let (record, etag) = server.client.get_escrow(&session.token).map_err(|e| server.error(e))?.unzip();
            // The share as the server holds it (source of truth); else the one this device kept.
            let opened = record.as_deref().map(|r| {
                crate::recovery::open_escrow(r, &session.export_key, &enrolment.account, &session.server_public_key)
            });
            let (header, share) = match opened {
                Some(Ok(pair)) if !with_old => {
                    // Already sealed under the new password by an earlier, interrupted change.
                    enrolment.guardians[position].share = Some(copy_key(&pair.1.value));
                    continue;
                }
                Some(Ok(pair)) => pair,
                _ => {
                    let share = guardian.share.as_ref().ok_or_else(|| {
                        Error::NotFound(format!(
                            "{}: this device does not hold the server's share; refresh the shares",
                            guardian.url
                        ))
                    })?;
                    let index = u8::try_from(position + 1).map_err(|_| Error::Internal("position"))?;
                    let header = EscrowHeader {
                        share_set: enrolment.share_set,
                        policy: enrolment.policy,
                        index,
                        holds_data: position == 0,
                        key_check: self.key_check()?,
                    };
                    (header, Share { index, value: copy_key(share) })
                }
            };
            // Kept before the old password stops working, so an interruption loses nothing.
            enrolment.guardians[position].share = Some(copy_key(&share.value));
            self.save_enrolment(&enrolment)?;
            let session = if with_old {
                server
                    .client
                    .change_password(&session.token, &enrolment.account, new.expose_secret().as_bytes(), options.ksf())
                    .map_err(|e| server.error(e))?;
                server.login(&enrolment.account, new)?
            } else {
                session
            };
            let sealed = crate::recovery::seal_escrow(
                &header,
                &share,
                &session.export_key,
                &enrolment.account,
                &session.server_public_key,
            );
            server.client.put_escrow(&session.token, &sealed, etag.as_deref()).map_err(|e| server.error(e))?;
        }
        self.save_enrolment(&enrolment)?;
        self.record_event(SecurityEventKind::RecoveryPasswordChanged, &format!("{} servers", enrolment.guardians.len()))
    }

    /// Replaces every share with a new split of the same key (every guardian must be reachable):
    /// the old shares and the old recovery code stop working. Returns the new recovery code when
    /// the policy has one.
    pub fn recovery_refresh_shares(
        &mut self,
        password: &Passphrase,
        options: &ServerOptions,
    ) -> Result<Option<RecoveryCode>> {
        let mut enrolment = self.enrolment()?;
        let sessions = self.log_in_everywhere(&enrolment, password, options)?;
        let key = crate::store::backup_state::root_key(&self.store.conn)?.ok_or(Error::Internal("no backup key"))?;
        let key_check = BackupKeys::derive(&key).key_check();
        let share_set: [u8; 16] = crate::crypto::random_array().map_err(Error::from_rng)?;
        let shares = split(&key, enrolment.policy.threshold, enrolment.policy.shares())?;
        let mut updated = Vec::new();
        for (position, (server, session)) in sessions.iter().enumerate() {
            let header = EscrowHeader {
                share_set,
                policy: enrolment.policy,
                index: shares[position].index,
                holds_data: position == 0,
                key_check,
            };
            let sealed = crate::recovery::seal_escrow(
                &header,
                &shares[position],
                &session.export_key,
                &enrolment.account,
                &session.server_public_key,
            );
            let result = server
                .client
                .get_escrow(&session.token)
                .and_then(|current| {
                    server.client.put_escrow(&session.token, &sealed, current.as_ref().map(|(_, e)| e.as_str()))
                })
                .map_err(|e| server.error(e));
            if let Err(e) = result {
                return Err(Error::BackupStorage(format!(
                    "{e}; updated so far: [{}]; refresh the shares again",
                    updated.join(", ")
                )));
            }
            updated.push(server.url.clone());
        }
        enrolment.share_set = share_set;
        for (guardian, share) in enrolment.guardians.iter_mut().zip(&shares) {
            guardian.share = Some(copy_key(&share.value));
        }
        self.save_enrolment(&enrolment)?;
        self.record_event(SecurityEventKind::RecoverySharesRefreshed, &enrolment.policy.describe())?;
        Ok(enrolment.policy.code_index().map(|index| RecoveryCode::encode(&shares[usize::from(index) - 1])))
    }

    /// The devices enrolled at each guardian (read with this device's tokens).
    pub fn recovery_devices(&self, options: &ServerOptions) -> Result<Vec<GuardianDevices>> {
        let enrolment = self.enrolment()?;
        enrolment
            .guardians
            .iter()
            .map(|g| {
                let server = Server::connect(&g.url, options)?;
                let list = server
                    .client
                    .list_devices(&BearerToken::new(g.device_token.to_string()))
                    .map_err(|e| server.error(e))?;
                Ok(GuardianDevices { server: g.url.clone(), this_device: g.device_id.clone(), devices: list.devices })
            })
            .collect()
    }

    /// Revokes, at every guardian, each device whose identifier or name is `device` (needs the
    /// backup password). Its tokens stop working at once. Returns how many were revoked.
    pub fn recovery_revoke_device(
        &mut self,
        password: &Passphrase,
        device: &str,
        options: &ServerOptions,
    ) -> Result<usize> {
        let enrolment = self.enrolment()?;
        let sessions = self.log_in_everywhere(&enrolment, password, options)?;
        let mut revoked = 0;
        for (server, session) in &sessions {
            let list = server.client.list_devices(&session.token).map_err(|e| server.error(e))?;
            for d in list.devices.iter().filter(|d| d.id == device || d.name == device) {
                server.client.revoke_device(&session.token, &d.id).map_err(|e| server.error(e))?;
                revoked += 1;
            }
        }
        if revoked > 0 {
            self.record_event(SecurityEventKind::DeviceRevoked, &format!("{revoked} tokens"))?;
        }
        Ok(revoked)
    }

    // ---- helpers ----

    pub(crate) fn save_enrolment(&mut self, enrolment: &Enrolment) -> Result<()> {
        recovery_state::save(&mut self.store.conn, enrolment)
    }

    fn enrolment(&self) -> Result<Enrolment> {
        recovery_state::load(&self.store.conn)?
            .ok_or_else(|| Error::NotFound("recovery is not set up for this vault".into()))
    }

    fn backup_root_key_or_create(&mut self) -> Result<SecretKey> {
        if let Some(key) = crate::store::backup_state::root_key(&self.store.conn)? {
            return Ok(key);
        }
        let key = SecretKey::generate().map_err(Error::from_rng)?;
        crate::store::backup_state::set_root_key(&self.store.conn, &key)?;
        Ok(key)
    }

    fn key_check(&self) -> Result<[u8; 16]> {
        let key = crate::store::backup_state::root_key(&self.store.conn)?.ok_or(Error::Internal("no backup key"))?;
        Ok(BackupKeys::derive(&key).key_check())
    }

    pub(crate) fn record_event(&self, kind: SecurityEventKind, detail: &str) -> Result<()> {
        crate::store::events::record(&self.store.conn, crate::store::now_millis(), kind, detail)
    }

    /// Refuses a session whose server key differs from the pinned one, recording the event.
    fn check_pin(&self, guardian: &Guardian, session: &Session) -> Result<()> {
        if session.server_public_key == guardian.server_key {
            return Ok(());
        }
        self.record_event(SecurityEventKind::ServerKeyChanged, &guardian.url)?;
        Err(Error::Integrity(format!(
            "{}: the server's key differs from the one pinned at setup (a replaced or impersonated server); \
             compare the safety number, and set up recovery again only if the change is expected",
            guardian.url
        )))
    }

    /// Logs in to every guardian at once; all must answer, with their pinned keys.
    fn log_in_everywhere(
        &self,
        enrolment: &Enrolment,
        password: &Passphrase,
        options: &ServerOptions,
    ) -> Result<Vec<(Server, Session)>> {
        let outcomes = in_parallel(&enrolment.guardians, |g| {
            let server = Server::connect(&g.url, options)?;
            let session = server.login(&enrolment.account, password)?;
            Ok::<_, Error>((server, session))
        });
        let mut sessions = Vec::new();
        for (guardian, outcome) in enrolment.guardians.iter().zip(outcomes) {
            let (server, session) = outcome?;
            self.check_pin(guardian, &session)?;
            sessions.push((server, session));
        }
        Ok(sessions)
    }
}

/// Registers (or logs in), checks an existing escrow record, seals and stores the share, and
/// enrols this device at one server; returns the guardian with the server and its session.
fn enrol_at(
    url: &str,
    setup: &RecoverySetup<'_>,
    password: &Passphrase,
    header: &EscrowHeader,
    share: &Share,
    options: &ServerOptions,
) -> Result<(Guardian, Server, Session)> {
    let server = Server::connect(url, options)?;
    let registered = server.client.register(setup.account, password.expose_secret().as_bytes(), options.ksf());
    match registered {
        Ok(()) => {}
        Err(e) if e.code() == Some(backup_api::ErrorCode::AccountExists) => {}
        Err(e) => return Err(server.error(e)),
    }
    let session = server.login(setup.account, password).map_err(|e| match e {
        Error::BackupAuthentication(_) => {
            Error::BackupAuthentication(format!("{url}: the account exists there with another password"))
        }
        other => other,
    })?;
    let existing = server.client.get_escrow(&session.token).map_err(|e| server.error(e))?;
    if let Some((record, _)) = &existing {
        let theirs = crate::recovery::escrow_header(record).ok();
        if theirs.is_none_or(|h| h.key_check != header.key_check) {
            return Err(Error::AlreadyExists(format!(
                "{url}: the account already protects the backup key of another vault; use another account"
            )));
        }
    }
    let sealed =
        crate::recovery::seal_escrow(header, share, &session.export_key, setup.account, &session.server_public_key);
    server
        .client
        .put_escrow(&session.token, &sealed, existing.as_ref().map(|(_, etag)| etag.as_str()))
        .map_err(|e| server.error(e))?;
    let (device_id, token) =
        server.client.enrol_device(&session.token, setup.device_name).map_err(|e| server.error(e))?;
    let guardian = Guardian {
        url: url.to_owned(),
        server_key: session.server_public_key.clone(),
        device_id,
        device_token: Zeroizing::new(token.expose().to_owned()),
        share: Some(copy_key(&share.value)),
    };
    Ok((guardian, server, session))
}

/// Copies the head record to one guardian, refusing to move it backwards.
fn copy_head(transport: &ServerTransport, keys: &BackupKeys, head: &[u8], generation: u64) -> Result<(), String> {
    for _ in 0..3 {
        let current = transport.get_head().map_err(|e| e.to_string())?;
        if let Some((bytes, _)) = &current
            && let Ok(theirs) = Head::open(keys, bytes)
            && theirs.generation > generation
        {
            return Err(format!(
                "it attests generation {}, newer than the data server's {generation}",
                theirs.generation
            ));
        }
        match transport.put_head(head, current.as_ref().map(|(_, version)| version.as_str())) {
            Ok(()) => return Ok(()),
            Err(crate::backup::TransportError::Conflict) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the head record kept changing".into())
}

fn copy_key(key: &SecretKey) -> SecretKey {
    SecretKey::from_bytes(*key.expose_secret())
}

fn enrolment_safety_number(enrolment: &Enrolment) -> String {
    let keys: Vec<&[u8]> = enrolment.guardians.iter().map(|g| g.server_key.as_slice()).collect();
    safety_number(&enrolment.account, &keys)
}
