//! The security-event log: unlocks, failed unlocks, key-slot changes. Details name slots and
//! counts, never secrets or content.

use rusqlite::{Connection, params};

use crate::error::Result;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecurityEventKind {
    /// The vault was created.
    VaultCreated,
    /// The vault was unlocked.
    UnlockSucceeded,
    /// An unlock attempt failed (recorded at the next successful unlock).
    UnlockFailed,
    /// A key slot was added.
    SlotAdded,
    /// A key slot was removed.
    SlotRemoved,
    /// A key slot's secret was changed (new passphrase).
    SlotChanged,
    /// The vault root key was rotated (database re-keyed, every slot re-sealed).
    RootKeyRotated,
    /// A key-wrapper slot was re-wrapped with a rotated platform key.
    WrapperKeyRotated,
    /// An interrupted root-key rotation was rolled back (the old root key stays).
    RootKeyRotationRolledBack,
    /// A backup generation was written.
    BackupWritten,
    /// The vault was restored from a backup.
    BackupRestored,
    /// Recovery was set up (or set up again) with backup servers as guardians.
    RecoveryEnrolled,
    /// The backup password was changed on the guardians.
    RecoveryPasswordChanged,
    /// The key's shares were replaced by a new split (old shares and recovery code void).
    RecoverySharesRefreshed,
    /// A device's backup token was revoked.
    DeviceRevoked,
    /// A guardian server answered with an OPAQUE key other than the one pinned at enrolment.
    ServerKeyChanged,
    /// A password login for the backup account was started and counted at a guardian (a wrong password
    /// shows as a start without a success).
    GuardianLoginStarted,
    /// A password login for the backup account succeeded at a guardian.
    GuardianLoginSucceeded,
    /// Failed logins at a guardian reached the point where each further one is delayed.
    GuardianLoginDelayed,
    /// A guardian's escrow record (its sealed share) was read: a recovery, or a password change.
    GuardianEscrowRead,
    /// The backup password was changed at a guardian.
    GuardianPasswordChanged,
    /// A device was enrolled at a guardian.
    GuardianDeviceEnrolled,
    /// A device was revoked at a guardian.
    GuardianDeviceRevoked,
    /// A guardian's operator reset the account's failed-login count.
    GuardianUnlocked,
    /// A guardian reported an event of a kind this build does not know.
    GuardianEventOther,
    /// A guardian no longer kept some events this device had not read yet.
    GuardianEventsDropped,
}

impl SecurityEventKind {
    /// Stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityEventKind::VaultCreated => "vault_created",
            SecurityEventKind::UnlockSucceeded => "unlock_succeeded",
            SecurityEventKind::UnlockFailed => "unlock_failed",
            SecurityEventKind::SlotAdded => "slot_added",
            SecurityEventKind::SlotRemoved => "slot_removed",
            SecurityEventKind::SlotChanged => "slot_changed",
            SecurityEventKind::RootKeyRotated => "root_key_rotated",
            SecurityEventKind::WrapperKeyRotated => "wrapper_key_rotated",
            SecurityEventKind::RootKeyRotationRolledBack => "root_key_rotation_rolled_back",
            SecurityEventKind::BackupWritten => "backup_written",
            SecurityEventKind::BackupRestored => "backup_restored",
            SecurityEventKind::RecoveryEnrolled => "recovery_enrolled",
            SecurityEventKind::RecoveryPasswordChanged => "recovery_password_changed",
            SecurityEventKind::RecoverySharesRefreshed => "recovery_shares_refreshed",
            SecurityEventKind::DeviceRevoked => "device_revoked",
            SecurityEventKind::ServerKeyChanged => "server_key_changed",
            SecurityEventKind::GuardianLoginStarted => "guardian_login_started",
            SecurityEventKind::GuardianLoginSucceeded => "guardian_login_succeeded",
            SecurityEventKind::GuardianLoginDelayed => "guardian_login_delayed",
            SecurityEventKind::GuardianEscrowRead => "guardian_escrow_read",
            SecurityEventKind::GuardianPasswordChanged => "guardian_password_changed",
            SecurityEventKind::GuardianDeviceEnrolled => "guardian_device_enrolled",
            SecurityEventKind::GuardianDeviceRevoked => "guardian_device_revoked",
            SecurityEventKind::GuardianUnlocked => "guardian_unlocked",
            SecurityEventKind::GuardianEventOther => "guardian_event_other",
            SecurityEventKind::GuardianEventsDropped => "guardian_events_dropped",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "vault_created" => SecurityEventKind::VaultCreated,
            "unlock_succeeded" => SecurityEventKind::UnlockSucceeded,
            "unlock_failed" => SecurityEventKind::UnlockFailed,
            "slot_added" => SecurityEventKind::SlotAdded,
            "slot_removed" => SecurityEventKind::SlotRemoved,
            "slot_changed" => SecurityEventKind::SlotChanged,
            "root_key_rotated" => SecurityEventKind::RootKeyRotated,
            "wrapper_key_rotated" => SecurityEventKind::WrapperKeyRotated,
            "root_key_rotation_rolled_back" => SecurityEventKind::RootKeyRotationRolledBack,
            "backup_written" => SecurityEventKind::BackupWritten,
            "backup_restored" => SecurityEventKind::BackupRestored,
            "recovery_enrolled" => SecurityEventKind::RecoveryEnrolled,
            "recovery_password_changed" => SecurityEventKind::RecoveryPasswordChanged,
            "recovery_shares_refreshed" => SecurityEventKind::RecoverySharesRefreshed,
            "device_revoked" => SecurityEventKind::DeviceRevoked,
            "server_key_changed" => SecurityEventKind::ServerKeyChanged,
            "guardian_login_started" => SecurityEventKind::GuardianLoginStarted,
            "guardian_login_succeeded" => SecurityEventKind::GuardianLoginSucceeded,
            "guardian_login_delayed" => SecurityEventKind::GuardianLoginDelayed,
            "guardian_escrow_read" => SecurityEventKind::GuardianEscrowRead,
            "guardian_password_changed" => SecurityEventKind::GuardianPasswordChanged,
            "guardian_device_enrolled" => SecurityEventKind::GuardianDeviceEnrolled,
            "guardian_device_revoked" => SecurityEventKind::GuardianDeviceRevoked,
            "guardian_unlocked" => SecurityEventKind::GuardianUnlocked,
            "guardian_event_other" => SecurityEventKind::GuardianEventOther,
            "guardian_events_dropped" => SecurityEventKind::GuardianEventsDropped,
            _ => return None,
        })
    }
}

/// One entry of the security-event log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SecurityEvent {
    /// Sequence number.
    pub id: i64,
    /// When it happened (ms since the epoch).
    pub at: i64,
    /// What happened.
    pub kind: SecurityEventKind,
    /// Non-secret detail, such as the slot number.
    pub detail: String,
}

/// Appends an event.
pub(crate) fn record(conn: &Connection, at: i64, kind: SecurityEventKind, detail: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO security_events (at, kind, detail) VALUES (?1, ?2, ?3)",
        params![at, kind.as_str(), detail],
    )?;
    Ok(())
}

/// Appends an event that happens now.
pub(crate) fn record_now(conn: &Connection, kind: SecurityEventKind, detail: &str) -> Result<()> {
    record(conn, crate::store::now_millis(), kind, detail)
}

/// The newest `limit` events, newest first. Rows of an unknown kind (written by a newer build)
/// are skipped.
pub(crate) fn recent(conn: &Connection, limit: usize) -> Result<Vec<SecurityEvent>> {
    let limit = super::messages::check_limit(limit)?;
    select(conn, "SELECT id, at, kind, detail FROM security_events ORDER BY id DESC LIMIT ?1", limit)
}

/// The events with an id above `after`, oldest first (rows of an unknown kind skipped).
pub(crate) fn since(conn: &Connection, after: i64) -> Result<Vec<SecurityEvent>> {
    select(conn, "SELECT id, at, kind, detail FROM security_events WHERE id > ?1 ORDER BY id", after)
}

/// The events `sql` (one parameter) selects as `id, at, kind, detail`, skipping unknown kinds.
fn select(conn: &Connection, sql: &str, parameter: i64) -> Result<Vec<SecurityEvent>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([parameter], |r| {
        let kind: String = r.get(2)?;
        Ok((r.get(0)?, r.get(1)?, kind, r.get(3)?))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (id, at, kind, detail) = row?;
        if let Some(kind) = SecurityEventKind::parse(&kind) {
            events.push(SecurityEvent { id, at, kind, detail });
        }
    }
    Ok(events)
}

/// The id of the newest event, 0 for an empty log.
pub(crate) fn last_id(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM security_events", [], |r| r.get(0))?)
}

/// Number of events in the log.
pub(crate) fn count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM security_events", [], |r| r.get(0))?;
    Ok(u64::try_from(n).unwrap_or(0))
}
