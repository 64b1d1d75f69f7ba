//! The `Backup` object (backups and recovery of an open vault) and the `Recovery` object
//! (restoring on a new device): one-line delegations to `vault_core`.

use std::path::PathBuf;
use std::sync::Arc;

use vault_core::recovery::{RecoveryCode, RecoveryPolicy, RecoverySetup};
use vault_core::{CreateOptions, GuardianRestore, KdfParams, Passphrase};
use vault_core_net::HttpNetwork;

use crate::backup_records::{
    BackupResult, GuardianDevice, GuardianEventsResult, RecoveryInfo, RecoveryResult, RestoreResult, RevokeResult,
    ServerConfig, SetupOptions, SetupResult, Snapshot,
};
use crate::blocking;
use crate::error::VaultError;
use crate::progress::{Adapter, CancelToken, ProgressListener};
use crate::vault::Vault;
use crate::wrapper::{ForeignWrapper, PlatformKeyWrapper};

/// Backups and recovery of one open vault. Every call works on connections of its own: a
/// running backup, setup or verification never blocks the vault's other calls.
#[derive(uniffi::Object)]
pub struct Backup {
    vault: Arc<Vault>,
    network: HttpNetwork,
}

impl Backup {
    /// The vault's recovery handle; the vault is held only while it is made.
    fn recovery(&self) -> Result<vault_core::Recovery, vault_core::Error> {
        self.vault.with_core(|v| v.recovery())
    }

    /// The backup storage at the data guardian.
    fn data_transport(
        &self,
        recovery: &vault_core::Recovery,
    ) -> Result<Box<dyn vault_core::backup::Transport + Send + Sync>, vault_core::Error> {
        recovery.data_transport(&self.network)?.ok_or_else(|| {
            vault_core::Error::NotFound("recovery is not set up for this vault: call setup first".into())
        })
    }
}

#[uniffi::export]
impl Backup {
    /// Backups of `vault`, reaching the servers as `config` says (`None`: the defaults).
    #[uniffi::constructor(default(config = None))]
    pub fn new(vault: Arc<Vault>, config: Option<ServerConfig>) -> Arc<Self> {
        Arc::new(Self { vault, network: ServerConfig::network(config) })
    }

    /// Sets up recovery with `servers` (the first also holds the data): registers `account`,
    /// splits the backup key as `options` say (by default 2 of one share per server plus the
    /// recovery code's), seals each server's share under `password`, enrols this device as
    /// `device_name`.
    #[uniffi::method(default(options))]
    pub async fn setup(
        self: Arc<Self>,
        servers: Vec<String>,
        account: String,
        password: String,
        device_name: String,
        options: SetupOptions,
    ) -> Result<SetupResult, VaultError> {
        blocking::run(move || {
            let SetupOptions { threshold, recovery_code, allow_single_provider } = options;
            let policy = RecoveryPolicy::new(servers.len(), threshold, recovery_code, allow_single_provider)?;
            let setup = RecoverySetup { servers: &servers, account: &account, policy, device_name: &device_name };
            let password = Passphrase::new(password);
            let result = self.recovery().and_then(|mut r| r.setup(&self.network, &setup, &password));
            result.map(Into::into).map_err(Into::into)
        })
        .await
    }

    /// Backs up to the guardian servers (incremental; resumes an interrupted run). `listener`
    /// hears progress; cancelling `cancel` stops the run and publishes nothing.
    #[uniffi::method(default(listener = None, cancel = None))]
    pub async fn run(
        self: Arc<Self>,
        listener: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<BackupResult, VaultError> {
        blocking::run(move || {
            let progress = Adapter { listener, cancel };
            let result = self.recovery().and_then(|mut r| r.backup(&self.network, Some(&progress)));
            result.map(Into::into).map_err(Into::into)
        })
        .await
    }

    /// Reads the backup account's event log at every guardian with this device's tokens and adds
    /// what is new to the vault's security log (kinds `guardian_*`: password logins started and
    /// succeeded, delays after failed logins, escrow reads, password and device changes). Also
    /// done after every `run`. Show the user what it returns: someone trying the backup password,
    /// or a recovery on another device.
    pub async fn fetch_guardian_events(self: Arc<Self>) -> Result<GuardianEventsResult, VaultError> {
        blocking::run(move || {
            let fetched = self.recovery().and_then(|mut r| r.fetch_guardian_events(&self.network));
            fetched.map(Into::into).map_err(Into::into)
        })
        .await
    }

    /// The snapshots the backup on the servers keeps, oldest first.
    pub async fn snapshots(self: Arc<Self>) -> Result<Vec<Snapshot>, VaultError> {
        blocking::run(move || {
            let listed = self.recovery().and_then(|mut r| {
                let transport = self.data_transport(&r)?;
                r.backups().list(&*transport)
            });
            listed.map_err(VaultError::from).map(|list| {
                list.into_iter()
                    .map(|s| Snapshot {
                        generation: s.generation,
                        created_at_ms: s.created_at,
                        export_bytes: s.export_bytes,
                        media_count: s.media_count,
                    })
                    .collect()
            })
        })
        .await
    }

    /// Authenticates the backup on the servers; `read_fraction` (0 to 1) of the packs is read in
    /// full. Returns the problems found (empty: all good).
    pub async fn verify(self: Arc<Self>, read_fraction: f64) -> Result<Vec<String>, VaultError> {
        blocking::run(move || {
            let checked = self.recovery().and_then(|mut r| {
                let transport = self.data_transport(&r)?;
                r.backups().verify(&*transport, read_fraction)
            });
            checked.map(|check| check.problems).map_err(Into::into)
        })
        .await
    }

    /// Keeps the newest `keep` snapshots at the data server and its mirror; returns the bytes
    /// freed. Needs the backup `password`: device tokens cannot delete (a stolen phone cannot
    /// destroy the backup), and the servers keep what is deleted for their grace period
    /// (`restoreDeleted` puts it back).
    pub async fn prune(self: Arc<Self>, keep: u32, password: String) -> Result<u64, VaultError> {
        blocking::run(move || {
            let password = Passphrase::new(password);
            let pruned = self.recovery().and_then(|mut r| r.prune(&self.network, &password, keep as usize));
            pruned.map(|r| r.bytes_freed).map_err(Into::into)
        })
        .await
    }

    /// Puts back every object the data server and its mirror keep deleted for their grace period
    /// (undoing a prune, or deletions by someone who had the password); returns how many.
    pub async fn restore_deleted(self: Arc<Self>, password: String) -> Result<u64, VaultError> {
        blocking::run(move || {
            let password = Passphrase::new(password);
            let restored = self.recovery().and_then(|mut r| r.restore_deleted(&self.network, &password));
            restored.map(|n| n as u64).map_err(Into::into)
        })
        .await
    }

    /// The recovery enrolment (policy, servers, safety number), if set up.
    pub fn recovery_info(&self) -> Result<Option<RecoveryInfo>, VaultError> {
        self.recovery().and_then(|r| r.status()).map(|s| s.map(Into::into)).map_err(Into::into)
    }

    /// Changes the backup password on every guardian; the recovery code stays valid.
    pub async fn change_password(self: Arc<Self>, old: String, new: String) -> Result<(), VaultError> {
        blocking::run(move || {
            let (old, new) = (Passphrase::new(old), Passphrase::new(new));
            self.recovery().and_then(|mut r| r.change_password(&self.network, &old, &new)).map_err(Into::into)
        })
        .await
    }

    /// Splits the key anew (old shares and recovery code stop working); returns the new code.
    pub async fn refresh_shares(self: Arc<Self>, password: String) -> Result<Option<String>, VaultError> {
        blocking::run(move || {
            let password = Passphrase::new(password);
            self.recovery()
                .and_then(|mut r| r.refresh_shares(&self.network, &password))
                .map(|code| code.map(|c| c.expose_secret().to_owned()))
                .map_err(Into::into)
        })
        .await
    }

    /// The devices enrolled at every guardian.
    pub async fn devices(self: Arc<Self>) -> Result<Vec<GuardianDevice>, VaultError> {
        blocking::run(move || {
            let lists = self.recovery().and_then(|r| r.devices(&self.network)).map_err(VaultError::from);
            lists.map(|lists| {
                lists
                    .into_iter()
                    .flat_map(|l| {
                        let (server, this) = (l.server, l.this_device);
                        l.devices.into_iter().map(move |d| GuardianDevice {
                            server: server.clone(),
                            this_device: d.id == this,
                            id: d.id,
                            name: d.name,
                            enrolled_at_secs: d.enrolled_at_secs,
                        })
                    })
                    .collect()
            })
        })
        .await
    }

    /// Revokes a device at every guardian, by its id (also revoked at the other guardians where
    /// one device carries its name) or by a name exactly one device carries at each guardian (a
    /// name several carry is refused: `InvalidInput`); revoking this device itself needs
    /// `this_device`. Another device's revocation then rotates the backup key, so the revoked
    /// device's copy opens nothing backed up afterwards: the result carries the new recovery code
    /// (show it once; the old one stops working).
    #[uniffi::method(default(this_device = false))]
    pub async fn revoke_device(
        self: Arc<Self>,
        password: String,
        device: String,
        this_device: bool,
    ) -> Result<RevokeResult, VaultError> {
        blocking::run(move || {
            let password = Passphrase::new(password);
            self.recovery()
                .and_then(|mut r| r.revoke_device(&self.network, &password, &device, this_device))
                .map(Into::into)
                .map_err(Into::into)
        })
        .await
    }
}

/// Restoring on a new device from guardian servers.
#[derive(uniffi::Object)]
pub struct Recovery {
    servers: Vec<String>,
    account: String,
    network: HttpNetwork,
}

#[uniffi::export]
impl Recovery {
    /// Recovery of `account` through `servers`, reached as `config` says (`None`: the defaults).
    #[uniffi::constructor(default(config = None))]
    pub fn new(servers: Vec<String>, account: String, config: Option<ServerConfig>) -> Arc<Self> {
        Arc::new(Self { servers, account, network: ServerConfig::network(config) })
    }

    /// Recovers and checks the backup key only (nothing is restored), with `password` and, when
    /// the servers alone are not enough, `recovery_code`.
    #[uniffi::method(default(recovery_code = None))]
    pub async fn check_key(
        self: Arc<Self>,
        password: String,
        recovery_code: Option<String>,
    ) -> Result<RecoveryResult, VaultError> {
        blocking::run(move || {
            let code = recovery_code.map(RecoveryCode::new);
            let password = Passphrase::new(password);
            vault_core::recover_key(&self.network, &self.servers, &self.account, &password, code.as_ref())
                .map(|(_, report)| report.into())
                .map_err(Into::into)
        })
        .await
    }

    /// Restores the newest backup into a new vault at `dir`, protected by `passphrase` and, if
    /// given, this device's platform key `wrapper`; this device is enrolled as `device_name`.
    /// `recovery_code` is needed when the servers alone are not enough; `listener` hears
    /// progress; cancelling `cancel` stops the restore and leaves no vault. Refused
    /// (`CorruptOrTampered`) when no guardian other than the data server attests that the backup
    /// is the newest, unless `accept_unverified_freshness`; the result says which guardians
    /// attested it.
    #[allow(clippy::too_many_arguments)]
    #[uniffi::method(default(
        recovery_code = None,
        wrapper = None,
        listener = None,
        cancel = None,
        accept_unverified_freshness = false
    ))]
    pub async fn restore(
        self: Arc<Self>,
        dir: String,
        password: String,
        passphrase: String,
        device_name: String,
        recovery_code: Option<String>,
        wrapper: Option<Arc<dyn PlatformKeyWrapper>>,
        listener: Option<Arc<dyn ProgressListener>>,
        cancel: Option<Arc<CancelToken>>,
        accept_unverified_freshness: bool,
    ) -> Result<RestoreResult, VaultError> {
        blocking::run(move || {
            let code = recovery_code.map(RecoveryCode::new);
            let (password, passphrase) = (Passphrase::new(password), Passphrase::new(passphrase));
            let foreign = wrapper.map(ForeignWrapper);
            let create = CreateOptions {
                kdf: KdfParams::DEFAULT,
                wrapper: foreign.as_ref().map(|w| w as &dyn vault_core::KeyWrapper),
            };
            let progress = Adapter { listener, cancel };
            let request = GuardianRestore {
                servers: &self.servers,
                account: &self.account,
                password: &password,
                code: code.as_ref(),
                device_name: &device_name,
                accept_unverified_freshness,
            };
            vault_core::restore_from_guardians(
                &self.network,
                &request,
                &PathBuf::from(dir),
                &passphrase,
                create,
                Some(&progress),
            )
            .map(Into::into)
            .map_err(Into::into)
        })
        .await
    }
}
