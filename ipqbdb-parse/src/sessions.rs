//! What a recognised line counts for: services log one authentication attempt on several lines
//! (OpenSSH: `Invalid user`, a PAM failure and `Failed password` for one password tried), and some
//! lines that matter name no address at all (`Disconnecting: Too many authentication failures`). A
//! session is one process of a service (`sshd[4242]`, one connection): it remembers the client's
//! address and whether an attempt is open, so each attempt is banned once however many lines it
//! takes, and address-less lines are credited to the right client.
//!
//! A session also counts the tries it has banned, so a line that ends it (`attempt=close`: MaxAuthTries
//! reached, a disconnect, dovecot's `auth failed, N attempts`) bans only what was not banned yet. One
//! event written to two files (`twin=`) is counted once: the table holds, per twin name and address,
//! how many bans one side made that the other side's lines have not yet matched.
//!
//! The table is bounded in size (oldest sessions go first) and in time (a session not heard from for
//! `ttl` seconds is forgotten); a restart forgets the sessions in flight, which costs at most one
//! attempt's fold or one address-less line per session.

use std::collections::VecDeque;

use foldhash::HashMap;
use std::net::IpAddr;

use crate::matcher::{LineMatch, RuleSet};
use crate::rules::{Attempt, Rule};

/// Default bounds: far more concurrent connections than one host serves, and longer than
/// LoginGraceTime-style limits, so live sessions are kept and a flood cannot grow the table.
pub const DEFAULT_CAPACITY: usize = 50_000;
pub const DEFAULT_TTL_SECS: u64 = 600;

/// What a line counts for: the last stage of a line's result, after each filter's
/// [`crate::fail2ban_filters::FilterMatch`] and the rule set's [`LineMatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineCount {
    /// No rule matched.
    Miss,
    /// Rule `rule` caught `ip`: `bans` bans to apply, `folded` lines (0 or 1) that belonged to an
    /// attempt already banned.
    Caught {
        rule: usize,
        ip: IpAddr,
        bans: u32,
        folded: u32,
    },
    /// A `ban=no` rule: the address is noted for the session, nothing is banned.
    Noted { rule: usize, ip: IpAddr },
    /// A rule that takes the session's address matched, but the session is unknown (began before
    /// the parser started, or was forgotten).
    NoSession { rule: usize },
    /// The rule captured something that is not an address.
    BadAddress { rule: usize, text: String },
}

impl LineCount {
    /// Whether a rule recognised the line (caught, folded or noted).
    pub fn recognised(&self) -> bool {
        !matches!(self, LineCount::Miss)
    }
}

#[derive(Debug)]
struct Session {
    ip: IpAddr,
    /// An attempt of `ip` is open: its next lines fold into it.
    open: bool,
    /// Bans of `ip` in this session; for a twin entry, bans of rule `side` not matched by its twin.
    banned: u32,
    /// A twin entry's rule (the side whose bans wait for their twins); 0 for sessions.
    side: usize,
    last_seen: u64,
    seq: u64,
}

/// The sessions a parser follows.
#[derive(Debug)]
pub struct Sessions {
    map: HashMap<Box<[u8]>, Session>,
    /// Sessions in the order they were last touched; entries whose `seq` no longer matches the map's
    /// are stale and skipped.
    /// Each entry also holds the time of that touch: entries are in time order, so a fresh first
    /// entry means nothing has expired, without a look-up in the map on every line.
    order: VecDeque<(Box<[u8]>, u64, u64)>,
    seq: u64,
    capacity: usize,
    ttl: u64,
    evicted: u64,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(DEFAULT_CAPACITY, DEFAULT_TTL_SECS)
    }
}

impl Sessions {
    pub fn new(capacity: usize, ttl_secs: u64) -> Self {
        Sessions {
            map: HashMap::default(),
            order: VecDeque::new(),
            seq: 0,
            capacity: capacity.max(1),
            ttl: ttl_secs,
            evicted: 0,
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sessions dropped because the table was full (not counting those that expired).
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Decides what `matched` (of `rules`) counts for at time `now` (seconds, any monotonic origin).
    pub fn count(&mut self, rules: &RuleSet, matched: LineMatch, now: u64) -> LineCount {
        self.expire(now);
        let (rule, ip, repeat, key) = match matched {
            LineMatch::Miss => return LineCount::Miss,
            LineMatch::BadAddress { rule, text } => return LineCount::BadAddress { rule, text },
            LineMatch::Hit {
                rule,
                ip,
                repeat,
                session,
            } => (rule, ip, repeat, session),
        };
        let Some(r) = rules.catcher(rule).rule() else {
            // A fail2ban filter follows its connections itself (`<F-MLFID>`): each failure it
            // finds is a ban of its own.
            return match ip {
                Some(ip) => LineCount::Caught {
                    rule,
                    ip,
                    bans: repeat,
                    folded: 0,
                },
                None => LineCount::NoSession { rule },
            };
        };
        let Some(key) = key else {
            // No session to follow: every line stands alone.
            return match ip {
                None => LineCount::NoSession { rule },
                Some(ip) if r.note_only => LineCount::Noted { rule, ip },
                Some(ip) => self.twin(rules.rules(), rule, ip, repeat, 0, now),
            };
        };
        let known = self.map.get(&key).map(|s| (s.ip, s.open, s.banned));
        let ip = match (ip, known) {
            (Some(ip), _) => ip,
            (None, Some((ip, _, _))) => ip,
            (None, None) => return LineCount::NoSession { rule },
        };
        // A session that changes address is a new client (a reused pid): nothing of it is open.
        let (open, banned) = match known {
            Some((k, open, banned)) if k == ip => (open, banned),
            _ => (false, 0),
        };
        if r.note_only {
            self.touch(key, ip, open, banned, 0, now);
            return LineCount::Noted { rule, ip };
        }
        let (bans, folded, open_after) = match r.attempt {
            Attempt::Single => (repeat, 0, open),
            Attempt::Start | Attempt::End => {
                let folded = u32::from(open);
                (repeat - folded, folded, r.attempt == Attempt::Start)
            }
            Attempt::Close => {
                let bans = repeat.saturating_sub(banned);
                (bans, u32::from(bans < repeat), false)
            }
        };
        self.touch(key, ip, open_after, banned.saturating_add(bans), 0, now);
        self.twin(rules.rules(), rule, ip, bans, folded, now)
    }

    /// The bans of a line of `r` once its twins are counted: a ban another side already made for
    /// `ip` is folded, and a ban made here waits for the other side's line.
    fn twin(
        &mut self,
        rules: &[Rule],
        rule: usize,
        ip: IpAddr,
        bans: u32,
        folded: u32,
        now: u64,
    ) -> LineCount {
        let r = &rules[rule];
        let caught = |bans, folded| LineCount::Caught {
            rule,
            ip,
            bans,
            folded,
        };
        let Some((name, _)) = r
            .twin
            .as_deref()
            .filter(|_| bans > 0)
            .and_then(|t| t.split_once('/'))
        else {
            return caught(bans, folded);
        };
        // A side is known by its first rule.
        let side_of = |r: &Rule| rules.iter().position(|x| x.twin == r.twin).unwrap_or(0);
        let this = side_of(r);
        let key: Box<[u8]> = format!("twin:{name}[{ip}]").into_bytes().into();
        let (side, pending) = self.map.get(&key).map_or((this, 0), |t| (t.side, t.banned));
        let (left, side, pending) = if side != this && pending > 0 {
            let matched = bans.min(pending);
            if pending > matched {
                (bans - matched, side, pending - matched)
            } else {
                (bans - matched, this, bans - matched)
            }
        } else {
            (bans, this, pending.saturating_add(bans))
        };
        self.touch(key, ip, false, pending, side, now);
        caught(left, folded.max(u32::from(left < bans)))
    }

    fn touch(
        &mut self,
        key: Box<[u8]>,
        ip: IpAddr,
        open: bool,
        banned: u32,
        side: usize,
        now: u64,
    ) {
        self.seq += 1;
        let seq = self.seq;
        let session = Session {
            ip,
            open,
            banned,
            side,
            last_seen: now,
            seq,
        };
        // One hash of the key for a session already held, the common case.
        if let Some(held) = self.map.get_mut(&key) {
            *held = session;
        } else {
            if self.map.len() >= self.capacity {
                self.evict_oldest();
            }
            self.map.insert(key.clone(), session);
        }
        self.order.push_back((key, seq, now));
        // Stale entries are skipped lazily; compact when they outnumber the live ones.
        if self.order.len() > 2 * self.capacity.max(self.map.len()) + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, s, _)| map.get(k).is_some_and(|x| x.seq == *s));
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((k, s, _)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|x| x.seq == s) {
                self.map.remove(&k);
                self.evicted += 1;
                return;
            }
        }
    }

    fn expire(&mut self, now: u64) {
        while let Some((k, s, touched)) = self.order.front() {
            if now.saturating_sub(*touched) < self.ttl {
                // This touch and every later one are fresh.
                return;
            }
            match self.map.get(k) {
                Some(x) if x.seq == *s => {
                    if now.saturating_sub(x.last_seen) < self.ttl {
                        return;
                    }
                    let k = k.clone();
                    self.map.remove(&k);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const RULES: &str = concat!(
        "/Invalid user .* from <HOST> port \\d+$/ * \"invalid user\" attempt=start tag=sshd\n",
        "/pam_unix\\(sshd:auth\\): authentication failure;.* rhost=<HOST>(?: |$)/ * \"pam\" ban=no tag=sshd\n",
        "/Failed password for .* from <HOST> port \\d+ ssh2$/ * \"failed\" attempt=end tag=sshd\n",
        "/Disconnecting: Too many authentication failures/ @ \"too many\" tag=sshd\n",
        "/Connection from <HOST> port \\d+/ * \"connection\" ban=no tag=sshd\n",
    );

    fn rules() -> RuleSet {
        RuleSet::new(crate::rules::parse(RULES, Path::new("r")).unwrap()).unwrap()
    }

    fn run(s: &mut Sessions, rules: &RuleSet, line: &str, now: u64) -> LineCount {
        let line = format!("Nov 21 10:00:00 gw {line}");
        s.count(rules, rules.check(line.as_bytes(), None), now)
    }

    fn bans(c: &LineCount) -> u32 {
        match c {
            LineCount::Caught { bans, .. } => *bans,
            _ => 0,
        }
    }

    #[test]
    fn one_ban_per_attempt() {
        let r = rules();
        let mut s = Sessions::default();
        let lines = [
            "sshd[10]: Invalid user bob from 192.0.2.1 port 4000",
            "sshd[10]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1",
            "sshd[10]: Failed password for invalid user bob from 192.0.2.1 port 4000 ssh2",
            "sshd[10]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1",
            "sshd[10]: Failed password for invalid user bob from 192.0.2.1 port 4000 ssh2",
        ];
        let got: Vec<u32> = lines.iter().map(|l| bans(&run(&mut s, &r, l, 0))).collect();
        assert_eq!(got, [1, 0, 0, 0, 1], "two attempts, two bans");
        assert!(matches!(
            run(&mut s, &r, lines[2], 0),
            LineCount::Caught {
                bans: 1,
                folded: 0,
                ..
            }
        ));
        // The folded line is still recognised.
        let mut s = Sessions::default();
        run(&mut s, &r, lines[0], 0);
        assert!(matches!(
            run(&mut s, &r, lines[2], 0),
            LineCount::Caught {
                bans: 0,
                folded: 1,
                ..
            }
        ));
    }

    #[test]
    fn a_closing_line_bans_only_what_its_session_did_not() {
        let r = RuleSet::new(
            crate::rules::parse(
                concat!(
                    "/Failed password for .* from <HOST> port \\d+ ssh2$/ * \"failed\" attempt=end tag=sshd\n",
                    "/maximum authentication attempts exceeded for .* from <HOST> port/ * \"max\" attempt=close tag=sshd\n",
                    "/\\(auth failed, (?P<TRIES>\\d+) attempts\\): rip=<HOST>, session=<(?P<SESSION>\\w+)>$/ * \"summary\" attempt=close tag=dovecot\n",
                    "/pam\\(\\w+,<HOST>,<(?P<SESSION>\\w+)>\\): failed$/ * \"try\" tag=dovecot\n",
                ),
                Path::new("r"),
            )
            .unwrap(),
        )
        .unwrap();
        let mut s = Sessions::default();
        let fail = "sshd[20]: Failed password for root from 192.0.2.5 port 1 ssh2";
        let max =
            "sshd[20]: maximum authentication attempts exceeded for root from 192.0.2.5 port 1";
        let got: Vec<u32> = [fail, fail, max]
            .iter()
            .map(|l| bans(&run(&mut s, &r, l, 0)))
            .collect();
        assert_eq!(
            got,
            [1, 1, 0],
            "the maximum line closes tries already banned"
        );
        // A session never seen: the closing line is all there is, and bans.
        let other =
            "sshd[21]: maximum authentication attempts exceeded for root from 192.0.2.6 port 1";
        assert_eq!(bans(&run(&mut s, &r, other, 0)), 1);
        // dovecot: two tries seen by the auth process, a summary of three: one more ban.
        let tr = "dovecot: pam(u,192.0.2.7,<abc>): failed";
        let sum = "dovecot: (auth failed, 3 attempts): rip=192.0.2.7, session=<abc>";
        let got: Vec<u32> = [tr, tr, sum]
            .iter()
            .map(|l| bans(&run(&mut s, &r, l, 0)))
            .collect();
        assert_eq!(got, [1, 1, 1]);
        // Without the auth process's lines the summary counts its three tries.
        let sum = "dovecot: (auth failed, 3 attempts): rip=192.0.2.8, session=<def>";
        assert_eq!(bans(&run(&mut s, &r, sum, 0)), 3);
    }

    #[test]
    fn twins_in_two_files_count_once_in_either_order() {
        let r = RuleSet::new(
            crate::rules::parse(
                concat!(
                    "/^error client: <HOST>$/ * \"error\" twin=web/error\n",
                    "/^access <HOST> 401$/ * \"access\" twin=web/access\n",
                ),
                Path::new("r"),
            )
            .unwrap(),
        )
        .unwrap();
        let total = |lines: &[&str]| -> u32 {
            let mut s = Sessions::default();
            lines
                .iter()
                .map(|l| bans(&s.count(&r, r.check(l.as_bytes(), None), 0)))
                .sum()
        };
        let (e, a) = ("error client: 192.0.2.9", "access 192.0.2.9 401");
        assert_eq!(total(&[e, a]), 1);
        assert_eq!(total(&[a, e]), 1);
        assert_eq!(total(&[e, e, a, e, a, a]), 3, "three events");
        assert_eq!(total(&[e, e, e]), 3, "one file alone counts each line");
        let other = "access 192.0.2.10 401";
        assert_eq!(total(&[e, other]), 2, "another address is another event");
    }

    #[test]
    fn repeats_count_and_fold_once() {
        let r = rules();
        let mut s = Sessions::default();
        run(
            &mut s,
            &r,
            "sshd[11]: Invalid user x from 192.0.2.2 port 1",
            0,
        );
        let c = run(
            &mut s,
            &r,
            "sshd[11]: message repeated 3 times: [ Failed password for invalid user x from 192.0.2.2 port 1 ssh2]",
            0,
        );
        assert_eq!(
            c,
            LineCount::Caught {
                rule: 2,
                ip: "192.0.2.2".parse().unwrap(),
                bans: 2,
                folded: 1
            }
        );
    }

    #[test]
    fn address_less_lines_use_the_session() {
        let r = rules();
        let mut s = Sessions::default();
        assert!(matches!(
            run(
                &mut s,
                &r,
                "sshd[12]: Disconnecting: Too many authentication failures [preauth]",
                0
            ),
            LineCount::NoSession { rule: 3 }
        ));
        assert!(matches!(
            run(
                &mut s,
                &r,
                "sshd[12]: Connection from 192.0.2.3 port 5000 on 192.0.2.100 port 22",
                0
            ),
            LineCount::Noted { .. }
        ));
        // Another process's line does not borrow this session.
        assert!(matches!(
            run(
                &mut s,
                &r,
                "sshd[13]: Disconnecting: Too many authentication failures [preauth]",
                0
            ),
            LineCount::NoSession { .. }
        ));
        assert_eq!(
            run(
                &mut s,
                &r,
                "sshd[12]: Disconnecting: Too many authentication failures [preauth]",
                1
            ),
            LineCount::Caught {
                rule: 3,
                ip: "192.0.2.3".parse().unwrap(),
                bans: 1,
                folded: 0
            }
        );
    }

    #[test]
    fn expiry_and_capacity_bound_the_table() {
        let r = rules();
        let mut s = Sessions::new(1000, 60);
        run(
            &mut s,
            &r,
            "sshd[1]: Connection from 192.0.2.9 port 1 on 192.0.2.100 port 22",
            0,
        );
        // Still known at 59 s, forgotten at 120 s (60 s after its last line at 60 s).
        let late = "sshd[1]: Disconnecting: Too many authentication failures [preauth]";
        assert!(matches!(
            run(&mut s, &r, late, 59),
            LineCount::Caught { .. }
        ));
        assert!(matches!(
            run(&mut s, &r, late, 60),
            LineCount::Caught { .. }
        ));
        assert!(matches!(
            run(&mut s, &r, late, 120),
            LineCount::NoSession { .. }
        ));
        assert!(s.is_empty());
        // A flood of distinct sessions within the ttl: the table stays at its capacity, the newest
        // sessions are kept, and the memory of the order queue is bounded too.
        for pid in 0..100_000u32 {
            let line = format!(
                "sshd[{pid}]: Connection from 198.18.{}.{} port 1 on x port 22",
                pid / 256 % 256,
                pid % 256
            );
            run(&mut s, &r, &line, 200);
        }
        assert_eq!(s.len(), 1000);
        assert_eq!(s.evicted(), 99_000);
        assert!(s.order.len() <= 2 * 1000 + 16);
        assert!(matches!(
            run(
                &mut s,
                &r,
                "sshd[99999]: Disconnecting: Too many authentication failures [preauth]",
                200
            ),
            LineCount::Caught { .. }
        ));
        assert!(matches!(
            run(
                &mut s,
                &r,
                "sshd[5]: Disconnecting: Too many authentication failures [preauth]",
                200
            ),
            LineCount::NoSession { .. }
        ));
    }

    #[test]
    fn a_reused_pid_with_another_address_opens_nothing() {
        let r = rules();
        let mut s = Sessions::default();
        run(
            &mut s,
            &r,
            "sshd[20]: Invalid user a from 192.0.2.4 port 1",
            0,
        );
        let c = run(
            &mut s,
            &r,
            "sshd[20]: Failed password for a from 192.0.2.5 port 1 ssh2",
            0,
        );
        assert!(
            matches!(
                c,
                LineCount::Caught {
                    bans: 1,
                    folded: 0,
                    ..
                }
            ),
            "{c:?}"
        );
    }
}
