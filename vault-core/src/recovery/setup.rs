//! Setting up recovery (`docs/recovery.md`): register the account at every guardian (or log in
//! where it exists), split the Backup Root Key per the policy, seal one share in each guardian's
//! escrow record, enrol this device at each and pin each guardian's key.

use super::enrolment::{EnrolledGuardian, Enrolment, copy_key};
use super::escrow::{self, EscrowHeader};
use super::guardian::{GuardianError, GuardianNetwork, GuardianSession, Remote, in_parallel};
use super::shares::{Share, split};
use super::{RecoveryCode, RecoverySetup, SetupReport};
use crate::Passphrase;
use crate::backup::BackupKeys;
use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// Sets up recovery of `key` as `setup` says. `previous` is this device's earlier enrolment:
/// its device tokens are revoked once the new enrolment is complete at every guardian. On
/// failure, the device tokens this attempt made are withdrawn and the error names the guardians
/// whose escrow record it replaced.
pub(crate) fn set_up(
    network: &dyn GuardianNetwork,
    setup: &RecoverySetup<'_>,
    password: &Passphrase,
    key: &SecretKey,
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
    let key_check = BackupKeys::derive(key).key_check();
    let share_set: [u8; 16] = crate::crypto::random_array().map_err(Error::from_rng)?;
    let shares = split(key, policy.threshold, policy.shares())?;

    let positions: Vec<usize> = (0..setup.servers.len()).collect();
    let outcomes = in_parallel(&positions, |&position| {
        let header =
            EscrowHeader { share_set, policy, index: shares[position].index, holds_data: position == 0, key_check };
        enrol_at(network, position, &setup.servers[position], setup, password, &header, &shares[position])
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
        let updated: Vec<&str> = enrolled.iter().map(|(g, _, _)| g.url.as_str()).collect();
        for (guardian, remote, session) in &enrolled {
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
    for (guardian, remote, session) in &enrolled {
        if let Some((_, old)) = earlier.iter().find(|(url, _)| *url == guardian.url) {
            // Best effort: it may be gone already.
            let _ = remote.guardian.revoke_device(&session.token, old);
        }
    }
    let guardians: Vec<EnrolledGuardian> = enrolled.into_iter().map(|(g, _, _)| g).collect();
    let enrolment = Enrolment { account: setup.account.to_owned(), policy, share_set, guardians };
    let recovery_code = policy.code_index().map(|index| RecoveryCode::encode(&shares[usize::from(index) - 1]));
    let report = SetupReport { policy, recovery_code, safety_number: enrolment.safety_number() };
    Ok((enrolment, report))
}

/// Registers (or logs in), checks an existing escrow record, seals and stores the share, and
/// enrols this device at one guardian.
fn enrol_at(
    network: &dyn GuardianNetwork,
    index: usize,
    url: &str,
    setup: &RecoverySetup<'_>,
    password: &Passphrase,
    header: &EscrowHeader,
    share: &Share,
) -> Result<(EnrolledGuardian, Remote, GuardianSession)> {
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
    let existing = remote.guardian.escrow(&session.token).map_err(at)?;
    if let Some(record) = &existing {
        let theirs = escrow::header(&record.bytes).ok();
        if theirs.is_none_or(|h| h.key_check != header.key_check) {
            return Err(at(GuardianError::AccountInUse));
        }
    }
    let sealed = escrow::seal(header, share, session.export_key.expose_secret(), setup.account, &session.server_key);
    remote.guardian.put_escrow(&session.token, &sealed, existing.as_ref().map(|r| r.version.as_str())).map_err(at)?;
    let (device_id, device_token) = remote.guardian.enrol_device(&session.token, setup.device_name).map_err(at)?;
    let guardian = EnrolledGuardian {
        url: url.to_owned(),
        server_key: session.server_key.clone(),
        device_id,
        device_token,
        share: Some(copy_key(&share.value)),
    };
    Ok((guardian, remote, session))
}
