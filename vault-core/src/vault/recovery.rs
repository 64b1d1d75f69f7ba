//! The vault's side of recovery (`docs/recovery.md`): the [`Recovery`] handle for an enrolled
//! vault, and [`restore_from_guardians`] for a new device. The flows themselves live in
//! `crate::recovery` and talk to guardians only through a [`GuardianNetwork`].

use std::path::Path;

use super::backup::{Backups, RestoreOptions, restore_backup};
use super::{CreateOptions, Vault};
use crate::backup::{BackupKeys, BackupRootKey, Transport};
use crate::error::{Error, Result};
use crate::recovery::lifecycle;
use crate::recovery::recover::{self, RecoveryReport};
use crate::recovery::setup::set_up;
use crate::recovery::{
    EnrolledGuardian, Enrolment, GuardianBackupReport, GuardianDevices, GuardianNetwork, GuardianRestoreReport,
    RecoveryCode, RecoverySetup, RecoveryStatus, SetupReport, in_parallel,
};
use crate::secret::SecretKey;
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
    /// Running it again makes a new split (the old recovery code stops working).
    pub fn setup(
        &mut self,
        network: &dyn GuardianNetwork,
        setup: &RecoverySetup<'_>,
        password: &Passphrase,
    ) -> Result<SetupReport> {
        let key = self.backups.root_key_or_create()?;
        let conn = self.backups.state();
        let previous = Enrolment::load(conn)?;
        let (enrolment, report) = set_up(network, setup, password, &key, previous.as_ref())?;
        enrolment.save(conn)?;
        record(conn, SecurityEventKind::RecoveryEnrolled, &report.policy.describe())?;
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

    /// Backs up to the guardian that holds the data, then copies the new head record to every
    /// other guardian (so a new device detects a data server that hides newer snapshots).
    pub fn backup(
        &mut self,
        network: &dyn GuardianNetwork,
        progress: Option<&dyn Progress>,
    ) -> Result<GuardianBackupReport> {
        let enrolment = Enrolment::require(self.backups.state())?;
        let transport = lifecycle::data_transport(network, &enrolment)?;
        let written = self.backups.run_written(&*transport, progress)?;
        let keys = BackupKeys::derive(&self.backups.root_key()?);
        let head_copies_failed =
            lifecycle::copy_heads(network, &enrolment, &keys, &written.head, written.report.generation);
        Ok(GuardianBackupReport { backup: written.report, head_copies_failed })
    }

    /// Changes the backup password on every guardian: logs in with `old` (or, where an earlier
    /// change got that far, with `new`), re-registers, and re-seals the guardian's share under
    /// the new password. The shares and the recovery code stay valid.
    pub fn change_password(&mut self, network: &dyn GuardianNetwork, old: &Passphrase, new: &Passphrase) -> Result<()> {
        let key_check = BackupKeys::derive(&self.backups.root_key()?).key_check();
        lifecycle::change_password(network, self.backups.state(), key_check, old, new)
    }

    /// Replaces every share with a new split of the same key (every guardian must be
    /// reachable): the old shares and the old recovery code stop working. Returns the new
    /// recovery code when the policy has one.
    pub fn refresh_shares(
        &mut self,
        network: &dyn GuardianNetwork,
        password: &Passphrase,
    ) -> Result<Option<RecoveryCode>> {
        let key = self.backups.root_key()?;
        lifecycle::refresh_shares(network, self.backups.state(), &key, password)
    }

    /// The devices enrolled at each guardian (read with this device's tokens).
    pub fn devices(&self, network: &dyn GuardianNetwork) -> Result<Vec<GuardianDevices>> {
        lifecycle::devices(network, &Enrolment::require(self.backups.state())?)
    }

    /// Revokes, at every guardian, each device whose identifier or name is `device` (needs the
    /// backup password). Its tokens stop working at once. Returns how many were revoked.
    pub fn revoke_device(
        &mut self,
        network: &dyn GuardianNetwork,
        password: &Passphrase,
        device: &str,
    ) -> Result<usize> {
        lifecycle::revoke_device(network, self.backups.state(), password, device)
    }

    /// The backups of this vault, for listing, verifying and pruning the data at the guardian
    /// (with [`Recovery::data_transport`]).
    pub fn backups(&mut self) -> &mut Backups {
        &mut self.backups
    }
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
    let recovered = recover::recover(network, request.servers, request.account, request.password, request.code)?;
    let data = recovered.reached.iter().position(|r| r.header.holds_data).ok_or_else(|| {
        Error::BackupStorage(format!(
            "the server holding the backup data was not reached ({})",
            recovered.report.servers_failed.join("; ")
        ))
    })?;
    let devices = in_parallel(&recovered.reached, |r| {
        r.remote.guardian.enrol_device(&r.session.token, request.device_name).map_err(|e| r.remote.error(e))
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    // Best effort: the device enrolments made for this restore, withdrawn when unused.
    let withdraw = || {
        for (r, (device_id, _)) in recovered.reached.iter().zip(&devices) {
            let _ = r.remote.guardian.revoke_device(&r.session.token, device_id);
        }
    };
    let transport = recovered.reached[data].remote.guardian.transport(&devices[data].1);
    let key = BackupRootKey(SecretKey::from_bytes(*recovered.key.expose_secret()));
    let options = RestoreOptions { create, progress, at_least: recovered.newest };
    let restore = restore_backup(&*transport, &key, target, passphrase, options).inspect_err(|_| withdraw())?;

    // The new vault is enrolled when every guardian was reached (share indexes 1..=servers, all
    // distinct within one split); otherwise its tokens would go unused.
    let enrolled = recovered.reached.len() == usize::from(recovered.policy.servers);
    if !enrolled {
        withdraw();
        return Ok(GuardianRestoreReport { recovery: recovered.report, restore, enrolled });
    }
    let mut guardians: Vec<(u8, EnrolledGuardian)> = recovered
        .reached
        .iter()
        .zip(devices)
        .map(|(r, (device_id, device_token))| {
            let guardian = EnrolledGuardian {
                url: r.remote.url.clone(),
                server_key: r.session.server_key.clone(),
                device_id,
                device_token,
                share: Some(SecretKey::from_bytes(*r.share.value.expose_secret())),
            };
            (r.header.index, guardian)
        })
        .collect();
    guardians.sort_by_key(|(index, _)| *index);
    let vault = Vault::unlock_with_passphrase(target, passphrase)?;
    let enrolment = Enrolment {
        account: crate::recovery::account_name(request.account),
        policy: recovered.policy,
        share_set: recovered.share_set,
        guardians: guardians.into_iter().map(|(_, g)| g).collect(),
    };
    enrolment.save(&vault.store.conn)?;
    record(&vault.store.conn, SecurityEventKind::RecoveryEnrolled, &recovered.policy.describe())?;
    Ok(GuardianRestoreReport { recovery: recovered.report, restore, enrolled })
}

/// Recovers only the Backup Root Key (no restore): for measuring recovery and for tools.
pub fn recover_key(
    network: &dyn GuardianNetwork,
    servers: &[String],
    account: &str,
    password: &Passphrase,
    code: Option<&RecoveryCode>,
) -> Result<(BackupRootKey, RecoveryReport)> {
    let recovered = recover::recover(network, servers, account, password, code)?;
    Ok((BackupRootKey(recovered.key), recovered.report))
}

fn record(conn: &rusqlite::Connection, kind: SecurityEventKind, detail: &str) -> Result<()> {
    events::record(conn, crate::store::now_millis(), kind, detail)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    //! The vault's recovery flows end to end against the scripted in-memory guardians: backups
    //! to them, restore on a new device with each share combination, a data guardian hiding
    //! newer snapshots, a revoked device.

    use std::path::Path;

    use super::{GuardianRestore, recover_key, restore_from_guardians};
    use crate::recovery::testing::{Fault, MemoryNetwork};
    use crate::recovery::{RecoveryCode, RecoveryPolicy, RecoverySetup};
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

    fn restore(
        network: &MemoryNetwork,
        servers: &[String],
        code: Option<&RecoveryCode>,
        target: &Path,
    ) -> crate::Result<crate::recovery::GuardianRestoreReport> {
        let password = password();
        let request = GuardianRestore { servers, account: ACCOUNT, password: &password, code, device_name: "new" };
        let create = CreateOptions { kdf: kdf(), wrapper: None };
        restore_from_guardians(network, &request, target, &passphrase(), create, None)
    }

    #[test]
    fn a_new_device_restores_with_each_share_combination() {
        let work = tempfile::tempdir().unwrap();
        let (network, urls) = MemoryNetwork::with_guardians(2);
        let (mut vault, code) = phone(&work.path().join("phone"), &network, &urls);
        let want = vault.messages().search("CANARY", 100).unwrap().len();
        for (n, (servers, code)) in
            [(&urls[..], None), (&urls[..1], Some(&code)), (&urls[1..], Some(&code))].into_iter().enumerate()
        {
            let target = work.path().join(format!("new-{n}"));
            let report = restore(&network, servers, code, &target);
            if servers == &urls[1..] {
                // The data guardian was not asked: the key is recovered, the data is not reached.
                assert!(matches!(&report, Err(Error::BackupStorage(m)) if m.contains("holding the backup data")));
                assert!(!target.exists());
                continue;
            }
            let report = report.unwrap();
            assert_eq!(report.restore.generation, 1);
            assert_eq!(report.enrolled, servers.len() == 2);
            let mut restored = Vault::unlock_with_passphrase(&target, &passphrase()).unwrap();
            assert_eq!(restored.messages().search("CANARY", 100).unwrap().len(), want);
            assert_eq!(restored.media().list().unwrap().len(), 1);
            assert_eq!(restored.recovery().unwrap().status().unwrap().is_some(), report.enrolled);
        }
        // The key alone, from the guardian that holds no data and the code.
        let (key, _) = recover_key(&network, &urls[1..], ACCOUNT, &password(), Some(&code)).unwrap();
        let own = vault.backups().unwrap().dangerous_export_key().unwrap().unwrap();
        assert_eq!(key.expose_secret(), own.expose_secret());
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
        assert_eq!(recovery.revoke_device(&network, &password(), "phone").unwrap(), 2);
        let refused = recovery.backup(&network, None);
        assert!(matches!(refused, Err(Error::BackupAuthentication(_) | Error::BackupStorage(_))), "{refused:?}");
        drop(recovery);
        vault.keys().rotate_root_key(&[]).unwrap();
    }
}
