//! A ban made on one host reaching another host's *verdict*, through real programs: an `ibd-judge`
//! on a postgres database judging real packets, and `ibd ban` run for another host's directory on
//! the same server.
#![cfg(feature = "postgres")]

use std::process::Command;
use std::time::{Duration, Instant};

use ipqbdb_tests::netns::{self, Netns};
use ipqbdb_tests::postgres::server_of;
use ipqbdb_tests::traffic::{await_probe, burst};
use ipqbdb_tests::{root_test, wait_until, workspace_bin, Proc, TestDb};

/// Where the probes go, in the judge's namespace; the sentinel's source, never banned.
const DST: &str = "10.66.0.1:7000";
const SENTINEL: &str = "10.66.0.2";
/// The sources banned one after the other, each probed (and passed) first.
const SOURCES: [&str; 5] = [
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.4",
    "192.0.2.5",
];
/// The judge's poll and snapshot length, as the README's fleet section advises with commit notices.
const STALENESS_MS: u64 = 1000;
/// Well within the staleness: the judge refreshes its view on the ban's commit notice, and its
/// packet thread forgets what it cached when the view changes, rather than at its snapshot's end
/// (measured 1 to 6 s while the thread's snapshot held the view's lock, then up to a second while
/// its cache outlived the change; now tens of milliseconds).
const BOUND: Duration = Duration::from_millis(STALENESS_MS / 2);

/// Two hosts' directories on one private server, the judge's namespace and a client whose packets
/// the judge's queue 0 judges.
struct Hosts {
    db: TestDb,
    url: String,
    judge_dir: std::path::PathBuf,
    other_dir: std::path::PathBuf,
    client: Netns,
    ns: Netns,
    rx: std::net::UdpSocket,
}

impl Hosts {
    fn new(tag: &str) -> Hosts {
        let db = TestDb::new(ipqbdb_store::Engine::Postgres);
        let url = server_of(db.path()).unwrap().url;
        let judge_dir = db.path().join("host-a");
        let other_dir = db.path().join("host-b");
        for d in [&judge_dir, &other_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        let ns = Netns::new(&format!("{tag}j"));
        let client = Netns::new(&format!("{tag}c"));
        let mut client_addrs = vec![format!("{SENTINEL}/24")];
        client_addrs.extend(SOURCES.iter().map(|a| format!("{a}/24")));
        let client_refs: Vec<&str> = client_addrs.iter().map(String::as_str).collect();
        netns::pair(
            &ns,
            &["10.66.0.1/24", "192.0.2.254/24"],
            &client,
            &client_refs,
        );
        ns.queue_udp("iptables", 7000, 0);
        let rx = ns.udp("0.0.0.0:7000");
        rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        Hosts {
            db,
            url,
            judge_dir,
            other_dir,
            client,
            ns,
            rx,
        }
    }

    /// Whether one packet from `src` passes the judge.
    fn passes(&self, src: &str) -> bool {
        let dst = DST.parse().unwrap();
        burst(&self.client, &self.rx, src, dst, 1, SENTINEL, dst) == 1
    }

    /// Host a's judge on queue 0, with the configuration file `config`, started.
    fn judge(&self, config: &str, staleness_ms: u64) -> Proc {
        let config_file = self.db.path().join("judge.toml");
        std::fs::write(&config_file, config).unwrap();
        let judge = workspace_bin("ipqbdb-judge", "ibd-judge");
        let mut cmd = self.ns.command(judge.to_str().unwrap());
        cmd.args(["-D", "--config"])
            .arg(&config_file)
            .args(["--backend", "postgres", "--db-dir"])
            .arg(&self.judge_dir)
            .args([
                "--postgres-url",
                &self.url,
                "--staleness-ms",
                &staleness_ms.to_string(),
                "Q0",
            ]);
        let mut p = Proc::spawn_logged("ibd-judge", &mut cmd, &self.db.path().join("judge.err"));
        p.wait_log("listening on", Duration::from_secs(30));
        p
    }

    /// `ibd ban` of `src` on host b.
    fn ban(&self, src: &str) {
        let ibd = workspace_bin("ipqbdb-admin", "ibd");
        let out = Command::new(&ibd)
            .args([
                "ban",
                "--config",
                "/dev/null",
                "--backend",
                "postgres",
                "--db-dir",
            ])
            .arg(&self.other_dir)
            .args([
                "--postgres-url",
                &self.url,
                "--quiet",
                "-c",
                "0",
                "-t",
                "1d",
                src,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ibd ban {src}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Connections of the server listening for commit notices (their last statement a `LISTEN`).
    fn listeners(&self) -> u32 {
        let server = self.db.server.as_ref().unwrap();
        server
            .psql(
                &self.db.dbname().unwrap(),
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND query LIKE 'LISTEN %'",
            )
            .trim()
            .parse()
            .unwrap()
    }
}

/// The judge is kept busy by a probe every 20 ms, as a host with traffic is: its packet thread
/// judges without a pause, and each source it has just looked up (and found nothing for) must
/// still be dropped within the bound once another host bans it.
#[root_test("network namespaces, iptables, PostgreSQL", timing)]
fn a_ban_on_another_host_changes_a_busy_judges_verdict_at_once() {
    let hosts = Hosts::new("prop");
    let mut p = hosts.judge("", STALENESS_MS);
    // Its view listens for commit notices (the default).
    wait_until(
        || "the judge's listening connection".into(),
        Duration::from_secs(10),
        || hosts.listeners() == 1,
    );
    let mut late = Vec::new();
    for src in SOURCES {
        assert!(hosts.passes(src), "{src} dropped before its ban");
        hosts.ban(src);
        let committed = Instant::now();
        // Waited for well past the bound, so a late verdict is told from one that never comes.
        await_probe(
            &format!("{src}, banned on host b,"),
            true,
            Duration::from_secs(15),
            || hosts.passes(src),
        );
        if committed.elapsed() > BOUND {
            late.push(format!("{src} after {:?}", committed.elapsed()));
        }
    }
    p.stop(Duration::from_secs(30));
    assert!(
        late.is_empty(),
        "bans dropped later than {BOUND:?} after their commit: {late:?}; judge log:\n{}",
        p.log()
    );
}

/// `postgres-notices = false` (a server behind PgBouncer in transaction pooling, which does not
/// carry `LISTEN`): the judge opens no listening connection, and a ban on another host still
/// reaches its verdict, at its next poll.
#[root_test("network namespaces, iptables, PostgreSQL", timing)]
fn a_judge_with_notices_off_follows_bans_by_polling() {
    const POLL_MS: u64 = 300;
    let hosts = Hosts::new("poll");
    let mut p = hosts.judge("postgres-notices = false\n", POLL_MS);
    let mut took = Vec::new();
    for src in &SOURCES[..3] {
        assert!(hosts.passes(src), "{src} dropped before its ban");
        hosts.ban(src);
        took.push(await_probe(
            &format!("{src}, banned on host b,"),
            true,
            Duration::from_secs(15),
            || hosts.passes(src),
        ));
    }
    // Checked after the bans: by then the view has polled many times, and would have listened.
    assert_eq!(
        hosts.listeners(),
        0,
        "a listening connection with notices off"
    );
    p.stop(Duration::from_secs(30));
    // A poll every 300 ms, the packet thread's snapshot as long, and the probe's 20 ms steps.
    let bound = Duration::from_millis(4 * POLL_MS);
    assert!(
        took.iter().all(|t| *t < bound),
        "bans reached the verdict in {took:?}, not within {bound:?} by polling; judge log:\n{}",
        p.log()
    );
}
