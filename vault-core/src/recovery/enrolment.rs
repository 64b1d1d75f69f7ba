//! The vault's recovery enrolment as recovery uses it: the account, the policy and share set, and
//! per guardian its URL, pinned key, this device's token and the share this device knows. Kept
//! in the encrypted database (`store::recovery_state`), never in the backup export.

use crate::error::DataKind;
use rusqlite::Connection;
use zeroize::Zeroizing;

use super::guardian::AccessToken;
use super::policy::RecoveryPolicy;
use crate::error::{Error, Result};
use crate::secret::SecretKey;
use crate::store::recovery_state::{self, EnrolmentRow, GuardianRow};

/// A vault's enrolment with its guardians.
pub(crate) struct Enrolment {
    pub(crate) account: String,
    pub(crate) policy: RecoveryPolicy,
    pub(crate) share_set: [u8; 16],
    /// Position 0 holds the backup data; share index = position + 1.
    pub(crate) guardians: Vec<EnrolledGuardian>,
}

/// One guardian of an enrolment.
pub(crate) struct EnrolledGuardian {
    pub(crate) url: String,
    /// The guardian's public key, pinned at setup.
    pub(crate) server_key: Vec<u8>,
    pub(crate) device_id: String,
    pub(crate) device_token: AccessToken,
    /// This guardian's share of the current set, when this device knows it.
    pub(crate) share: Option<SecretKey>,
}

impl Enrolment {
    /// The enrolment stored in `conn`, if any; a stored one that breaks the policy's own rules
    /// is an integrity failure.
    pub(crate) fn load(conn: &Connection) -> Result<Option<Self>> {
        let Some(row) = recovery_state::load(conn)? else { return Ok(None) };
        let bad = || Error::Integrity {
            object: DataKind::Database,
            problem: "the stored recovery enrolment is malformed".into(),
        };
        let policy = RecoveryPolicy {
            threshold: row.threshold,
            servers: row.servers,
            recovery_code: row.recovery_code,
            single_provider_allowed: row.single_provider_allowed,
        };
        let shares = usize::from(policy.servers) + usize::from(policy.recovery_code);
        if row.guardians.len() != usize::from(policy.servers)
            || policy.threshold == 0
            || usize::from(policy.threshold) > shares
        {
            return Err(bad());
        }
        let guardians = row
            .guardians
            .into_iter()
            .map(|g| EnrolledGuardian {
                url: g.url,
                server_key: g.server_key,
                device_id: g.device_id,
                device_token: AccessToken::new(g.device_token.to_string()),
                share: g.share,
            })
            .collect();
        Ok(Some(Self { account: row.account, policy, share_set: row.share_set, guardians }))
    }

    /// The enrolment stored in `conn`, which must exist.
    pub(crate) fn require(conn: &Connection) -> Result<Self> {
        Self::load(conn)?.ok_or_else(|| Error::NotFound("recovery is not set up for this vault".into()))
    }

    /// Replaces the stored enrolment with this one.
    pub(crate) fn save(&self, conn: &Connection) -> Result<()> {
        let row = EnrolmentRow {
            account: self.account.clone(),
            threshold: self.policy.threshold,
            servers: self.policy.servers,
            recovery_code: self.policy.recovery_code,
            single_provider_allowed: self.policy.single_provider_allowed,
            share_set: self.share_set,
            guardians: self
                .guardians
                .iter()
                .map(|g| GuardianRow {
                    url: g.url.clone(),
                    server_key: g.server_key.clone(),
                    device_id: g.device_id.clone(),
                    device_token: Zeroizing::new(g.device_token.expose_secret().to_owned()),
                    share: g.share.as_ref().map(copy_key),
                })
                .collect(),
        };
        recovery_state::save(conn, &row)
    }

    /// The safety number over the account and the pinned guardian keys.
    pub(crate) fn safety_number(&self) -> String {
        let keys: Vec<&[u8]> = self.guardians.iter().map(|g| g.server_key.as_slice()).collect();
        super::safety::safety_number(&self.account, &keys)
    }

    /// The guardians as every escrow record lists them: URL and pinned key, in setup order.
    pub(crate) fn listed(&self) -> Vec<super::escrow::ListedGuardian> {
        self.guardians
            .iter()
            .map(|g| super::escrow::ListedGuardian { url: g.url.clone(), server_key: g.server_key.clone() })
            .collect()
    }
}

/// A copy of a key (shares are kept both in the enrolment and in flight).
pub(crate) fn copy_key(key: &SecretKey) -> SecretKey {
    SecretKey::from_bytes(*key.expose_secret())
}
