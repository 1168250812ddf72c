//! The verdict engine, apart from NFQUEUE so it can be tested on its own.
//!
//! Lookups go to a [`Snapshot`] the caller renews at a bounded staleness; within one snapshot an
//! address's state is cached, so a burst from one source costs one database lookup. A postgres
//! judge's snapshot reads its local view, which changes under it (see `Snapshot::version`): there
//! the cache is also forgotten when the view changes, or a source looked up just before another
//! host banned it would pass until the snapshot's end (up to `--staleness-ms`, a second in a fleet)
//! instead of the view's refresh on the ban's commit notice. Block counters
//! are summed in memory and written back in batches by the caller.
//!
//! The cache is also what keeps verdicts going when a new snapshot cannot be opened: the states
//! read from the last good one still judge their addresses (see [`Judge::judge_cached`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ipqbdb_core::model::{draw, is_guilty, verdict_probability};
use ipqbdb_core::{AddrKey, UnixTime};
use ipqbdb_store::Snapshot;

use crate::metrics::CacheStats;

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
    /// The snapshot's version the cache was filled at (see `Snapshot::version`).
    version: Option<u64>,
    blocked: HashMap<AddrKey, u64>,
    stats: Arc<CacheStats>,
}

impl Judge {
    /// A judge counting its cache's hits and misses into `stats`, which several judges (one per
    /// packet thread) may share.
    pub fn with_stats(stats: Arc<CacheStats>) -> Judge {
        Judge {
            stats,
            ..Judge::default()
        }
    }

    /// The cache's hit and miss counts, for the metrics.
    pub fn cache_stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

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
        let version = snap.version();
        if version != self.version {
            self.cache.clear();
            self.version = version;
        }
        let state = match self.cache.get(&ip) {
            Some(c) => {
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                *c
            }
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                let (key, record, white) = snap.verdict_state(ip)?;
                if self.cache.len() >= CACHE_MAX {
                    self.cache.clear();
                }
                let c = Cached { key, record, white };
                self.cache.insert(ip, c);
                c
            }
        };
        Ok(self.decide(state, now))
    }

    /// Judges `ip` by the state the last snapshot gave it, without a snapshot; `None` when that
    /// snapshot never looked `ip` up.
    pub fn judge_cached(&mut self, ip: IpAddr, now: UnixTime) -> Option<Judgement> {
        let state = *self.cache.get(&ip)?;
        Some(self.decide(state, now))
    }

    fn decide(&mut self, state: Cached, now: UnixTime) -> Judgement {
        let probability = verdict_probability(state.record.as_ref(), state.white, now);
        let key = state.record.map(|_| state.key);
        if probability == 0 {
            return Judgement {
                guilty: false,
                key,
                probability,
                draw: None,
            };
        }
        let r = draw(&mut rand::rng());
        let guilty = is_guilty(probability, r);
        if guilty {
            *self.blocked.entry(state.key).or_default() += 1;
        }
        Judgement {
            guilty,
            key,
            probability,
            draw: Some(r),
        }
    }

    /// The block counters summed since the last call.
    pub fn take_blocked(&mut self) -> Vec<(AddrKey, u64)> {
        self.blocked.drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipqbdb_store::{AnyStore, Ban, OpenOptions, ReadStore, Store, WhiteEntry};

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

    #[test]
    fn without_a_snapshot_the_last_one_judges() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        ban(&s, "192.0.2.9", 0);
        let mut j = Judge::default();
        let banned: IpAddr = "192.0.2.9".parse().unwrap();
        let unknown: IpAddr = "198.51.100.1".parse().unwrap();
        s.with_snapshot(&mut |snap| {
            j.judge(snap, banned, NOW)?;
            j.judge(snap, unknown, NOW)
        })
        .unwrap();
        let cached = j.judge_cached(banned, NOW).expect("looked up before");
        assert!(cached.guilty);
        assert!(
            !j.judge_cached(unknown, NOW)
                .expect("looked up before")
                .guilty
        );
        assert_eq!(j.judge_cached("203.0.113.1".parse().unwrap(), NOW), None);
        // The blocks judged from the cache are counted like any other.
        assert_eq!(j.take_blocked().iter().map(|&(_, n)| n).sum::<u64>(), 2);
    }
}
