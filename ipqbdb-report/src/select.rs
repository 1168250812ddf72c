//! Which banned addresses are due for a report: pure, over what [`Store::report_candidates`]
//! read, so that every rule here is a unit test.
//!
//! [`Store::report_candidates`]: ipqbdb_store::Store::report_candidates

use ipqbdb_core::UnixTime;
use ipqbdb_store::ReportCandidate;

use crate::exclusion::exclusion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// A ban is reported only if it left the record at this probability or more.
    pub min_probability: u32,
    /// Seconds between two reports of one address.
    pub cooldown: u32,
    /// Bans older than this many seconds are not reported.
    pub max_age: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Due,
    Whitelisted,
    /// A special-purpose address (see [`exclusion`]).
    Excluded(&'static str),
    /// An IPv6 key of a database banning by a prefix shorter than 128: the key is the first
    /// address of a network, not the address that misbehaved.
    Ipv6Network,
    TooOld,
    BelowThreshold,
    /// The latest ban was reported already (or its attempt is in doubt).
    Reported,
    /// A newer ban waits for the cooldown of the previous report to end.
    Cooldown {
        until: UnixTime,
    },
}

/// The decision for one candidate at `now`; `v6_exact` is whether the database bans IPv6 by /128.
pub fn decide(c: &ReportCandidate, policy: &Policy, now: UnixTime, v6_exact: bool) -> Decision {
    let ip = c.key.ip();
    if c.whitelisted {
        return Decision::Whitelisted;
    }
    if let Some(why) = exclusion(ip) {
        return Decision::Excluded(why);
    }
    if !c.key.is_v4() && !v6_exact {
        return Decision::Ipv6Network;
    }
    if c.record.last_update < now.saturating_sub(policy.max_age.into()) {
        return Decision::TooOld;
    }
    if c.record.probability < policy.min_probability {
        return Decision::BelowThreshold;
    }
    if let Some(s) = c.state {
        if s.ban_time >= c.record.last_update {
            return Decision::Reported;
        }
        let until = s.at.saturating_add(policy.cooldown.into());
        if now < until {
            return Decision::Cooldown { until };
        }
    }
    Decision::Due
}

/// The candidates due at `now`, oldest ban first.
pub fn due(
    candidates: Vec<ReportCandidate>,
    policy: &Policy,
    now: UnixTime,
    v6_exact: bool,
) -> Vec<ReportCandidate> {
    let mut due: Vec<ReportCandidate> = candidates
        .into_iter()
        .filter(|c| decide(c, policy, now, v6_exact) == Decision::Due)
        .collect();
    due.sort_by_key(|c| (c.record.last_update, c.key));
    due
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipqbdb_core::report::{ReportKind, ReportState};
    use ipqbdb_core::{Reason, Record, P_MAX};

    const NOW: UnixTime = 1_700_000_000;
    const POLICY: Policy = Policy {
        min_probability: P_MAX / 4,
        cooldown: 900,
        max_age: 3600,
    };

    fn cand(addr: &str, p: u32, banned: UnixTime) -> ReportCandidate {
        ReportCandidate {
            key: addr.parse().unwrap(),
            record: Record {
                probability: p,
                decay: 3600,
                last_update: banned,
                caught: 1,
                blocked: 0,
                reason: 1,
            },
            reason: Reason {
                id: 1,
                text: "ssh".into(),
                category: 18,
                caught: 0,
                blocked: 0,
            },
            state: None,
            whitelisted: false,
        }
    }

    fn state(kind: ReportKind, ban_time: UnixTime, at: UnixTime) -> Option<ReportState> {
        Some(ReportState {
            kind,
            ban_time,
            at,
            status: 0,
        })
    }

    #[test]
    fn each_rule() {
        let d = |c: &ReportCandidate| decide(c, &POLICY, NOW, false);
        assert_eq!(d(&cand("45.33.32.156", P_MAX, NOW)), Decision::Due);
        assert_eq!(d(&cand("45.33.32.156", P_MAX / 4, NOW)), Decision::Due);
        assert_eq!(
            d(&cand("45.33.32.156", P_MAX / 4 - 1, NOW)),
            Decision::BelowThreshold
        );
        assert_eq!(d(&cand("45.33.32.156", P_MAX, NOW - 3600)), Decision::Due);
        assert_eq!(
            d(&cand("45.33.32.156", P_MAX, NOW - 3601)),
            Decision::TooOld
        );
        assert!(matches!(
            d(&cand("192.168.0.1", P_MAX, NOW)),
            Decision::Excluded(_)
        ));
        let mut w = cand("45.33.32.156", P_MAX, NOW);
        w.whitelisted = true;
        assert_eq!(d(&w), Decision::Whitelisted);
        assert_eq!(d(&cand("2a01:4f8::", P_MAX, NOW)), Decision::Ipv6Network);
        assert_eq!(
            decide(&cand("2a01:4f8::1", P_MAX, NOW), &POLICY, NOW, true),
            Decision::Due
        );
    }

    #[test]
    fn reported_bans_and_cooldown() {
        let d = |c: &ReportCandidate| decide(c, &POLICY, NOW, false);
        for kind in [
            ReportKind::Sent,
            ReportKind::Accepted,
            ReportKind::Refused,
            ReportKind::InDoubt,
        ] {
            // The same ban is never reported twice, whatever became of the attempt.
            let mut c = cand("45.33.32.156", P_MAX, NOW - 2000);
            c.state = state(kind, NOW - 2000, NOW - 1990);
            assert_eq!(d(&c), Decision::Reported, "{kind:?}");
            // A newer ban is due once the cooldown since the last attempt is over.
            c.record.last_update = NOW - 10;
            assert_eq!(d(&c), Decision::Due, "{kind:?}");
            c.state = state(kind, NOW - 2000, NOW - 899);
            assert_eq!(d(&c), Decision::Cooldown { until: NOW + 1 });
            c.state = state(kind, NOW - 2000, NOW - 900);
            assert_eq!(d(&c), Decision::Due);
        }
    }

    #[test]
    fn due_sorts_oldest_ban_first() {
        let list = vec![
            cand("45.33.32.3", P_MAX, NOW - 5),
            cand("10.0.0.1", P_MAX, NOW - 50),
            cand("45.33.32.1", P_MAX, NOW - 9),
            cand("45.33.32.2", P_MAX, NOW - 9),
        ];
        let keys: Vec<String> = due(list, &POLICY, NOW, false)
            .iter()
            .map(|c| c.key.to_string())
            .collect();
        assert_eq!(keys, ["45.33.32.1", "45.33.32.2", "45.33.32.3"]);
    }
}
