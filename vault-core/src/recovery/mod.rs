//! Recovery (`docs/recovery.md`): the Backup Root Key split into shares held by backup servers
//! (each sealed under a key only the backup password reproduces there, through OPAQUE) and,
//! optionally, a recovery code; getting it back on a new device; and the lifecycle (password
//! change, share refresh, device revocation, server-key pinning, safety number).
//!
//! The flows on an existing vault are methods of [`crate::Vault`] (`recovery_*`,
//! `backup_to_guardians`); restoring on a new device is [`restore_from_guardians`].

mod code;
mod escrow;
mod guardian;
mod policy;
mod recover;
mod safety;
mod shares;

use std::path::Path;

pub use backup_api::KsfParams;
pub use backup_api::client::ClientOptions;
pub use backup_api::wire::DeviceInfo;
pub use code::RecoveryCode;
pub use guardian::ServerOptions;
pub use policy::{MAX_SERVERS, RecoveryPolicy};
pub use recover::RecoveryReport;

pub(crate) use escrow::{EscrowHeader, header as escrow_header, open as open_escrow, seal as seal_escrow};
pub(crate) use guardian::{Server, in_parallel};
pub(crate) use safety::safety_number;
pub(crate) use shares::{Share, split};

use crate::backup::{BackupReport, BackupRootKey, RestoreOptions, RestoreReport};
use crate::error::{Error, Result};
use crate::store::recovery_state::{Enrolment, Guardian};
use crate::{CreateOptions, Passphrase, Progress, Vault};

/// What `vault backup setup` asks for.
pub struct RecoverySetup<'a> {
    /// Guardian servers; the first also holds the backup data.
    pub servers: &'a [String],
    /// The account identifier (the servers see only a keyed hash of it).
    pub account: &'a str,
    /// Threshold and shares.
    pub policy: RecoveryPolicy,
    /// This device's name in the servers' device lists.
    pub device_name: &'a str,
}

/// What setup (or a share refresh) produced.
#[derive(Debug)]
pub struct SetupReport {
    /// The policy in force.
    pub policy: RecoveryPolicy,
    /// The recovery code, to show once (when the policy has one).
    pub recovery_code: Option<RecoveryCode>,
    /// The safety number to compare between devices.
    pub safety_number: String,
}

/// The vault's recovery enrolment, for `vault status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryStatus {
    /// The account.
    pub account: String,
    /// The policy.
    pub policy: RecoveryPolicy,
    /// The guardian servers (the first holds the backup data).
    pub servers: Vec<String>,
    /// The safety number over the account and the pinned server keys.
    pub safety_number: String,
}

/// A backup to the guardian servers.
#[derive(Debug, Clone)]
pub struct GuardianBackupReport {
    /// The backup run on the data server.
    pub backup: BackupReport,
    /// Guardians whose copy of the head record could not be updated (the backup itself is
    /// complete; the next run retries).
    pub head_copies_failed: Vec<String>,
}

/// The devices enrolled at one guardian server.
#[derive(Debug, Clone)]
pub struct GuardianDevices {
    /// The server.
    pub server: String,
    /// This device's identifier there.
    pub this_device: String,
    /// Every enrolled device.
    pub devices: Vec<DeviceInfo>,
}

/// What a restore on a new device did.
#[derive(Debug)]
pub struct GuardianRestoreReport {
    /// Recovering the key.
    pub recovery: RecoveryReport,
    /// Restoring the vault.
    pub restore: RestoreReport,
    /// Whether every guardian was reached, so the new vault is enrolled and backs up as before
    /// (otherwise run `vault backup setup` on it).
    pub enrolled: bool,
}

/// Restores the newest backup of `account` into a new vault at `target` on a new device:
/// recovers the Backup Root Key from the guardians (and the recovery code), enrols this device
/// at every server reached, and restores from the server holding the data, refusing a history
/// older than any guardian attests.
#[allow(clippy::too_many_arguments)]
pub fn restore_from_guardians(
    target: &Path,
    servers: &[String],
    account: &str,
    password: &Passphrase,
    code: Option<&RecoveryCode>,
    passphrase: &Passphrase,
    create: CreateOptions<'_>,
    progress: Option<&dyn Progress>,
    device_name: &str,
    options: &ServerOptions,
) -> Result<GuardianRestoreReport> {
    if target.exists() {
        return Err(Error::AlreadyExists("the restore target exists; restore into a new directory".into()));
    }
    let recovered = recover::recover(servers, account, password, code, options)?;
    let data = recovered.reached.iter().position(|r| r.header.holds_data).ok_or_else(|| {
        Error::BackupStorage(format!(
            "the server holding the backup data was not reached ({})",
            recovered.report.servers_failed.join("; ")
        ))
    })?;
    let devices = in_parallel(&recovered.reached, |r| {
        r.server.client.enrol_device(&r.session.token, device_name).map_err(|e| r.server.error(e))
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    // Best effort: the device enrolments made for this restore, withdrawn when unused.
    let withdraw = || {
        for (r, (device_id, _)) in recovered.reached.iter().zip(&devices) {
            let _ = r.server.client.revoke_device(&r.session.token, device_id);
        }
    };
    let transport = recovered.reached[data].server.transport(devices[data].1.clone());
    let key = BackupRootKey(crate::secret::SecretKey::from_bytes(*recovered.key.expose_secret()));
    let options = RestoreOptions { create, progress, at_least: recovered.newest };
    let restore = crate::backup::restore(&transport, &key, target, passphrase, options).inspect_err(|_| withdraw())?;

    // The new vault is enrolled when every guardian was reached (share indexes 1..=servers, all
    // distinct within one split); otherwise its tokens would go unused.
    let enrolled = recovered.reached.len() == usize::from(recovered.policy.servers);
    if !enrolled {
        withdraw();
        return Ok(GuardianRestoreReport { recovery: recovered.report, restore, enrolled });
    }
    let mut guardians: Vec<(u8, Guardian)> = recovered
        .reached
        .iter()
        .zip(devices)
        .map(|(r, (device_id, token))| {
            let guardian = Guardian {
                url: r.server.url.clone(),
                server_key: r.session.server_public_key.clone(),
                device_id,
                device_token: zeroize::Zeroizing::new(token.expose().to_owned()),
                share: Some(crate::secret::SecretKey::from_bytes(*r.share.value.expose_secret())),
            };
            (r.header.index, guardian)
        })
        .collect();
    guardians.sort_by_key(|(index, _)| *index);
    let mut vault = Vault::unlock_with_passphrase(target, passphrase)?;
    vault.save_enrolment(&Enrolment {
        account: account.to_owned(),
        policy: recovered.policy,
        share_set: recovered.share_set,
        guardians: guardians.into_iter().map(|(_, g)| g).collect(),
    })?;
    vault.record_event(crate::SecurityEventKind::RecoveryEnrolled, &recovered.policy.describe())?;
    Ok(GuardianRestoreReport { recovery: recovered.report, restore, enrolled })
}

/// Recovers only the Backup Root Key (no restore): for measuring recovery and for tools.
pub fn recover_key(
    servers: &[String],
    account: &str,
    password: &Passphrase,
    code: Option<&RecoveryCode>,
    options: &ServerOptions,
) -> Result<(BackupRootKey, RecoveryReport)> {
    let recovered = recover::recover(servers, account, password, code, options)?;
    Ok((BackupRootKey(recovered.key), recovered.report))
}
