//! The connections `<F-MLFID>` correlates: what each one's lines learnt so far, bounded in count
//! and in time.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use foldhash::HashMap;

use crate::hybrid_regex::Groups;

/// Connections (`<F-MLFID>`) remembered per filter, and for how long.
pub const MLFID_CAPACITY: usize = 10_000;
pub const MLFID_TTL: Duration = Duration::from_secs(600);

/// What fail2ban remembers per connection (`<F-MLFID>`): the groups its lines matched so far, the
/// user names tried, and whether a failure waits for the address.
struct Connection {
    groups: Groups,
    users: std::collections::BTreeSet<String>,
    pending: bool,
    seen: Instant,
    seq: u64,
}

/// Bounded in count (oldest first out) and in time, like the session table of `sessions`.
#[derive(Default)]
pub(super) struct MlfidCache {
    /// Keyed by text from the log: foldhash, seeded per process as the session table's is, hashes
    /// a connection id in a fraction of SipHash's time.
    map: HashMap<String, Connection>,
    order: VecDeque<(String, u64)>,
    seq: u64,
}

impl MlfidCache {
    fn expire(&mut self, now: Instant) {
        while self.map.len() > MLFID_CAPACITY
            || self.order.front().is_some_and(|(k, s)| {
                self.map
                    .get(k)
                    .is_some_and(|c| c.seq == *s && now.duration_since(c.seen) > MLFID_TTL)
            })
        {
            let Some((k, s)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|c| c.seq == s) {
                self.map.remove(&k);
            }
        }
        // Entries whose key was touched again since are stale.
        while self
            .order
            .front()
            .is_some_and(|(k, s)| self.map.get(k).is_none_or(|c| c.seq != *s))
        {
            self.order.pop_front();
        }
    }

    fn touch(&mut self, id: &str, now: Instant) {
        self.seq += 1;
        if let Some(c) = self.map.get_mut(id) {
            c.seen = now;
            c.seq = self.seq;
            self.order.push_back((id.to_string(), self.seq));
        }
        // One connection's many lines leave stale entries behind a live one at the front: keep
        // the queue within a bound of the table.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let mut live: Vec<(String, u64)> =
                self.map.iter().map(|(k, c)| (k.clone(), c.seq)).collect();
            live.sort_unstable_by_key(|(_, s)| *s);
            self.order = live.into();
        }
    }

    pub(super) fn set_pending(&mut self, id: &str) {
        if let Some(c) = self.map.get_mut(id) {
            c.pending = true;
        }
    }

    /// fail2ban's `_mergeFailure`: what the connection `id` amounts to with this line's groups.
    pub(super) fn merge(&mut self, id: &str, mut fail: Groups) -> Groups {
        let now = Instant::now();
        self.expire(now);
        let mut flags = 0u8;
        if let Some(g) = fail.get("mlfgained").filter(|v| !v.is_empty()).cloned() {
            flags |= 8 | 1;
            if !truthy(&fail, "nofail") {
                fail.insert("nofail".into(), g);
            }
        } else if truthy(&fail, "nofail") {
            flags |= 1;
        }
        if fail.remove("mlfforget").is_some_and(|v| !v.is_empty()) {
            flags |= 2;
        }
        let user = fail.get("user").filter(|u| !u.is_empty()).cloned();
        // A connection id that comes back with another address is a new connection (a reused
        // pid), as in `sessions`: nothing of the old one (its users, its failures) carries over.
        // fail2ban forgets it only by count (100 ids) or age.
        let addr = |g: &Groups| g.get("ip4").or_else(|| g.get("ip6")).cloned();
        if let (Some(new), Some(c)) = (addr(&fail), self.map.get(id)) {
            if addr(&c.groups).is_some_and(|old| old != new) {
                self.map.remove(id);
            }
        }
        let (mut merged, pending, users) = if let Some(c) = self.map.get_mut(id) {
            if let Some(u) = user {
                c.users.insert(u);
            }
            if c.groups.remove("nofail").is_some() {
                flags |= 4;
            }
            if c.groups.remove("mlfgained").is_some() {
                flags |= 4;
            }
            if flags & 8 != 0 {
                c.pending = false;
            }
            c.groups.extend(fail);
            let pending = std::mem::take(&mut c.pending);
            let users = c.users.len();
            let merged = c.groups.clone();
            if flags & 2 != 0 {
                self.map.remove(id);
            } else {
                self.touch(id, now);
            }
            (merged, pending, users)
        } else {
            let users: std::collections::BTreeSet<String> = user.into_iter().collect();
            let n = users.len();
            if flags & 2 == 0 {
                self.seq += 1;
                self.map.insert(
                    id.to_string(),
                    Connection {
                        groups: fail.clone(),
                        users,
                        pending: false,
                        seen: now,
                        seq: self.seq,
                    },
                );
                self.order.push_back((id.to_string(), self.seq));
            }
            (fail, false, n)
        };
        if pending || users > 1 {
            // Failures already pending, or several user names tried: no longer a non-failure.
            merged.remove("nofail");
            merged.remove("mlfgained");
            if let Some(c) = self.map.get_mut(id) {
                c.groups.remove("nofail");
                c.groups.remove("mlfgained");
            }
        }
        merged
    }
}

/// Whether group `k` took part and is not empty.
pub(super) fn truthy(g: &Groups, k: &str) -> bool {
    g.get(k).is_some_and(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_table_stays_bounded() {
        let mut c = MlfidCache::default();
        let g = |ip: &str| Groups::from([("ip4".to_string(), ip.to_string())]);
        c.merge("first", g("192.0.2.1"));
        for _ in 0..10_000 {
            c.merge("busy", g("192.0.2.2"));
        }
        assert!(c.order.len() <= 2 * c.map.len() + 1024, "{}", c.order.len());
        for i in 0..(MLFID_CAPACITY + 10) {
            c.merge(&format!("id{i}"), g("192.0.2.3"));
        }
        assert!(c.map.len() <= MLFID_CAPACITY + 1, "{}", c.map.len());
    }
}
