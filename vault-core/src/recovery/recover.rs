//! Getting the Backup Root Key back on a new device (`docs/recovery.md`): log in to the guardian
//! servers at once, open their escrow records, add the recovery code's share, combine, check the
//! key against the key-check value, and take the newest generation any guardian attests.

use crate::error::DataKind;
use std::time::{Duration, Instant};

use super::code::RecoveryCode;
use super::escrow::{self, EscrowHeader, ListedGuardian};
use super::guardian::{GuardianError, GuardianNetwork, GuardianSession, Remote, in_parallel};
use super::policy::RecoveryPolicy;
use super::shares::{self, Share};
use crate::Passphrase;
use crate::backup::keys::key_check_of;
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
    /// The newest generation attested: by any guardian reached, for a key-only recovery; by the
    /// guardians other than the data server, for a restore (0: none).
    pub newest_generation: u64,
    /// Time from the first login to the checked key.
    #[serde(rename = "duration_ms", serialize_with = "crate::progress::serialize_millis")]
    pub duration: Duration,
}

/// One guardian reached: its session, escrow header, share and guardian list, and its head
/// record.
pub(crate) struct Reached {
    pub(crate) remote: Remote,
    pub(crate) session: GuardianSession,
    pub(crate) header: EscrowHeader,
    pub(crate) share: Share,
    pub(crate) guardians: Vec<ListedGuardian>,
    pub(crate) head: Option<Vec<u8>>,
}

/// The recovered key and what came with it.
pub(crate) struct Recovered {
    pub(crate) key: SecretKey,
    pub(crate) share_set: [u8; 16],
    pub(crate) policy: RecoveryPolicy,
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
    let opened = escrow::open(&record.bytes, session.export_key.expose_secret(), account, &session.server_key)
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
    Ok(Reached { remote, session, header: opened.header, share: opened.share, guardians: opened.guardians, head })
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
    let account = &super::account_name(account);
    // A typo in the code is caught before any login is spent.
    let code_share = code.map(RecoveryCode::decode).transpose()?;
    let started = Instant::now();
    let positions: Vec<usize> = (0..servers.len()).collect();
    let outcomes = in_parallel(&positions, |&index| reach(network, index, &servers[index], account, password));
    let mut found = combine(servers, outcomes, code_share.as_ref())?;
    // The escrow records name every guardian of the account: the ones not given are reached too
    // (a password login), for their head records (freshness) and so the new device is enrolled
    // everywhere. Each must present the key the records pin and hold a share of the same split.
    let missing: Vec<ListedGuardian> = found.listed.iter().filter(|g| !servers.contains(&g.url)).cloned().collect();
    let offset = servers.len();
    let outcomes = in_parallel(&(0..missing.len()).collect::<Vec<_>>(), |&i| {
        reach(network, offset + i, &missing[i].url, account, password)
    });
    for (listed, outcome) in missing.iter().zip(outcomes) {
        match outcome {
            Ok(r) if !found.fits(&r) => found.report.servers_failed.push(format!(
                "{}: its escrow record belongs to another split or key epoch than the one recovered (stale; ignored)",
                listed.url
            )),
            Ok(r) => found.reached.push(r),
            Err(e) => found.report.servers_failed.push(describe(&listed.url, e)),
        }
    }
    // A guardian whose key is not the one the records pin is not trusted for anything.
    let listed = found.listed.clone();
    let (trusted, impostors): (Vec<Reached>, Vec<Reached>) =
        std::mem::take(&mut found.reached).into_iter().partition(|r| {
            listed.iter().find(|g| g.url == r.remote.url).is_none_or(|g| g.server_key == r.session.server_key)
        });
    for r in impostors {
        found.report.servers_failed.push(format!(
            "{}: its server key differs from the one the escrow records pin (a replaced or impersonated server; ignored)",
            r.remote.url
        ));
    }
    found.reached = trusted;
    found.reached.sort_by_key(|r| r.header.index);
    found.report.servers_used = found.reached.iter().map(|r| r.remote.url.clone()).collect();
    found.report.duration = started.elapsed();
    Ok(found.into_recovered())
}

/// The newest generation (and manifest hash) the guardians other than the data guardian
/// (position `data` among those reached) attest, and whether one of them attests the data
/// guardian's own generation (`data_generation`), which is what establishes that the data
/// guardian is not hiding newer snapshots. A head record that does not authenticate is no
/// attestation: it is reported and skipped.
pub(crate) fn attestations(
    reached: &[Reached],
    keys: &crate::backup::BackupKeys,
    data: usize,
    data_generation: Option<u64>,
) -> Attestations {
    let mut newest: Option<(u64, [u8; 32])> = None;
    let mut by = Vec::new();
    let mut unauthentic = Vec::new();
    // The data guardian never witnesses its own head, however it was reached: a second URL of
    // the same server (another spelling, a proxy) has its key and its holds-data record.
    let data_key = reached.get(data).map(|r| r.session.server_key.as_slice());
    for (position, r) in reached.iter().enumerate() {
        let is_data_server = data_key.is_some_and(|key| r.header.holds_data || r.session.server_key.as_slice() == key);
        if position == data || is_data_server {
            continue;
        }
        let Some(bytes) = &r.head else { continue };
        match crate::backup::format::Head::open(keys, bytes) {
            Ok(head) => {
                if newest.is_none_or(|(g, _)| head.generation > g) {
                    newest = Some((head.generation, head.manifest_hash));
                }
                if data_generation.is_some_and(|g| head.generation >= g) {
                    by.push(r.remote.url.clone());
                }
            }
            Err(_) => unauthentic.push(format!(
                "{}: its head record does not authenticate under the recovered key (ignored)",
                r.remote.url
            )),
        }
    }
    let freshness = if by.is_empty() { super::Freshness::Unverified } else { super::Freshness::Verified { by } };
    Attestations { newest, freshness, unauthentic }
}

/// What the guardians other than the data guardian attest ([`attestations`]).
pub(crate) struct Attestations {
    /// The newest generation and manifest hash any of them attests.
    pub(crate) newest: Option<(u64, [u8; 32])>,
    /// Whether one of them attests the data guardian's own generation.
    pub(crate) freshness: super::Freshness,
    /// The guardians whose head record did not authenticate, with the reason.
    pub(crate) unauthentic: Vec<String>,
}

/// Why a guardian could not be used, naming it once.
fn describe(url: &str, e: Error) -> String {
    let message = match e {
        Error::BackupAuthentication(m) | Error::BackupStorage(m) => m,
        other => other.to_string(),
    };
    if message.contains(url) { message } else { format!("{url}: {message}") }
}

/// The key a combination recovered, with the guardians it used and what it can check.
struct Combined {
    key: SecretKey,
    share_set: [u8; 16],
    policy: RecoveryPolicy,
    key_check: [u8; 16],
    listed: Vec<ListedGuardian>,
    /// Shares known to lie on the key's polynomial (the consistent guardians', and the code's
    /// when it fits), for checking a guardian reached later.
    confirmed: Vec<Share>,
    reached: Vec<Reached>,
    report: RecoveryReport,
}

impl Combined {
    /// Whether a guardian reached after the combination holds a share of the same split.
    fn fits(&self, r: &Reached) -> bool {
        if r.header.share_set != self.share_set
            || r.header.key_check != self.key_check
            || r.header.policy != self.policy
        {
            return false;
        }
        let t = usize::from(self.policy.threshold.max(1));
        if t == 1 {
            return r.share.value.expose_secret() == self.key.expose_secret();
        }
        let mut set: Vec<&Share> = self.confirmed.iter().filter(|s| s.index != r.share.index).take(t - 1).collect();
        if set.len() < t - 1 {
            return false;
        }
        set.push(&r.share);
        shares::combine(&set, self.policy.threshold).is_ok_and(|key| key_check_of(&key) == self.key_check)
    }

    fn into_recovered(self) -> Recovered {
        Recovered {
            key: self.key,
            share_set: self.share_set,
            policy: self.policy,
            reached: self.reached,
            report: self.report,
        }
    }
}

/// Combines the shares of the guardians reached (and the code's): groups them by split, tries
/// each, and keeps the newest key epoch that recovers.
fn combine(servers: &[String], outcomes: Vec<Result<Reached>>, code_share: Option<&Share>) -> Result<Combined> {
    let mut reached = Vec::new();
    let mut failed = Vec::new();
    let mut refused_password = false;
    let mut damaged = false;
    // A guardian that said to wait, or wants a login ticket: named when no password was refused.
    let mut blocked = None;
    for (url, outcome) in servers.iter().zip(outcomes) {
        match outcome {
            Ok(r) => reached.push(r),
            Err(e) => {
                if let Error::Guardian {
                    index,
                    url,
                    error: error @ (GuardianError::LoginDelayed { .. } | GuardianError::TicketRequired),
                } = &e
                {
                    blocked.get_or_insert_with(|| Error::Guardian {
                        index: *index,
                        url: url.clone(),
                        error: error.clone(),
                    });
                }
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
                failed.push(describe(url, e));
            }
        }
    }
    // Group the records by split (share set and the header it states). The recovery code names
    // no split, so it is tried with every group whose policy gives it its index; within a group
    // every subset of threshold size is tried (at most C(9, t) of them) until one combines to the
    // group's key check, and every other share of the group is checked against that key.
    let mut groups: Vec<Group> = Vec::new();
    for (position, r) in reached.iter().enumerate() {
        let h = &r.header;
        match groups.iter_mut().find(|g| {
            g.share_set == h.share_set && g.policy == h.policy && g.key_check == h.key_check && g.epoch == h.epoch
        }) {
            Some(group) => group.members.push(position),
            None => groups.push(Group {
                share_set: h.share_set,
                policy: h.policy,
                key_check: h.key_check,
                epoch: h.epoch,
                members: vec![position],
            }),
        }
    }
    let tried: Vec<Tried> = groups
        .iter()
        .map(|g| {
            let servers: Vec<&Share> = g.members.iter().map(|&m| &reached[m].share).collect();
            let code = code_share.filter(|c| g.policy.code_index() == Some(c.index));
            try_group(&servers, code, g.policy.threshold, &g.key_check)
        })
        .collect();
    // Splits of different key epochs recover different keys: the newest epoch wins (an older
    // one is a guardian's stale or replayed record, whose key opens nothing written since).
    // Within an epoch the choice decides only which guardians are used and enrolled: the split
    // whose key most guardians' shares confirm, then the one the code belongs to, then the first.
    let winner = tried
        .iter()
        .enumerate()
        .filter_map(|(i, t)| if let Tried::Found(found) = t { Some((i, found)) } else { None })
        .max_by_key(|(i, found)| {
            (
                groups[*i].epoch,
                found.servers_consistent.iter().filter(|c| **c).count(),
                found.code_consistent,
                std::cmp::Reverse(*i),
            )
        })
        .map(|(i, _)| i);

    let mut slots: Vec<Option<Reached>> = reached.into_iter().map(Some).collect();
    let Some(w) = winner else {
        let report = RecoveryReport { servers_failed: failed, ..RecoveryReport::default() };
        let outcomes: Vec<(&Group, Tried)> = groups.iter().zip(tried).collect();
        let why = Failures { refused_password, damaged, blocked };
        return Err(no_key(&report, &outcomes, code_share.is_some(), why, &slots));
    };
    let mut current = Vec::new();
    let mut found = None;
    for (i, (group, outcome)) in groups.iter().zip(tried).enumerate() {
        match outcome {
            Tried::Found(f) if i == w => {
                for (&member, &consistent) in group.members.iter().zip(&f.servers_consistent) {
                    let Some(r) = slots[member].take() else { continue };
                    if consistent {
                        current.push((member, r));
                    } else {
                        failed.push(format!(
                            "{}: its share does not combine to the key the other shares recover (ignored)",
                            r.remote.url
                        ));
                    }
                }
                found = Some(f);
            }
            _ => {
                let why = if groups[w].share_set == group.share_set {
                    "its escrow record disagrees with the other records of its split about the policy or key (ignored)"
                } else if group.epoch < groups[w].epoch {
                    "its escrow record is of an older key epoch than the one recovered (stale: from before a new \
                     recovery code, share refresh or device revocation; ignored)"
                } else if group.epoch > groups[w].epoch {
                    // Too few shares of the newer key were at hand (a rotation that stopped part way,
                    // or the new recovery code not given): the older key is used, and opens nothing
                    // written under the newer one.
                    "its escrow record is of a NEWER key epoch than the one recovered, whose key the shares at \
                     hand do not reach (a rotation that stopped part way, or the new recovery code is needed); \
                     ignored: the older key opens nothing backed up under the newer one"
                } else {
                    "its escrow record belongs to another split of the key than the one that recovered it \
                     (stale: from before a share refresh or a new setup; ignored)"
                };
                for &member in &group.members {
                    if let Some(r) = slots[member].take() {
                        failed.push(format!("{}: {why}", r.remote.url));
                    }
                }
            }
        }
    }
    let found = found.ok_or(Error::Internal("the winning split was not found"))?;
    current.sort_by_key(|(position, _)| *position);
    let reached: Vec<Reached> = current.into_iter().map(|(_, r)| r).collect();
    let (share_set, policy, key_check) = (groups[w].share_set, groups[w].policy, groups[w].key_check);
    let mut report = RecoveryReport { servers_failed: failed, ..RecoveryReport::default() };
    report.policy = Some(policy);
    report.recovery_code_used = found.code_used;
    let listed = reached.iter().map(|r| r.guardians.clone()).find(|l| !l.is_empty()).unwrap_or_default();
    let mut confirmed: Vec<Share> =
        reached.iter().map(|r| Share { index: r.share.index, value: super::copy_key(&r.share.value) }).collect();
    if found.code_consistent
        && let Some(code) = code_share
    {
        confirmed.push(Share { index: code.index, value: super::copy_key(&code.value) });
    }
    Ok(Combined { key: found.key, share_set, policy, key_check, listed, confirmed, reached, report })
}

/// The records of one split among the guardians reached: the header they state, and their
/// positions in the list of guardians reached.
struct Group {
    share_set: [u8; 16],
    policy: RecoveryPolicy,
    key_check: [u8; 16],
    epoch: u32,
    members: Vec<usize>,
}

/// A split's key, recovered.
struct Found {
    key: SecretKey,
    /// Per member of the group: whether its share lies on the recovered key's polynomial.
    servers_consistent: Vec<bool>,
    /// Whether the recovery code's share does (false when no code was given, or it is not for
    /// this split's policy).
    code_consistent: bool,
    /// Whether the subset that recovered the key needed the code.
    code_used: bool,
}

/// What trying one split gave.
enum Tried {
    Found(Found),
    /// Fewer shares than the threshold (counting the code when it fits the policy).
    Short {
        available: usize,
    },
    /// Enough guardians' shares, and no subset of them combines to the key check: the guardians'
    /// records are damaged (or forged).
    ServersFail,
    /// Too few guardians' shares alone, and no subset with the code combines to the key check:
    /// the code is wrong for this split.
    CodeFail,
}

/// Every `k`-subset of `0..n`, in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn extend(from: usize, n: usize, k: usize, current: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if current.len() == k {
            out.push(current.clone());
            return;
        }
        for i in from..n {
            if n - i < k - current.len() {
                break;
            }
            current.push(i);
            extend(i + 1, n, k, current, out);
            current.pop();
        }
    }
    let mut out = Vec::new();
    if k <= n {
        extend(0, n, k, &mut Vec::with_capacity(k), &mut out);
    }
    out
}

/// Tries one split: every `threshold`-subset of the guardians' shares first, then every one with
/// the code's share, until one combines to `key_check`; then checks every other share against the
/// key found.
fn try_group(servers: &[&Share], code: Option<&Share>, threshold: u8, key_check: &[u8; 16]) -> Tried {
    let t = usize::from(threshold.max(1));
    let checks = |set: &[&Share]| shares::combine(set, threshold).ok().filter(|key| key_check_of(key) == *key_check);
    let mut winning: Option<(SecretKey, Vec<&Share>, bool)> = None;
    for subset in subsets(servers.len(), t) {
        let set: Vec<&Share> = subset.iter().map(|&i| servers[i]).collect();
        if let Some(key) = checks(&set) {
            winning = Some((key, set, false));
            break;
        }
    }
    if winning.is_none()
        && let Some(code) = code
    {
        for subset in subsets(servers.len(), t - 1) {
            let mut set: Vec<&Share> = subset.iter().map(|&i| servers[i]).collect();
            set.push(code);
            if let Some(key) = checks(&set) {
                winning = Some((key, set, true));
                break;
            }
        }
    }
    let Some((key, set, code_used)) = winning else {
        return if servers.len() >= t {
            Tried::ServersFail
        } else if code.is_some() && servers.len() + 1 >= t {
            Tried::CodeFail
        } else {
            Tried::Short { available: servers.len() + usize::from(code.is_some()) }
        };
    };
    // A share lies on the key's polynomial if it equals the winning subset's share of its index,
    // or if it and `t - 1` others of the subset combine to the same key.
    let consistent = |share: &Share| {
        if let Some(same) = set.iter().find(|s| s.index == share.index) {
            return same.value.expose_secret() == share.value.expose_secret();
        }
        let mut with: Vec<&Share> = set.iter().take(t - 1).copied().collect();
        with.push(share);
        checks(&with).is_some()
    };
    let servers_consistent = servers.iter().map(|s| consistent(s)).collect();
    let code_consistent = code.is_some_and(consistent);
    Tried::Found(Found { key, servers_consistent, code_consistent, code_used })
}

/// The error when no split recovered the key, blaming the part that failed: the guardians'
/// records when enough of them do not combine, the recovery code when it fails with every split
/// it could complete, otherwise too few shares (with why the missing guardians failed).
/// What the guardians that failed had in common.
struct Failures {
    /// One refused the password (or this device's token).
    refused_password: bool,
    /// One's record did not open or was missing.
    damaged: bool,
    /// The first that said to wait before the next login, or wanted a login ticket.
    blocked: Option<Error>,
}

fn no_key(
    report: &RecoveryReport,
    outcomes: &[(&Group, Tried)],
    code_given: bool,
    why: Failures,
    slots: &[Option<Reached>],
) -> Error {
    let urls = |group: &Group| -> String {
        group
            .members
            .iter()
            .filter_map(|&m| slots[m].as_ref().map(|r| r.remote.url.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some((group, _)) = outcomes.iter().find(|(_, t)| matches!(t, Tried::ServersFail)) {
        return Error::Integrity {
            object: DataKind::EscrowRecord,
            problem: format!("the guardians' shares ({}) do not combine to the key their records name", urls(group)),
        };
    }
    if code_given
        && outcomes.iter().any(|(_, t)| matches!(t, Tried::CodeFail))
        && outcomes.iter().all(|(g, t)| match t {
            Tried::CodeFail => true,
            // The code did not fit this split's policy at all.
            Tried::Short { available } => *available == g.members.len(),
            _ => false,
        })
    {
        return Error::BackupAuthentication(
            "the recovery code does not match this account's shares (a wrong code, or one replaced by a refresh)"
                .into(),
        );
    }
    if code_given
        && !outcomes.is_empty()
        && outcomes.iter().all(|(g, t)| matches!(t, Tried::Short { available } if *available == g.members.len()))
    {
        return Error::BackupAuthentication("the recovery code does not belong to this account's shares".into());
    }
    // The split closest to the threshold says how many shares were missing.
    let closest = outcomes
        .iter()
        .filter_map(
            |(g, t)| if let Tried::Short { available } = t { Some((g.policy.threshold, *available)) } else { None },
        )
        .max_by_key(|(threshold, available)| (*available, std::cmp::Reverse(*threshold)));
    let code_note = if code_given { "" } else { "; no recovery code given" };
    let mut failures = report.servers_failed.clone();
    if outcomes.len() > 1 {
        let splits: Vec<String> = outcomes.iter().map(|(g, _)| format!("[{}]", urls(g))).collect();
        failures.push(format!("the guardians hold records of different splits of the key: {}", splits.join(", ")));
    }
    let nobody_failed = failures.is_empty();
    let failures = failures.join("; ");
    let message = match closest {
        None => format!("no server could be used: {failures}"),
        Some((needed, available)) if failures.is_empty() => {
            format!("{needed} shares are needed, {available} available{code_note}")
        }
        Some((needed, available)) => {
            format!("{needed} shares are needed, {available} available ({failures}){code_note}")
        }
    };
    if why.refused_password {
        Error::BackupAuthentication(message)
    } else if let Some(blocked) = why.blocked {
        blocked
    } else if why.damaged {
        Error::Integrity { object: DataKind::EscrowRecord, problem: message }
    } else if nobody_failed {
        // Everyone answered: the caller gave too few servers and no (or no usable) code.
        Error::InvalidInput(message)
    } else {
        Error::BackupStorage(message)
    }
}
