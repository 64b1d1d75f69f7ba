//! Every recovery flow against the scripted in-memory guardian (`testing`): setup, key recovery
//! with each share combination, password change, share refresh and a new code, devices and
//! revocation, server-key pinning — with guardians that are down, drop calls, answer slowly,
//! replay old records, serve garbage or lie about their key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::error::DataKind;
use std::time::Duration;

use rusqlite::Connection;

use super::lifecycle;
use super::recover::{Attestations, attestations, recover};
use super::setup::set_up;
use super::testing::{Call, Fault, MemoryNetwork};
use super::{Enrolment, GuardianError, GuardianNetwork, RecoveryCode, RecoveryPolicy, RecoverySetup};
use crate::backup::format::Head;
use crate::backup::{BackupKeys, TransportError};
use crate::error::Error;
use crate::secret::SecretKey;
use crate::{Passphrase, SecurityEventKind};

const ACCOUNT: &str = "ann@example.org";

fn password() -> Passphrase {
    Passphrase::new("a long backup password".into())
}

fn key() -> SecretKey {
    SecretKey::from_bytes([42; 32])
}

/// A database of the vault's schema, holding the enrolment as a vault would.
fn database() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::store::migrations::migrate(&mut conn).unwrap();
    conn
}

/// Two guardians and a recovery code, 2 of 3; the enrolment saved in the returned database.
fn enrolled(network: &MemoryNetwork, urls: &[String]) -> (Connection, RecoveryCode) {
    let policy = RecoveryPolicy::new(urls.len(), None, true, false).unwrap();
    let setup = RecoverySetup { servers: urls, account: ACCOUNT, policy, device_name: "phone" };
    let (enrolment, report) = set_up(network, &setup, &password(), &key(), 0, None).unwrap();
    let conn = database();
    crate::store::backup_state::set_root_key(&conn, &key()).unwrap();
    enrolment.save(&conn).unwrap();
    (conn, report.recovery_code.unwrap())
}

fn recovered_key(
    network: &MemoryNetwork,
    servers: &[String],
    password: &Passphrase,
    code: Option<&RecoveryCode>,
) -> Result<SecretKey, Error> {
    recover(network, servers, ACCOUNT, password, code).map(|r| r.key)
}

/// The backup key the vault holds now (a rotation replaces it).
fn current_key(conn: &Connection) -> SecretKey {
    crate::store::backup_state::root_key(conn).unwrap().unwrap()
}

fn events(conn: &Connection, kind: SecurityEventKind) -> usize {
    crate::store::events::recent(conn, 1000).unwrap().iter().filter(|e| e.kind == kind).count()
}

#[test]
fn every_share_combination_that_meets_the_threshold_recovers_the_key_and_no_other_does() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (_, code) = enrolled(&network, &urls);
    let expect = key();
    for (servers, code) in [(&urls[..], None), (&urls[..1], Some(&code)), (&urls[1..], Some(&code))] {
        let got = recovered_key(&network, servers, &password(), code).unwrap();
        assert_eq!(got.expose_secret(), expect.expose_secret(), "{servers:?} with code: {}", code.is_some());
    }
    for servers in [&urls[..1], &urls[1..]] {
        let alone = recovered_key(&network, servers, &password(), None);
        assert!(matches!(&alone, Err(Error::InvalidInput(m)) if m.contains("2 shares are needed, 1 available")));
    }
    let wrong = recovered_key(&network, &urls, &Passphrase::new("wrong".into()), None);
    assert!(matches!(wrong, Err(Error::BackupAuthentication(_))), "{wrong:?}");
}

#[test]
fn a_guardian_that_is_down_or_slow_or_drops_the_call_does_not_stop_a_recovery_the_rest_can_do() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (_, code) = enrolled(&network, &urls);

    network.guardian(&urls[1]).script(Fault::Down);
    let report = recover(&network, &urls, ACCOUNT, &password(), Some(&code)).unwrap();
    assert!(report.report.recovery_code_used);
    assert_eq!(report.report.servers_used, vec![urls[0].clone()]);
    assert!(report.report.servers_failed.iter().any(|f| f.starts_with(&urls[1]) && f.contains("unavailable")));
    network.guardian(&urls[1]).heal();

    network.guardian(&urls[0]).script(Fault::DropNext(Call::Escrow));
    let report = recover(&network, &urls, ACCOUNT, &password(), Some(&code)).unwrap();
    assert_eq!(report.report.servers_used, vec![urls[1].clone()]);

    // Both slow: still recovered (every call waits, none fails).
    for url in &urls {
        network.guardian(url).script(Fault::Slow(Duration::from_millis(50)));
    }
    recovered_key(&network, &urls, &password(), None).unwrap();
    for url in &urls {
        network.guardian(url).heal();
    }

    // Without the code, one guardian down leaves too few shares: a storage failure, named.
    network.guardian(&urls[0]).heal();
    network.guardian(&urls[0]).script(Fault::Down);
    let short = recovered_key(&network, &urls, &password(), None);
    assert!(matches!(&short, Err(Error::BackupStorage(m)) if m.contains(&urls[0])), "{short:?}");
}

#[test]
fn garbage_or_a_missing_escrow_record_is_damage_and_the_others_still_recover() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (_, code) = enrolled(&network, &urls);
    network.guardian(&urls[0]).script(Fault::GarbageEscrow);
    let report = recover(&network, &urls, ACCOUNT, &password(), Some(&code)).unwrap();
    assert_eq!(report.report.servers_used, vec![urls[1].clone()]);
    assert!(report.report.servers_failed.iter().any(|f| f.contains(&urls[0])));
    // Without the code the damage decides the error: integrity, not a wrong password.
    let damaged = recovered_key(&network, &urls, &password(), None);
    assert!(
        matches!(&damaged, Err(Error::Integrity { object: DataKind::EscrowRecord, problem: m }) if m.contains(&urls[0])),
        "{damaged:?}"
    );
    // A record that is gone is damage too, not an unreachable server.
    network.guardian(&urls[0]).heal();
    network.guardian(&urls[0]).script(Fault::MissingEscrow);
    let missing = recovered_key(&network, &urls, &password(), None);
    assert!(
        matches!(&missing, Err(Error::Integrity { problem: m, .. }) if m.contains("no escrow record")),
        "{missing:?}"
    );
}

#[test]
fn the_newest_head_any_guardian_attests_is_what_a_restore_must_reach() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, _) = enrolled(&network, &urls);
    let enrolment = Enrolment::require(&conn).unwrap();
    let keys = BackupKeys::derive(&key());
    let record = |generation| Head {
        generation,
        manifest_hash: [generation as u8; 32],
        writer: None,
        manifest_epoch: 0,
        token: None,
    };
    let head = |generation| record(generation).seal(&keys);
    let data = lifecycle::data_transport(&network, &enrolment).unwrap();
    data.put_head(&head(1), 1, None).unwrap();
    let version = data.get_head().unwrap().unwrap().1;
    data.put_head(&head(2), 2, Some(&version)).unwrap();
    assert!(lifecycle::copy_heads(&network, &enrolment, &keys, &record(2)).is_empty());
    // The data guardian rolls its head back; the other guardian's copy still says 2.
    network.guardian(&urls[0]).script(Fault::ReplayHead(0));
    let recovered = recover(&network, &urls, ACCOUNT, &password(), None).unwrap();
    let Attestations { newest, freshness, .. } = attestations(&recovered.reached, &keys, 0, Some(1));
    assert_eq!(newest.map(|(g, _)| g), Some(2));
    assert_eq!(freshness, super::Freshness::Verified { by: vec![urls[1].clone()] });
    // A guardian's copy never moves backwards.
    let refused = lifecycle::copy_heads(&network, &enrolment, &keys, &record(1));
    assert!(refused[0].contains("newer than the data server's 1"), "{refused:?}");
}

#[test]
fn a_failed_setup_withdraws_the_devices_it_enrolled_and_names_what_it_replaced() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    network.guardian(&urls[1]).script(Fault::DropNext(Call::PutEscrow));
    let policy = RecoveryPolicy::new(2, None, true, false).unwrap();
    let setup = RecoverySetup { servers: &urls, account: ACCOUNT, policy, device_name: "phone" };
    let failed = set_up(&network, &setup, &password(), &key(), 0, None).map(|_| ());
    assert!(
        matches!(&failed, Err(Error::BackupStorage(m)) if m.contains(&urls[1]) && m.contains(&format!("[{}]", urls[0]))),
        "{failed:?}"
    );
    assert!(network.guardian(&urls[0]).devices_of(ACCOUNT).is_empty(), "the unused enrolment was withdrawn");
    // Running it again completes, and the account then recovers.
    set_up(&network, &setup, &password(), &key(), 0, None).unwrap();
    assert_eq!(network.guardian(&urls[0]).devices_of(ACCOUNT).len(), 1);
    recovered_key(&network, &urls, &password(), None).unwrap();
}

#[test]
fn setup_refuses_an_account_that_protects_another_vaults_key() {
    let (network, urls) = MemoryNetwork::with_guardians(1);
    let policy = RecoveryPolicy::new(1, None, true, false).unwrap();
    let setup = RecoverySetup { servers: &urls, account: ACCOUNT, policy, device_name: "phone" };
    set_up(&network, &setup, &password(), &key(), 0, None).unwrap();
    let other = SecretKey::from_bytes([7; 32]);
    let in_use = set_up(&network, &setup, &password(), &other, 0, None).map(|_| ());
    assert!(matches!(in_use, Err(Error::Guardian { index: 0, error: GuardianError::AccountInUse, .. })), "{in_use:?}");
    let wrong = set_up(&network, &setup, &Passphrase::new("another".into()), &key(), 0, None).map(|_| ());
    assert!(matches!(&wrong, Err(Error::BackupAuthentication(m)) if m.contains("another password")), "{wrong:?}");
}

#[test]
fn a_password_change_keeps_the_code_valid_and_an_interrupted_one_finishes_when_run_again() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, code) = enrolled(&network, &urls);
    let key_check = BackupKeys::derive(&key()).key_check();
    let new = Passphrase::new("the new backup password".into());

    network.guardian(&urls[1]).script(Fault::DropNext(Call::PutEscrow));
    let interrupted = lifecycle::change_password(&network, &conn, key_check, 0, &password(), &new);
    let dropped = Error::Guardian {
        index: 1,
        url: urls[1].clone(),
        error: GuardianError::Unavailable("the connection was dropped".into()),
    };
    assert_eq!(interrupted.unwrap_err().to_string(), dropped.to_string());
    // Guardian 1 took the new password but holds no share under it yet; this device kept it.
    lifecycle::change_password(&network, &conn, key_check, 0, &password(), &new).unwrap();

    assert!(matches!(recovered_key(&network, &urls, &password(), None), Err(Error::BackupAuthentication(_))));
    assert_eq!(recovered_key(&network, &urls, &new, None).unwrap().expose_secret(), key().expose_secret());
    for url in &urls {
        let with_code = recovered_key(&network, std::slice::from_ref(url), &new, Some(&code)).unwrap();
        assert_eq!(with_code.expose_secret(), key().expose_secret());
    }
    assert_eq!(events(&conn, SecurityEventKind::RecoveryPasswordChanged), 1);
}

#[test]
fn a_share_refresh_issues_a_new_code_and_the_old_code_no_longer_matches() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, old_code) = enrolled(&network, &urls);
    let new_code = lifecycle::rotate(&network, &conn, &password()).unwrap().unwrap();
    assert_ne!(old_code.expose_secret(), new_code.expose_secret());
    for url in &urls {
        let servers = std::slice::from_ref(url);
        let old = recovered_key(&network, servers, &password(), Some(&old_code));
        assert!(matches!(old, Err(Error::BackupAuthentication(_))), "{old:?}");
        recovered_key(&network, servers, &password(), Some(&new_code)).unwrap();
    }
    assert_eq!(events(&conn, SecurityEventKind::RecoverySharesRefreshed), 1);
}

#[test]
fn a_guardian_replaying_its_escrow_from_before_a_refresh_is_set_aside() {
    let (network, urls) = MemoryNetwork::with_guardians(3);
    let policy = RecoveryPolicy::new(3, None, true, false).unwrap();
    let setup = RecoverySetup { servers: &urls, account: ACCOUNT, policy, device_name: "phone" };
    let (enrolment, _) = set_up(&network, &setup, &password(), &key(), 0, None).unwrap();
    let conn = database();
    crate::store::backup_state::set_root_key(&conn, &key()).unwrap();
    enrolment.save(&conn).unwrap();
    lifecycle::rotate(&network, &conn, &password()).unwrap();
    // Guardian 0 serves the record of the first split; the two others agree on the new one.
    network.guardian(&urls[0]).script(Fault::ReplayEscrow(0));
    let report = recover(&network, &urls, ACCOUNT, &password(), None).unwrap();
    assert_eq!(report.key.expose_secret(), current_key(&conn).expose_secret());
    assert!(report.report.servers_failed.iter().any(|f| f.starts_with(&urls[0]) && f.contains("older key epoch")));
}

/// Two guardians and a code, refreshed once: the returned code is the new one.
fn refreshed(network: &MemoryNetwork, urls: &[String]) -> (Connection, RecoveryCode, RecoveryCode) {
    let (conn, old_code) = enrolled(network, urls);
    let new_code = lifecycle::rotate(network, &conn, &password()).unwrap().unwrap();
    (conn, old_code, new_code)
}

#[test]
fn a_stale_guardian_listed_first_does_not_stop_the_new_code_and_is_named() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, _, new_code) = refreshed(&network, &urls);
    // Guardian 0 serves its record of the first split; guardian 1 and the new code suffice. Each
    // split holds one guardian, so only the code can tell them apart.
    network.guardian(&urls[0]).script(Fault::ReplayEscrow(0));
    let recovered = recover(&network, &urls, ACCOUNT, &password(), Some(&new_code)).unwrap();
    assert_eq!(recovered.key.expose_secret(), current_key(&conn).expose_secret());
    assert!(recovered.report.recovery_code_used);
    assert_eq!(recovered.report.servers_used, vec![urls[1].clone()]);
    assert!(
        recovered.report.servers_failed.iter().any(|f| f.starts_with(&urls[0]) && f.contains("stale")),
        "{:?}",
        recovered.report.servers_failed
    );
    assert_eq!(recovered.reached.len(), 1, "the stale guardian is not used (nor enrolled by a restore)");
    // Listed last instead of first: the same outcome.
    let reversed = [urls[1].clone(), urls[0].clone()];
    let recovered = recover(&network, &reversed, ACCOUNT, &password(), Some(&new_code)).unwrap();
    assert_eq!(recovered.report.servers_used, vec![urls[1].clone()]);
}

#[test]
fn a_garbage_head_at_a_guardian_without_the_data_is_reported_and_the_rest_recover() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, code) = enrolled(&network, &urls);
    let enrolment = Enrolment::require(&conn).unwrap();
    let keys = BackupKeys::derive(&key());
    let head = Head { generation: 1, manifest_hash: [1; 32], writer: None, manifest_epoch: 0, token: None };
    lifecycle::data_transport(&network, &enrolment).unwrap().put_head(&head.seal(&keys), 1, None).unwrap();
    assert!(lifecycle::copy_heads(&network, &enrolment, &keys, &head).is_empty());
    network.guardian(&urls[1]).script(Fault::GarbageHead);
    for code in [None, Some(&code)] {
        let recovered = recover(&network, &urls, ACCOUNT, &password(), code).unwrap();
        assert_eq!(recovered.key.expose_secret(), key().expose_secret());
        let Attestations { newest, freshness, unauthentic } = attestations(&recovered.reached, &keys, 0, Some(1));
        assert_eq!(newest, None, "the garbage is no attestation");
        assert_eq!(freshness, super::Freshness::Unverified);
        assert!(
            unauthentic.iter().any(|f| f.starts_with(&urls[1]) && f.contains("does not authenticate")),
            "{unauthentic:?}"
        );
        // Its share is sound: it stays among the guardians used (and enrolled by a restore).
        assert_eq!(recovered.reached.len(), 2);
    }
    // A garbage head at the data guardian is not read here: the restore reads that head itself and
    // is what fails (`vault::recovery::tests::a_tampered_backup_object_…`), and `attestations`
    // never counts the data guardian as a witness of its own head.
    network.guardian(&urls[1]).heal();
    network.guardian(&urls[0]).script(Fault::GarbageHead);
    let recovered = recover(&network, &urls, ACCOUNT, &password(), None).unwrap();
    let Attestations { unauthentic, .. } = attestations(&recovered.reached, &keys, 0, Some(1));
    assert!(unauthentic.is_empty(), "{unauthentic:?}");
}

#[test]
fn a_stale_guardian_one_down_and_a_garbage_head_together_still_recover_with_the_rest() {
    let (network, urls) = MemoryNetwork::with_guardians(4);
    let policy = RecoveryPolicy::new(4, Some(2), true, false).unwrap();
    let setup = RecoverySetup { servers: &urls, account: ACCOUNT, policy, device_name: "phone" };
    let (enrolment, _) = set_up(&network, &setup, &password(), &key(), 0, None).unwrap();
    let conn = database();
    crate::store::backup_state::set_root_key(&conn, &key()).unwrap();
    enrolment.save(&conn).unwrap();
    let new_code = lifecycle::rotate(&network, &conn, &password()).unwrap().unwrap();
    let keys = crate::store::backup_state::keys(&conn).unwrap().unwrap();
    let head = Head { generation: 3, manifest_hash: [3; 32], writer: None, manifest_epoch: 1, token: None };
    lifecycle::data_transport(&network, &enrolment).unwrap().put_head(&head.seal(&keys), 3, None).unwrap();
    assert!(lifecycle::copy_heads(&network, &enrolment, &keys, &head).is_empty());
    network.guardian(&urls[0]).script(Fault::ReplayEscrow(0));
    network.guardian(&urls[1]).script(Fault::Down);
    network.guardian(&urls[2]).script(Fault::GarbageHead);
    let recovered = recover(&network, &urls, ACCOUNT, &password(), Some(&new_code)).unwrap();
    assert_eq!(recovered.key.expose_secret(), current_key(&conn).expose_secret());
    assert_eq!(recovered.report.servers_used, vec![urls[2].clone(), urls[3].clone()]);
    assert!(!recovered.report.recovery_code_used, "guardians 2 and 3 suffice");
    let failed = &recovered.report.servers_failed;
    assert!(failed.iter().any(|f| f.starts_with(&urls[0]) && f.contains("older key epoch")), "{failed:?}");
    assert!(failed.iter().any(|f| f.starts_with(&urls[1]) && f.contains("unavailable")), "{failed:?}");
    // Guardian 0 (the data guardian) is set aside: the attestations are 2's garbage and 3's copy.
    let Attestations { newest, freshness, unauthentic } = attestations(&recovered.reached, &keys, usize::MAX, Some(3));
    assert!(unauthentic.iter().any(|f| f.starts_with(&urls[2]) && f.contains("head record")), "{unauthentic:?}");
    assert_eq!(newest.map(|(g, _)| g), Some(3), "guardian 3's copy attests it");
    assert_eq!(freshness, super::Freshness::Verified { by: vec![urls[3].clone()] });
}

#[test]
fn failed_recoveries_blame_the_part_that_failed() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (_, old_code, new_code) = refreshed(&network, &urls);
    // The old code after a refresh: the code is blamed, with one guardian or both (where the
    // guardians alone suffice and the code is not needed).
    for servers in [&urls[..1], &urls[1..]] {
        let old = recovered_key(&network, servers, &password(), Some(&old_code));
        assert!(
            matches!(&old, Err(Error::BackupAuthentication(m)) if m.contains("recovery code does not match")),
            "{old:?}"
        );
    }
    recovered_key(&network, &urls, &password(), Some(&old_code)).unwrap();

    // A code of another account, with a stale guardian and a current one: the code fails with
    // both splits and is blamed, not the guardians.
    let (other_network, other_urls) = MemoryNetwork::with_guardians(2);
    let (_, foreign) = enrolled(&other_network, &other_urls);
    network.guardian(&urls[0]).script(Fault::ReplayEscrow(0));
    let wrong = recovered_key(&network, &urls, &password(), Some(&foreign));
    assert!(
        matches!(&wrong, Err(Error::BackupAuthentication(m)) if m.contains("recovery code does not match")),
        "{wrong:?}"
    );
    // Without a code the two splits are one share each: too few, both named, a storage failure
    // (a guardian misbehaved), not the caller's input.
    let short = recovered_key(&network, &urls, &password(), None);
    assert!(
        matches!(&short, Err(Error::BackupStorage(m)) if m.contains("2 shares are needed, 1 available") && m.contains("different splits") && m.contains(&urls[0])),
        "{short:?}"
    );
    // The stale guardian alone with the new code: the code fails with the only split there is.
    let stale = recovered_key(&network, &urls[..1], &password(), Some(&new_code));
    assert!(matches!(&stale, Err(Error::BackupAuthentication(m)) if m.contains("does not match")), "{stale:?}");
    // A wrong password still reads as one, a damaged record still as damage.
    network.guardian(&urls[0]).heal();
    let refused = recovered_key(&network, &urls, &Passphrase::new("wrong".into()), Some(&new_code));
    assert!(matches!(refused, Err(Error::BackupAuthentication(_))), "{refused:?}");
    network.guardian(&urls[0]).script(Fault::GarbageEscrow);
    let damaged = recovered_key(&network, &urls, &password(), None);
    assert!(matches!(damaged, Err(Error::Integrity { object: DataKind::EscrowRecord, .. })), "{damaged:?}");
    recovered_key(&network, &urls, &password(), Some(&new_code)).unwrap();
}

#[test]
fn nfc_and_nfd_spellings_of_an_account_are_the_same_account() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let nfd = "Jose\u{301}@example.org";
    let nfc = "Jos\u{e9}@example.org";
    assert_ne!(nfd, nfc);
    let policy = RecoveryPolicy::new(2, None, true, false).unwrap();
    let setup = RecoverySetup { servers: &urls, account: nfd, policy, device_name: "phone" };
    let (enrolment, report) = set_up(&network, &setup, &password(), &key(), 0, None).unwrap();
    assert_eq!(enrolment.account, nfc, "the enrolment keeps the normalised name");
    let code = report.recovery_code.unwrap();
    for account in [nfc, nfd] {
        let recovered = recover(&network, &urls, account, &password(), None).unwrap();
        assert_eq!(recovered.key.expose_secret(), key().expose_secret());
        let with_code = recover(&network, &urls[1..], account, &password(), Some(&code)).unwrap();
        assert_eq!(with_code.key.expose_secret(), key().expose_secret());
        super::password_transport(&network, &urls[0], account, &password()).unwrap();
    }
    // The guardians hold one account, under the NFC name.
    assert_eq!(network.guardian(&urls[0]).devices_of(nfc).len(), 1);
    assert!(network.guardian(&urls[0]).devices_of(nfd).is_empty());
}

#[test]
fn devices_are_listed_and_a_revoked_device_token_is_refused_at_once() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, _) = enrolled(&network, &urls);
    let enrolment = Enrolment::require(&conn).unwrap();
    let lists = lifecycle::devices(&network, &enrolment).unwrap();
    assert_eq!(lists.len(), 2);
    assert!(lists.iter().all(|l| l.devices.len() == 1 && l.devices[0].id == l.this_device));

    // This device itself is revoked only when asked for explicitly.
    let refused = lifecycle::revoke_device(&network, &conn, &password(), "phone", false);
    assert!(matches!(&refused, Err(Error::InvalidInput(m)) if m.contains("this device")), "{refused:?}");
    assert_eq!(network.guardian(&urls[0]).devices_of(ACCOUNT).len(), 1, "nothing revoked");
    let revoked = lifecycle::revoke_device(&network, &conn, &password(), "phone", true).unwrap();
    assert_eq!((revoked.count, revoked.own), (2, true));
    let transport = lifecycle::data_transport(&network, &enrolment).unwrap();
    assert!(matches!(transport.get_head(), Err(TransportError::Unauthorized(_))));
    let listed = lifecycle::devices(&network, &enrolment);
    assert!(matches!(listed, Err(Error::Guardian { index: 0, error: GuardianError::TokenRefused, .. })), "{listed:?}");
    assert_eq!(events(&conn, SecurityEventKind::DeviceRevoked), 1);
    assert_eq!(lifecycle::revoke_device(&network, &conn, &password(), "no such device", false).unwrap().count, 0);
}

#[test]
fn revocation_by_an_ambiguous_name_is_refused_with_the_list_and_by_id_or_unique_name_works() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, _) = enrolled(&network, &urls);
    // Two more devices at each guardian: another "phone" (the same name as this device) and a
    // "tablet".
    let mut other_phone = Vec::new();
    for url in &urls {
        let guardian = network.connect(url).unwrap();
        let session = guardian.login(ACCOUNT, &password()).unwrap();
        other_phone.push(guardian.enrol_device(&session.token, "phone").unwrap().0);
        guardian.enrol_device(&session.token, "tablet").unwrap();
    }
    let ambiguous = lifecycle::revoke_device(&network, &conn, &password(), "phone", true);
    let Err(Error::AmbiguousDevice { matches }) = &ambiguous else { panic!("{ambiguous:?}") };
    assert_eq!(matches.len(), 4);
    assert!(matches.iter().all(|(url, _, name)| urls.contains(url) && name == "phone"));
    assert!(ambiguous.as_ref().unwrap_err().to_string().contains(&other_phone[0]));
    assert!(urls.iter().all(|u| network.guardian(u).devices_of(ACCOUNT).len() == 3), "nothing revoked");

    // By id: that enrolment only (the name is ambiguous at the other guardian).
    assert_eq!(lifecycle::revoke_device(&network, &conn, &password(), &other_phone[0], false).unwrap().count, 1);
    assert_eq!(network.guardian(&urls[0]).devices_of(ACCOUNT).len(), 2);
    assert_eq!(network.guardian(&urls[1]).devices_of(ACCOUNT).len(), 3);
    // A name one device carries at each guardian revokes it everywhere.
    assert_eq!(lifecycle::revoke_device(&network, &conn, &password(), "tablet", false).unwrap().count, 2);
    // This device's own id is refused without the flag, even where its name is unique.
    let own = Enrolment::require(&conn).unwrap().guardians[0].device_id.clone();
    let refused = lifecycle::revoke_device(&network, &conn, &password(), &own, false);
    assert!(matches!(&refused, Err(Error::InvalidInput(m)) if m.contains("this device")), "{refused:?}");
    // Its name is unique at guardian 0 now, so the id also finds it nowhere else ambiguous:
    // at guardian 1 two "phone"s remain and are left alone.
    assert_eq!(lifecycle::revoke_device(&network, &conn, &password(), &own, true).unwrap().count, 1);
    assert_eq!(network.guardian(&urls[1]).devices_of(ACCOUNT).len(), 2);
}

#[test]
fn a_guardian_whose_key_changed_is_refused_on_every_session_and_the_change_is_recorded() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, _) = enrolled(&network, &urls);
    let key_check = BackupKeys::derive(&key()).key_check();
    let new = Passphrase::new("new".into());
    network.guardian(&urls[0]).script(Fault::LieAboutKey(vec![9; 32]));
    for attempt in [
        lifecycle::change_password(&network, &conn, key_check, 0, &password(), &new).map(|_| ()),
        lifecycle::rotate(&network, &conn, &password()).map(|_| ()),
        lifecycle::revoke_device(&network, &conn, &password(), "phone", true).map(|_| ()),
    ] {
        assert!(
            matches!(&attempt, Err(Error::Integrity { object: DataKind::GuardianKey, problem: m }) if m.contains(&urls[0]) && m.contains("pinned"))
        );
    }
    assert_eq!(events(&conn, SecurityEventKind::ServerKeyChanged), 3);
    assert_eq!(network.guardian(&urls[0]).calls(Call::ChangePassword), 0);
    // A guardian replaced by another server (another key) is refused the same way.
    network.guardian(&urls[0]).heal();
    network.replace(&urls[1], 99);
    let replaced = lifecycle::rotate(&network, &conn, &password());
    // The impostor has no such account: the login there is refused, and nothing is written.
    assert!(
        matches!(replaced, Err(Error::Guardian { index: 1, error: GuardianError::LoginRefused, .. })),
        "{replaced:?}"
    );
    assert_eq!(network.guardian(&urls[1]).calls(Call::PutEscrow), 0, "nothing was written to the impostor");
}

#[test]
fn with_an_old_code_and_a_stale_guardian_the_newest_key_epoch_is_used() {
    let (network, urls) = MemoryNetwork::with_guardians(3);
    let policy = RecoveryPolicy::new(3, None, true, false).unwrap();
    let setup = RecoverySetup { servers: &urls, account: ACCOUNT, policy, device_name: "phone" };
    let (enrolment, report) = set_up(&network, &setup, &password(), &key(), 0, None).unwrap();
    let old_code = report.recovery_code.unwrap();
    let conn = database();
    crate::store::backup_state::set_root_key(&conn, &key()).unwrap();
    enrolment.save(&conn).unwrap();
    lifecycle::rotate(&network, &conn, &password()).unwrap();
    let rotated = crate::store::backup_state::root_key(&conn).unwrap().unwrap();
    assert_ne!(rotated.expose_secret(), key().expose_secret());
    // Guardian 0 and the old code form the epoch-0 split, guardians 1 and 2 the epoch-1 one: each
    // recovers its own key, and the newest epoch's is the one used (and enrolled); the stale
    // guardian is named.
    network.guardian(&urls[0]).script(Fault::ReplayEscrow(0));
    let recovered = recover(&network, &urls, ACCOUNT, &password(), Some(&old_code)).unwrap();
    assert_eq!(recovered.key.expose_secret(), rotated.expose_secret());
    assert_eq!(recovered.report.servers_used, vec![urls[1].clone(), urls[2].clone()]);
    assert!(!recovered.report.recovery_code_used);
    assert!(recovered.report.servers_failed.iter().any(|f| f.starts_with(&urls[0]) && f.contains("older key epoch")));
}

/// The old code with a guardian replaying its old escrow, while the other guardian holds the new
/// epoch: the old key is all the shares at hand reach, and the newer guardian is named as newer,
/// not as stale.
#[test]
fn a_newer_epoch_the_shares_at_hand_cannot_reach_is_named_as_newer() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, old_code, _) = refreshed(&network, &urls);
    network.guardian(&urls[0]).script(Fault::ReplayEscrow(0));
    let recovered = recover(&network, &urls, ACCOUNT, &password(), Some(&old_code)).unwrap();
    assert_eq!(recovered.key.expose_secret(), key().expose_secret(), "the old key, and only it");
    assert_ne!(recovered.key.expose_secret(), current_key(&conn).expose_secret());
    let failed = &recovered.report.servers_failed;
    assert!(failed.iter().any(|f| f.starts_with(&urls[1]) && f.contains("NEWER key epoch")), "{failed:?}");
}

/// Someone with the account name and a guess tries the password at one guardian and a recovery
/// succeeds elsewhere: the enrolled device's next read of the logs records both, once; after its
/// enrolment is revoked it reads nothing more.
#[test]
fn guessing_and_recoveries_at_guardians_reach_the_enrolled_devices_security_log_once() {
    let (network, urls) = MemoryNetwork::with_guardians(2);
    let (conn, _) = enrolled(&network, &urls);
    let enrolment = Enrolment::require(&conn).unwrap();
    let first = super::fetch_guardian_events(&network, &conn, &enrolment).unwrap();
    assert!(first.unread.is_empty(), "{:?}", first.unread);
    assert!(first.new_events.iter().any(|e| e.kind == SecurityEventKind::GuardianDeviceEnrolled), "setup's own");

    let stranger = network.connect(&urls[1]).unwrap();
    for _ in 0..3 {
        assert!(matches!(
            stranger.login(ACCOUNT, &Passphrase::new("a guess".into())),
            Err(GuardianError::LoginRefused)
        ));
    }
    recovered_key(&network, &urls, &password(), None).unwrap();
    let report = super::fetch_guardian_events(&network, &conn, &enrolment).unwrap();
    let kinds = |guardian: &str, kind| {
        report.new_events.iter().filter(|e| e.kind == kind && e.detail.starts_with(guardian)).count()
    };
    assert_eq!(kinds("guardian 2", SecurityEventKind::GuardianLoginStarted), 4, "three guesses and the recovery");
    assert_eq!(kinds("guardian 2", SecurityEventKind::GuardianLoginSucceeded), 1);
    assert_eq!(kinds("guardian 1", SecurityEventKind::GuardianLoginStarted), 1);
    assert_eq!(kinds("guardian 1", SecurityEventKind::GuardianEscrowRead), 1);
    assert!(report.new_events.iter().all(|e| e.detail.contains(&urls[0]) || e.detail.contains(&urls[1])));
    assert!(super::fetch_guardian_events(&network, &conn, &enrolment).unwrap().new_events.is_empty(), "once");
    assert_eq!(events(&conn, SecurityEventKind::GuardianLoginStarted), 7, "setup's two logins and these five");

    // Revoked at guardian 2: its log is no longer readable by this device.
    let session = network.connect(&urls[1]).unwrap().login(ACCOUNT, &password()).unwrap();
    let revoked = &enrolment.guardians[1].device_id;
    network.connect(&urls[1]).unwrap().revoke_device(&session.token, revoked).unwrap();
    let after = super::fetch_guardian_events(&network, &conn, &enrolment).unwrap();
    assert_eq!(after.unread.len(), 1);
    assert_eq!(after.unread[0].0, urls[1]);
    assert!(after.new_events.iter().all(|e| e.detail.starts_with("guardian 1")), "{:?}", after.new_events);
}
