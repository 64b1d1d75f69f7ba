//! Setting up recovery (`docs/recovery.md`): register the account at every guardian (or log in
//! where it exists), split the Backup Root Key per the policy, seal one share in each guardian's
//! escrow record, enrol this device at each and pin each guardian's key.

use super::enrolment::{EnrolledGuardian, Enrolment, copy_key};
use super::escrow::{self, EscrowHeader, ListedGuardian};
use super::guardian::{GuardianError, GuardianNetwork, GuardianSession, Remote, in_parallel};
use super::shares::{Share, split};
use super::{RecoveryCode, RecoverySetup, SetupReport};
use crate::Passphrase;
use crate::backup::keys::key_check_of;
use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// Sets up recovery of `key` (the backup's current key, of key epoch `epoch`) as `setup` says. `previous` is this device's earlier enrolment:
/// its device tokens are revoked once the new enrolment is complete at every guardian. On
/// failure, the device tokens this attempt made are withdrawn and the error names the guardians
/// whose escrow record it replaced.
pub(crate) fn set_up(
    network: &dyn GuardianNetwork,
    setup: &RecoverySetup<'_>,
    password: &Passphrase,
    key: &SecretKey,
    epoch: u32,
    previous: Option<&Enrolment>,
) -> Result<(Enrolment, SetupReport)> {
    let account = super::account_name(setup.account);
    let setup = &RecoverySetup { account: &account, ..*setup };
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
    let key_check = key_check_of(key);
    let share_set: [u8; 16] = crate::crypto::random_array().map_err(Error::from_rng)?;
    let shares = split(key, policy.threshold, policy.shares())?;

    // Every escrow record lists every guardian with its key, so all are logged in to first.
    let positions: Vec<usize> = (0..setup.servers.len()).collect();
    let sessions =
        in_parallel(&positions, |&position| log_in_at(network, position, &setup.servers[position], setup, password));
    let mut logged_in = Vec::new();
    for outcome in sessions {
        logged_in.push(outcome?);
    }
    let listed: Vec<ListedGuardian> = setup
        .servers
        .iter()
        .zip(&logged_in)
        .map(|(url, (_, session))| ListedGuardian { url: url.clone(), server_key: session.server_key.clone() })
        .collect();
    let outcomes = in_parallel(&positions, |&position| {
        let header = EscrowHeader {
            share_set,
            policy,
            index: shares[position].index,
            holds_data: position == 0,
            key_check,
            epoch,
        };
        let (remote, session) = &logged_in[position];
        enrol_at(remote, session, setup, &header, &shares[position], &listed)
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
        // The guardians that took part hold a split nothing will use: withdraw this attempt's
        // device tokens there and say which they are; running setup again replaces them.
        let updated: Vec<&str> = enrolled.iter().map(|(g, _)| g.url.as_str()).collect();
        for (guardian, position) in &enrolled {
            let (remote, session) = &logged_in[*position];
            let _ = remote.guardian.revoke_device(&session.token, &guardian.device_id);
        }
        if updated.is_empty() {
            return Err(first);
        }
        return Err(Error::BackupStorage(format!(
            "{first}; the escrow records at [{}] were replaced by this unfinished setup: set up recovery again",
            updated.join(", ")
        )));
    }
    let earlier: Vec<(&str, &str)> = previous
        .map(|e| e.guardians.iter().map(|g| (g.url.as_str(), g.device_id.as_str())).collect())
        .unwrap_or_default();
    for (guardian, position) in &enrolled {
        let (remote, session) = &logged_in[*position];
        if let Some((_, old)) = earlier.iter().find(|(url, _)| *url == guardian.url) {
            // Best effort: it may be gone already.
            let _ = remote.guardian.revoke_device(&session.token, old);
        }
    }
    let guardians: Vec<EnrolledGuardian> = enrolled.into_iter().map(|(g, _)| g).collect();
    let enrolment = Enrolment { account: setup.account.to_owned(), policy, share_set, guardians };
    let recovery_code = policy.code_index().map(|index| RecoveryCode::encode(&shares[usize::from(index) - 1]));
    let report = SetupReport { policy, recovery_code, safety_number: enrolment.safety_number() };
    Ok((enrolment, report))
}

/// Registers (or logs in) at one guardian.
fn log_in_at(
    network: &dyn GuardianNetwork,
    index: usize,
    url: &str,
    setup: &RecoverySetup<'_>,
    password: &Passphrase,
) -> Result<(Remote, GuardianSession)> {
    let remote = Remote::connect(network, index, url)?;
    let at = |e| remote.error(e);
    match remote.guardian.register(setup.account, password) {
        Ok(()) | Err(GuardianError::AccountExists) => {}
        Err(e) => return Err(at(e)),
    }
    let session = remote.guardian.login(setup.account, password).map_err(|e| match e {
        GuardianError::LoginRefused => {
            Error::BackupAuthentication(format!("{url}: the account exists there with another password"))
        }
        other => at(other),
    })?;
    Ok((remote, session))
}

/// Checks an existing escrow record, seals and stores the share with the guardian list, and
/// enrols this device at one guardian; returns the enrolment and the guardian's position.
fn enrol_at(
    remote: &Remote,
    session: &GuardianSession,
    setup: &RecoverySetup<'_>,
    header: &EscrowHeader,
    share: &Share,
    listed: &[ListedGuardian],
) -> Result<(EnrolledGuardian, usize)> {
    let at = |e| remote.error(e);
    let url = remote.url.as_str();
    let existing = remote.guardian.escrow(&session.token).map_err(at)?;
    if let Some(record) = &existing {
        let theirs = escrow::header(&record.bytes).ok();
        if theirs.is_none_or(|h| h.key_check != header.key_check) {
            return Err(at(GuardianError::AccountInUse));
        }
    }
    let sealed =
        escrow::seal(header, share, listed, session.export_key.expose_secret(), setup.account, &session.server_key)?;
    remote.guardian.put_escrow(&session.token, &sealed, existing.as_ref().map(|r| r.version.as_str())).map_err(at)?;
    let (device_id, device_token) = remote.guardian.enrol_device(&session.token, setup.device_name).map_err(at)?;
    let guardian = EnrolledGuardian {
        url: url.to_owned(),
        server_key: session.server_key.clone(),
        device_id,
        device_token,
        share: Some(copy_key(&share.value)),
    };
    Ok((guardian, usize::from(header.index) - 1))
}
