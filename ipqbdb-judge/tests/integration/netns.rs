//! ibd-judge end to end: real packets between two network namespaces, real iptables rules, the real
//! binary, for every backend.
//!
//! Every burst of packets is followed by a sentinel from an innocent source on the same queue. The
//! queue is verdicted in order, so once the sentinel arrives every earlier packet has been judged:
//! counts are read when they are final, not after a guessed sleep.

use crate::common;

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use common::JudgeLab;
use ipqbdb_store::{AnyStore, Engine, ReadStore};
use ipqbdb_tests::root_test;
use ipqbdb_tests::traffic;
use ipqbdb_tests::{open_existing, wait_until};

const INNOCENT: &str = "10.77.0.2";
/// In another /64 than the IPv6 attacker: a ban covers the attacker's whole /64.
const INNOCENT6: &str = "fd78::2";

/// A [`JudgeLab`] with receiving sockets in the judge's namespace, by port.
struct Lab {
    lab: JudgeLab,
    rx: HashMap<u16, UdpSocket>,
}

impl Deref for Lab {
    type Target = JudgeLab;
    fn deref(&self) -> &JudgeLab {
        &self.lab
    }
}

impl DerefMut for Lab {
    fn deref_mut(&mut self) -> &mut JudgeLab {
        &mut self.lab
    }
}

impl Lab {
    fn new(backend: Engine) -> Lab {
        let mut lab = JudgeLab::pair(
            "judge",
            backend,
            &["10.77.0.1/24", "10.77.0.9/24", "fd77::1/64", "fd78::1/64"],
            &[
                "10.77.0.2/24",
                "10.77.0.3/24",
                "10.77.0.4/24",
                "10.77.0.5/24",
                "fd77::2/64",
                "fd77::3/64",
                "fd78::2/64",
            ],
        );
        // Queue 0 judges sources on ports 7000 (IPv4) and 7002 (IPv6). Queue 1, in the mangle
        // table, judges destinations and marks; the filter table then rejects marked packets.
        lab.j.queue_udp("iptables", 7000, 0);
        lab.j.queue_udp("ip6tables", 7002, 0);
        lab.j.queue_and_reject_marked(7001, 1, 4);
        let rx = [
            (7000, "0.0.0.0:7000"),
            (7001, "0.0.0.0:7001"),
            (7002, "[::]:7002"),
        ]
        .into_iter()
        .map(|(port, addr)| {
            let s = lab.j.udp(addr);
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            (port, s)
        })
        .collect();
        lab.start_judge(&["-v", "Q0", "Q1DM4"], "listening on Q0S Q1DM4");
        Lab { lab, rx }
    }

    /// Sends `n` packets from `src` to `dst`, then a sentinel from the innocent source (to
    /// `sentinel_dst`, default `dst`), and returns how many of the `n` arrived.
    fn burst_to(&self, src: &str, dst: &str, n: usize, sentinel_dst: Option<&str>) -> usize {
        let dst: SocketAddr = dst.parse().unwrap();
        let default_sentinel = if dst.is_ipv4() {
            dst.to_string()
        } else {
            format!("[fd78::1]:{}", dst.port())
        };
        let sdst: SocketAddr = sentinel_dst.unwrap_or(&default_sentinel).parse().unwrap();
        let innocent = if dst.is_ipv4() { INNOCENT } else { INNOCENT6 };
        let rx = &self.rx[&dst.port()];
        traffic::burst(&self.c, rx, src, dst, n, innocent, sdst)
    }

    fn burst(&self, src: &str, dst: &str, n: usize) -> usize {
        self.burst_to(src, dst, n, None)
    }

    /// Waits until a single probe from `src` to `dst` is judged `dropped` (or passes, when false).
    fn await_probe(
        &self,
        src: &str,
        dst: &str,
        sentinel_dst: Option<&str>,
        dropped: bool,
        limit: Duration,
    ) -> Duration {
        traffic::await_probe(&format!("{src} -> {dst}"), dropped, limit, || {
            self.burst_to(src, dst, 1, sentinel_dst) == 1
        })
    }

    /// Waits until a probe from `src` to port 7000 is dropped: a new ban applies within the
    /// staleness bound (given 5 s here).
    fn await_dropped(&self, src: &str) -> Duration {
        self.await_probe(src, "10.77.0.1:7000", None, true, Duration::from_secs(5))
    }

    fn store(&self) -> AnyStore {
        open_existing(&self.db())
    }

    fn signal(&self, sig: libc::c_int) {
        // `ip netns exec` execs the judge in place: the child is the judge.
        self.judge.as_ref().unwrap().signal(sig);
    }

    /// Stops the judge with SIGTERM and checks it exits cleanly.
    fn stop(&mut self) -> String {
        let mut judge = self.judge.take().unwrap();
        judge.stop(Duration::from_secs(20));
        let log = judge.log();
        assert!(log.contains("ibd-judge: stopped"), "{log}");
        log
    }
}

/// A ban at 100 % is exactly 100 % only within the second it was made; after that it decays. With a
/// 30-day half-life a packet passes with probability about 3e-7 per second elapsed, so bursts allow
/// one pass at most.
const LONG: &str = "30d";

#[root_test("network namespaces, iptables, mounts")]
fn unknown_accepted_banned_dropped_and_live_bans_enforced() {
    common::every_backend(|b| {
        let mut lab = Lab::new(b);
        assert_eq!(
            lab.burst("10.77.0.3", "10.77.0.1:7000", 100),
            100,
            "{b}: unknown source accepted"
        );
        assert_eq!(
            lab.burst("fd77::3", "[fd77::1]:7002", 100),
            100,
            "{b}: unknown IPv6 source accepted"
        );
        // Banned with `ibd ban` while the judge runs: enforced within the staleness bound.
        lab.ban(&["-c", "0", "-t", LONG, "10.77.0.3", "fd77::3"]);
        let took = lab.await_dropped("10.77.0.3");
        eprintln!("{b}: a live ban took effect after {took:?}");
        let passed = lab.burst("10.77.0.3", "10.77.0.1:7000", 200);
        assert!(passed <= 1, "{b}: 100 % drops everything, {passed} passed");
        assert!(
            lab.burst("fd77::3", "[fd77::1]:7002", 200) <= 1,
            "{b}: IPv6 ban applies"
        );
        assert!(
            lab.burst("fd77::2", "[fd77::1]:7002", 50) <= 1,
            "{b}: to the whole /64"
        );
        assert_eq!(
            lab.burst(INNOCENT6, "[fd77::1]:7002", 50),
            50,
            "{b}: other /64s pass"
        );
        assert_eq!(
            lab.burst(INNOCENT, "10.77.0.1:7000", 200),
            200,
            "{b}: others pass"
        );
        // Block counters reach the database in batches, not per packet.
        let key: ipqbdb_core::AddrKey = "10.77.0.3".parse().unwrap();
        // The probe that showed the ban, and the burst.
        let blocked = || lab.store().lookup(key).unwrap().unwrap().blocked;
        wait_until(
            || format!("{b}: block counter at {}", blocked()),
            Duration::from_secs(10),
            || blocked() >= 201 - passed as u64,
        );
        // SIGUSR1 logs the counters per queue.
        lab.signal(libc::SIGUSR1);
        let log = || std::fs::read_to_string(lab.log_path()).unwrap_or_default();
        wait_until(
            || format!("{b}: no counters in {}", log()),
            Duration::from_secs(10),
            || log().contains("queue 0: ") && log().contains("queue 1: 0 packets"),
        );
        let log = lab.stop();
        assert!(log.contains("queue 0: "), "{log}");
    });
}

/// SIGUSR2, ipqbdb 2.03's recovery signal (its scripts send it to every daemon), reopens the
/// database on every engine: each queue's thread and the counter writer say so, the judge keeps
/// judging (a ban made after the reopen is enforced, block counters are still written), and
/// SIGHUP, which the judge has nothing to reload for, is survived too.
#[root_test("network namespaces, iptables, mounts")]
fn sigusr2_reopens_the_database_and_sighup_is_survived() {
    common::every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.ban(&["-c", "0", "-t", LONG, "10.77.0.3"]);
        lab.await_dropped("10.77.0.3");
        lab.signal(libc::SIGUSR2);
        let log = || std::fs::read_to_string(lab.log_path()).unwrap_or_default();
        wait_until(
            || format!("{b}: the queues did not reopen:\n{}", log()),
            Duration::from_secs(10),
            || {
                log().contains("queue 0: reopened the database")
                    && log().contains("queue 1: reopened the database")
            },
        );
        // Judged through the new handles: a ban made now is enforced, others still pass.
        lab.ban(&["-c", "0", "-t", LONG, "10.77.0.4"]);
        lab.await_dropped("10.77.0.4");
        assert!(lab.burst("10.77.0.3", "10.77.0.1:7000", 50) <= 1, "{b}");
        assert_eq!(lab.burst(INNOCENT, "10.77.0.1:7000", 50), 50, "{b}");
        // The writer reopens at its next write, and writes.
        let key: ipqbdb_core::AddrKey = "10.77.0.4".parse().unwrap();
        let blocked = || lab.store().lookup(key).unwrap().unwrap().blocked;
        wait_until(
            || format!("{b}: writer: {} blocked\n{}", blocked(), log()),
            Duration::from_secs(10),
            || log().contains("block counters: reopened the database") && blocked() >= 1,
        );
        lab.signal(libc::SIGHUP);
        wait_until(
            || format!("{b}: SIGHUP not seen:\n{}", log()),
            Duration::from_secs(10),
            || log().contains("SIGHUP: nothing to reload"),
        );
        assert!(lab.burst("10.77.0.4", "10.77.0.1:7000", 50) <= 1, "{b}");
        assert!(!log().contains("reopening the database:"), "{b}: {}", log());
        lab.stop();
    });
}

#[root_test("network namespaces, iptables, mounts")]
fn a_quarter_probability_drops_about_a_quarter() {
    common::every_backend(|b| {
        let lab = Lab::new(b);
        // 10.77.0.4 at 25 %, and in the same transaction 10.77.0.5 at 100 % as a visibility marker.
        lab.ban(&["-c", "2", "-t", "1w", "10.77.0.4"]);
        lab.ban(&["-c", "0", "-t", LONG, "10.77.0.5"]);
        lab.await_dropped("10.77.0.5");
        let n = 2000;
        let dropped = n - lab.burst("10.77.0.4", "10.77.0.1:7000", n);
        // Binomial(2000, 1/4): mean 500, standard deviation 19.4; six of them either side.
        eprintln!("{b}: 25 % dropped {dropped} of {n}");
        assert!(
            (384..=616).contains(&dropped),
            "{b}: {dropped} of {n} dropped at 25 %"
        );
    });
}

#[root_test("network namespaces, iptables, mounts")]
fn marked_packets_are_rejected_by_a_later_rule() {
    common::every_backend(|b| {
        let lab = Lab::new(b);
        // Q1DM4 judges destinations: ban the destination 10.77.0.9.
        lab.ban(&["-c", "0", "-t", LONG, "10.77.0.9"]);
        lab.await_probe(
            INNOCENT,
            "10.77.0.9:7001",
            Some("10.77.0.1:7001"),
            true,
            Duration::from_secs(5),
        );
        let before = lab.reject_count();
        let passed = lab.burst_to(INNOCENT, "10.77.0.9:7001", 50, Some("10.77.0.1:7001"));
        assert!(passed <= 1, "{b}: {passed} unmarked");
        assert_eq!(
            lab.reject_count() - before,
            50 - passed as u64,
            "{b}: every marked packet met the REJECT rule"
        );
        assert_eq!(
            lab.burst(INNOCENT, "10.77.0.1:7001", 50),
            50,
            "{b}: other destinations pass"
        );
    });
}

#[root_test("network namespaces, iptables, mounts")]
fn decay_lets_a_banned_source_back_in() {
    common::every_backend(|b| {
        let lab = Lab::new(b);
        // 100 % with a one-second half-life.
        lab.ban(&["-c", "0", "-t", "1s", "10.77.0.5"]);
        lab.await_dropped("10.77.0.5");
        let took = lab.await_probe(
            "10.77.0.5",
            "10.77.0.1:7000",
            None,
            false,
            Duration::from_secs(30),
        );
        eprintln!("{b}: back in after {took:?}");
    });
}
