//! The vault's recovery enrolment (migration 6): the account, the policy and share set, and per
//! guardian server its URL, pinned OPAQUE public key, this device's token and the share it holds.
//! All inside the encrypted database; not part of the backup export (device-specific).

use crate::error::DataKind;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::SecretKey;

/// The enrolment as stored (the recovery module checks it and turns it into its own type).
pub(crate) struct EnrolmentRow {
    pub(crate) account: String,
    pub(crate) threshold: u8,
    pub(crate) servers: u8,
    pub(crate) recovery_code: bool,
    pub(crate) single_provider_allowed: bool,
    pub(crate) share_set: [u8; 16],
    /// Position 0 holds the backup data; share index = position + 1.
    pub(crate) guardians: Vec<GuardianRow>,
}

/// One guardian server as stored.
pub(crate) struct GuardianRow {
    pub(crate) url: String,
    pub(crate) server_key: Vec<u8>,
    pub(crate) device_id: String,
    pub(crate) device_token: Zeroizing<String>,
    /// This server's share of the current set, when this device knows it.
    pub(crate) share: Option<SecretKey>,
}

/// The enrolment, if the vault has one.
pub(crate) fn load(conn: &Connection) -> Result<Option<EnrolmentRow>> {
    let row = conn
        .query_row(
            "SELECT account, threshold, servers, recovery_code, single_provider_allowed, share_set
             FROM recovery_enrolment WHERE id = 1",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, bool>(3)?,
                    r.get::<_, bool>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            },
        )
        .optional()?;
    let Some((account, threshold, servers, recovery_code, single_provider_allowed, share_set)) = row else {
        return Ok(None);
    };
    let bad = || Error::Integrity {
        object: DataKind::Database,
        problem: "the stored recovery enrolment is malformed".into(),
    };
    let mut statement = conn
        .prepare("SELECT url, server_key, device_id, device_token, share FROM recovery_guardians ORDER BY position")?;
    let guardians = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, String>(2)?,
                Zeroizing::new(r.get::<_, String>(3)?),
                r.get::<_, Option<Vec<u8>>>(4)?.map(Zeroizing::new),
            ))
        })?
        .map(|row| {
            let (url, server_key, device_id, device_token, share) = row?;
            let share = share.map(|s| SecretKey::try_from_slice(&s).ok_or_else(bad)).transpose()?;
            Ok(GuardianRow { url, server_key, device_id, device_token, share })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(EnrolmentRow {
        account,
        threshold: u8::try_from(threshold).map_err(|_| bad())?,
        servers: u8::try_from(servers).map_err(|_| bad())?,
        recovery_code,
        single_provider_allowed,
        share_set: share_set.try_into().map_err(|_| bad())?,
        guardians,
    }))
}

/// Replaces the whole enrolment, in a transaction of its own or, when the caller has one open
/// (a backup key rotation commits the enrolment with the new key), in the caller's.
pub(crate) fn save(conn: &Connection, enrolment: &EnrolmentRow) -> Result<()> {
    if !conn.is_autocommit() {
        return save_rows(conn, enrolment);
    }
    let tx = conn.unchecked_transaction()?;
    save_rows(&tx, enrolment)?;
    tx.commit()?;
    Ok(())
}

fn save_rows(tx: &Connection, enrolment: &EnrolmentRow) -> Result<()> {
    tx.execute("DELETE FROM recovery_guardians", [])?;
    tx.execute("DELETE FROM recovery_enrolment", [])?;
    tx.execute(
        "INSERT INTO recovery_enrolment (id, account, threshold, servers, recovery_code, single_provider_allowed, share_set)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            enrolment.account,
            enrolment.threshold,
            enrolment.servers,
            enrolment.recovery_code,
            enrolment.single_provider_allowed,
            &enrolment.share_set[..]
        ],
    )?;
    for (position, g) in enrolment.guardians.iter().enumerate() {
        tx.execute(
            "INSERT INTO recovery_guardians (position, url, server_key, device_id, device_token, share)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                position as i64,
                g.url,
                g.server_key,
                g.device_id,
                g.device_token.as_str(),
                g.share.as_ref().map(|s| &s.expose_secret()[..])
            ],
        )?;
    }
    Ok(())
}
