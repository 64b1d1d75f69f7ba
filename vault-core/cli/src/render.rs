//! Human-readable rendering helpers.

use vault_core::{SlotInfo, SlotMethod};

/// Formats milliseconds since the Unix epoch as `YYYY-MM-DD HH:MM:SS` UTC.
pub fn utc(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
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
    fn formats_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_776_245_000), "2026-11-27 10:44:05");
        assert_eq!(utc(-1000), "1969-12-31 23:59:59");
    }
}
