//! The verdict engine, apart from NFQUEUE so it can be tested on its own.
//!
//! Lookups go to a [`Snapshot`] the caller renews at a bounded staleness; within one snapshot an
//! address's state is cached, so a burst from one source costs one database lookup. Block counters
//! are summed in memory and written back in batches by the caller.

use std::collections::HashMap;
use std::net::IpAddr;

use ipqbdb_core::model::{draw, is_guilty, verdict_probability};
use ipqbdb_core::{AddrKey, UnixTime};
use ipqbdb_store::Snapshot;

/// Entries cached per snapshot before the cache is emptied: bounds memory under a flood of sources.
const CACHE_MAX: usize = 1 << 16;

/// One packet's judgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    pub guilty: bool,
    /// The record's key, when the address has a record.
    pub key: Option<AddrKey>,
    /// Current probability (0 without a record, or when whitelisted with decay 0).
    pub probability: u32,
    /// The random draw, when one was needed.
    pub draw: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    key: AddrKey,
    record: Option<ipqbdb_core::Record>,
    white: Option<u32>,
}

#[derive(Default)]
pub struct Judge {
    cache: HashMap<IpAddr, Cached>,
    blocked: HashMap<AddrKey, u64>,
}

impl Judge {
    /// Forgets cached states: call with each new snapshot.
    pub fn new_snapshot(&mut self) {
        self.cache.clear();
    }

    /// Judges `ip` at `now` against `snap`.
    pub fn judge(
        &mut self,
        snap: &Snapshot<'_>,
        ip: IpAddr,
        now: UnixTime,
    ) -> ipqbdb_store::Result<Judgement> {
        let state = match self.cache.get(&ip) {
            Some(c) => *c,
            None => {
                let (key, record, white) = snap.verdict_state(ip)?;
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                let c = Cached { key, record, white };
                self.cache.insert(ip, c);
                c
            }
        };
        let probability = verdict_probability(state.record.as_ref(), state.white, now);
        let key = state.record.map(|_| state.key);
        if probability == 0 {
            return Ok(Judgement {
                guilty: false,
                key,
                probability,
                draw: None,
            });
        }
        let r = draw(&mut rand::rng());
        let guilty = is_guilty(probability, r);
        if guilty {
            *self.blocked.entry(state.key).or_default() += 1;
        }
        Ok(Judgement {
            guilty,
            key,
            probability,
            draw: Some(r),
        })
    }

    /// The block counters summed since the last call.
    pub fn take_blocked(&mut self) -> Vec<(AddrKey, u64)> {
        self.blocked.drain().collect()
    }

    /// Gives back counters a failed write could not store, so they are tried again.
    pub fn restore_blocked(&mut self, counts: Vec<(AddrKey, u64)>) {
        for (k, n) in counts {
            *self.blocked.entry(k).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipqbdb_store::{AnyStore, Ban, OpenOptions, Store, WhiteEntry};

    const NOW: UnixTime = 1_700_000_000;

    fn store(dir: &std::path::Path) -> AnyStore {
        AnyStore::open(dir, &OpenOptions::default()).unwrap()
    }

    fn ban(s: &AnyStore, ip: &str, count: u8) {
        let b = Ban {
            ip: ip.parse().unwrap(),
            reason: "t",
            initial_count: count,
            decay: Some(3600),
        };
        s.ban(&b, NOW).unwrap();
    }

    #[test]
    fn verdicts_follow_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        ban(&s, "192.0.2.1", 0);
        ban(&s, "192.0.2.2", 2);
        ban(&s, "192.0.2.3", 0);
        s.white_set(&[WhiteEntry {
            range: "192.0.2.3".parse().unwrap(),
            decay: 0,
        }])
        .unwrap();
        let mut j = Judge::default();
        let (mut dropped, mut quarter) = (0, 0);
        s.with_snapshot(&mut |snap| {
            for _ in 0..4000 {
                assert!(
                    !j.judge(snap, "198.51.100.1".parse().unwrap(), NOW)?.guilty,
                    "unknown is innocent"
                );
                assert!(
                    !j.judge(snap, "192.0.2.3".parse().unwrap(), NOW)?.guilty,
                    "whitelisted 0"
                );
                dropped += u32::from(j.judge(snap, "192.0.2.1".parse().unwrap(), NOW)?.guilty);
                quarter += u32::from(j.judge(snap, "192.0.2.2".parse().unwrap(), NOW)?.guilty);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(dropped, 4000, "100 % is always guilty");
        // Binomial(4000, 1/4): mean 1000, standard deviation 27; 6 sigma either side.
        assert!((838..=1162).contains(&quarter), "{quarter} of 4000 at 25 %");
        let mut counts = j.take_blocked();
        counts.sort();
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].1, 4000);
        assert!(j.take_blocked().is_empty());
    }

    #[test]
    fn a_new_snapshot_sees_new_bans() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let mut j = Judge::default();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let before = s.with_snapshot(&mut |snap| j.judge(snap, ip, NOW)).unwrap();
        assert_eq!(before.key, None);
        ban(&s, "192.0.2.9", 0);
        let cached = s.with_snapshot(&mut |snap| j.judge(snap, ip, NOW)).unwrap();
        assert!(
            !cached.guilty,
            "the cache belongs to the old snapshot until renewed"
        );
        j.new_snapshot();
        let after = s.with_snapshot(&mut |snap| j.judge(snap, ip, NOW)).unwrap();
        assert!(after.guilty);
        assert_eq!(after.probability, ipqbdb_core::P_MAX);
    }
}
