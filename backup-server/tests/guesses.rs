//! Guess limits a stranger cannot turn against the owner, and the account's event log, against an
//! embedded server: login tickets from an authoriser, the delay schedule under a tight loop, the
//! per-address limit, and what enrolled and revoked devices read from `/v1/events`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::time::Instant;

use backup_api::client::{BackupClient, ClientError, ClientOptions, LoginTicket};
use backup_api::wire::AccountEventKind;
use backup_api::{ErrorCode, OpaqueSuite, ticket};
use backup_server::Limits;
use opaque_ke::ClientLogin;
use support::{Backend, Harness, ksf, limits_with_delays, test_limits, unique};

const SEED: [u8; 32] = [42; 32];

fn authorised_limits(base: Limits) -> Limits {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&ticket::public_key(&SEED)).unwrap();
    let mut limits = base;
    limits.login.authorisers = vec![key];
    limits
}

fn ticket_for(account: &str, ttl: u64) -> String {
    let now = backup_server::state::now_secs();
    ticket::issue(&SEED, account, now + ttl, rand_nonce())
}

fn rand_nonce() -> [u8; 16] {
    let mut nonce = [0u8; 16];
    backup_server::random::fill(&mut nonce);
    nonce
}

fn client_with_ticket(h: &Harness, ticket: String) -> BackupClient {
    let options = ClientOptions { login_ticket: Some(LoginTicket::new(ticket)), ..ClientOptions::default() };
    BackupClient::with_options(&h.server.url(), options).unwrap()
}

fn probe() -> Vec<u8> {
    let mut rng = rand_08::rngs::OsRng;
    ClientLogin::<OpaqueSuite>::start(&mut rng, b"guess").unwrap().message.serialize().to_vec()
}

fn kinds(client: &BackupClient, token: &backup_api::client::BearerToken) -> Vec<(AccountEventKind, bool)> {
    client.account_events(token, 0).unwrap().events.into_iter().map(|e| (e.kind, e.authorised)).collect()
}

/// A stranger who knows the account name sends 50 login starts to a server with an authoriser:
/// without a ticket, with an expired one, with one for another account, with one from another
/// issuer. None is answered or counted, and the owner, with a ticket, logs in at once.
#[test]
fn unauthenticated_starts_are_refused_before_they_count_and_the_owner_recovers() {
    let h = Harness::start(Backend::Memory, authorised_limits(limits_with_delays(3, 3600, 3600)));
    let account = unique("victim");
    h.client.register(&account, b"right", ksf()).unwrap();
    let now = backup_server::state::now_secs();
    let forged = [
        None,
        Some(ticket::issue(&SEED, &account, now.saturating_sub(1), rand_nonce())),
        Some(ticket_for("someone-else@example.org", 300)),
        Some(ticket::issue(&[7; 32], &account, now + 300, rand_nonce())),
        Some("AAAA".to_owned()),
    ];
    let probe = probe();
    for i in 0..50 {
        let ticket = forged[i % forged.len()].clone();
        let client = match ticket {
            Some(t) => client_with_ticket(&h, t),
            None => h.client.clone(),
        };
        let refused = client.login_start_raw(&account, &probe).unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::LoginTicketRequired), "{refused:?}");
    }
    let metrics = h.server.state.metrics.render();
    assert!(metrics.contains("backup_login_tickets_refused_total 50"), "{metrics}");

    let owner = client_with_ticket(&h, ticket_for(&account, 300));
    let session = owner.login(&account, b"right").unwrap();
    let status = owner.account_status(&session.token).unwrap();
    assert_eq!(status.failed_logins, 0);
    assert_eq!(
        kinds(&owner, &session.token),
        vec![(AccountEventKind::LoginStarted, true), (AccountEventKind::LoginSucceeded, false)],
        "only the owner's start was counted"
    );
}

/// With a ticket, the owner is told to wait instead of getting a wrong-password failure.
#[test]
fn an_authorised_requester_is_told_when_to_retry() {
    let h = Harness::start(Backend::Memory, authorised_limits(limits_with_delays(2, 600, 3600)));
    let account = unique("told");
    h.client.register(&account, b"right", ksf()).unwrap();
    let client = client_with_ticket(&h, ticket_for(&account, 300));
    for _ in 0..2 {
        assert!(matches!(client.login(&account, b"wrong"), Err(ClientError::LoginFailed)));
    }
    match client.login(&account, b"right") {
        Err(ClientError::LoginDelayed { retry_after_secs }) => {
            assert!((595..=600).contains(&retry_after_secs), "{retry_after_secs}");
        }
        other => panic!("expected a delay, got {:?}", other.map(|_| ())),
    }
}

/// A loop starting logins as fast as it can for a few seconds is admitted no more often than the
/// schedule's budget for that time.
#[test]
fn a_tight_loop_stays_within_the_guess_budget() {
    let limits = limits_with_delays(3, 1, 2);
    let delays = limits.login.delays;
    let h = Harness::start(Backend::Memory, limits);
    let account = unique("loop");
    h.client.register(&account, b"right", ksf()).unwrap();
    let session = h.client.login(&account, b"right").unwrap();
    let (_, device) = h.client.enrol_device(&session.token, "watcher").unwrap();
    let probe = probe();
    let started = Instant::now();
    let mut answered = 0u64;
    while started.elapsed().as_secs_f64() < 4.5 {
        h.client.login_start_raw(&account, &probe).unwrap();
        answered += 1;
    }
    let horizon = started.elapsed().as_secs() + 1;
    let counted = u64::from(h.client.account_status(&device).unwrap().failed_logins);
    assert!(answered > 20, "the loop was tight: {answered} starts");
    assert!(counted > u64::from(delays.free), "delayed starts were admitted in time: {counted}");
    assert!(counted <= delays.budget(horizon), "{counted} counted > budget {}", delays.budget(horizon));
}

/// One client address starting logins faster than its per-minute limit is slowed, whatever the
/// account.
#[test]
fn one_address_is_limited_in_login_starts() {
    let mut limits = test_limits();
    limits.login.starts_per_ip_minute = (2, 2);
    let h = Harness::start(Backend::Memory, limits);
    let probe = probe();
    for _ in 0..2 {
        h.client.login_start_raw(&unique("a"), &probe).unwrap();
    }
    let refused = h.client.login_start_raw(&unique("b"), &probe).unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RateLimited));
}

/// The events an enrolled device reads: counted starts (a wrong password is a start without a
/// success), the delay, successes, escrow reads and device changes; a revoked device reads nothing.
#[test]
fn enrolled_devices_read_the_account_events_and_revoked_ones_do_not() {
    let h = Harness::start(Backend::Memory, limits_with_delays(2, 3600, 3600));
    let account = unique("events");
    h.client.register(&account, b"right", ksf()).unwrap();
    let session = h.client.login(&account, b"right").unwrap().token;
    let (_, phone) = h.client.enrol_device(&session, "phone").unwrap();
    let (tablet_id, tablet) = h.client.enrol_device(&session, "tablet").unwrap();
    h.client.put_escrow(&session, b"sealed", None).unwrap();
    h.client.get_escrow(&session).unwrap();
    let seen = h.client.account_events(&phone, 0).unwrap().events.last().unwrap().seq;
    // Two wrong passwords spend the free starts; the next three come during the delay: the first
    // of them is noted, once.
    for _ in 0..5 {
        assert!(h.client.login(&account, b"wrong").is_err());
    }
    let new = h.client.account_events(&phone, seen).unwrap();
    let kinds: Vec<AccountEventKind> = new.events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        vec![AccountEventKind::LoginStarted, AccountEventKind::LoginStarted, AccountEventKind::LoginDelayed]
    );
    assert_eq!(new.dropped, 0);
    let retry_at = new.events[2].retry_at.unwrap();
    assert_eq!(retry_at, new.events[1].at + 3600);
    let all = h.client.account_events(&phone, 0).unwrap().events;
    let kinds: Vec<AccountEventKind> = all.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[..6],
        [
            AccountEventKind::LoginStarted,
            AccountEventKind::LoginSucceeded,
            AccountEventKind::DeviceEnrolled,
            AccountEventKind::DeviceEnrolled,
            AccountEventKind::EscrowRead,
            AccountEventKind::LoginStarted,
        ]
    );
    assert!(all.windows(2).all(|w| w[1].seq == w[0].seq + 1), "sequence numbers follow each other");

    h.client.revoke_device(&session, &tablet_id).unwrap();
    assert_eq!(h.client.account_events(&tablet, 0).unwrap_err().code(), Some(ErrorCode::Unauthorized));
    let last = h.client.account_events(&phone, 0).unwrap().events.pop().unwrap();
    assert_eq!(last.kind, AccountEventKind::DeviceRevoked);
    assert_eq!(h.client.account_events(&phone, last.seq).unwrap().events, vec![]);
}
