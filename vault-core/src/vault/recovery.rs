//! The vault's side of recovery (`docs/recovery.md`): the [`Recovery`] handle for an enrolled
//! vault, and [`restore_from_guardians`] for a new device. The flows themselves live in
//! `crate::recovery` and talk to guardians only through a [`GuardianNetwork`].

use std::path::Path;

use super::backup::{Backups, RestoreOptions, restore_with_token};
use super::{CreateOptions, Vault};
use crate::backup::PruneReport;
use crate::backup::format::Head;
use crate::backup::keys::TokenPart;
use crate::backup::{BackupKeys, BackupRootKey, Transport};
use crate::error::{Error, Result};
use crate::recovery::copy_key;
use crate::recovery::holders::{self, Mirrored};
use crate::recovery::lifecycle;
use crate::recovery::recover::{self, Attestations, RecoveryReport};
use crate::recovery::setup::set_up;
use crate::recovery::{AccessToken, Remote};
use crate::recovery::{
    DeletedObject, EnrolledGuardian, Enrolment, Freshness, GuardianBackupReport, GuardianDevices, GuardianError,
    GuardianEventsReport, GuardianNetwork, GuardianRestoreReport, HolderState, RecoveryCode, RecoverySetup,
    RecoveryStatus, SetupReport, SyncReport, fetch_guardian_events, in_parallel,
};
use crate::store::events;
use crate::{Passphrase, Progress, SecurityEventKind};

/// Recovery of an unlocked vault: setup with guardian servers, backups to them, password change,
/// share refresh, devices. Like [`Backups`], it works on connections of its own, so the vault
/// stays usable while it talks to the guardians. Get one with [`Vault::recovery`]; each call
/// takes the [`GuardianNetwork`] that reaches the guardians (`vault-core-net`'s HTTP one, or a
/// test double).
#[derive(Debug)]
pub struct Recovery {
    backups: Backups,
}

impl Vault {
    /// A handle for this vault's recovery (see [`Recovery`]).
    pub fn recovery(&self) -> Result<Recovery> {
        Ok(Recovery { backups: self.backups()? })
    }
}

impl Recovery {
    /// Sets up recovery: registers `setup.account` with every guardian (or logs in where it
    /// exists), creates the Backup Root Key if the vault has none, splits it per `setup.policy`,
    /// seals one share in each guardian's escrow record, enrols this device at each, and pins
    /// each guardian's key. Returns the recovery code (shown once) and the safety number.
    /// Running it again makes a new split of the same key: the old recovery code no longer
    /// combines with the guardians' new records, but a guardian that kept its old record could
    /// still combine with it; to revoke an old code or share against that, rotate the key
    /// ([`Recovery::refresh_shares`]).
    pub fn setup(
        &mut self,
        network: &dyn GuardianNetwork,
        setup: &RecoverySetup<'_>,
        password: &Passphrase,
    ) -> Result<SetupReport> {
        let key = self.backups.root_key_or_create()?;
        let conn = self.backups.state();
        if crate::store::backup_state::pending_rotation(conn)?.is_some() {
            return Err(Error::KeyRotationUnfinished);
        }
        let keys = self.backups.backup_keys()?;
        let previous = Enrolment::load(conn)?;
        let (enrolment, report) = set_up(network, setup, password, &key, keys.current_epoch(), previous.as_ref())?;
        enrolment.save(conn)?;
        events::record_now(conn, SecurityEventKind::RecoveryEnrolled, &report.policy.describe())?;
        // A data server set up afresh (a replaced server, a lost store) gets the backup back from
        // the mirror first, so the head below is the backup's newest.
        if let (Ok(data), Ok(Some(mirror))) =
            (lifecycle::data_transport(network, &enrolment), lifecycle::mirror_transport(network, &enrolment))
        {
            let _ = sync_holders(&enrolment, &*data, &*mirror, &keys, true);
        }
        // This device's identity at the data guardian is new: a backup it wrote under the old
        // one stays its own.
        if let Some(old) = previous.as_ref().and_then(|p| p.guardians.first()) {
            rename_writer(network, &enrolment, &keys, &old.device_id)?;
        }
        Ok(report)
    }

    /// The recovery enrolment, if recovery is set up.
    pub fn status(&self) -> Result<Option<RecoveryStatus>> {
        Ok(Enrolment::load(self.backups.state())?.map(|e| RecoveryStatus {
            safety_number: e.safety_number(),
            account: e.account,
            policy: e.policy,
            servers: e.guardians.into_iter().map(|g| g.url).collect(),
        }))
    }

    /// The backup storage at the guardian that holds the data, with this device's token; `None`
    /// if recovery is not set up.
    pub fn data_transport(&self, network: &dyn GuardianNetwork) -> Result<Option<Box<dyn Transport + Send + Sync>>> {
        let Some(enrolment) = Enrolment::load(self.backups.state())? else { return Ok(None) };
        lifecycle::data_transport(network, &enrolment).map(Some)
    }

    /// Backs up to the guardian that holds the data and, with two or more guardians, to its mirror
    /// (the second guardian): every new object is written to both, and before and after the run
    /// each is repaired from the other (the objects the newest manifest needs, then the head), so
    /// a server that lost its store or missed runs catches up. Then copies the new head record to
    /// every other guardian (so a new device detects a data server that hides newer snapshots).
    /// The head record names this device as the backup's writer; a backup another device took
    /// over (by a restore) is refused with [`Error::TakenOver`], and nothing is written.
    pub fn backup(
        &mut self,
        network: &dyn GuardianNetwork,
        progress: Option<&dyn Progress>,
    ) -> Result<GuardianBackupReport> {
        let enrolment = Enrolment::require(self.backups.state())?;
        let data = lifecycle::data_transport(network, &enrolment)?;
        let mirror = lifecycle::mirror_transport(network, &enrolment)?;
        let me = enrolment.guardians.first().ok_or(Error::Internal("enrolment without guardians"))?.device_id.clone();
        let mut mirror_problems = Vec::new();
        let mut mirror_copied = 0;
        if let Some(mirror) = &mirror {
            // A data server that lost its store (or missed runs) gets the newest generation back
            // from the mirror before the run reads its head.
            let keys = self.backups.backup_keys()?;
            match sync_holders(&enrolment, &*data, &**mirror, &keys, true) {
                Ok(report) => mirror_copied += report.objects_copied,
                Err(e) => mirror_problems.push(format!("repairing before the run: {e}")),
            }
        }
        let mirrored = Mirrored::new(&*data, mirror.as_deref());
        let written = self.backups.run_written(&mirrored, progress, Some(&me), enrolment.policy.token_policy())?;
        if let Some(failure) = mirrored.mirror_failure() {
            mirror_problems.push(format!("writing to the mirror: {failure}"));
        }
        let keys = self.backups.backup_keys()?;
        let head_copies_failed = lifecycle::copy_heads(network, &enrolment, &keys, &written.head);
        let mut holders = Vec::new();
        if let Some(mirror) = &mirror {
            match sync_holders(&enrolment, &*data, &**mirror, &keys, true) {
                Ok(report) => {
                    mirror_copied += report.objects_copied;
                    crate::store::holders::save(self.backups.state(), &report.holders)?;
                    holders = report.holders;
                }
                Err(e) => mirror_problems.push(format!("repairing after the run: {e}")),
            }
        }
        // The backup is complete whatever happens here: a failure to read the logs is reported,
        // not raised.
        let guardian_events = fetch_guardian_events(network, self.backups.state(), &enrolment).unwrap_or_else(|e| {
            let unread = enrolment.guardians.iter().map(|g| (g.url.clone(), e.to_string())).collect();
            GuardianEventsReport { new_events: Vec::new(), unread }
        });
        Ok(GuardianBackupReport {
            backup: written.report,
            head_copies_failed,
            holders,
            mirror_copied,
            mirror_problems,
            guardian_events,
        })
    }

    /// Which generation each holder of the backup (the data server and its mirror) fully holds
    /// now, read with this device's tokens; nothing is copied. Empty with a single guardian.
    pub fn holders(&mut self, network: &dyn GuardianNetwork) -> Result<Vec<HolderState>> {
        let enrolment = Enrolment::require(self.backups.state())?;
        let data = lifecycle::data_transport(network, &enrolment)?;
        let Some(mirror) = lifecycle::mirror_transport(network, &enrolment)? else { return Ok(Vec::new()) };
        let keys = self.backups.backup_keys()?;
        let report = sync_holders(&enrolment, &*data, &*mirror, &keys, false)?;
        crate::store::holders::save(self.backups.state(), &report.holders)?;
        Ok(report.holders)
    }

    /// The holders as the last backup run or [`Recovery::holders`] found them (no network).
    pub fn last_holders(&self) -> Result<Vec<crate::store::holders::HolderRecord>> {
        crate::store::holders::load(self.backups.state())
    }

    /// Keeps the newest `keep` snapshots and deletes what only older ones needed, at the data
    /// server and its mirror. Deleting needs a password session at each (device tokens may only
    /// add and read, so a stolen device cannot destroy the backup); the servers keep what is
    /// deleted for their grace period, restorable with [`Recovery::restore_deleted`].
    pub fn prune(&mut self, network: &dyn GuardianNetwork, password: &Passphrase, keep: usize) -> Result<PruneReport> {
        let conn = self.backups.state();
        let enrolment = Enrolment::require(conn)?;
        let (data, _, _) = lifecycle::session_transport(network, conn, &enrolment, 0, password)?;
        let mirror = match enrolment.guardians.len() {
            1 => None,
            _ => Some(lifecycle::session_transport(network, conn, &enrolment, 1, password)?.0),
        };
        let mirrored = Mirrored::new(&*data, mirror.as_deref());
        let (report, head) = self.backups.prune_with(&mirrored, keep, enrolment.policy.token_policy())?;
        if let Some(failure) = mirrored.mirror_failure() {
            return Err(Error::BackupStorage(format!(
                "pruned at the data server, but the mirror failed: {failure}; what is left there is repaired \
                 or kept by the next backup run"
            )));
        }
        // The prune wrote a new generation at the data server: the mirror's head follows at once,
        // so a restore from the mirror alone never names the generation whose index was deleted.
        let keys = self.backups.backup_keys()?;
        if let Some(mirror) = &mirror {
            sync_holders(&enrolment, &*data, &**mirror, &keys, true)?;
        }
        if report.rewritten {
            // Best effort, as after a backup: each guardian's head copy (with its part of the new
            // generation's token) follows; the next backup copies it again.
            let _ = lifecycle::copy_heads(network, &enrolment, &keys, &head);
        }
        Ok(report)
    }

    /// The objects the data server and its mirror keep deleted for their grace period (needs the
    /// password), with the server each is at.
    pub fn deleted_objects(
        &mut self,
        network: &dyn GuardianNetwork,
        password: &Passphrase,
    ) -> Result<Vec<(String, DeletedObject)>> {
        let mut found = Vec::new();
        for (remote, session) in self.holder_sessions(network, password)? {
            let listed = remote.guardian.deleted_objects(&session).map_err(|e| remote.error(e))?;
            found.extend(listed.into_iter().map(|d| (remote.url.clone(), d)));
        }
        Ok(found)
    }

    /// Password sessions (pinned keys checked) at the backup's holders: the data server and,
    /// with two or more guardians, its mirror.
    fn holder_sessions(
        &self,
        network: &dyn GuardianNetwork,
        password: &Passphrase,
    ) -> Result<Vec<(Remote, AccessToken)>> {
        let conn = self.backups.state();
        let enrolment = Enrolment::require(conn)?;
        (0..enrolment.guardians.len().min(2))
            .map(|position| {
                lifecycle::session_transport(network, conn, &enrolment, position, password)
                    .map(|(_, remote, session)| (remote, session))
            })
            .collect()
    }

    /// Puts back every object the data server and its mirror keep deleted (undoing a prune, or
    /// deletions by someone who had the password), unless an object of that name exists again.
    /// Returns how many were restored.
    pub fn restore_deleted(&mut self, network: &dyn GuardianNetwork, password: &Passphrase) -> Result<usize> {
        let mut restored = 0;
        for (remote, session) in self.holder_sessions(network, password)? {
            let listed = remote.guardian.deleted_objects(&session).map_err(|e| remote.error(e))?;
            let mut names: Vec<String> = listed.into_iter().map(|d| d.id).collect();
            names.sort();
            names.dedup();
            for name in names {
                match remote.guardian.restore_deleted(&session, &name) {
                    Ok(()) => restored += 1,
                    Err(GuardianError::Conflict) => {}
                    Err(e) => return Err(remote.error(e)),
                }
            }
        }
        Ok(restored)
    }

    /// Reads the backup account's event log at every guardian with this device's tokens and adds
    /// what is new (password logins started and succeeded, delays after failed logins, escrow
    /// reads, password changes, device changes) to the vault's security-event log, as
    /// `guardian_*` events. Also done after every [`Recovery::backup`]. A guardian that cannot be
    /// read (unreachable, or this device's token revoked there) is listed in the report.
    pub fn fetch_guardian_events(&mut self, network: &dyn GuardianNetwork) -> Result<GuardianEventsReport> {
        let conn = self.backups.state();
        fetch_guardian_events(network, conn, &Enrolment::require(conn)?)
    }

    /// Changes the backup password on every guardian: logs in with `old` (or, where an earlier
    /// change got that far, with `new`), re-registers, and re-seals the guardian's share under
    /// the new password. The key, the shares and the recovery code stay as they are: a guardian
    /// that kept its record sealed under the old password still opens with the old password
    /// (rotate the key with [`Recovery::refresh_shares`] if the old password may have leaked).
    pub fn change_password(&mut self, network: &dyn GuardianNetwork, old: &Passphrase, new: &Passphrase) -> Result<()> {
        let keys = self.backups.backup_keys()?;
        lifecycle::change_password(network, self.backups.state(), keys.key_check(), keys.current_epoch(), old, new)
    }

    /// Rotates the backup key (every guardian must be reachable): a new key epoch with a fresh
    /// key, a new split of it to every guardian, and a new recovery code. Everything backed up
    /// from then on opens only with the new key, so the old recovery code, the old shares (even
    /// an old escrow record a guardian kept or replays) and any copy of this vault taken before
    /// open nothing written after; what they could read before stays readable to them until
    /// pruned. Also finishes a rotation that stopped part way ([`Error::KeyRotationUnfinished`]).
    /// Returns the new recovery code when the policy has one.
    pub fn refresh_shares(
        &mut self,
        network: &dyn GuardianNetwork,
        password: &Passphrase,
    ) -> Result<Option<RecoveryCode>> {
        lifecycle::rotate(network, self.backups.state(), password)
    }

    /// The devices enrolled at each guardian (read with this device's tokens).
    pub fn devices(&self, network: &dyn GuardianNetwork) -> Result<Vec<GuardianDevices>> {
        lifecycle::devices(network, &Enrolment::require(self.backups.state())?)
    }

    /// Revokes a device at every guardian (needs the backup password); its tokens stop working
    /// at once. `device` is a device id (at any guardian; the device is then also revoked at the
    /// other guardians where exactly one device carries its name) or a name that exactly one
    /// device carries at each guardian; a name several devices carry is refused with
    /// [`Error::AmbiguousDevice`]. Revoking this device itself is refused unless `this_device`
    /// is true. Then, unless this device revoked itself, the backup key is rotated as by
    /// [`Recovery::refresh_shares`], so the revoked device's copy of the key (in its vault, or a
    /// stolen copy of it) opens nothing backed up afterwards; the report carries the new
    /// recovery code. If the rotation fails, the revocation stands and the error says to finish
    /// the rotation.
    pub fn revoke_device(
        &mut self,
        network: &dyn GuardianNetwork,
        password: &Passphrase,
        device: &str,
        this_device: bool,
    ) -> Result<RevokeReport> {
        let conn = self.backups.state();
        let revoked = lifecycle::revoke_device(network, conn, password, device, this_device)?;
        let own_revoked = revoked.own;
        let recovery_code =
            if revoked.count > 0 && !own_revoked { lifecycle::rotate(network, conn, password)? } else { None };
        Ok(RevokeReport { revoked: revoked.count, key_rotated: revoked.count > 0 && !own_revoked, recovery_code })
    }

    /// The backups of this vault, for listing, verifying and pruning the data at the guardian
    /// (with [`Recovery::data_transport`]).
    pub fn backups(&mut self) -> &mut Backups {
        &mut self.backups
    }
}

/// What [`Recovery::revoke_device`] did.
#[derive(Debug)]
pub struct RevokeReport {
    /// How many enrolments were revoked.
    pub revoked: usize,
    /// Whether the backup key was rotated afterwards (not when this device revoked itself).
    pub key_rotated: bool,
    /// The new recovery code, when the key was rotated and the policy has one.
    pub recovery_code: Option<RecoveryCode>,
}

/// What a restore on a new device is given.
pub struct GuardianRestore<'a> {
    /// The guardian servers to try (any subset that, with the code, meets the threshold).
    pub servers: &'a [String],
    /// The account.
    pub account: &'a str,
    /// The backup password.
    pub password: &'a Passphrase,
    /// The recovery code, when used.
    pub code: Option<&'a RecoveryCode>,
    /// This device's name in the guardians' device lists.
    pub device_name: &'a str,
    /// Restore even when no guardian other than the data server attests that the backup is the
    /// newest (a data server alone can hide newer snapshots); the report then says the
    /// backup's freshness is unverified.
    pub accept_unverified_freshness: bool,
}

/// Restores the newest backup of `request.account` into a new vault at `target` on a new device,
/// protected by `passphrase`: recovers the Backup Root Key from the guardians (and the recovery
/// code), enrols this device at every guardian reached, and restores from the guardian holding
/// the data, refusing a history older than any guardian attests.
pub fn restore_from_guardians(
    network: &dyn GuardianNetwork,
    request: &GuardianRestore<'_>,
    target: &Path,
    passphrase: &Passphrase,
    create: CreateOptions<'_>,
    progress: Option<&dyn Progress>,
) -> Result<GuardianRestoreReport> {
    if target.exists() {
        return Err(Error::AlreadyExists("the restore target exists; restore into a new directory".into()));
    }
    let mut recovered = recover::recover(network, request.servers, request.account, request.password, request.code)?;
    // The data server, or when it is not reached its mirror (the second guardian), which holds a
    // copy of every object; the other, when reached, serves what the first lacks.
    let data_server = recovered.reached.iter().position(|r| r.header.holds_data);
    let mirror = recovered.reached.iter().position(|r| r.header.index == 2 && !r.header.holds_data);
    let data = data_server
        .or(mirror)
        .ok_or_else(|| Error::BackupStorage(data_server_not_reached(&recovered.report, recovered.policy.servers)))?;
    let outcomes = in_parallel(&recovered.reached, |r| {
        r.remote.guardian.enrol_device(&r.session.token, request.device_name).map_err(|e| r.remote.error(e))
    });
    // Best effort: the device enrolments made for this restore, withdrawn when unused.
    let withdraw = |enrolled: &[Option<&(String, AccessToken)>]| {
        for (r, device) in recovered.reached.iter().zip(enrolled) {
            if let Some((device_id, _)) = device {
                let _ = r.remote.guardian.revoke_device(&r.session.token, device_id);
            }
        }
    };
    if let Some(position) = outcomes.iter().position(Result::is_err) {
        withdraw(&outcomes.iter().map(|o| o.as_ref().ok()).collect::<Vec<_>>());
        return Err(outcomes.into_iter().nth(position).and_then(Result::err).unwrap_or(Error::Internal("enrolment")));
    }
    let devices: Vec<(String, AccessToken)> = outcomes.into_iter().filter_map(Result::ok).collect();
    let withdraw = || withdraw(&devices.iter().map(Some).collect::<Vec<_>>());
    let primary = recovered.reached[data].remote.guardian.transport(&devices[data].1);
    let fallback = mirror.filter(|&m| m != data).map(|m| recovered.reached[m].remote.guardian.transport(&devices[m].1));
    let transport = Mirrored::new(&*primary, fallback.as_deref());
    let key = BackupRootKey(copy_key(&recovered.key));
    let (keys, _) = crate::backup::run::load_keys(&transport, &key.0).inspect_err(|_| withdraw())?;
    // The head as it is before the restore: the takeover replaces exactly this version, so a
    // backup the previous writer finishes meanwhile is not lost under it.
    let before = transport
        .get_head()
        .map_err(crate::backup::run::transport_error("reading the head record"))
        .inspect_err(|_| withdraw())?;
    let data_head = before.as_ref().and_then(|(bytes, _)| Head::open(&keys, bytes).ok());
    let data_generation = data_head.as_ref().map(|h| h.generation);
    // A generation whose token is split across the guardians opens with their parts of it.
    let token = data_head.as_ref().filter(|h| matches!(h.token, Some(TokenPart::Share(_)))).and_then(|head| {
        let others: Vec<Head> = (recovered.reached.iter().enumerate())
            .filter(|(i, _)| *i != data)
            .filter_map(|(_, r)| r.head.as_ref().and_then(|bytes| Head::open(&keys, bytes).ok()))
            .collect();
        crate::backup::run::recover_token(&transport, &keys, head, &others).map(|t| (head.generation, t))
    });
    let keys = match &token {
        Some((generation, t)) => keys.with_known_token(*generation, t.clone()),
        None => keys,
    };
    let Attestations { newest, freshness, unauthentic } =
        recover::attestations(&recovered.reached, &keys, data, data_generation);
    recovered.report.servers_failed.extend(unauthentic);
    if freshness == Freshness::Unverified && !request.accept_unverified_freshness {
        withdraw();
        return Err(unverified(&recovered.report));
    }
    recovered.report.newest_generation = newest.map_or(0, |(g, _)| g);
    let options = RestoreOptions { create, progress, at_least: newest };
    let restore =
        restore_with_token(&transport, &key, target, passphrase, options, token).inspect_err(|_| withdraw())?;

    // The new vault is enrolled when every guardian was reached: share indexes exactly
    // 1..=servers (two URLs of one server give one index twice); otherwise its tokens would go
    // unused.
    let mut indexes: Vec<u8> = recovered.reached.iter().map(|r| r.header.index).collect();
    indexes.sort_unstable();
    let enrolled = indexes.iter().copied().eq(1..=recovered.policy.servers);
    if !enrolled {
        withdraw();
        return Ok(GuardianRestoreReport {
            recovery: recovered.report,
            restore,
            enrolled,
            took_over_from: None,
            freshness,
        });
    }
    let mut guardians: Vec<(u8, EnrolledGuardian)> = recovered
        .reached
        .iter()
        .zip(devices.iter().cloned())
        .map(|(r, (device_id, device_token))| {
            let guardian = EnrolledGuardian {
                url: r.remote.url.clone(),
                server_key: r.session.server_key.clone(),
                device_id,
                device_token,
                share: Some(copy_key(&r.share.value)),
            };
            (r.header.index, guardian)
        })
        .collect();
    guardians.sort_by_key(|(index, _)| *index);
    let enrolment = Enrolment {
        account: crate::recovery::account_name(request.account),
        policy: recovered.policy,
        share_set: recovered.share_set,
        guardians: guardians.into_iter().map(|(_, g)| g).collect(),
    };
    // The enrolment is saved before the takeover, so a failure here leaves the old writer in
    // place; a failed takeover removes the new vault.
    let enrol = || {
        let vault = Vault::unlock_with_passphrase(target, passphrase)?;
        enrolment.save(&vault.store.conn)?;
        events::record_now(&vault.store.conn, SecurityEventKind::RecoveryEnrolled, &recovered.policy.describe())
    };
    enrol().inspect_err(|_| withdraw())?;
    // Take the backup over: the same generation and manifest, naming this device as the writer.
    let taken = take_over(&transport, &keys, before, restore.generation, &devices[data].0);
    let (head, took_over_from) = match taken {
        Ok(done) => done,
        Err(e) => {
            // The previous writer backed up during the restore: this vault lacks that backup.
            withdraw();
            let _ = std::fs::remove_dir_all(target);
            return Err(e);
        }
    };
    // Best effort, as after a backup: the next backup copies it again.
    let _ = lifecycle::copy_heads(network, &enrolment, &keys, &head);
    Ok(GuardianRestoreReport { recovery: recovered.report, restore, enrolled, took_over_from, freshness })
}

/// The refusal of a restore whose freshness no guardian other than the data guardian attests.
fn unverified(report: &RecoveryReport) -> Error {
    let failures = if report.servers_failed.is_empty() {
        String::new()
    } else {
        format!(" ({})", report.servers_failed.join("; "))
    };
    Error::Integrity {
        object: crate::error::DataKind::BackupHead,
        problem: format!(
            "no guardian other than the data server attests that its backup is the newest{failures}: \
             a data server alone can hide newer snapshots; restoring anyway needs the explicit choice \
             to accept an unverified backup"
        ),
    }
}

/// Replaces the head record `before` (read before the restore; it must still be current and
/// state the restored `generation`) with one for the same generation and manifest naming
/// `device` as the writer, since now. Returns the new record and the previous writer's device
/// id. The previous writer's enrolment is not revoked: it may still read and restore, and its
/// next backup is refused ([`Error::TakenOver`]); a lost device is revoked explicitly.
fn take_over(
    transport: &dyn Transport,
    keys: &BackupKeys,
    before: Option<(Vec<u8>, String)>,
    generation: u64,
    device: &str,
) -> Result<(Head, Option<String>)> {
    let moved = || Error::BackupConflict;
    let (bytes, version) = before.ok_or_else(moved)?;
    let head = Head::open(keys, &bytes)?;
    if head.generation != generation {
        return Err(moved());
    }
    let writer = crate::backup::format::Writer::new(device, crate::store::now_millis())?;
    let previous = head.writer.as_ref().map(|w| w.device.clone());
    let head = crate::backup::format::Head { writer: Some(writer), ..head };
    match transport.put_head(&head.seal(keys), generation, Some(&version)) {
        Ok(()) => Ok((head, previous)),
        Err(crate::backup::TransportError::Conflict) => Err(moved()),
        Err(e) => Err(crate::backup::run::transport_error("taking the backup over")(e)),
    }
}

/// After a new setup of this device: the head record at the data guardian that names this
/// device's previous identity there (`old`) is rewritten to name its new one, so the device keeps
/// writing its backup. A head naming another device is left alone.
fn rename_writer(network: &dyn GuardianNetwork, enrolment: &Enrolment, keys: &BackupKeys, old: &str) -> Result<()> {
    let transport = lifecycle::data_transport(network, enrolment)?;
    let new = enrolment.guardians.first().ok_or(Error::Internal("enrolment without guardians"))?;
    for _ in 0..3 {
        let read = transport.get_head().map_err(crate::backup::run::transport_error("reading the head record"))?;
        let Some((bytes, version)) = read else { return Ok(()) };
        let head = crate::backup::format::Head::open(keys, &bytes)?;
        if head.writer.as_ref().is_none_or(|w| w.device != old) {
            return Ok(());
        }
        match take_over(&*transport, keys, Some((bytes, version)), head.generation, &new.device_id) {
            Ok((head, _)) => {
                let _ = lifecycle::copy_heads(network, enrolment, keys, &head);
                return Ok(());
            }
            Err(Error::BackupConflict) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::BackupConflict)
}

/// Why a restore that recovered the key has no data: the data is at the first server given at
/// setup and its mirror at the second, and neither was given or reachable at the URL the escrow
/// listing names.
fn data_server_not_reached(report: &RecoveryReport, servers: u8) -> String {
    let reached = report.servers_used.len();
    let failed = if report.servers_failed.is_empty() {
        String::new()
    } else {
        format!("; not reached: {}", report.servers_failed.join("; "))
    };
    format!(
        "the server holding the backup data (the first one given to `vault backup setup`) and its mirror (the \
         second) were not reached: the recovery policy names {servers} guardian servers; {reached} were reached \
         ({}){failed}; give the data server's URL with --server",
        report.servers_used.join(", ")
    )
}

/// Recovers only the Backup Root Key (no restore): for measuring recovery and for tools.
pub fn recover_key(
    network: &dyn GuardianNetwork,
    servers: &[String],
    account: &str,
    password: &Passphrase,
    code: Option<&RecoveryCode>,
) -> Result<(BackupRootKey, RecoveryReport)> {
    let mut recovered = recover::recover(network, servers, account, password, code)?;
    // Every guardian's head counts here, the data guardian's too: nothing is restored, this only
    // reports how far the backup goes (a head still sealed under the previous key epoch, left by
    // an interrupted rotation, is not read without the keyring and counts as none).
    let keys = crate::backup::BackupKeys::derive(&recovered.key);
    let Attestations { newest, .. } = recover::attestations(&recovered.reached, &keys, usize::MAX, None);
    recovered.report.newest_generation = newest.map_or(0, |(generation, _)| generation);
    Ok((BackupRootKey(recovered.key), recovered.report))
}

/// Syncs the data server and its mirror (see [`holders::sync`]).
fn sync_holders(
    enrolment: &Enrolment,
    data: &(dyn Transport + Send + Sync),
    mirror: &(dyn Transport + Send + Sync),
    keys: &BackupKeys,
    repair: bool,
) -> Result<SyncReport> {
    let urls = (&enrolment.guardians[0].url, &enrolment.guardians[1].url);
    holders::sync([(urls.0.as_str(), data), (urls.1.as_str(), mirror)], keys, enrolment.policy.token_policy(), repair)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! The vault's recovery flows end to end against the scripted in-memory guardians: backups
    //! to them, restore on a new device with each share combination, a data guardian hiding
    //! newer snapshots, a revoked device.

    use std::path::Path;

    use super::{GuardianRestore, recover_key, restore_from_guardians};
    use crate::recovery::testing::{Call, Fault, MemoryNetwork};
    use crate::recovery::{Freshness, RecoveryCode, RecoveryPolicy, RecoverySetup};
    use crate::{CreateOptions, DataKind, Error, KdfParams, NewMessage, Passphrase, Vault};

    const ACCOUNT: &str = "ann@example.org";

    fn kdf() -> KdfParams {
        KdfParams { memory_kib: KdfParams::MIN_MEMORY_KIB, iterations: 1, parallelism: 1 }
    }

    fn password() -> Passphrase {
        Passphrase::new("backup password".into())
    }

    fn passphrase() -> Passphrase {
        Passphrase::new("device passphrase".into())
    }

    /// A vault with messages and a media item, set up with 2 guardians and a code, backed up.
    fn phone(dir: &Path, network: &MemoryNetwork, urls: &[String]) -> (Vault, RecoveryCode) {
        let mut vault = Vault::create(dir, &passphrase(), CreateOptions { kdf: kdf(), wrapper: None }).unwrap();
        for i in 0..50 {
            vault.messages().add(&NewMessage::new("family", "ann", format!("message {i} CANARY"))).unwrap();
        }
        vault.media().import(&mut &[7u8; 100_000][..], crate::MediaImport::default()).unwrap();
        let policy = RecoveryPolicy::new(urls.len(), None, true, false).unwrap();
        let setup = RecoverySetup { servers: urls, account: ACCOUNT, policy, device_name: "phone" };
        let mut recovery = vault.recovery().unwrap();
        let report = recovery.setup(network, &setup, &password()).unwrap();
        let backed_up = recovery.backup(network, None).unwrap();
        assert!(backed_up.head_copies_failed.is_empty());
        (vault, report.recovery_code.unwrap())
    }

    /// A phone backed up twice, then the data guardian (`urls[0]`) serving its first head again
    /// while the other guardian is down.
    fn rolled_back_with_the_other_guardian_down(work: &Path) -> (MemoryNetwork, Vec<String>, RecoveryCode) {
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut vault, code) = phone(&work.join("phone"), &network, &urls);
        vault.messages().add(&NewMessage::new("family", "ann", "newer")).unwrap();
        assert_eq!(vault.recovery().unwrap().backup(&network, None).unwrap().backup.generation, 2);
        network.guardian(&urls[0]).script(Fault::ReplayHead(0));
        network.guardian(&urls[1]).script(Fault::Down);
        (network, urls, code)
    }

    fn restore(
        network: &MemoryNetwork,
        servers: &[String],
        code: Option<&RecoveryCode>,
        target: &Path,
    ) -> crate::Result<crate::recovery::GuardianRestoreReport> {
        let password = password();
        let request = GuardianRestore {
            servers,
            account: ACCOUNT,
            password: &password,
            code,
            device_name: "new",
            accept_unverified_freshness: false,
        };
        let create = CreateOptions { kdf: kdf(), wrapper: None };
        restore_from_guardians(network, &request, target, &passphrase(), create, None)
    }

    /// With three guardians the second mirrors the data guardian: a new device restores from it
    /// while the data guardian is down, and a data guardian that lost the backup gets it back
    /// before the next run, which continues the history on both.
    #[test]
    fn the_mirror_serves_a_restore_and_repairs_a_data_guardian_that_lost_the_backup() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(3);
        let (mut vault, _) = phone(&work.path().join("phone"), &network, &urls);
        vault.messages().add(&NewMessage::new("family", "ann", "second")).unwrap();
        let second = vault.recovery().unwrap().backup(&network, None).unwrap();
        let held: Vec<_> = second.holders.iter().map(|h| (h.server.as_str(), h.generation, h.missing)).collect();
        assert_eq!(held, vec![(urls[0].as_str(), Some(2), 0), (urls[1].as_str(), Some(2), 0)]);
        assert!(second.mirror_problems.is_empty(), "{:?}", second.mirror_problems);
        let mut mirrored = network.guardian(&urls[1]).objects_of(ACCOUNT);
        let mut at_data = network.guardian(&urls[0]).objects_of(ACCOUNT);
        mirrored.sort();
        at_data.sort();
        assert_eq!(mirrored, at_data, "the mirror holds every object");

        network.guardian(&urls[0]).script(Fault::Down);
        let target = work.path().join("tablet");
        let report = restore(&network, &urls, None, &target).unwrap();
        assert_eq!(report.restore.generation, 2);
        assert!(!report.enrolled);
        assert_eq!(report.freshness, Freshness::Verified { by: vec![urls[2].clone()] }, "not the mirror itself");
        let mut restored = Vault::unlock_with_passphrase(&target, &passphrase()).unwrap();
        assert_eq!(restored.messages().search("second", 10).unwrap().len(), 1);

        network.guardian(&urls[0]).heal();
        network.guardian(&urls[0]).lose_backup(ACCOUNT);
        vault.messages().add(&NewMessage::new("family", "ann", "third")).unwrap();
        let third = vault.recovery().unwrap().backup(&network, None).unwrap();
        assert_eq!(third.backup.generation, 3);
        assert!(third.mirror_copied > 0, "the data guardian was repaired from the mirror");
        let held: Vec<_> = third.holders.iter().map(|h| (h.generation, h.missing)).collect();
        assert_eq!(held, vec![(Some(3), 0), (Some(3), 0)]);
        let stored = vault.recovery().unwrap().last_holders().unwrap();
        assert_eq!(stored.iter().map(|h| h.generation).collect::<Vec<_>>(), vec![Some(3), Some(3)]);
    }

    #[test]
    fn a_new_device_restores_with_each_share_combination() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut vault, code) = phone(&work.path().join("phone"), &network, &urls);
        let want = vault.messages().search("CANARY", 100).unwrap().len();
        // Every escrow lists every guardian, so one URL and the code reach the other too (and
        // the data guardian when it is the one not given): every restore enrols, and the
        // guardian that holds no data attests the head.
        for (n, (servers, code)) in
            [(&urls[..], None), (&urls[..1], Some(&code)), (&urls[1..], Some(&code))].into_iter().enumerate()
        {
            let target = work.path().join(format!("new-{n}"));
            let report = restore(&network, servers, code, &target).unwrap();
            assert_eq!(report.restore.generation, 1);
            assert!(report.enrolled);
            assert_eq!(report.freshness, Freshness::Verified { by: vec![urls[1].clone()] });
            let mut restored = Vault::unlock_with_passphrase(&target, &passphrase()).unwrap();
            assert_eq!(restored.messages().search("CANARY", 100).unwrap().len(), want);
            assert_eq!(restored.media().list().unwrap().len(), 1);
            assert!(restored.recovery().unwrap().status().unwrap().is_some());
        }
        // The key alone, from the guardian that holds no data and the code.
        let (key, _) = recover_key(&network, &urls[1..], ACCOUNT, &password(), Some(&code)).unwrap();
        let own = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        assert_eq!(key.expose_secret(), own.expose_secret());
    }

    /// Adversary: the data server, rolling its head back to an older snapshot while the only
    /// other guardian is unreachable (or withheld by the same operator).
    #[test]
    fn a_restore_no_other_guardian_can_vouch_for_is_refused_unless_accepted_and_then_reported() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls, code) = rolled_back_with_the_other_guardian_down(work.path());
        let target = work.path().join("new");
        let refused = restore(&network, &urls[..1], Some(&code), &target);
        assert!(
            matches!(&refused, Err(Error::Integrity { object: DataKind::BackupHead, problem: m })
                if m.contains("no guardian other than the data server")),
            "{refused:?}"
        );
        assert!(!target.exists());
        assert!(network.guardian(&urls[0]).devices_of(ACCOUNT).iter().all(|d| d.name != "new"), "withdrawn");
        // Accepted explicitly, the restore goes ahead and says nothing vouched for it.
        let password = password();
        let request = GuardianRestore {
            servers: &urls[..1],
            account: ACCOUNT,
            password: &password,
            code: Some(&code),
            device_name: "new",
            accept_unverified_freshness: true,
        };
        let create = CreateOptions { kdf: kdf(), wrapper: None };
        let report = restore_from_guardians(&network, &request, &target, &passphrase(), create, None).unwrap();
        assert_eq!(report.freshness, Freshness::Unverified);
        assert_eq!(report.restore.generation, 1, "the rolled-back snapshot, as reported");
        assert!(!report.enrolled);
    }

    /// Adversary: a thief holding the lost phone's vault (its backup key) and its recovery code,
    /// helped by the data server, which replays its escrow and head records from before the
    /// revocation. The new device revoked the phone, which rotated the backup key.
    #[test]
    fn after_a_revocation_the_old_key_and_code_open_nothing_backed_up_later_even_with_a_replaying_server() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (phone_vault, old_code) = phone(&work.path().join("phone"), &network, &urls);
        let stolen = phone_vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        let new_dir = work.path().join("new");
        restore(&network, &urls, None, &new_dir).unwrap();
        let mut new = Vault::unlock_with_passphrase(&new_dir, &passphrase()).unwrap();
        let mut recovery = new.recovery().unwrap();
        let revoked = recovery.revoke_device(&network, &password(), "phone", false).unwrap();
        assert_eq!(revoked.revoked, 2);
        assert!(revoked.key_rotated);
        let new_code = revoked.recovery_code.unwrap();
        assert_ne!(new_code.expose_secret(), old_code.expose_secret());
        drop(recovery);
        new.messages().add(&NewMessage::new("family", "ann", "after the revocation")).unwrap();
        assert_eq!(new.recovery().unwrap().backup(&network, None).unwrap().backup.generation, 2);

        // The old code and the replayed escrow recover the old key, and only it.
        network.guardian(&urls[0]).script(Fault::ReplayEscrow(0));
        network.guardian(&urls[1]).script(Fault::Down);
        let (old, _) = recover_key(&network, &urls[..1], ACCOUNT, &password(), Some(&old_code)).unwrap();
        assert_eq!(old.expose_secret(), stolen.expose_secret());
        let current = new.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        assert_ne!(current.expose_secret(), stolen.expose_secret());
        // With the current head, the old key reads nothing: the restore fails and leaves nothing.
        let password = password();
        let thief = |target: &Path| {
            let request = GuardianRestore {
                servers: &urls[..1],
                account: ACCOUNT,
                password: &password,
                code: Some(&old_code),
                device_name: "thief",
                accept_unverified_freshness: true,
            };
            let create = CreateOptions { kdf: kdf(), wrapper: None };
            restore_from_guardians(&network, &request, target, &passphrase(), create, None)
        };
        let target = work.path().join("thief");
        let refused = thief(&target);
        assert!(
            matches!(&refused, Err(Error::Integrity { problem, .. }) if problem.contains("failed authentication")),
            "{:?}",
            refused.as_ref().err()
        );
        assert!(!target.exists());
        // With the head replayed too, the thief gets the snapshot from before the rotation, which
        // the stolen key opened anyway: nothing written after it.
        network.guardian(&urls[0]).script(Fault::ReplayHead(0));
        let report = thief(&target).unwrap();
        assert_eq!(report.restore.generation, 1);
        let mut restored = Vault::unlock_with_passphrase(&target, &passphrase()).unwrap();
        assert!(!restored.messages().search("CANARY", 100).unwrap().is_empty());
        assert!(restored.messages().search("revocation", 10).unwrap().is_empty());
        // The new code and the honest guardians recover the current key.
        network.guardian(&urls[0]).heal();
        network.guardian(&urls[1]).heal();
        let (key, _) = recover_key(&network, &urls[1..], ACCOUNT, &password, Some(&new_code)).unwrap();
        assert_eq!(key.expose_secret(), current.expose_secret());
    }

    #[test]
    fn an_interrupted_rotation_holds_backups_back_and_finishes_when_run_again() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut vault, _) = phone(&work.path().join("phone"), &network, &urls);
        let before = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        let mut recovery = vault.recovery().unwrap();
        network.guardian(&urls[1]).script(Fault::DropNext(Call::PutEscrow));
        let interrupted = recovery.refresh_shares(&network, &password());
        assert!(
            matches!(&interrupted, Err(Error::BackupStorage(m)) if m.contains("run this again to finish the rotation")),
            "{:?}",
            interrupted.err()
        );
        // Nothing is backed up under a key the guardians do not all hold yet.
        let held = recovery.backup(&network, None);
        assert!(matches!(held, Err(Error::KeyRotationUnfinished)), "{held:?}");
        let code = recovery.refresh_shares(&network, &password()).unwrap().unwrap();
        drop(recovery);
        vault.messages().add(&NewMessage::new("family", "ann", "after the rotation")).unwrap();
        assert_eq!(vault.recovery().unwrap().backup(&network, None).unwrap().backup.generation, 2);
        let after = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        assert_ne!(after.expose_secret(), before.expose_secret());
        // A new device with one guardian and the new code reads both epochs' data.
        let target = work.path().join("new");
        let report = restore(&network, &urls[..1], Some(&code), &target).unwrap();
        assert_eq!(report.restore.generation, 2);
        let mut restored = Vault::unlock_with_passphrase(&target, &passphrase()).unwrap();
        assert_eq!(restored.messages().search("CANARY", 100).unwrap().len(), 50);
        assert_eq!(restored.messages().search("rotation", 10).unwrap().len(), 1);
        assert_eq!(restored.media().list().unwrap().len(), 1);
    }

    #[test]
    fn a_rotation_waits_for_an_interrupted_run_to_be_published() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (vault, _) = phone(&work.path().join("phone"), &network, &urls);
        let mut recovery = vault.recovery().unwrap();
        // What a run that stopped between its manifest and its head leaves at the data guardian.
        let data = recovery.data_transport(&network).unwrap().unwrap();
        data.put(&crate::backup::format::manifest_name(2), b"sealed under the current key").unwrap();
        let refused = recovery.refresh_shares(&network, &password());
        assert!(matches!(refused, Err(Error::BackupConflict)), "{refused:?}");
        // Nothing was started: backups are not held back.
        assert!(crate::store::backup_state::pending_rotation(recovery.backups().state()).unwrap().is_none());
    }

    /// Adversary: the data server rolling its head back, reached under a second URL as well (the
    /// user typed it another way, or a proxy): it must not vouch for itself.
    #[test]
    fn the_data_server_reached_twice_does_not_vouch_for_its_own_head() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls, code) = rolled_back_with_the_other_guardian_down(work.path());
        let other_spelling = network.alias(&urls[0], "mem://G0/");
        let target = work.path().join("new");
        let servers = [urls[0].clone(), other_spelling];
        let refused = restore(&network, &servers, Some(&code), &target);
        assert!(
            matches!(&refused, Err(Error::Integrity { problem, .. }) if problem.contains("no guardian other than the data server")),
            "{refused:?}"
        );
        assert!(!target.exists());
    }

    #[test]
    fn a_data_guardian_hiding_newer_snapshots_is_caught_and_nothing_is_left_at_the_target() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut vault, code) = phone(&work.path().join("phone"), &network, &urls);
        vault.messages().add(&NewMessage::new("family", "ann", "newer")).unwrap();
        assert_eq!(vault.recovery().unwrap().backup(&network, None).unwrap().backup.generation, 2);
        network.guardian(&urls[0]).script(Fault::ReplayHead(0));
        let target = work.path().join("new");
        let hidden = restore(&network, &urls, None, &target);
        assert!(
            matches!(&hidden, Err(Error::Integrity { object: DataKind::BackupHead, problem: m }) if m.contains("hides newer snapshots")),
            "{hidden:?}"
        );
        assert!(!target.exists());
        assert!(network.guardian(&urls[0]).devices_of(ACCOUNT).iter().all(|d| d.name != "new"), "withdrawn");
        // The old device refuses the rolled-back storage too.
        let refused = vault.recovery().unwrap().backup(&network, None);
        assert!(matches!(refused, Err(Error::Integrity { .. })), "{refused:?}");
        network.guardian(&urls[0]).heal();
        let report = restore(&network, &urls[..1], Some(&code), &target).unwrap();
        assert_eq!(report.restore.generation, 2);
    }

    #[test]
    fn a_tampered_backup_object_fails_the_restore_as_damage_and_leaves_nothing() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (_vault, _) = phone(&work.path().join("phone"), &network, &urls);
        let guardian = network.guardian(&urls[0]);
        let objects = guardian.objects_of(ACCOUNT);
        assert!(!objects.is_empty());
        // The guardian serves garbage heads: the key still recovers, the restore is refused.
        guardian.script(Fault::GarbageHead);
        let target = work.path().join("new");
        let garbage = restore(&network, &urls, None, &target);
        assert!(matches!(garbage, Err(Error::Integrity { .. })), "{garbage:?}");
        assert!(!target.exists());
    }

    #[test]
    fn a_revoked_device_can_no_longer_back_up_and_backups_leave_the_vault_usable() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut vault, _) = phone(&work.path().join("phone"), &network, &urls);
        // While a backup handle exists, the vault keeps working (its own connection)...
        let mut recovery = vault.recovery().unwrap();
        vault.messages().add(&NewMessage::new("family", "ann", "during")).unwrap();
        assert_eq!(vault.messages().search("during", 5).unwrap().len(), 1);
        // ...and a root-key rotation, which would re-key under it, is refused.
        assert!(matches!(vault.keys().rotate_root_key(&[]), Err(Error::Busy)));
        assert_eq!(recovery.revoke_device(&network, &password(), "phone", true).unwrap().revoked, 2);
        let refused = recovery.backup(&network, None);
        assert!(matches!(refused, Err(Error::BackupAuthentication(_))), "{refused:?}");
        drop(recovery);
        vault.keys().rotate_root_key(&[]).unwrap();
    }

    #[test]
    fn setting_recovery_up_again_keeps_this_device_the_writer_of_its_backup() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (vault, _) = phone(&work.path().join("phone"), &network, &urls);
        let policy = RecoveryPolicy::new(urls.len(), None, true, false).unwrap();
        let setup = RecoverySetup { servers: &urls, account: ACCOUNT, policy, device_name: "phone" };
        let mut recovery = vault.recovery().unwrap();
        recovery.setup(&network, &setup, &password()).unwrap();
        assert_eq!(recovery.backup(&network, None).unwrap().backup.generation, 2);
        // The old identity is gone at every guardian; the new one is the only device.
        for url in &urls {
            assert_eq!(network.guardian(url).devices_of(ACCOUNT).len(), 1, "{url}");
        }
    }

    #[test]
    fn a_restore_whose_device_enrolment_fails_at_one_guardian_withdraws_the_others() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (_vault, _) = phone(&work.path().join("phone"), &network, &urls);
        network.guardian(&urls[1]).script(Fault::DropNext(crate::recovery::testing::Call::EnrolDevice));
        let target = work.path().join("new");
        let failed = restore(&network, &urls, None, &target);
        assert!(matches!(failed, Err(Error::Guardian { index: 1, .. })), "{failed:?}");
        assert!(!target.exists());
        assert!(network.guardian(&urls[0]).devices_of(ACCOUNT).iter().all(|d| d.name != "new"), "withdrawn");
    }

    #[test]
    fn a_restore_takes_the_backup_over_the_old_writer_is_refused_and_the_new_one_backs_up() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut old, _) = phone(&work.path().join("phone"), &network, &urls);
        let old_id = network.guardian(&urls[0]).devices_of(ACCOUNT)[0].id.clone();

        let report = restore(&network, &urls, None, &work.path().join("new")).unwrap();
        assert!(report.enrolled);
        assert_eq!(report.took_over_from.as_deref(), Some(old_id.as_str()));
        let mut new = Vault::unlock_with_passphrase(&work.path().join("new"), &passphrase()).unwrap();
        let new_id =
            network.guardian(&urls[0]).devices_of(ACCOUNT).iter().find(|d| d.name == "new").unwrap().id.clone();
        // The old device is superseded, not revoked: it still reads the backup.
        assert!(network.guardian(&urls[0]).devices_of(ACCOUNT).iter().any(|d| d.id == old_id));

        // The new writer adds a message and backs up (generation 2).
        new.messages().add(&NewMessage::new("family", "ann", "from the new phone")).unwrap();
        assert_eq!(new.recovery().unwrap().backup(&network, None).unwrap().backup.generation, 2);

        // The old writer's next run is refused, naming the new device and when it took over,
        // and writes nothing.
        old.messages().add(&NewMessage::new("family", "ann", "from the old phone")).unwrap();
        let before = network.guardian(&urls[0]).objects_of(ACCOUNT);
        let refused = old.recovery().unwrap().backup(&network, None);
        let Err(Error::TakenOver { by_device: Some(by), at_ms: Some(at) }) = &refused else { panic!("{refused:?}") };
        assert_eq!(by, &new_id);
        assert!(*at > 1_600_000_000_000);
        assert!(refused.as_ref().unwrap_err().to_string().contains("no longer writes"));
        assert_eq!(network.guardian(&urls[0]).objects_of(ACCOUNT), before, "nothing uploaded");

        // A fresh restore has the new phone's message at generation 2 and not the old one's.
        let report = restore(&network, &urls, None, &work.path().join("third")).unwrap();
        assert_eq!(report.restore.generation, 2);
        assert_eq!(report.took_over_from.as_deref(), Some(new_id.as_str()));
        let mut third = Vault::unlock_with_passphrase(&work.path().join("third"), &passphrase()).unwrap();
        assert_eq!(third.messages().search("new phone", 5).unwrap().len(), 1);
        assert_eq!(third.messages().search("old phone", 5).unwrap().len(), 0);
        // The third device now writes; the second is refused in turn.
        let refused = new.recovery().unwrap().backup(&network, None);
        assert!(matches!(refused, Err(Error::TakenOver { .. })), "{refused:?}");
        assert_eq!(third.recovery().unwrap().backup(&network, None).unwrap().backup.generation, 3);
    }

    #[test]
    fn a_backup_the_old_writer_finishes_during_the_restore_is_not_lost_under_the_takeover() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut old, _) = phone(&work.path().join("phone"), &network, &urls);
        let keys =
            crate::backup::BackupKeys::derive(&old.backups().unwrap().dangerous_export_key().unwrap().unwrap().0);
        // The head as the restore read it, then a backup by the old writer.
        let data = old.recovery().unwrap().data_transport(&network).unwrap().unwrap();
        let before = data.get_head().unwrap();
        old.messages().add(&NewMessage::new("family", "ann", "late")).unwrap();
        old.recovery().unwrap().backup(&network, None).unwrap();
        let taken = super::take_over(&*data, &keys, before.clone(), 1, "abcd");
        assert!(matches!(taken, Err(Error::BackupConflict)), "{taken:?}");
        // Against the current head it succeeds, and the old writer is refused after.
        let current = data.get_head().unwrap();
        let (_, previous) = super::take_over(&*data, &keys, current, 2, "abcd").unwrap();
        assert!(previous.is_some());
        let refused = old.recovery().unwrap().backup(&network, None);
        assert!(matches!(&refused, Err(Error::TakenOver { by_device: Some(d), .. }) if d == "abcd"), "{refused:?}");
    }

    #[test]
    fn the_writer_rules_for_a_run() {
        use crate::backup::format::{Head, Writer};
        use crate::backup::run::claim;
        let head = |generation, writer: Option<&str>| Head {
            generation,
            manifest_hash: [1; 32],
            manifest_epoch: 0,
            writer: writer.map(|w| Writer::new(w, 5).unwrap()),
            token: None,
        };
        // A first backup is claimed; a directory run names no writer.
        assert_eq!(claim(None, Some("me"), 0).unwrap().unwrap().device, "me");
        assert_eq!(claim(None, None, 0).unwrap(), None);
        // This device's own head keeps its "since".
        assert_eq!(claim(Some(&head(4, Some("me"))), Some("me"), 4).unwrap(), Some(Writer::new("me", 5).unwrap()));
        // Another writer's head: refused, whatever the base, and for a run without identity.
        for (me, base) in [(Some("me"), 4), (Some("me"), 3), (None, 4)] {
            let refused = claim(Some(&head(4, Some("them"))), me, base);
            assert!(
                matches!(&refused, Err(Error::TakenOver { by_device: Some(d), at_ms: Some(5) }) if d == "them"),
                "{refused:?}"
            );
        }
        // A head of an older build (no writer): claimed when it is this device's base, refused
        // when another device wrote it after this device's base.
        assert_eq!(claim(Some(&head(4, None)), Some("me"), 4).unwrap().unwrap().device, "me");
        let stale = claim(Some(&head(5, None)), Some("me"), 4);
        assert!(matches!(stale, Err(Error::TakenOver { by_device: None, at_ms: None })), "{stale:?}");
        assert_eq!(claim(Some(&head(5, None)), None, 4).unwrap(), None);
    }
}
