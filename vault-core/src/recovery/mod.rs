//! Recovery (`docs/recovery.md`): the Backup Root Key split into shares held by guardian
//! servers (each sealed under a key only the backup password reproduces there, through OPAQUE)
//! and, optionally, a recovery code; getting it back on a new device; and the lifecycle (password
//! change, share refresh, device revocation, server-key pinning, safety number).
//!
//! Every flow here talks to guardians only through the [`Guardian`] trait (reached through a
//! [`GuardianNetwork`]) and to backup storage only through [`crate::backup::Transport`]: this
//! crate has no network code. The HTTP implementation is the `vault-core-net` crate; the tests
//! use a scripted in-memory guardian. The vault's side of these flows is [`crate::Recovery`]
//! and [`crate::restore_from_guardians`].

mod alerts;
mod code;
mod enrolment;
mod escrow;
mod guardian;
pub(crate) mod holders;
pub(crate) mod lifecycle;
mod policy;
pub(crate) mod recover;
mod safety;
pub(crate) mod setup;
pub(crate) mod shares;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

pub use crate::store::holders::HolderRecord;
pub use alerts::GuardianEventsReport;
pub use code::RecoveryCode;
pub use guardian::{
    AccessToken, DeletedObject, Guardian, GuardianDevice, GuardianError, GuardianEvent, GuardianEventKind,
    GuardianEvents, GuardianNetwork, GuardianSession, Versioned,
};
pub use holders::{HolderState, SyncReport};
pub use policy::{MAX_SERVERS, RecoveryPolicy};
pub use recover::RecoveryReport;

pub(crate) use alerts::fetch as fetch_guardian_events;
pub(crate) use enrolment::{EnrolledGuardian, Enrolment, copy_key};
#[cfg(fuzzing)]
pub(crate) use escrow::{header as escrow_header, open as open_escrow};
pub(crate) use guardian::{Remote, in_parallel};

use crate::backup::{BackupReport, RestoreReport};

/// The account name as every flow uses it: Unicode NFC, so "José" typed with a combining accent
/// (NFD, as some keyboards and file systems produce) is the same account as the precomposed
/// spelling. The guardians see a keyed hash of this form, and the escrow record's AAD binds its
/// BLAKE3 hash, so every entry point normalises before anything is sent or sealed.
pub(crate) fn account_name(account: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    account.nfc().collect()
}

/// What `vault backup setup` asks for.
pub struct RecoverySetup<'a> {
    /// Guardian servers; the first also holds the backup data.
    pub servers: &'a [String],
    /// The account identifier (the servers see only a keyed hash of it). Normalised to Unicode
    /// NFC before use: NFC and NFD spellings name the same account.
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
#[derive(Debug, Clone, serde::Serialize)]
pub struct GuardianBackupReport {
    /// The backup run on the data server.
    #[serde(flatten)]
    pub backup: BackupReport,
    /// Guardians whose copy of the head record could not be updated (the backup itself is
    /// complete; the next run retries).
    pub head_copies_failed: Vec<String>,
    /// With two or more guardians: the data server and its mirror after the run, each with the
    /// newest generation it fully holds.
    pub holders: Vec<HolderState>,
    /// Objects copied between the data server and its mirror to repair one from the other.
    pub mirror_copied: u64,
    /// What went wrong keeping the mirror (the backup at the data server is complete; the next
    /// run repairs the mirror).
    pub mirror_problems: Vec<String>,
    /// What the guardians' account event logs added to the security-event log (read after the
    /// backup, best effort).
    pub guardian_events: GuardianEventsReport,
}

/// The devices enrolled at one guardian server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GuardianDevices {
    /// The server.
    pub server: String,
    /// This device's identifier there.
    pub this_device: String,
    /// Every enrolled device.
    pub devices: Vec<GuardianDevice>,
}

/// What a restore on a new device did.
#[derive(Debug, serde::Serialize)]
pub struct GuardianRestoreReport {
    /// Recovering the key.
    #[serde(flatten)]
    pub recovery: RecoveryReport,
    /// Restoring the vault.
    #[serde(flatten)]
    pub restore: RestoreReport,
    /// Whether every guardian was reached, so the new vault is enrolled and backs up as before
    /// (otherwise run `vault backup setup` on it).
    pub enrolled: bool,
    /// When enrolled, this device took the backup over (it is now the one device that writes
    /// it): the device id, at the data guardian, of the writer it replaced, when the head named
    /// one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub took_over_from: Option<String>,
    /// Whether a guardian other than the data server attested the restored generation.
    pub freshness: Freshness,
}

/// Whether a restore established that the backup it restored is the newest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Freshness {
    /// These guardians (other than the data server) attest the restored generation.
    Verified {
        /// Their URLs.
        by: Vec<String>,
    },
    /// No guardian other than the data server did (none listed, reachable, or holding a head
    /// record that authenticates): the data server could have hidden newer snapshots. Only
    /// restored when the caller accepted that explicitly.
    Unverified,
}

/// The backup storage of `account` at the guardian `url`, reached with a password login instead
/// of an enrolled device's token: the developer path that restores with an exported backup key
/// (`vault backup restore --backup-key-file`), where no enrolment exists.
pub fn password_transport(
    network: &dyn GuardianNetwork,
    url: &str,
    account: &str,
    password: &crate::Passphrase,
) -> crate::Result<Box<dyn crate::backup::Transport + Send + Sync>> {
    let account = account_name(account);
    let remote = guardian::Remote::connect(network, 0, url)?;
    let session = remote.guardian.login(&account, password).map_err(|e| remote.error(e))?;
    Ok(remote.guardian.transport(&session.token))
}
