//! Plain data of backups and recovery that crosses the boundary by value.

use vault_core::recovery::{
    GuardianBackupReport, GuardianEventsReport, GuardianRestoreReport, RecoveryReport, RecoveryStatus, SetupReport,
};

use crate::records::SecurityEvent;

/// How the vault reaches backup servers. `None` in the constructors: HTTPS checked by the
/// platform's certificate verifier, 30 s timeouts.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct ServerConfig {
    /// Root certificates (DER) to trust instead of the platform's verifier: the server's own CA,
    /// or the public roots an app ships (needed on Android unless the platform verifier is
    /// initialised from the JVM).
    #[uniffi(default)]
    pub root_certificates_der: Vec<Vec<u8>>,
    /// Connect and response timeout in seconds [default: 30].
    #[uniffi(default)]
    pub timeout_secs: Option<u32>,
    /// A login ticket from the app's account service, sent with every password login (servers
    /// configured with an authoriser answer logins only with one). Short-lived: make a new
    /// `ServerConfig` (and `Backup` or `Recovery`) with a fresh ticket for each recovery session.
    #[uniffi(default)]
    pub login_ticket: Option<String>,
}

/// How recovery is set up: which shares recover the backup key. The defaults are the
/// recommended policy: 2 of {one share per server, the recovery code}.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SetupOptions {
    /// Shares needed to recover the key [default: 2].
    #[uniffi(default)]
    pub threshold: Option<u8>,
    /// Whether a recovery code (shown once) holds one share [default: true].
    #[uniffi(default = true)]
    pub recovery_code: bool,
    /// Accept a policy in which one provider alone can recover the key (a weaker mode: one
    /// server without a recovery code, or a threshold of 1) [default: false].
    #[uniffi(default = false)]
    pub allow_single_provider: bool,
}

impl Default for SetupOptions {
    fn default() -> Self {
        Self { threshold: None, recovery_code: true, allow_single_provider: false }
    }
}

impl ServerConfig {
    /// The network `config` (or the defaults) stands for.
    pub(crate) fn network(config: Option<ServerConfig>) -> vault_core_net::HttpNetwork {
        let config = config.unwrap_or_default();
        vault_core_net::HttpNetwork::new(vault_core_net::ClientOptions {
            root_certificates: config.root_certificates_der,
            allow_insecure_http: false,
            timeout: config.timeout_secs.map(|s| std::time::Duration::from_secs(u64::from(s))),
            login_ticket: config.login_ticket.map(vault_core_net::LoginTicket::new),
        })
    }
}

/// What recovery setup (or a share refresh) produced.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SetupResult {
    /// The policy, e.g. "2 of {2 servers, recovery code}".
    pub policy: String,
    /// Shares needed.
    pub threshold: u8,
    /// Shares made.
    pub shares: u8,
    /// Whether one provider alone can recover the key (weaker mode, only when allowed).
    pub single_provider: bool,
    /// The recovery code: show it once, never store it.
    pub recovery_code: Option<String>,
    /// The safety number to compare between the user's devices.
    pub safety_number: String,
}

impl From<SetupReport> for SetupResult {
    fn from(r: SetupReport) -> Self {
        Self {
            policy: r.policy.describe(),
            threshold: r.policy.threshold,
            shares: r.policy.shares(),
            single_provider: r.policy.single_provider(),
            recovery_code: r.recovery_code.map(|c| c.expose_secret().to_owned()),
            safety_number: r.safety_number,
        }
    }
}

/// What a backup run did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct BackupResult {
    /// The generation written.
    pub generation: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Chunks uploaded.
    pub new_chunks: u64,
    /// Chunks already stored.
    pub reused_chunks: u64,
    /// Media items uploaded.
    pub media_uploaded: u64,
    /// Media items already stored.
    pub media_reused: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Guardians whose head copy could not be updated (retried next run).
    pub head_copies_failed: Vec<String>,
    /// What the guardians' account event logs added to the security log after the run
    /// (recovery attempts, delays, escrow reads, device changes).
    pub guardian_events: GuardianEventsResult,
    /// With two or more guardians: the data server and its mirror after the run.
    pub holders: Vec<BackupHolder>,
    /// What went wrong keeping the mirror (the backup itself is complete; the next run repairs).
    pub mirror_problems: Vec<String>,
}

/// One server holding the backup (the data server or its mirror).
#[derive(Debug, Clone, uniffi::Record)]
pub struct BackupHolder {
    /// The server.
    pub server: String,
    /// The newest generation it fully holds, if any.
    pub generation: Option<u64>,
    /// Objects of the newest generation it lacks.
    pub missing: u64,
}

impl From<GuardianBackupReport> for BackupResult {
    fn from(r: GuardianBackupReport) -> Self {
        let mut out = Self::from(r.backup);
        out.head_copies_failed = r.head_copies_failed;
        out.guardian_events = r.guardian_events.into();
        out.holders = r
            .holders
            .into_iter()
            .map(|h| BackupHolder { server: h.server, generation: h.generation, missing: h.missing })
            .collect();
        out.mirror_problems = r.mirror_problems;
        out
    }
}

/// What reading the guardians' account event logs added to the vault's security log.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct GuardianEventsResult {
    /// The security events added (kinds `guardian_*`), oldest first.
    pub new_events: Vec<SecurityEvent>,
    /// Guardians whose log could not be read (unreachable, or this device's token revoked
    /// there), by URL.
    pub unread_guardians: Vec<String>,
}

impl From<GuardianEventsReport> for GuardianEventsResult {
    fn from(r: GuardianEventsReport) -> Self {
        Self {
            new_events: r.new_events.into_iter().map(SecurityEvent::from).collect(),
            unread_guardians: r.unread.into_iter().map(|(url, _)| url).collect(),
        }
    }
}

impl From<vault_core::backup::BackupReport> for BackupResult {
    fn from(b: vault_core::backup::BackupReport) -> Self {
        Self {
            generation: b.generation,
            uploaded_bytes: b.uploaded_bytes,
            new_chunks: b.new_chunks,
            reused_chunks: b.reused_chunks,
            media_uploaded: b.media_uploaded,
            media_reused: b.media_reused,
            duration_ms: u64::try_from(b.duration.as_millis()).unwrap_or(u64::MAX),
            head_copies_failed: Vec::new(),
            guardian_events: GuardianEventsResult::default(),
            holders: Vec::new(),
            mirror_problems: Vec::new(),
        }
    }
}

/// The vault's recovery enrolment.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RecoveryInfo {
    /// The account.
    pub account: String,
    /// The policy.
    pub policy: String,
    /// Whether one provider alone can recover the key.
    pub single_provider: bool,
    /// The guardian servers (the first holds the backup data).
    pub servers: Vec<String>,
    /// The safety number.
    pub safety_number: String,
}

impl From<RecoveryStatus> for RecoveryInfo {
    fn from(s: RecoveryStatus) -> Self {
        Self {
            single_provider: s.policy.single_provider(),
            policy: s.policy.describe(),
            account: s.account,
            servers: s.servers,
            safety_number: s.safety_number,
        }
    }
}

/// One device enrolled at a guardian server.
#[derive(Debug, Clone, uniffi::Record)]
pub struct GuardianDevice {
    /// The server.
    pub server: String,
    /// The device identifier there.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Enrolment time, seconds since the epoch.
    pub enrolled_at_secs: u64,
    /// Whether it is this device.
    pub this_device: bool,
}

/// A snapshot the backup keeps.
#[derive(Debug, Clone, uniffi::Record)]
pub struct Snapshot {
    /// Its generation.
    pub generation: u64,
    /// Creation time, ms since the epoch.
    pub created_at_ms: i64,
    /// Length of its database export.
    pub export_bytes: u64,
    /// Media items in it.
    pub media_count: u32,
}

/// What a key recovery used.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RecoveryResult {
    /// Servers whose share was used.
    pub servers_used: Vec<String>,
    /// Servers that failed, with the reason.
    pub servers_failed: Vec<String>,
    /// Whether the recovery code was needed.
    pub recovery_code_used: bool,
    /// The newest generation any guardian attests.
    pub newest_generation: u64,
    /// Time from the first login to the checked key, in milliseconds.
    pub duration_ms: u64,
}

impl From<RecoveryReport> for RecoveryResult {
    fn from(r: RecoveryReport) -> Self {
        Self {
            servers_used: r.servers_used,
            servers_failed: r.servers_failed,
            recovery_code_used: r.recovery_code_used,
            newest_generation: r.newest_generation,
            duration_ms: u64::try_from(r.duration.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// What a restore on a new device did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RestoreResult {
    /// The generation restored.
    pub generation: u64,
    /// Messages restored.
    pub messages: u64,
    /// Media items restored.
    pub media: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Recovering the key.
    pub recovery: RecoveryResult,
    /// Whether every guardian was reached and the new vault backs up as before.
    pub enrolled: bool,
    /// The guardians (other than the data server) that attest the restored generation is the
    /// newest; empty when the restore accepted an unverified backup.
    pub freshness_verified_by: Vec<String>,
}

/// What a device revocation did.
#[derive(Debug, Clone, uniffi::Record)]
pub struct RevokeResult {
    /// How many enrolments were revoked.
    pub revoked: u32,
    /// Whether the backup key was rotated (not when this device revoked itself).
    pub key_rotated: bool,
    /// The new recovery code after a rotation: show it once, never store it.
    pub recovery_code: Option<String>,
}

impl From<vault_core::RevokeReport> for RevokeResult {
    fn from(r: vault_core::RevokeReport) -> Self {
        Self {
            revoked: u32::try_from(r.revoked).unwrap_or(u32::MAX),
            key_rotated: r.key_rotated,
            recovery_code: r.recovery_code.map(|c| c.expose_secret().to_owned()),
        }
    }
}

impl From<GuardianRestoreReport> for RestoreResult {
    fn from(r: GuardianRestoreReport) -> Self {
        Self {
            generation: r.restore.generation,
            messages: r.restore.messages,
            media: r.restore.media,
            downloaded_bytes: r.restore.downloaded_bytes,
            recovery: r.recovery.into(),
            enrolled: r.enrolled,
            freshness_verified_by: match r.freshness {
                vault_core::recovery::Freshness::Verified { by } => by,
                vault_core::recovery::Freshness::Unverified => Vec::new(),
            },
        }
    }
}
