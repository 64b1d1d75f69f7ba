//! Recovery on an enrolled vault (`docs/recovery.md`): the backup's storage at the data
//! guardian, head-record copies to the other guardians, password change, share refresh, the
//! device lists and revocation, and server-key pinning on every session.

use crate::error::DataKind;
use rusqlite::Connection;

use super::GuardianDevices;
use super::RecoveryCode;
use super::enrolment::{EnrolledGuardian, Enrolment, copy_key};
use super::escrow::{self, EscrowHeader};
use super::guardian::{AccessToken, GuardianError, GuardianNetwork, GuardianSession, Remote, in_parallel};
use super::shares::{Share, split};
use crate::backup::format::Head;
use crate::backup::keys::{Keyring, MAX_EPOCHS, RotationPoint, TokenPart, TokenPolicy, key_check_of};
use crate::backup::{BackupKeys, Transport, TransportError};
use crate::error::{Error, Result};
use crate::secret::SecretKey;
use crate::store::backup_state;
use crate::store::events;
use crate::{Passphrase, SecurityEventKind};

/// The backup storage at the guardian that holds the data, with this device's token.
pub(crate) fn data_transport(
    network: &dyn GuardianNetwork,
    enrolment: &Enrolment,
) -> Result<Box<dyn Transport + Send + Sync>> {
    let data = enrolment.guardians.first().ok_or(Error::Internal("enrolment without guardians"))?;
    let remote = Remote::connect(network, 0, &data.url)?;
    Ok(remote.guardian.transport(&data.device_token))
}

/// The mirror's storage (the guardian at position 2, which keeps a copy of every backup object)
/// with this device's token; `None` with a single guardian.
pub(crate) fn mirror_transport(
    network: &dyn GuardianNetwork,
    enrolment: &Enrolment,
) -> Result<Option<Box<dyn Transport + Send + Sync>>> {
    let Some(mirror) = enrolment.guardians.get(1) else { return Ok(None) };
    let remote = Remote::connect(network, 1, &mirror.url)?;
    Ok(Some(remote.guardian.transport(&mirror.device_token)))
}

/// The storage at the guardian at `position` through a password session (its pinned key checked):
/// what deleting needs, since device tokens may only add and read.
pub(crate) fn session_transport(
    network: &dyn GuardianNetwork,
    conn: &Connection,
    enrolment: &Enrolment,
    position: usize,
    password: &Passphrase,
) -> Result<(Box<dyn Transport + Send + Sync>, Remote, AccessToken)> {
    let guardian = enrolment.guardians.get(position).ok_or(Error::Internal("no guardian at that position"))?;
    let remote = Remote::connect(network, position, &guardian.url)?;
    let session = remote.guardian.login(&enrolment.account, password).map_err(|e| remote.error(e))?;
    check_pin(conn, guardian, &session)?;
    Ok((remote.guardian.transport(&session.token), remote, session.token))
}

/// The head record `head` as the holder at `position` keeps it, sealed: with that holder's part
/// of the generation's token under `policy` (drawn from the whole token, which `head` carries or
/// `keys` know; a head of the format before forward secrecy carries none).
pub(crate) fn head_for(keys: &BackupKeys, head: &Head, policy: TokenPolicy, position: usize) -> Result<Vec<u8>> {
    let token = match &head.token {
        None => return Ok(head.seal(keys)),
        Some(TokenPart::Whole(token)) => token,
        Some(TokenPart::Share(_)) => keys.known_token(head.generation).ok_or_else(|| Error::Integrity {
            object: DataKind::BackupHead,
            problem: format!(
                "generation {}'s token is split across the guardians and this device does not hold it",
                head.generation
            ),
        })?,
    };
    let part = policy.part(token, head.generation, position)?;
    Ok(Head { token: Some(part), ..head.clone() }.seal(keys))
}

/// Copies the head record `head` (of the generation it names) to every guardian but the data
/// guardian, each with its part of the generation's token, refusing to move any backwards;
/// returns the guardians whose copy failed (the backup itself is complete; the next run retries).
pub(crate) fn copy_heads(
    network: &dyn GuardianNetwork,
    enrolment: &Enrolment,
    keys: &BackupKeys,
    head: &Head,
) -> Vec<String> {
    let mut failed = Vec::new();
    let policy = enrolment.policy.token_policy();
    let generation = head.generation;
    for (index, guardian) in enrolment.guardians.iter().enumerate().skip(1) {
        let copied = head_for(keys, head, policy, index).map_err(|e| e.to_string()).and_then(|sealed| {
            let remote = Remote::connect(network, index, &guardian.url).map_err(|e| match e {
                Error::Guardian { error, .. } => error.to_string(),
                other => other.to_string(),
            })?;
            copy_head(&*remote.guardian.transport(&guardian.device_token), keys, &sealed, generation)
        });
        match copied {
            Ok(()) => crate::failpoint::hit("recovery:head-copied"),
            Err(message) => failed.push(format!("{}: {message}", guardian.url)),
        }
    }
    failed
}

/// Copies the head record to one guardian, refusing to move it backwards.
fn copy_head(transport: &dyn Transport, keys: &BackupKeys, head: &[u8], generation: u64) -> Result<(), String> {
    for _ in 0..3 {
        let current = transport.get_head().map_err(|e| e.to_string())?;
        if let Some((bytes, _)) = &current
            && let Ok(theirs) = Head::open(keys, bytes)
            && theirs.generation > generation
        {
            return Err(format!(
                "it attests generation {}, newer than the data server's {generation}",
                theirs.generation
            ));
        }
        match transport.put_head(head, generation, current.as_ref().map(|(_, version)| version.as_str())) {
            Ok(()) => return Ok(()),
            Err(TransportError::Conflict) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("the head record kept changing".into())
}

/// Changes the backup password on every guardian: logs in with `old` (or, where an earlier
/// change got that far, with `new`), re-registers, and re-seals the guardian's share under the
/// new password. The shares and the recovery code stay valid. The enrolment (with each share
/// this device learns) is saved in `conn` before each guardian's old password stops working, so
/// an interrupted change is finished by running it again.
pub(crate) fn change_password(
    network: &dyn GuardianNetwork,
    conn: &Connection,
    key_check: [u8; 16],
    epoch: u32,
    old: &Passphrase,
    new: &Passphrase,
) -> Result<()> {
    if new.is_empty() {
        return Err(Error::InvalidInput("the new backup password is empty".into()));
    }
    let mut enrolment = Enrolment::require(conn)?;
    let listed = enrolment.listed();
    for position in 0..enrolment.guardians.len() {
        let guardian = &enrolment.guardians[position];
        let remote = Remote::connect(network, position, &guardian.url)?;
        let at = |e| remote.error(e);
        let (session, with_old) = match remote.guardian.login(&enrolment.account, old) {
            Ok(session) => (session, true),
            Err(GuardianError::LoginRefused) => (remote.guardian.login(&enrolment.account, new).map_err(at)?, false),
            Err(e) => return Err(at(e)),
        };
        check_pin(conn, guardian, &session)?;
        let record = remote.guardian.escrow(&session.token).map_err(at)?;
        // The share as the guardian holds it (source of truth); else the one this device kept.
        let opened = record.as_ref().map(|r| {
            escrow::open(&r.bytes, session.export_key.expose_secret(), &enrolment.account, &session.server_key)
        });
        let (header, share) = match opened {
            Some(Ok(opened)) if !with_old => {
                // Already sealed under the new password by an earlier, interrupted change.
                enrolment.guardians[position].share = Some(copy_key(&opened.share.value));
                continue;
            }
            Some(Ok(opened)) => (opened.header, opened.share),
            _ => {
                let share = guardian.share.as_ref().ok_or_else(|| at(GuardianError::ShareUnknown))?;
                let index = u8::try_from(position + 1).map_err(|_| Error::Internal("position"))?;
                let header = EscrowHeader {
                    share_set: enrolment.share_set,
                    policy: enrolment.policy,
                    index,
                    holds_data: position == 0,
                    key_check,
                    epoch,
                };
                (header, Share { index, value: copy_key(share) })
            }
        };
        // Kept before the old password stops working, so an interruption loses nothing.
        enrolment.guardians[position].share = Some(copy_key(&share.value));
        enrolment.save(conn)?;
        let at = |e| remote.error(e);
        let session = if with_old {
            remote.guardian.change_password(&session.token, &enrolment.account, new).map_err(at)?;
            let session = remote.guardian.login(&enrolment.account, new).map_err(at)?;
            check_pin(conn, &enrolment.guardians[position], &session)?;
            session
        } else {
            session
        };
        let sealed = escrow::seal(
            &header,
            &share,
            &listed,
            session.export_key.expose_secret(),
            &enrolment.account,
            &session.server_key,
        )?;
        remote.guardian.put_escrow(&session.token, &sealed, record.as_ref().map(|r| r.version.as_str())).map_err(at)?;
    }
    enrolment.save(conn)?;
    events::record_now(
        conn,
        SecurityEventKind::RecoveryPasswordChanged,
        &format!("{} servers", enrolment.guardians.len()),
    )
}

/// Starts a new backup key epoch (`docs/recovery.md`, "Key epochs"), or finishes the one a
/// stopped rotation began: a fresh random key, its keyring (every earlier epoch's key and the
/// head it starts from) stored as a backup object, a new split of the new key to every guardian
/// (all must be reachable, with their pinned keys), the head record re-sealed under the new
/// epoch, and only then the new key made current on this device. From then on everything the
/// backup writes opens only with the new key: the old shares, the old recovery code, a replayed
/// old escrow record and a copy of this vault taken before open nothing written after. Returns
/// the new recovery code when the policy has one.
///
/// The new key is kept in the vault before any guardian learns of it, and backups wait while a
/// rotation is unfinished ([`Error::KeyRotationUnfinished`]); running this again continues with
/// the same key.
pub(crate) fn rotate(
    network: &dyn GuardianNetwork,
    conn: &Connection,
    password: &Passphrase,
) -> Result<Option<RecoveryCode>> {
    let mut enrolment = Enrolment::require(conn)?;
    let sessions = log_in_everywhere(network, conn, &enrolment, password)?;
    let transport = data_transport(network, &enrolment)?;
    let (key, keyring) = match backup_state::pending_rotation(conn)? {
        Some(pending) => pending,
        None => begin_rotation(conn, &*transport, &enrolment)?,
    };
    let keys = BackupKeys::with_keyring(&key, Some(&keyring));
    store_keyring(&*transport, &key, &keyring)?;
    // The mirror needs the keyring too, to serve a restore on its own.
    if let Some(mirror) = mirror_transport(network, &enrolment)? {
        store_keyring(&*mirror, &key, &keyring)?;
    }

    let share_set: [u8; 16] = crate::crypto::random_array().map_err(Error::from_rng)?;
    let shares = split(&key, enrolment.policy.threshold, enrolment.policy.shares())?;
    let listed = enrolment.listed();
    let mut updated = Vec::new();
    for (position, (remote, session)) in sessions.iter().enumerate() {
        let header = EscrowHeader {
            share_set,
            policy: enrolment.policy,
            index: shares[position].index,
            holds_data: position == 0,
            key_check: keys.key_check(),
            epoch: keys.current_epoch(),
        };
        let result = escrow::seal(
            &header,
            &shares[position],
            &listed,
            session.export_key.expose_secret(),
            &enrolment.account,
            &session.server_key,
        )
        .and_then(|sealed| {
            remote
                .guardian
                .escrow(&session.token)
                .and_then(|current| {
                    remote.guardian.put_escrow(&session.token, &sealed, current.as_ref().map(|r| r.version.as_str()))
                })
                .map_err(|e| remote.error(e))
        });
        if let Err(e) = result {
            return Err(Error::BackupStorage(format!(
                "{e}; the new backup key reached [{}]; run this again to finish the rotation (backups wait until then)",
                updated.join(", ")
            )));
        }
        updated.push(remote.url.clone());
    }
    let head = reseal_head(&*transport, &keys)?;
    enrolment.share_set = share_set;
    for (guardian, share) in enrolment.guardians.iter_mut().zip(&shares) {
        guardian.share = Some(copy_key(&share.value));
    }
    backup_state::commit_rotation(conn, &|tx| enrolment.save(tx))?;
    events::record_now(
        conn,
        SecurityEventKind::RecoverySharesRefreshed,
        &format!("new backup key, epoch {}; {}", keys.current_epoch(), enrolment.policy.describe()),
    )?;
    if let Some(head) = head {
        // Best effort, as after a backup: the next backup copies it again.
        let _ = copy_heads(network, &enrolment, &keys, &head);
    }
    Ok(enrolment.policy.code_index().map(|index| RecoveryCode::encode(&shares[usize::from(index) - 1])))
}

/// Draws the next epoch's key and keyring and keeps them in the vault: the keyring holds every
/// key so far and the head the rotation starts from (read and checked as a backup run would: not
/// rolled back, and written by this device). Refused with [`Error::BackupConflict`] while an
/// interrupted backup run's manifest waits to be published (run the backup, then rotate).
fn begin_rotation(conn: &Connection, transport: &dyn Transport, enrolment: &Enrolment) -> Result<(SecretKey, Keyring)> {
    let keys = backup_state::keys(conn)?.ok_or_else(|| Error::NotFound("this vault has no backup key yet".into()))?;
    let local = backup_state::position(conn)?;
    let me = enrolment.guardians.first().ok_or(Error::Internal("enrolment without guardians"))?.device_id.clone();
    let current = crate::backup::run::current_checked(transport, &keys, local, &|head| {
        crate::backup::run::claim(Some(head), Some(&me), local.0).map(|_| ())
    })?;
    // A run interrupted after its manifest and before its head left `manifest-<next>` sealed
    // under the current key; the next run publishes it. After a rotation no run could (it would
    // not open under the new key, and adopting a manifest sealed under an old key is exactly what
    // an old key's holder must not be able to make a device do), so that run goes first.
    let next = current.as_ref().map_or(1, |c| c.head.generation + 1);
    let unfinished = transport
        .get(&crate::backup::format::manifest_name(next))
        .map_err(crate::backup::run::transport_error("reading the backup manifests"))?;
    if unfinished.is_some() {
        return Err(Error::BackupConflict);
    }
    let rotation = current.map_or(RotationPoint { generation: 0, manifest_hash: [0; 32] }, |c| RotationPoint {
        generation: c.head.generation,
        manifest_hash: c.head.manifest_hash,
    });
    let mut earlier = backup_state::keyring(conn)?.map(|k| k.earlier).unwrap_or_default();
    earlier.push(backup_state::root_key(conn)?.ok_or(Error::Internal("backup keys without a root key"))?);
    if earlier.len() >= MAX_EPOCHS {
        return Err(Error::InvalidInput(format!("the backup key was rotated {MAX_EPOCHS} times, the most it can be")));
    }
    let key = SecretKey::generate().map_err(Error::from_rng)?;
    let keyring = Keyring { earlier, rotation };
    backup_state::begin_rotation(conn, &key, &keyring)?;
    Ok((key, keyring))
}

/// Stores the keyring object of the epoch key `key` (write-once: one stored by an earlier attempt
/// of the same rotation must open to the same keyring).
fn store_keyring(transport: &dyn Transport, key: &SecretKey, keyring: &Keyring) -> Result<()> {
    let name = Keyring::object_name(&key_check_of(key));
    match transport.put(&name, &keyring.seal(key)) {
        Ok(()) => Ok(()),
        Err(TransportError::Exists) => {
            let stored = crate::backup::run::fetch_named(transport, &name, "keyring")?;
            if Keyring::open(key, &stored)?.encode() == keyring.encode() {
                Ok(())
            } else {
                Err(Error::Integrity { object: DataKind::BackupKeyring, problem: format!("backup {name} differs") })
            }
        }
        Err(e) => Err(crate::backup::run::transport_error("storing the backup keyring")(e)),
    }
}

/// Re-seals the head record under the new epoch (unless an earlier attempt did); it must be the
/// head the rotation started from. Returns it, or `None` when the backup has no head yet.
fn reseal_head(transport: &dyn Transport, keys: &BackupKeys) -> Result<Option<Head>> {
    for _ in 0..3 {
        let read = transport.get_head().map_err(crate::backup::run::transport_error("reading the head record"))?;
        let Some((bytes, version)) = read else { return Ok(None) };
        let head = Head::open(keys, &bytes)?;
        if Head::sealed_under_current(keys, &bytes) {
            return Ok(Some(head));
        }
        match transport.put_head(&head.seal(keys), head.generation, Some(&version)) {
            Ok(()) => return Ok(Some(head)),
            Err(TransportError::Conflict) => continue,
            Err(e) => return Err(crate::backup::run::transport_error("re-sealing the head record")(e)),
        }
    }
    Err(Error::BackupConflict)
}

/// The devices enrolled at each guardian (read with this device's tokens).
pub(crate) fn devices(network: &dyn GuardianNetwork, enrolment: &Enrolment) -> Result<Vec<GuardianDevices>> {
    enrolment
        .guardians
        .iter()
        .enumerate()
        .map(|(index, g)| {
            let remote = Remote::connect(network, index, &g.url)?;
            let devices = remote.guardian.devices(&g.device_token).map_err(|e| remote.error(e))?;
            Ok(GuardianDevices { server: g.url.clone(), this_device: g.device_id.clone(), devices })
        })
        .collect()
}

/// Revokes a device at every guardian (needs the backup password); see
/// [`crate::Recovery::revoke_device`] for how `device` is matched. Nothing is revoked when the
/// name is ambiguous, or when the device is this one and `this_device` is false. Returns how
/// many enrolments were revoked and whether this device's was among them.
pub(crate) fn revoke_device(
    network: &dyn GuardianNetwork,
    conn: &Connection,
    password: &Passphrase,
    device: &str,
    this_device: bool,
) -> Result<Revoked> {
    let enrolment = Enrolment::require(conn)?;
    let sessions = log_in_everywhere(network, conn, &enrolment, password)?;
    let mut lists = Vec::new();
    for (remote, session) in &sessions {
        lists.push(remote.guardian.devices(&session.token).map_err(|e| remote.error(e))?);
    }
    let targets = revocation_targets(&enrolment, &lists, device)?;
    let own: Vec<usize> = targets
        .iter()
        .filter(|(position, id)| enrolment.guardians[*position].device_id == **id)
        .map(|(position, _)| *position)
        .collect();
    if !own.is_empty() && !this_device {
        return Err(Error::InvalidInput(
            "that is this device: revoking it stops its backups until recovery is set up again; \
             confirm revoking this device explicitly"
                .into(),
        ));
    }
    let mut revoked = 0;
    for (position, id) in &targets {
        let (remote, session) = &sessions[*position];
        remote.guardian.revoke_device(&session.token, id).map_err(|e| remote.error(e))?;
        revoked += 1;
    }
    if revoked > 0 {
        let detail =
            if own.is_empty() { format!("{revoked} tokens") } else { format!("{revoked} tokens, this device's") };
        events::record_now(conn, SecurityEventKind::DeviceRevoked, &detail)?;
    }
    Ok(Revoked { count: revoked, own: !own.is_empty() })
}

/// What [`revoke_device`] revoked.
#[derive(Debug)]
pub(crate) struct Revoked {
    pub(crate) count: usize,
    /// Whether one of them was this device's enrolment.
    pub(crate) own: bool,
}

/// The enrolments `device` names, as (guardian position, device id): an id at one guardian
/// (with the devices of its name at the other guardians where exactly one carries it), or a name
/// that at most one device carries at each guardian.
fn revocation_targets(
    enrolment: &Enrolment,
    lists: &[Vec<super::GuardianDevice>],
    device: &str,
) -> Result<Vec<(usize, String)>> {
    let by_id = lists.iter().enumerate().find_map(|(p, list)| list.iter().find(|d| d.id == device).map(|d| (p, d)));
    if let Some((position, found)) = by_id {
        let mut targets = vec![(position, found.id.clone())];
        for (p, list) in lists.iter().enumerate().filter(|(p, _)| *p != position) {
            let named: Vec<_> = list.iter().filter(|d| d.name == found.name).collect();
            if let [only] = named.as_slice() {
                targets.push((p, only.id.clone()));
            }
        }
        return Ok(targets);
    }
    let named: Vec<(usize, &super::GuardianDevice)> = lists
        .iter()
        .enumerate()
        .flat_map(|(p, list)| list.iter().filter(|d| d.name == device).map(move |d| (p, d)))
        .collect();
    let ambiguous = lists.iter().any(|list| list.iter().filter(|d| d.name == device).count() > 1);
    if ambiguous {
        return Err(Error::AmbiguousDevice {
            matches: named
                .iter()
                .map(|(p, d)| (enrolment.guardians[*p].url.clone(), d.id.clone(), d.name.clone()))
                .collect(),
        });
    }
    Ok(named.into_iter().map(|(p, d)| (p, d.id.clone())).collect())
}

/// Refuses a session whose guardian key differs from the pinned one, recording the event.
pub(crate) fn check_pin(conn: &Connection, guardian: &EnrolledGuardian, session: &GuardianSession) -> Result<()> {
    if session.server_key == guardian.server_key {
        return Ok(());
    }
    events::record_now(conn, SecurityEventKind::ServerKeyChanged, &guardian.url)?;
    Err(Error::Integrity {
        object: DataKind::GuardianKey,
        problem: format!(
            "{}: the server's key differs from the one pinned at setup (a replaced or impersonated server); \
         compare the safety number, and set up recovery again only if the change is expected",
            guardian.url
        ),
    })
}

/// Logs in to every guardian at once; all must answer, with their pinned keys.
fn log_in_everywhere(
    network: &dyn GuardianNetwork,
    conn: &Connection,
    enrolment: &Enrolment,
    password: &Passphrase,
) -> Result<Vec<(Remote, GuardianSession)>> {
    let positions: Vec<usize> = (0..enrolment.guardians.len()).collect();
    let outcomes = in_parallel(&positions, |&index| {
        let remote = Remote::connect(network, index, &enrolment.guardians[index].url)?;
        let session = remote.guardian.login(&enrolment.account, password).map_err(|e| remote.error(e))?;
        Ok::<_, Error>((remote, session))
    });
    let mut sessions = Vec::new();
    for (guardian, outcome) in enrolment.guardians.iter().zip(outcomes) {
        let (remote, session) = outcome?;
        check_pin(conn, guardian, &session)?;
        sessions.push((remote, session));
    }
    Ok(sessions)
}
