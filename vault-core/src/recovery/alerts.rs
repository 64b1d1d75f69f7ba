//! Recovery-attempt alerts: an enrolled device reads the backup account's event log at every
//! guardian with its own device token and adds what it has not seen yet to the vault's
//! security-event log, so the user learns of password guesses, delays, recoveries and device
//! changes made anywhere. A revoked device's token is refused, so it learns nothing new.

use rusqlite::Connection;

use super::guardian::{GuardianEvent, GuardianEventKind, GuardianEvents, Remote};
use super::{Enrolment, GuardianNetwork, in_parallel};
use crate::SecurityEventKind;
use crate::error::Result;
use crate::store::{events, guardian_events};

/// What reading the guardians' event logs added.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GuardianEventsReport {
    /// The security events added, oldest first.
    pub new_events: Vec<crate::SecurityEvent>,
    /// Guardians whose log could not be read (unreachable, or this device's token refused), by
    /// URL, with the reason.
    pub unread: Vec<(String, String)>,
}

/// Reads every guardian's log after this device's cursor for it and records the new events.
/// Never fails for one guardian: an unreachable one is listed in the report.
pub(crate) fn fetch(
    network: &dyn GuardianNetwork,
    conn: &Connection,
    enrolment: &Enrolment,
) -> Result<GuardianEventsReport> {
    let cursors = enrolment
        .guardians
        .iter()
        .map(|g| guardian_events::seen(conn, &g.url, &g.device_id))
        .collect::<Result<Vec<u64>>>()?;
    let positions: Vec<usize> = (0..enrolment.guardians.len()).collect();
    let answers = in_parallel(&positions, |&index| {
        let guardian = &enrolment.guardians[index];
        let remote = Remote::connect(network, index, &guardian.url).map_err(|e| e.to_string())?;
        remote.guardian.account_events(&guardian.device_token, cursors[index]).map_err(|e| e.to_string())
    });
    let before = events::last_id(conn)?;
    let mut report = GuardianEventsReport::default();
    let tx = conn.unchecked_transaction()?;
    for (index, answer) in answers.into_iter().enumerate() {
        let guardian = &enrolment.guardians[index];
        let fetched = match answer {
            Ok(fetched) => fetched,
            Err(reason) => {
                report.unread.push((guardian.url.clone(), reason));
                continue;
            }
        };
        // Re-read inside the transaction: a concurrent fetch may have recorded some already.
        let seen = guardian_events::seen(&tx, &guardian.url, &guardian.device_id)?;
        let name = format!("guardian {} ({})", index + 1, guardian.url);
        let newest = record(&tx, &name, seen, &fetched)?;
        guardian_events::set_seen(&tx, &guardian.url, &guardian.device_id, newest)?;
    }
    tx.commit()?;
    report.new_events = events::since(conn, before)?;
    Ok(report)
}

/// Records the events after `seen` and returns the newest position.
fn record(conn: &Connection, name: &str, seen: u64, fetched: &GuardianEvents) -> Result<u64> {
    let fresh: Vec<&GuardianEvent> = fetched.events.iter().filter(|e| e.seq > seen).collect();
    let at_ms = |secs: u64| i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    if fetched.dropped > 0 {
        let at = fresh.first().map_or_else(crate::store::now_millis, |e| at_ms(e.at_secs));
        let detail = format!("{name}: {} earlier events were no longer kept", fetched.dropped);
        events::record(conn, at, SecurityEventKind::GuardianEventsDropped, &detail)?;
    }
    for event in &fresh {
        events::record(conn, at_ms(event.at_secs), kind(event.kind), &detail(name, event))?;
    }
    Ok(fresh.last().map_or(seen, |e| e.seq))
}

fn kind(kind: GuardianEventKind) -> SecurityEventKind {
    match kind {
        GuardianEventKind::LoginStarted => SecurityEventKind::GuardianLoginStarted,
        GuardianEventKind::LoginSucceeded => SecurityEventKind::GuardianLoginSucceeded,
        GuardianEventKind::LoginDelayed => SecurityEventKind::GuardianLoginDelayed,
        GuardianEventKind::EscrowRead => SecurityEventKind::GuardianEscrowRead,
        GuardianEventKind::PasswordChanged => SecurityEventKind::GuardianPasswordChanged,
        GuardianEventKind::DeviceEnrolled => SecurityEventKind::GuardianDeviceEnrolled,
        GuardianEventKind::DeviceRevoked => SecurityEventKind::GuardianDeviceRevoked,
        GuardianEventKind::Unlocked => SecurityEventKind::GuardianUnlocked,
        GuardianEventKind::Other => SecurityEventKind::GuardianEventOther,
    }
}

fn detail(name: &str, event: &GuardianEvent) -> String {
    let mut detail = name.to_owned();
    if event.authorised {
        detail.push_str(", with a login ticket");
    }
    if let Some(retry_at) = event.retry_at_secs {
        detail.push_str(&format!(", next login admitted {} s later", retry_at.saturating_sub(event.at_secs)));
    }
    detail
}
