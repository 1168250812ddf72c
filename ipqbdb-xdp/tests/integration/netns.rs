//! ibd-xdp end to end: real packets between two network namespaces joined by veth, the XDP program
//! attached by the real binary to the receiving end, the real database of every backend, `ibd` for
//! bans, deletions and the whitelist.
//!
//! Each test mounts a BPF filesystem of its own under its temporary directory for the pins; dropping
//! the lab unmounts it (removing every pin, which detaches the program and frees the maps) and
//! deletes the namespaces, also when the test fails.
//!
//! Every burst is followed by a sentinel from an innocent source: packets from one socket cross the
//! veth in order, so once the sentinel arrives every earlier packet has been judged.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ipqbdb_core::AddrKey;
use ipqbdb_store::{AnyStore, Engine, ReadStore, Store};
use ipqbdb_tests::netns::{pair, Netns};
use ipqbdb_tests::root_test;
use ipqbdb_tests::traffic::{self, Stream};
use ipqbdb_tests::{daemon_options, open_existing, wait_until, Proc};

const XDP: &str = env!("CARGO_BIN_EXE_ibd-xdp");
const INNOCENT: &str = "10.78.0.2";
const INNOCENT6: &str = "fd88::2";
/// A 30-day half-life: a 100 % ban lets about 3e-7 packets per second elapsed through.
const LONG: &str = "30d";
const IFACE: &str = "veth-a";
const X_ADDRS: &[&str] = &["10.78.0.1/24", "fd87::1/64", "fd88::1/64"];
const C_ADDRS: &[&str] = &[
    "10.78.0.2/24",
    "10.78.0.3/24",
    "10.78.0.4/24",
    "10.78.0.5/24",
    "fd87::2/64",
    "fd87::3/64",
    "fd88::2/64",
];

/// A BPF filesystem mounted for one test, unmounted on drop.
struct BpfMount(PathBuf);

impl BpfMount {
    fn new(dir: PathBuf) -> BpfMount {
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(st.success(), "mount -t bpf {}", dir.display());
        BpfMount(dir)
    }
}

impl Drop for BpfMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct Lab {
    xdp: Option<Proc>,
    x: Netns,
    c: Netns,
    bpf: BpfMount,
    tmp: tempfile::TempDir,
    backend: Engine,
    rx: UdpSocket,
    rx6: UdpSocket,
    runs: u32,
}

impl Lab {
    fn new(backend: Engine) -> Lab {
        let x = Netns::new("xdp");
        let c = Netns::new("xclient");
        pair(&x, X_ADDRS, &c, C_ADDRS);
        let rx = x.udp("0.0.0.0:7100");
        let rx6 = x.udp("[::]:7101");
        for s in [&rx, &rx6] {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        let tmp = tempfile::tempdir().unwrap();
        let bpf = BpfMount::new(tmp.path().join("bpf"));
        Lab {
            xdp: None,
            x,
            c,
            bpf,
            tmp,
            backend,
            rx,
            rx6,
            runs: 0,
        }
    }

    fn db(&self) -> PathBuf {
        self.tmp.path().join("db")
    }

    fn pin_dir(&self) -> PathBuf {
        self.bpf.0.join(IFACE)
    }

    fn start(&mut self, extra: &[&str]) -> String {
        self.runs += 1;
        let log = self.tmp.path().join(format!("xdp-{}.log", self.runs));
        let mut cmd = self.x.command(XDP);
        daemon_options(&mut cmd, self.backend, &self.db())
            .args(["-v", "--staleness-ms", "100", "--pin-dir"])
            .arg(self.pin_dir())
            .args(extra)
            .arg(IFACE);
        let mut p = Proc::spawn_logged("ibd-xdp", &mut cmd, &log);
        p.wait_log("attached to veth-a", Duration::from_secs(30));
        let text = p.log();
        self.xdp = Some(p);
        text
    }

    fn ibd(&self, cmd: &str, args: &[&str]) {
        let mut argv: Vec<std::ffi::OsString> = ["ibd", cmd, "--config", "/dev/null", "--db-dir"]
            .map(Into::into)
            .to_vec();
        argv.push(self.db().into());
        argv.extend(["--backend", self.backend.name()].map(Into::into));
        argv.extend(args.iter().map(Into::into));
        assert_eq!(ipqbdb_admin::run(argv), 0, "ibd {cmd} {args:?}");
    }

    fn ban(&self, args: &[&str]) {
        let mut a = vec!["--quiet"];
        a.extend_from_slice(args);
        self.ibd("ban", &a);
    }

    fn store(&self) -> AnyStore {
        open_existing(&self.db())
    }

    /// Sends `n` packets from `src`, then a sentinel from the innocent source of the same family, and
    /// returns how many of the `n` arrived.
    fn burst(&self, src: &str, n: usize) -> usize {
        let ip: IpAddr = src.parse().unwrap();
        let (dst, innocent, rx): (SocketAddr, &str, &UdpSocket) = if ip.is_ipv4() {
            ("10.78.0.1:7100".parse().unwrap(), INNOCENT, &self.rx)
        } else {
            ("[fd87::1]:7101".parse().unwrap(), INNOCENT6, &self.rx6)
        };
        traffic::burst(&self.c, rx, src, dst, n, innocent, dst)
    }

    /// Waits until a probe from `src` is dropped (or passes, when `dropped` is false).
    fn await_probe(&self, src: &str, dropped: bool, limit: Duration) {
        traffic::await_probe(src, dropped, limit, || self.burst(src, 1) == 1);
    }

    /// The XDP program attached to the interface, as `ip link` shows it.
    fn attached_prog(&self) -> Option<String> {
        let out = self.x.must(&["ip", "link", "show", "dev", IFACE]);
        out.split_whitespace()
            .skip_while(|w| *w != "prog/xdp")
            .nth(2)
            .map(str::to_string)
    }

    fn stop(&mut self) -> String {
        let mut p = self.xdp.take().unwrap();
        p.stop(Duration::from_secs(20));
        let log = p.log();
        assert!(log.contains("ibd-xdp: stopped"), "{log}");
        log
    }
}

fn every_backend(f: impl Fn(Engine)) {
    for b in Engine::compiled_local() {
        f(b);
    }
}

fn blocked(store: &AnyStore, ip: &str) -> u64 {
    let key = AddrKey::exact(ip.parse().unwrap());
    store.lookup(key).unwrap().map_or(0, |r| r.blocked)
}

#[root_test("network namespaces, BPF")]
fn verdicts_follow_the_database() {
    every_backend(|b| {
        let mut lab = Lab::new(b);
        // A database with the IPv6 /64 and a whitelisted address inside it before the start.
        let white = lab.tmp.path().join("white");
        std::fs::write(&white, "fd87::3 0\n").unwrap();
        lab.ibd("white", &[white.to_str().unwrap()]);
        lab.ban(&["-c", "0", "-t", LONG, "fd87::2"]);
        let log = lab.start(&[]);
        assert!(
            log.contains("native mode") || log.contains("generic mode"),
            "the log says the mode: {log}"
        );
        assert!(lab.attached_prog().is_some(), "attached");

        // Unknown sources pass.
        assert_eq!(lab.burst("10.78.0.3", 50), 50, "{b:?}: unknown source");
        // The banned /64 loses everything, from any address in it but the whitelisted one.
        assert!(lab.burst("fd87::2", 50) <= 1, "{b:?}: banned IPv6");
        assert_eq!(
            lab.burst("fd87::3", 50),
            50,
            "{b:?}: whitelisted inside the /64"
        );
        assert_eq!(lab.burst(INNOCENT6, 20), 20, "{b:?}: another /64");

        // A new ban takes effect within the staleness bound (100 ms here, plus a probe).
        let t = Instant::now();
        lab.ban(&["-c", "0", "-t", LONG, "10.78.0.4"]);
        lab.await_probe("10.78.0.4", true, Duration::from_secs(5));
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "{b:?}: ban enforced after {took:?}"
        );
        let passed = lab.burst("10.78.0.4", 100);
        assert!(passed <= 1, "{b:?}: 100 % source passed {passed} of 100");

        // Every dropped packet reaches the record's blocked counter, once: the 100 of the burst
        // that did not pass, and the probe that found the ban enforced.
        let store = lab.store();
        let want = 101 - passed as u64;
        wait_until(
            || format!("{b:?}: blocked count {}", blocked(&store, "10.78.0.4")),
            Duration::from_secs(10),
            || blocked(&store, "10.78.0.4") >= want,
        );
        assert_eq!(blocked(&store, "10.78.0.4"), want, "{b:?}: counted once");

        // ibd del takes it out of the map.
        lab.ibd("del", &["--del", "10.78.0.4"]);
        lab.await_probe("10.78.0.4", false, Duration::from_secs(5));
        assert_eq!(lab.burst("10.78.0.4", 50), 50, "{b:?}: deleted record");

        // The whitelist removed: the whole /64 is dropped.
        lab.ibd("white", &["--del", "fd87::3"]);
        lab.await_probe("fd87::3", true, Duration::from_secs(5));
        lab.stop();
    });
}

#[root_test("network namespaces, BPF")]
fn a_quarter_probability_drops_about_a_quarter() {
    every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.ban(&["-c", "2", "-t", LONG, "10.78.0.5"]);
        // Generic mode here (the other tests get native mode on veth): the same verdicts.
        let log = lab.start(&["--xdp-mode", "generic"]);
        assert!(log.contains("(generic mode)"), "{b:?}: {log}");
        lab.await_probe("10.78.0.5", true, Duration::from_secs(10));
        let n = 2000;
        let passed = lab.burst("10.78.0.5", n);
        // Binomial(2000, 0.75): mean 1500, sd 19.4; five sd either side.
        assert!(
            (1403..=1597).contains(&passed),
            "{b:?}: {passed} of {n} passed at 25 %"
        );
        lab.stop();
    });
}

#[root_test("network namespaces, BPF")]
fn sigkill_leaves_verdicts_and_a_restart_adopts_them() {
    every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.ban(&["-c", "0", "-t", LONG, "10.78.0.3"]);
        lab.start(&[]);
        lab.await_probe("10.78.0.3", true, Duration::from_secs(10));
        let prog = lab.attached_prog().expect("attached");
        lab.xdp.as_mut().unwrap().sigkill();
        lab.xdp = None;
        assert!(
            lab.burst("10.78.0.3", 100) <= 1,
            "{b:?}: dropped with no daemon"
        );
        assert_eq!(lab.burst("10.78.0.4", 20), 20, "{b:?}: unknown passes");
        let log = lab.start(&[]);
        assert!(log.contains("adopted"), "{b:?}: {log}");
        assert_eq!(lab.attached_prog(), Some(prog), "{b:?}: the same program");
        assert!(
            lab.burst("10.78.0.3", 100) <= 1,
            "{b:?}: dropped after restart"
        );
        // The adopted maps follow the database.
        lab.ibd("del", &["--del", "10.78.0.3"]);
        lab.await_probe("10.78.0.3", false, Duration::from_secs(5));
        lab.stop();
        // Without --detach-on-exit the program stays.
        assert!(lab.attached_prog().is_some(), "{b:?}: still attached");
    });
}

#[root_test("network namespaces, BPF")]
fn a_restart_with_other_sizes_replaces_the_maps_without_a_gap() {
    every_backend(|b| {
        let mut lab = Lab::new(b);
        let white = lab.tmp.path().join("white");
        std::fs::write(&white, "fd87::3 0\n").unwrap();
        lab.ibd("white", &[white.to_str().unwrap()]);
        lab.ban(&["-c", "0", "-t", LONG, "10.78.0.3"]);
        lab.ban(&["-c", "0", "-t", LONG, "10.78.0.4"]);
        lab.ban(&["-c", "1", "-t", LONG, "10.78.0.5"]);
        // Maps smaller than what the next run asks for: 50 % (.5) does not fit, and the one
        // whitelist block fills its trie.
        lab.start(&["--max-entries", "2", "--max-white", "1"]);
        lab.await_probe("10.78.0.3", true, Duration::from_secs(10));
        assert_eq!(lab.burst("10.78.0.5", 50), 50, "{b:?}: left out");
        lab.xdp.as_mut().unwrap().sigkill();
        lab.xdp = None;
        // Meanwhile the whitelist grows past the adopted trie and a ban is added.
        std::fs::write(&white, "10.78.0.4 0\n").unwrap();
        lab.ibd("white", &[white.to_str().unwrap()]);
        lab.ban(&["-c", "0", "-t", LONG, "fd87::2"]);

        // The restart with the default sizes, while .3 (100 %) sends all along: the old maps judge
        // until the new ones, already filled, take their place.
        let rx = lab.rx.try_clone().unwrap();
        let stream = Stream::start(
            &lab.c,
            rx,
            "10.78.0.1:7100".parse().unwrap(),
            &["10.78.0.3"],
            INNOCENT,
            2000,
            1_000_000,
        );
        let log = lab.start(&[]);
        let report = stream.finish();
        eprintln!(
            "{b:?}: during the restart {} of {} packets of the 100 % source passed",
            report.received_from("10.78.0.3"),
            report.sent_from("10.78.0.3")
        );
        assert!(log.contains("maps resized"), "{b:?}: {log}");
        assert!(
            report.sent_from("10.78.0.3") > 0,
            "{b:?}: the stream sent nothing"
        );
        assert!(
            report.received_from("10.78.0.3") <= 1,
            "{b:?}: {} of {} packets of a 100 % source passed during the restart",
            report.received_from("10.78.0.3"),
            report.sent_from("10.78.0.3")
        );
        // Everything is in the new maps: the record left out before, the new whitelist block,
        // the new ban, and the whitelist block inside it.
        assert!(lab.burst("10.78.0.3", 100) <= 1, "{b:?}: still dropped");
        assert_eq!(lab.burst("10.78.0.4", 50), 50, "{b:?}: whitelisted");
        let half = lab.burst("10.78.0.5", 400);
        assert!(
            (120..=280).contains(&half),
            "{b:?}: 50 % passed {half} of 400"
        );
        assert!(lab.burst("fd87::2", 100) <= 1, "{b:?}: new ban");
        assert_eq!(
            lab.burst("fd87::3", 50),
            50,
            "{b:?}: whitelisted in the /64"
        );
        // The new maps follow the database, and the pins are theirs: one more restart with the
        // same sizes adopts them as they are.
        lab.ibd("del", &["--del", "10.78.0.3"]);
        lab.await_probe("10.78.0.3", false, Duration::from_secs(5));
        let prog = lab.attached_prog().expect("attached");
        lab.stop();
        let log = lab.start(&[]);
        assert!(
            log.contains("adopted") && !log.contains("resized"),
            "{b:?}: {log}"
        );
        assert_eq!(lab.attached_prog(), Some(prog), "{b:?}: the same program");
        assert!(
            lab.burst("fd87::2", 100) <= 1,
            "{b:?}: dropped after adoption"
        );
        lab.stop();
    });
}

#[root_test("network namespaces, BPF")]
fn pins_of_a_deleted_interface_are_not_adopted() {
    every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.ban(&["-c", "0", "-t", LONG, "10.78.0.3"]);
        lab.start(&[]);
        lab.await_probe("10.78.0.3", true, Duration::from_secs(10));
        lab.xdp.as_mut().unwrap().sigkill();
        lab.xdp = None;
        // The interface goes (and its link with it) and comes back under the same name.
        lab.x.ip(&["link", "del", IFACE]);
        pair(&lab.x, X_ADDRS, &lab.c, C_ADDRS);
        assert_eq!(lab.burst("10.78.0.3", 20), 20, "{b:?}: nothing attached");
        let log = lab.start(&[]);
        assert!(!log.contains("adopted"), "{b:?}: stale pins adopted: {log}");
        assert!(lab.attached_prog().is_some(), "{b:?}: attached afresh");
        assert!(lab.burst("10.78.0.3", 100) <= 1, "{b:?}: dropped again");
        lab.stop();
    });
}

#[root_test("network namespaces, BPF")]
fn decay_lets_a_source_back_in_while_the_daemon_is_stopped() {
    every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.start(&[]);
        // Banned once the daemon runs, so the half-life is not spent waiting for it to start.
        lab.ban(&["-c", "0", "-t", "3s", "10.78.0.3"]);
        lab.await_probe("10.78.0.3", true, Duration::from_secs(10));
        lab.xdp.as_mut().unwrap().sigkill();
        lab.xdp = None;
        // Only the kernel's decay can let it through now: after 6 half-lives P is 1/64.
        lab.await_probe("10.78.0.3", false, Duration::from_secs(60));
        wait_until(
            || format!("{b:?}: 10.78.0.3 still mostly dropped"),
            Duration::from_secs(60),
            || lab.burst("10.78.0.3", 100) >= 95,
        );
    });
}

#[root_test("network namespaces, BPF")]
fn full_map_keeps_the_highest_probabilities_and_detach_on_exit_cleans_up() {
    every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.ban(&["-c", "0", "-t", LONG, "10.78.0.3"]);
        lab.ban(&["-c", "3", "-t", LONG, "10.78.0.4"]);
        lab.ban(&["-c", "1", "-t", LONG, "10.78.0.5"]);
        lab.start(&["--max-entries", "2", "--detach-on-exit"]);
        lab.await_probe("10.78.0.3", true, Duration::from_secs(10));
        // 100 % and 50 % are in the map; 12.5 % (the lowest) is not, so it passes unjudged.
        assert_eq!(lab.burst("10.78.0.4", 100), 100, "{b:?}: left out");
        let half = lab.burst("10.78.0.5", 400);
        assert!(
            (120..=280).contains(&half),
            "{b:?}: 50 % passed {half} of 400"
        );
        let log = lab.xdp.as_ref().unwrap().log();
        assert!(log.contains("1 live records do not fit"), "{b:?}: {log}");
        lab.stop();
        assert_eq!(lab.attached_prog(), None, "{b:?}: detached");
        assert!(
            !lab.pin_dir().exists(),
            "{b:?}: pins left in {:?}",
            lab.pin_dir()
        );
        assert_eq!(
            lab.burst("10.78.0.3", 20),
            20,
            "{b:?}: no verdicts once detached"
        );
    });
}

#[root_test("network namespaces, BPF, iptables")]
fn xdp_and_the_nfqueue_judge_together() {
    let judge_bin = ipqbdb_tests::workspace_bin("ipqbdb-judge", "ibd-judge");
    every_backend(|b| {
        let mut lab = Lab::new(b);
        // What XDP passes goes on to the judge; with --queue-bypass it passes while no judge runs.
        lab.x.queue_port(
            "iptables",
            "filter",
            "udp",
            7100,
            &["--queue-num", "0", "--queue-bypass"],
        );
        // The one-entry map keeps the higher current probability: .3 (100 % now) goes to XDP, .4
        // (100 % a hundred seconds ago, half-life one day: 99.92 % now) is left to the judge.
        lab.ban(&["-c", "0", "-t", LONG, "10.78.0.3"]);
        let past = ipqbdb_store::Ban {
            ip: "10.78.0.4".parse().unwrap(),
            reason: "earlier",
            initial_count: 0,
            decay: Some(86_400),
        };
        lab.store().ban(&past, ipqbdb_core::now() - 100).unwrap();
        let log = lab.start(&["--max-entries", "1"]);
        assert!(log.contains("1 live records do not fit"), "{b:?}: {log}");
        let mut cmd = lab.x.command(judge_bin.to_str().unwrap());
        daemon_options(&mut cmd, b, &lab.db()).arg("Q0");
        let mut judge =
            Proc::spawn_logged("ibd-judge", &mut cmd, &lab.tmp.path().join("judge.log"));
        judge.wait_log("listening on Q0", Duration::from_secs(20));

        assert_eq!(lab.burst("10.78.0.5", 50), 50, "{b:?}: unknown passes both");
        assert!(lab.burst("10.78.0.3", 100) <= 1, "{b:?}: dropped by XDP");
        assert!(
            lab.burst("10.78.0.4", 100) <= 1,
            "{b:?}: dropped by the judge"
        );
        let store = lab.store();
        wait_until(
            || format!("{b:?}: blocked counts of .3 and .4"),
            Duration::from_secs(10),
            || blocked(&store, "10.78.0.3") >= 99 && blocked(&store, "10.78.0.4") >= 97,
        );

        // Without the judge (bypass), XDP alone still drops its source; the other passes.
        judge.stop(Duration::from_secs(20));
        assert!(lab.burst("10.78.0.3", 100) <= 1, "{b:?}: XDP alone");
        assert_eq!(
            lab.burst("10.78.0.4", 50),
            50,
            "{b:?}: bypassed without a judge"
        );
        lab.stop();
    });
}
