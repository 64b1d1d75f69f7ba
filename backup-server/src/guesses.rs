//! How many password guesses an account admits, and when.
//!
//! Every login start for an existing account is a guess: it is counted (by compare-and-swap on the
//! account record, so replicas and restarts agree) before the server evaluates the OPRF, and a
//! successful login resets the count. The first [`LoginDelays::free`] counted starts are admitted
//! at once; after that each counted start waits for the one before it plus a delay that doubles,
//! from [`LoginDelays::base_secs`] up to [`LoginDelays::max_secs`]. There is no lock: however many
//! guesses a stranger makes, the owner's correct password is admitted again after at most
//! `max_secs`, and an operator's unlock or the owner's success resets the schedule.
//!
//! A start that arrives before its time is not counted and not evaluated under the account's
//! OPRF key: a requester with a valid login ticket is told to retry later, any other gets a decoy
//! shaped like a wrong password's answer.

use ed25519_dalek::VerifyingKey;

use backup_api::KsfParams;

/// The delay schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginDelays {
    /// Counted starts admitted without delay.
    pub free: u32,
    /// The first delay, in seconds.
    pub base_secs: u64,
    /// The longest delay, in seconds.
    pub max_secs: u64,
}

impl Default for LoginDelays {
    fn default() -> Self {
        Self { free: 10, base_secs: 60, max_secs: 4 * 3600 }
    }
}

impl LoginDelays {
    /// When a counted start is next admitted, after `failed` counted starts since the last
    /// success, the latest at `last_at` (Unix seconds); 0 when admitted at once.
    pub fn next_allowed(&self, failed: u32, last_at: u64) -> u64 {
        if failed < self.free {
            return 0;
        }
        let doublings = failed - self.free;
        let doubled = if doublings >= self.base_secs.leading_zeros() { u64::MAX } else { self.base_secs << doublings };
        let delay = doubled.min(self.max_secs);
        last_at.saturating_add(delay)
    }

    /// The most counted starts anyone can make within `horizon_secs` from a fresh count, by
    /// starting each one as soon as it is admitted (the figure the operator guide documents).
    pub fn budget(&self, horizon_secs: u64) -> u64 {
        let (mut failed, mut at, mut count) = (0u32, 0u64, 0u64);
        loop {
            let next = self.next_allowed(failed, at).max(at);
            if next > horizon_secs {
                return count;
            }
            at = next;
            failed = failed.saturating_add(1);
            count += 1;
            // A zero delay (possible only when built directly, not from settings) admits without
            // end: stop counting.
            if count > 10_000_000 {
                return count;
            }
        }
    }
}

/// Everything that decides who may guess, how often, and what a decoy looks like.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// The delay schedule.
    pub delays: LoginDelays,
    /// Public keys of the app's account service. When any is set, only login starts with a valid
    /// ticket from one of them are answered and counted.
    pub authorisers: Vec<VerifyingKey>,
    /// Key-stretching parameters decoys answer with, chosen per account by a keyed hash: the
    /// parameters the operator's apps register with.
    pub decoy_ksf: Vec<KsfParams>,
    /// Login starts per minute from one client address (0: unlimited), and burst.
    pub starts_per_ip_minute: (u32, u32),
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            delays: LoginDelays::default(),
            authorisers: Vec::new(),
            decoy_ksf: vec![KsfParams::recommended()],
            starts_per_ip_minute: (30, 60),
        }
    }
}

impl LoginPolicy {
    /// Whether login starts need a ticket.
    pub fn requires_ticket(&self) -> bool {
        !self.authorisers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn the_schedule_doubles_from_the_base_to_the_cap() {
        let delays = LoginDelays { free: 3, base_secs: 60, max_secs: 600 };
        assert_eq!(delays.next_allowed(2, 1000), 0);
        assert_eq!(delays.next_allowed(3, 1000), 1060);
        assert_eq!(delays.next_allowed(4, 1000), 1120);
        assert_eq!(delays.next_allowed(6, 1000), 1480);
        assert_eq!(delays.next_allowed(7, 1000), 1600);
        assert_eq!(delays.next_allowed(u32::MAX, 1000), 1600);
    }

    /// The guess budgets `docs/operator-guide.md` and `docs/THREAT_MODEL.md` state for the
    /// default schedule.
    #[test]
    fn the_default_budget_is_the_documented_one() {
        let delays = LoginDelays::default();
        assert_eq!(delays.budget(0), 10);
        assert_eq!(delays.budget(DAY), DOCUMENTED_DAY);
        assert_eq!(delays.budget(30 * DAY), DOCUMENTED_MONTH);
        assert_eq!(delays.budget(365 * DAY), DOCUMENTED_YEAR);
        for doc in [include_str!("../../docs/operator-guide.md"), include_str!("../../docs/THREAT_MODEL.md")] {
            for figure in [DOCUMENTED_DAY, DOCUMENTED_MONTH, DOCUMENTED_YEAR] {
                assert!(doc.contains(&format!("{figure} guesses")), "{figure} guesses is documented");
            }
        }
    }

    const DOCUMENTED_DAY: u64 = 22;
    const DOCUMENTED_MONTH: u64 = 196;
    const DOCUMENTED_YEAR: u64 = 2206;
}
