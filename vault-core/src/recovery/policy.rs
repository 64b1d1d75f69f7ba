//! The recovery policy: how many shares of the Backup Root Key exist (one per server, plus the
//! recovery code if enabled) and how many recover it.

use crate::error::{Error, Result};

/// Most servers one account may use as guardians.
pub const MAX_SERVERS: usize = 8;

/// Who can recover the Backup Root Key: any `threshold` of one share per server and, if
/// `recovery_code`, one share printed once as the recovery code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPolicy {
    /// Shares needed.
    pub threshold: u8,
    /// Servers holding one share each.
    pub servers: u8,
    /// Whether a recovery code holds one more share.
    pub recovery_code: bool,
    /// The user accepted a policy in which one provider alone reaches the threshold.
    pub single_provider_allowed: bool,
}

impl RecoveryPolicy {
    /// How each backup generation's token is spread over the guardians under this policy
    /// (`docs/adr/0017-forward-secret-backups.md`).
    pub(crate) fn token_policy(&self) -> crate::backup::keys::TokenPolicy {
        crate::backup::keys::TokenPolicy::for_guardians(self.threshold, self.servers, self.recovery_code)
    }

    /// A policy for `servers` servers. `threshold` defaults to 2 (the design's default: 2 of
    /// {each server, recovery code}). A threshold of 1 lets one provider alone recover the key
    /// and is refused unless `allow_single_provider`.
    pub fn new(
        servers: usize,
        threshold: Option<u8>,
        recovery_code: bool,
        allow_single_provider: bool,
    ) -> Result<Self> {
        if servers == 0 || servers > MAX_SERVERS {
            return Err(Error::InvalidInput(format!("recovery needs 1 to {MAX_SERVERS} servers")));
        }
        let shares = servers + usize::from(recovery_code);
        let threshold = threshold.unwrap_or(2);
        if threshold == 0 || usize::from(threshold) > shares {
            return Err(Error::InvalidInput(format!(
                "a threshold of {threshold} is impossible with {shares} shares ({servers} servers{})",
                if recovery_code { " and the recovery code" } else { "" }
            )));
        }
        let policy =
            Self { threshold, servers: servers as u8, recovery_code, single_provider_allowed: allow_single_provider };
        if policy.single_provider() && !allow_single_provider {
            return Err(Error::InvalidInput(format!(
                "with {} one provider alone could recover the backup key; choose a threshold of at least 2, \
                 or accept this weaker mode explicitly",
                policy.describe()
            )));
        }
        Ok(policy)
    }

    /// Shares made: one per server, plus the recovery code's.
    pub fn shares(&self) -> u8 {
        self.servers + u8::from(self.recovery_code)
    }

    /// Whether one provider (one server, or whoever holds the recovery code) alone reaches the
    /// threshold.
    pub fn single_provider(&self) -> bool {
        self.threshold <= 1
    }

    /// The share index of the recovery code (after the servers' 1..=servers), if there is one.
    pub(crate) fn code_index(&self) -> Option<u8> {
        self.recovery_code.then(|| self.servers + 1)
    }

    /// "2 of {2 servers, recovery code}".
    pub fn describe(&self) -> String {
        let servers = if self.servers == 1 { "1 server".to_owned() } else { format!("{} servers", self.servers) };
        let code = if self.recovery_code { ", recovery code" } else { "" };
        format!("{} of {{{servers}{code}}}", self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design_and_single_provider_needs_consent() {
        let p = RecoveryPolicy::new(2, None, true, false).unwrap();
        assert_eq!((p.threshold, p.shares(), p.code_index()), (2, 3, Some(3)));
        assert_eq!(p.describe(), "2 of {2 servers, recovery code}");
        assert!(!p.single_provider());
        let one = RecoveryPolicy::new(1, None, true, false).unwrap();
        assert_eq!(one.describe(), "2 of {1 server, recovery code}");
        // One server and no code: the default threshold 2 is impossible, 1 is single-provider.
        assert!(RecoveryPolicy::new(1, None, false, false).is_err());
        assert!(RecoveryPolicy::new(1, Some(1), false, false).is_err());
        assert!(RecoveryPolicy::new(2, Some(1), true, false).is_err());
        let weak = RecoveryPolicy::new(1, Some(1), false, true).unwrap();
        assert!(weak.single_provider() && weak.single_provider_allowed);
        assert!(RecoveryPolicy::new(2, Some(4), true, false).is_err());
        assert!(RecoveryPolicy::new(0, None, true, false).is_err());
        assert!(RecoveryPolicy::new(MAX_SERVERS + 1, None, true, false).is_err());
    }
}
