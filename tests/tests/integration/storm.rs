//! The storm that froze the original ipqbdb: eight `ibd ban` processes banning as fast as they can for
//! 30 seconds, beside a running ibd-parse (fed all along) and ibd-judge, on every backend. No process
//! may fail or hang, no acknowledged ban may be lost, every count must be exact.
//!
//! The judge has real traffic to judge meanwhile: a paced stream through an NFQUEUE queue from an
//! innocent address and from the hot address, whose probability the banners drive to 100 %, so the
//! judge drops packets and writes block counters while eight processes fight over the writer.

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use ipqbdb_core::AddrKey;
use ipqbdb_store::{Engine, ReadStore, Store};
use ipqbdb_tests::netns::Netns;
use ipqbdb_tests::root_test;
use ipqbdb_tests::traffic::{assert_all_judged, judge_counters, queue_counters, Link};
use ipqbdb_tests::{open_any, parser_following, stream_addr, wait_until, workspace_bin, Proc};

const SECS: u64 = 30;
const BANNERS: u32 = 8;
/// Banned by every banner on every round: the hot record everybody contends for.
const HOT: &str = Link::TEST_NET;
/// Packets per second the judge is given, from the innocent and the hot address in turn.
const RATE: u32 = 1_000;

#[root_test("network namespaces, iptables, mounts")]
fn eight_banners_beside_parse_and_judge() {
    let ibd = workspace_bin("ipqbdb-admin", "ibd");
    let parse = workspace_bin("ipqbdb-parse", "ibd-parse");
    let judge = workspace_bin("ipqbdb-judge", "ibd-judge");
    for backend in Engine::compiled_local() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        drop(open_any(&db, backend).unwrap());
        let rules = tmp.path().join("rules.conf");
        std::fs::write(&rules, "/storm <HOST>/ * \"storm\" 31\n").unwrap();
        let log = tmp.path().join("storm.log");
        std::fs::write(&log, "").unwrap();
        let common = |c: &mut Command| {
            c.args(["--config", "/dev/null", "--db-dir"]).arg(&db);
        };
        let mut p = parser_following(&parse, &db, &rules, &log);
        let mut parse_proc = Proc::spawn_logged("ibd-parse", &mut p, &tmp.path().join("parse.err"));
        let ns = Netns::new("storm");
        let mut link = Link::new(&ns);
        let mut j = ns.command(judge.to_str().unwrap());
        common(&mut j);
        j.args(["-D", "Q0"]);
        let mut judge_proc = Proc::spawn_logged("ibd-judge", &mut j, &tmp.path().join("judge.err"));
        judge_proc.wait_log("listening on", Duration::from_secs(20));
        parse_proc.wait_log("started", Duration::from_secs(20));

        let stream = link.stream(&[Link::INNOCENT, HOT], RATE, u64::from(RATE) * SECS * 2);
        let deadline = Instant::now() + Duration::from_secs(SECS);
        let acks = std::thread::scope(|s| {
            // The parser's input grows all along: one line per 5 ms, each a new address.
            let feeder = s.spawn(|| {
                let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
                let mut n = 0u32;
                while Instant::now() < deadline {
                    writeln!(f, "storm {}", stream_addr(n)).unwrap();
                    n += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                n
            });
            let banners: Vec<_> = (0..BANNERS)
                .map(|b| {
                    let ibd = &ibd;
                    let db = &db;
                    s.spawn(move || {
                        let mut acked: HashMap<String, u64> = HashMap::new();
                        let mut round = 0u32;
                        while Instant::now() < deadline {
                            let own = format!("10.{b}.{}.{}", round / 250, round % 250 + 1);
                            let out = Command::new(ibd)
                                .args([
                                    "ban",
                                    "--quiet",
                                    "-c",
                                    "31",
                                    "--config",
                                    "/dev/null",
                                    "--db-dir",
                                ])
                                .arg(db)
                                .args([HOT, &own])
                                .output()
                                .unwrap();
                            assert!(
                                out.status.success(),
                                "banner {b}: ibd ban failed: {}",
                                String::from_utf8_lossy(&out.stderr)
                            );
                            *acked.entry(HOT.to_string()).or_default() += 1;
                            *acked.entry(own).or_default() += 1;
                            round += 1;
                        }
                        acked
                    })
                })
                .collect();
            let mut all: HashMap<String, u64> = HashMap::new();
            for b in banners {
                for (k, v) in b.join().expect("banner thread") {
                    *all.entry(k).or_default() += v;
                }
            }
            (all, feeder.join().unwrap())
        });
        let (acked, fed) = acks;
        // Let the parser finish the lines already written, then stop both daemons cleanly.
        let store = open_any(&db, backend).unwrap();
        let last = stream_addr(fed - 1);
        let key: AddrKey = last.parse().unwrap();
        wait_until(
            || format!("{backend}: the parser did not reach {last}"),
            Duration::from_secs(60),
            || store.lookup(key).unwrap().is_some(),
        );
        let traffic = stream.finish();
        let queue = queue_counters(&ns, 0).expect("queue 0 bound");
        for p in [&mut parse_proc, &mut judge_proc] {
            p.stop(Duration::from_secs(20));
        }
        // Every packet judged, none lost in the kernel, every innocent one delivered, and every
        // drop counted in the database (the judge wrote its counters beside the storm).
        let jlog = judge_proc.log();
        let [packets, _, dropped, _, errors] = judge_counters(&jlog, 0).expect("judge counters");
        eprintln!(
            "{backend}: the judge judged {packets} packets, dropped {dropped}; arrival latency max {:?}, p99 {:?}",
            traffic.max_latency, traffic.p99_latency
        );
        assert_all_judged(&backend.to_string(), &queue, packets, errors, &traffic);
        assert_eq!(
            traffic.received_from(Link::INNOCENT),
            traffic.sent_from(Link::INNOCENT),
            "{backend}: innocent packets delivered"
        );
        assert_eq!(
            traffic.received_from(HOT) + dropped,
            traffic.sent_from(HOT),
            "{backend}: hot packets dropped or delivered"
        );
        assert!(dropped > 0, "{backend}: the hot address was never dropped");
        let rounds = acked[HOT];
        eprintln!("{backend}: {rounds} ibd ban runs by {BANNERS} processes and {fed} parsed lines in {SECS} s");
        for (addr, n) in &acked {
            let rec = store.lookup(addr.parse().unwrap()).unwrap();
            assert_eq!(
                rec.map(|r| r.caught),
                Some(*n),
                "{backend}: {addr} caught count"
            );
        }
        let hot = store
            .lookup(HOT.parse().unwrap())
            .unwrap()
            .expect("hot record");
        assert_eq!(hot.blocked, dropped, "{backend}: block counter of {HOT}");
        let parsed = store.find_reason("storm").unwrap().is_some();
        assert!(parsed, "{backend}: the parser banned nothing");
        let records = store.record_count().unwrap();
        assert_eq!(
            records,
            acked.len() as u64 + u64::from(fed),
            "{backend}: records"
        );
        // Each daemon said only what a healthy run says.
        // The parser logs each ban (2.x's `new|old record for` line) besides starting and stopping.
        only_lines(
            &parse_proc.log(),
            &["started", "stopped", " record for "],
            backend,
        );
        only_lines(
            &judge_proc.log(),
            &[
                "listening on",
                "queue 0: ",
                "receive errors: 0,",
                " 0 failed, 0 lookup errors",
                "batches dropped: 0 (0 blocks), write errors: 0, blocks waiting: 0",
                "stopped",
            ],
            backend,
        );
    }
}

fn only_lines(log: &str, expected: &[&str], backend: Engine) {
    for line in log.lines() {
        assert!(
            expected.iter().any(|e| line.contains(e)),
            "{backend}: unexpected log line {line:?} in:\n{log}"
        );
    }
}
