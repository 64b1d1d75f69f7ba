//! Human-readable rendering helpers.

use vault_core::{SecurityEvent, SlotInfo, SlotMethod};

/// Formats milliseconds since the Unix epoch as ISO 8601 local time with its offset, e.g.
/// `2026-12-05 09:14:03 +01:00`, in the system time zone (`TZ` honoured). `--json` output keeps
/// the raw numbers.
pub fn local_time(millis: i64) -> String {
    local_time_in(millis, &jiff::tz::TimeZone::system())
}

/// [`local_time`] for seconds since the Unix epoch.
pub fn local_time_secs(secs: u64) -> String {
    local_time(i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000))
}

fn local_time_in(millis: i64, zone: &jiff::tz::TimeZone) -> String {
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(at) => at.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M:%S %:z").to_string(),
        // Outside the years -9999..=9999: no calendar date to show, so the raw number.
        Err(_) => format!("{millis} ms since 1970"),
    }
}

/// A lifetime in words: `1 day`, `2 hours 30 minutes`, `45 seconds`.
pub fn duration(secs: u64) -> String {
    let units = [("day", 86_400), ("hour", 3600), ("minute", 60), ("second", 1)];
    let mut rest = secs;
    let mut parts = Vec::new();
    for (name, size) in units {
        let n = rest / size;
        rest %= size;
        if n > 0 {
            parts.push(format!("{n} {name}{}", if n == 1 { "" } else { "s" }));
        }
    }
    if parts.is_empty() { "0 seconds".to_owned() } else { parts.join(" ") }
}

/// A run of consecutive security events of one kind, newest first.
#[derive(Debug, PartialEq, Eq)]
pub struct EventGroup<'a> {
    /// The newest event of the run.
    pub last: &'a SecurityEvent,
    /// When the oldest event of the run happened (ms since the epoch).
    pub first_at: i64,
    /// Events in the run.
    pub count: usize,
}

/// Groups consecutive events (given newest first) of the same kind, so that one failed unlock or
/// slot change stands out between runs of routine unlocks.
pub fn group_events(events: &[SecurityEvent]) -> Vec<EventGroup<'_>> {
    let mut groups: Vec<EventGroup<'_>> = Vec::new();
    for event in events {
        match groups.last_mut() {
            Some(group) if group.last.kind == event.kind => {
                group.first_at = event.at;
                group.count += 1;
            }
            _ => groups.push(EventGroup { last: event, first_at: event.at, count: 1 }),
        }
    }
    groups
}

/// One dashboard line for a group: the event itself, or `14 times since …, last: slot 1`.
pub fn event_group_line(group: &EventGroup<'_>) -> String {
    event_group_line_in(group, &jiff::tz::TimeZone::system())
}

fn event_group_line_in(group: &EventGroup<'_>, zone: &jiff::tz::TimeZone) -> String {
    let local_time = |at| local_time_in(at, zone);
    let event = group.last;
    let what = if group.count == 1 {
        event.detail.clone()
    } else {
        let last = if event.detail.is_empty() { String::new() } else { format!(", last: {}", event.detail) };
        format!("{} times since {}{last}", group.count, local_time(group.first_at))
    };
    format!("{}  {:<17} {what}", local_time(event.at), event.kind.as_str()).trim_end().to_owned()
}

/// What the guardians' account events say per guardian, one line each: login attempts (and how
/// many succeeded), delays, escrow reads and device changes, with the time of the newest.
/// `events` may be in any order; non-guardian events are ignored.
pub fn recovery_attempts(events: &[SecurityEvent]) -> Vec<String> {
    recovery_attempts_in(events, &jiff::tz::TimeZone::system())
}

fn recovery_attempts_in(events: &[SecurityEvent], zone: &jiff::tz::TimeZone) -> Vec<String> {
    use vault_core::SecurityEventKind as K;
    #[derive(Default)]
    struct Tally {
        started: usize,
        succeeded: usize,
        delayed: usize,
        escrow_reads: usize,
        devices: usize,
        other: usize,
        newest: i64,
    }
    let mut tallies: Vec<(String, Tally)> = Vec::new();
    for event in events {
        if !event.kind.as_str().starts_with("guardian_") {
            continue;
        }
        // The detail starts with "guardian N (URL)".
        let Some(guardian) = event.detail.split_once(')').map(|(name, _)| format!("{name})")) else { continue };
        let position = match tallies.iter().position(|(name, _)| *name == guardian) {
            Some(position) => position,
            None => {
                tallies.push((guardian, Tally::default()));
                tallies.len() - 1
            }
        };
        let tally = &mut tallies[position].1;
        match event.kind {
            K::GuardianLoginStarted => tally.started += 1,
            K::GuardianLoginSucceeded => tally.succeeded += 1,
            K::GuardianLoginDelayed => tally.delayed += 1,
            K::GuardianEscrowRead => tally.escrow_reads += 1,
            K::GuardianDeviceEnrolled | K::GuardianDeviceRevoked => tally.devices += 1,
            _ => tally.other += 1,
        }
        tally.newest = tally.newest.max(event.at);
    }
    tallies.sort_by(|a, b| a.0.cmp(&b.0));
    tallies
        .into_iter()
        .map(|(guardian, t)| {
            let mut parts = vec![format!("{} login attempts ({} succeeded)", t.started, t.succeeded)];
            if t.delayed > 0 {
                parts.push(format!("delayed {} times after failed logins", t.delayed));
            }
            if t.escrow_reads > 0 {
                parts.push(format!("share read {} times", t.escrow_reads));
            }
            if t.devices > 0 {
                parts.push(format!("{} device changes", t.devices));
            }
            if t.other > 0 {
                parts.push(format!("{} other events", t.other));
            }
            format!("{guardian}: {}; newest {}", parts.join(", "), local_time_in(t.newest, zone))
        })
        .collect()
}

/// One line describing a slot.
pub fn slot_line(slot: &SlotInfo) -> String {
    match &slot.method {
        SlotMethod::Passphrase { kdf } => format!(
            "slot {:<3} passphrase   argon2id m={} MiB t={} p={}",
            slot.id,
            kdf.memory_kib / 1024,
            kdf.iterations,
            kdf.parallelism
        ),
        SlotMethod::KeyWrapper { label, hardware_backed } if vault_tpm::is_tpm_label(label) => {
            format!("slot {:<3} TPM 2.0      {label}: {}", slot.id, hardware_label(*hardware_backed))
        }
        SlotMethod::KeyWrapper { label, hardware_backed } => {
            format!("slot {:<3} key wrapper  {label}: {}", slot.id, hardware_label(*hardware_backed))
        }
        _ => format!("slot {:<3} (a kind this tool does not know)", slot.id),
    }
}

/// How the dashboard names a wrapper's protection.
pub fn hardware_label(hardware_backed: bool) -> &'static str {
    if hardware_backed { "hardware-backed" } else { "software, not hardware-backed" }
}

/// JSON form of a slot.
pub fn slot_json(slot: &SlotInfo) -> serde_json::Value {
    match &slot.method {
        SlotMethod::Passphrase { kdf } => serde_json::json!({
            "id": slot.id.0,
            "kind": "passphrase",
            "created_at": slot.created_at,
            "kdf": {
                "algorithm": "argon2id",
                "memory_kib": kdf.memory_kib,
                "iterations": kdf.iterations,
                "parallelism": kdf.parallelism,
            },
            "hardware_backed": false,
        }),
        SlotMethod::KeyWrapper { label, hardware_backed } => serde_json::json!({
            "id": slot.id.0,
            "kind": "key_wrapper",
            "created_at": slot.created_at,
            "label": label,
            "tpm": vault_tpm::is_tpm_label(label),
            "hardware_backed": hardware_backed,
            "protection": hardware_label(*hardware_backed),
        }),
        _ => serde_json::json!({ "id": slot.id.0, "kind": "unknown", "created_at": slot.created_at }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_words() {
        assert_eq!(duration(86_400), "1 day");
        assert_eq!(duration(9000), "2 hours 30 minutes");
        assert_eq!(duration(45), "45 seconds");
        assert_eq!(duration(2 * 86_400 + 1), "2 days 1 second");
        assert_eq!(duration(0), "0 seconds");
    }

    fn event(id: i64, kind: vault_core::SecurityEventKind, detail: &str) -> SecurityEvent {
        SecurityEvent { id, at: id * 1000, kind, detail: detail.to_owned() }
    }

    #[test]
    fn groups_runs_of_one_kind_and_keeps_the_rest_visible() {
        use vault_core::SecurityEventKind::{SlotAdded, UnlockFailed, UnlockSucceeded};
        // Newest first: 3 unlocks, a failed unlock, 2 unlocks, a slot added.
        let events = [
            event(7, UnlockSucceeded, "slot 1"),
            event(6, UnlockSucceeded, "slot 0"),
            event(5, UnlockSucceeded, "slot 0"),
            event(4, UnlockFailed, "slot 0"),
            event(3, UnlockSucceeded, "slot 0"),
            event(2, UnlockSucceeded, "slot 0"),
            event(1, SlotAdded, "slot 1 passphrase"),
        ];
        let groups = group_events(&events);
        let summary: Vec<_> = groups.iter().map(|g| (g.last.id, g.first_at, g.count)).collect();
        assert_eq!(summary, [(7, 5000, 3), (4, 4000, 1), (3, 2000, 2), (1, 1000, 1)]);
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(
            event_group_line_in(&groups[0], &utc),
            "1970-01-01 00:00:07 +00:00  unlock_succeeded  3 times since 1970-01-01 00:00:05 +00:00, last: slot 1"
        );
        assert_eq!(event_group_line_in(&groups[1], &utc), "1970-01-01 00:00:04 +00:00  unlock_failed     slot 0");
    }

    #[test]
    fn recovery_attempts_are_tallied_per_guardian() {
        use vault_core::SecurityEventKind as K;
        let g1 = "guardian 1 (https://a.example)";
        let g2 = "guardian 2 (https://b.example)";
        let events = [
            event(1, K::GuardianLoginStarted, g2),
            event(2, K::GuardianLoginStarted, &format!("{g2}, with a login ticket")),
            event(3, K::GuardianLoginDelayed, &format!("{g2}, next login admitted 60 s later")),
            event(4, K::GuardianLoginStarted, g1),
            event(5, K::GuardianLoginSucceeded, g1),
            event(6, K::GuardianEscrowRead, g1),
            event(7, K::UnlockSucceeded, ""),
        ];
        let utc = jiff::tz::TimeZone::UTC;
        let lines = recovery_attempts_in(&events, &utc);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with(&format!("{g1}: 1 login attempts (1 succeeded), share read 1 times; newest")));
        assert!(
            lines[1]
                .starts_with(&format!("{g2}: 2 login attempts (0 succeeded), delayed 1 times after failed logins;")),
            "{lines:?}"
        );
    }

    #[test]
    fn formats_local_times_with_offsets() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(local_time_in(0, &utc), "1970-01-01 00:00:00 +00:00");
        assert_eq!(local_time_in(951_782_400_000, &utc), "2000-02-29 00:00:00 +00:00");
        assert_eq!(local_time_in(-1000, &utc), "1969-12-31 23:59:59 +00:00");
        let kolkata = jiff::tz::TimeZone::fixed(jiff::tz::offset(5));
        assert_eq!(local_time_in(1_795_776_245_000, &utc), "2026-11-27 10:44:05 +00:00");
        assert_eq!(local_time_in(1_795_776_245_000, &kolkata), "2026-11-27 15:44:05 +05:00");
        assert_eq!(local_time_in(i64::MAX, &utc), format!("{} ms since 1970", i64::MAX));
    }
}
