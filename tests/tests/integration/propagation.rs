//! A ban made on one host reaching another host's *verdict*, through real programs: an `ibd-judge`
//! on a postgres database judging real packets, and `ibd ban` run for another host's directory on
//! the same server.
#![cfg(feature = "postgres")]

use std::process::Command;
use std::time::{Duration, Instant};

use ipqbdb_tests::netns::{self, Netns};
use ipqbdb_tests::postgres::server_of;
use ipqbdb_tests::traffic::{await_probe, burst};
use ipqbdb_tests::{root_test, workspace_bin, Proc, TestDb};

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

/// The judge is kept busy by a probe every 20 ms, as a host with traffic is: its packet thread
/// judges without a pause, and each source it has just looked up (and found nothing for) must
/// still be dropped within the bound once another host bans it.
#[root_test("network namespaces, iptables, PostgreSQL", timing)]
fn a_ban_on_another_host_changes_a_busy_judges_verdict_at_once() {
    let db = TestDb::new(ipqbdb_store::Engine::Postgres);
    let url = server_of(db.path()).unwrap().url;
    let judge_dir = db.path().join("host-a");
    let other_dir = db.path().join("host-b");
    for d in [&judge_dir, &other_dir] {
        std::fs::create_dir_all(d).unwrap();
    }
    let ns = Netns::new("propj");
    let client = Netns::new("propc");
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
    let dst = DST.parse().unwrap();
    let passes = |src: &str| burst(&client, &rx, src, dst, 1, SENTINEL, dst) == 1;

    let judge = workspace_bin("ipqbdb-judge", "ibd-judge");
    let mut cmd = ns.command(judge.to_str().unwrap());
    cmd.args(["-D", "--config", "/dev/null", "--backend", "postgres"])
        .arg("--db-dir")
        .arg(&judge_dir)
        .args([
            "--postgres-url",
            &url,
            "--staleness-ms",
            &STALENESS_MS.to_string(),
            "Q0",
        ]);
    let mut p = Proc::spawn_logged("ibd-judge", &mut cmd, &db.path().join("judge.err"));
    p.wait_log("listening on", Duration::from_secs(30));

    let ibd = workspace_bin("ipqbdb-admin", "ibd");
    let mut late = Vec::new();
    for src in SOURCES {
        assert!(passes(src), "{src} dropped before its ban");
        let out = Command::new(&ibd)
            .args([
                "ban",
                "--config",
                "/dev/null",
                "--backend",
                "postgres",
                "--db-dir",
            ])
            .arg(&other_dir)
            .args([
                "--postgres-url",
                &url,
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
        let committed = Instant::now();
        // Waited for well past the bound, so a late verdict is told from one that never comes.
        await_probe(
            &format!("{src}, banned on host b,"),
            true,
            Duration::from_secs(15),
            || passes(src),
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
