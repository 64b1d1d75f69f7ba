//! Getting the Backup Root Key back on a new device (`docs/recovery.md`): log in to the guardian
//! servers at once, open their escrow records, add the recovery code's share, combine, check the
//! key against the key-check value, and take the newest generation any guardian attests.

use crate::error::DataKind;
use std::time::{Duration, Instant};

use super::code::RecoveryCode;
use super::escrow::{self, EscrowHeader};
use super::guardian::{GuardianError, GuardianNetwork, GuardianSession, Remote, in_parallel};
use super::policy::RecoveryPolicy;
use super::shares::{self, Share};
use crate::Passphrase;
use crate::backup::BackupKeys;
use crate::backup::format::Head;
use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// What a recovery used and met.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Servers whose share was used or checked.
    pub servers_used: Vec<String>,
    /// Servers that failed, each with the reason (no secrets).
    pub servers_failed: Vec<String>,
    /// Whether the recovery code's share was needed.
    pub recovery_code_used: bool,
    /// The policy the escrow records state.
    #[serde(skip)]
    pub policy: Option<RecoveryPolicy>,
    /// The newest generation any guardian attests.
    pub newest_generation: u64,
    /// Time from the first login to the checked key.
    #[serde(rename = "duration_ms", serialize_with = "crate::progress::serialize_millis")]
    pub duration: Duration,
}

/// One guardian reached: its session, escrow header and share, and its head record.
pub(crate) struct Reached {
    pub(crate) remote: Remote,
    pub(crate) session: GuardianSession,
    pub(crate) header: EscrowHeader,
    pub(crate) share: Share,
    pub(crate) head: Option<Vec<u8>>,
}

/// The recovered key and what came with it.
pub(crate) struct Recovered {
    pub(crate) key: SecretKey,
    pub(crate) share_set: [u8; 16],
    pub(crate) policy: RecoveryPolicy,
    /// The newest generation and manifest hash the guardians attest.
    pub(crate) newest: Option<(u64, [u8; 32])>,
    pub(crate) reached: Vec<Reached>,
    pub(crate) report: RecoveryReport,
}

/// Logs in to one server and reads what recovery needs from it.
fn reach(
    network: &dyn GuardianNetwork,
    index: usize,
    url: &str,
    account: &str,
    password: &Passphrase,
) -> Result<Reached> {
    let remote = Remote::connect(network, index, url)?;
    let at = |e| remote.error(e);
    let session = remote.guardian.login(account, password).map_err(at)?;
    let record =
        remote.guardian.escrow(&session.token).map_err(at)?.ok_or_else(|| at(GuardianError::NoEscrowRecord))?;
    let (header, share) = escrow::open(&record.bytes, session.export_key.expose_secret(), account, &session.server_key)
        .map_err(|e| match e {
            Error::Integrity { problem: m, .. } => {
                Error::Integrity { object: DataKind::EscrowRecord, problem: format!("{url}: {m}") }
            }
            other => other,
        })?;
    let head = remote
        .guardian
        .transport(&session.token)
        .get_head()
        .map_err(|e| Error::BackupStorage(format!("{url}: reading the head record: {e}")))?
        .map(|(bytes, _)| bytes);
    Ok(Reached { remote, session, header, share, head })
}

/// Recovers the Backup Root Key from `servers` (and the recovery code, if given).
pub(crate) fn recover(
    network: &dyn GuardianNetwork,
    servers: &[String],
    account: &str,
    password: &Passphrase,
    code: Option<&RecoveryCode>,
) -> Result<Recovered> {
    if servers.is_empty() || servers.len() > super::policy::MAX_SERVERS {
        return Err(Error::InvalidInput(format!("give 1 to {} servers", super::policy::MAX_SERVERS)));
    }
    let mut unique = servers.to_vec();
    unique.sort();
    unique.dedup();
    if unique.len() != servers.len() {
        return Err(Error::InvalidInput("a server is given twice".into()));
    }
    // A typo in the code is caught before any login is spent.
    let code_share = code.map(RecoveryCode::decode).transpose()?;
    let started = Instant::now();
    let positions: Vec<usize> = (0..servers.len()).collect();
    let outcomes = in_parallel(&positions, |&index| reach(network, index, &servers[index], account, password));

    let mut reached = Vec::new();
    let mut failed = Vec::new();
    let mut refused_password = false;
    let mut damaged = false;
    for (url, outcome) in servers.iter().zip(outcomes) {
        match outcome {
            Ok(r) => reached.push(r),
            Err(e) => {
                refused_password |= matches!(
                    e,
                    Error::BackupAuthentication(_)
                        | Error::Guardian { error: GuardianError::LoginRefused | GuardianError::TokenRefused, .. }
                );
                // A guardian whose record does not open, or is missing, is damaged (or hostile).
                damaged |= matches!(
                    e,
                    Error::Integrity { .. }
                        | Error::UnsupportedVersion { .. }
                        | Error::Guardian { error: GuardianError::NoEscrowRecord, .. }
                );
                let message = match e {
                    Error::BackupAuthentication(m) | Error::BackupStorage(m) => m,
                    other => other.to_string(),
                };
                // Most messages name the server already.
                failed.push(if message.contains(url.as_str()) { message } else { format!("{url}: {message}") });
            }
        }
    }
    // Every record must belong to one split; a server replaying a record of an older split is
    // set aside (the newest split is the one most servers hold, ties to the first given).
    let (mut share_set, mut most) = ([0u8; 16], 0);
    for r in &reached {
        let holding = reached.iter().filter(|other| other.header.share_set == r.header.share_set).count();
        if holding > most {
            (share_set, most) = (r.header.share_set, holding);
        }
    }
    let (current, stale): (Vec<Reached>, Vec<Reached>) =
        reached.into_iter().partition(|r| r.header.share_set == share_set);
    for r in &stale {
        failed.push(format!("{}: its escrow record belongs to an older split of the key (ignored)", r.remote.url));
    }
    let reached = current;
    let policy = reached.first().map(|r| r.header.policy);
    let mut report = RecoveryReport { servers_failed: failed, policy, ..RecoveryReport::default() };

    let code_given = code_share.is_some();
    let not_enough = |report: &RecoveryReport, needed: Option<u8>, available: usize| {
        let code_note = if code_given { "" } else { "; no recovery code given" };
        let failures = report.servers_failed.join("; ");
        let message = match needed {
            None => format!("no server could be used: {failures}"),
            Some(needed) if failures.is_empty() => {
                format!("{needed} shares are needed, {available} available{code_note}")
            }
            Some(needed) => format!("{needed} shares are needed, {available} available ({failures}){code_note}"),
        };
        if refused_password {
            Error::BackupAuthentication(message)
        } else if damaged {
            Error::Integrity { object: DataKind::EscrowRecord, problem: message }
        } else if report.servers_failed.is_empty() {
            // Everyone answered: the caller gave too few servers and no (or no usable) code.
            Error::InvalidInput(message)
        } else {
            Error::BackupStorage(message)
        }
    };
    let Some(policy) = policy else {
        return Err(not_enough(&report, None, usize::from(code_share.is_some())));
    };
    if reached.iter().any(|r| r.header.policy != policy || r.header.key_check != reached[0].header.key_check) {
        return Err(Error::Integrity {
            object: DataKind::EscrowRecord,
            problem: "the guardians' escrow records disagree about the policy".into(),
        });
    }
    let key_check = reached[0].header.key_check;
    let threshold = usize::from(policy.threshold);
    let server_shares: Vec<&Share> = reached.iter().map(|r| &r.share).collect();
    let checks = |key: &SecretKey| BackupKeys::derive(key).key_check() == key_check;

    let code_share = match (code_share, policy.code_index()) {
        (Some(share), Some(index)) if share.index == index => Some(share),
        (Some(_), _) => {
            return Err(Error::BackupAuthentication(
                "the recovery code does not belong to this account's shares".into(),
            ));
        }
        (None, _) => None,
    };
    let key = if server_shares.len() >= threshold {
        let key = shares::combine(&server_shares[..threshold], policy.threshold)?;
        if !checks(&key) {
            return Err(Error::Integrity {
                object: DataKind::EscrowRecord,
                problem: "the guardians' shares do not combine to the key their records name".into(),
            });
        }
        key
    } else if let Some(code) = &code_share
        && server_shares.len() + 1 >= threshold
    {
        let mut set = server_shares[..threshold - 1].to_vec();
        set.push(code);
        let key = shares::combine(&set, policy.threshold)?;
        if !checks(&key) {
            return Err(Error::BackupAuthentication(
                "the recovery code does not match this account's shares (a wrong code, or one replaced by a refresh)"
                    .into(),
            ));
        }
        report.recovery_code_used = true;
        key
    } else {
        return Err(not_enough(
            &report,
            Some(policy.threshold),
            server_shares.len() + usize::from(code_share.is_some()),
        ));
    };

    let keys = BackupKeys::derive(&key);
    let mut newest: Option<(u64, [u8; 32])> = None;
    for r in &reached {
        if let Some(bytes) = &r.head {
            let head = Head::open(&keys, bytes).map_err(|_| Error::Integrity {
                object: DataKind::BackupHead,
                problem: format!("{}: the head record does not authenticate", r.remote.url),
            })?;
            if newest.is_none_or(|(g, _)| head.generation > g) {
                newest = Some((head.generation, head.manifest_hash));
            }
        }
    }
    report.servers_used = reached.iter().map(|r| r.remote.url.clone()).collect();
    report.newest_generation = newest.map_or(0, |(g, _)| g);
    report.duration = started.elapsed();
    Ok(Recovered { key, share_set, policy, newest, reached, report })
}
