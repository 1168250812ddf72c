//! The crash loop: a parser following a growing log, the judge, and two banning workers run together
//! while a random one of them is killed with SIGKILL, again and again, and restarted. After every kill
//! the database must open at once and hold every acknowledged ban; at the end every log line must be
//! banned exactly once, and the LMDB file must not have grown without bound. This is what the original
//! needed READMEcrash.txt (manual clean-up) for.
//!
//! The judge judges real traffic all along (a paced stream through an NFQUEUE queue). Fail-closed,
//! the kernel drops what is queued while the judge is dead; every restarted judge must judge again.
//!
//! `IPQBDB_CRASH_KILLS` sets the kills per backend (default 50; more for a longer run).

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipqbdb_core::AddrKey;
use ipqbdb_store::{Engine, ReadStore};
use ipqbdb_tests::netns::Netns;
use ipqbdb_tests::root_test;
use ipqbdb_tests::traffic::{judge_counters, Link};
use ipqbdb_tests::{
    must_finish, open_any, parser_following, stream_addr, wait_until, workspace_bin, Lines, Proc,
};

const WORKER: &str = env!("CARGO_BIN_EXE_ipqbdb-store-worker");
/// How long a restarted daemon may take to say it runs: a hang detector, not a timing.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Packets per second through the judge's queue, from an innocent address.
const RATE: u32 = 500;
/// Packets a restarted judge must let through before the loop goes on.
const AFTER_RESTART: u64 = 50;

struct Programs {
    parse: PathBuf,
    judge: PathBuf,
}

fn start_parse(p: &Programs, db: &Path, rules: &Path, log_file: &Path, dir: &Path, n: u32) -> Proc {
    let mut cmd = parser_following(&p.parse, db, rules, log_file);
    let mut proc = Proc::spawn_logged("ibd-parse", &mut cmd, &dir.join(format!("parse-{n}.err")));
    proc.wait_log("started", START_LIMIT);
    proc
}

fn start_judge(p: &Programs, ns: &Netns, db: &Path, dir: &Path, n: u32) -> Proc {
    let mut cmd = ns.command(p.judge.to_str().unwrap());
    cmd.args(["-D", "--config", "/dev/null", "--db-dir"])
        .arg(db)
        .arg("Q0")
        .stdin(Stdio::null());
    let mut proc = Proc::spawn_logged("ibd-judge", &mut cmd, &dir.join(format!("judge-{n}.err")));
    proc.wait_log("listening on", START_LIMIT);
    proc
}

/// A banning worker: its acknowledged addresses are collected as it prints them.
fn start_worker(backend: Engine, db: &Path, octet: u8, acked: Arc<Mutex<Vec<String>>>) -> Proc {
    let mut cmd = Command::new(WORKER);
    cmd.arg(backend.name())
        .arg(db)
        .args(["ban-loop", "3600", &octet.to_string()])
        .stderr(Stdio::null());
    let mut proc = Proc::spawn_piped("ipqbdb-store-worker", &mut cmd);
    let lines = Lines::new(proc.child().stdout.take().unwrap());
    std::thread::spawn(move || {
        while let Some(line) = lines.next(Duration::from_secs(3600)) {
            if let Some(round) = line.strip_prefix("ACK ") {
                let i: u32 = round.parse().unwrap();
                let [_, b, c, d] = i.to_be_bytes();
                acked.lock().unwrap().push(format!("{octet}.{b}.{c}.{d}"));
            }
        }
    });
    proc
}

#[root_test("network namespaces, iptables, mounts")]
fn kill_anything_any_time() {
    let kills: u32 = std::env::var("IPQBDB_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let p = Programs {
        parse: workspace_bin("ipqbdb-parse", "ibd-parse"),
        judge: workspace_bin("ipqbdb-judge", "ibd-judge"),
    };
    for backend in Engine::compiled_local() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let db = dir.join("db");
        drop(open_any(&db, backend).unwrap());
        let rules = dir.join("rules.conf");
        std::fs::write(&rules, "/crash <HOST>/ * \"crash\" 31\n").unwrap();
        let log_file = dir.join("crash.log");
        std::fs::write(&log_file, "").unwrap();
        let ns = Netns::new("crash");
        let mut link = Link::new(&ns);
        let stream = link.stream(&[Link::INNOCENT], RATE, u64::from(RATE) * 3600);

        // The log grows all along, one line every 2 ms, each a new address.
        let stop = Arc::new(AtomicBool::new(false));
        let fed = Arc::new(Mutex::new(0u32));
        let feeder = {
            let (stop, fed, log_file) = (stop.clone(), fed.clone(), log_file.clone());
            std::thread::spawn(move || {
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&log_file)
                    .unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let mut n = fed.lock().unwrap();
                    writeln!(f, "crash {}", stream_addr(*n)).unwrap();
                    *n += 1;
                    drop(n);
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let acked = Arc::new(Mutex::new(Vec::new()));
        let mut parse = start_parse(&p, &db, &rules, &log_file, dir, 0);
        let mut judge = start_judge(&p, &ns, &db, dir, 0);
        let mut workers = [
            start_worker(backend, &db, 10, acked.clone()),
            start_worker(backend, &db, 11, acked.clone()),
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(kills);
        let mut lmdb_sizes = Vec::new();
        let mut judge_restarts = 0u32;
        for k in 1..=kills {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            match seed % 4 {
                0 => {
                    parse.sigkill();
                    parse = start_parse(&p, &db, &rules, &log_file, dir, k);
                }
                1 => {
                    judge.sigkill();
                    judge = start_judge(&p, &ns, &db, dir, k);
                    let before = stream.received();
                    wait_until(
                        || format!("{backend}, kill {k}: the restarted judge lets nothing through"),
                        START_LIMIT,
                        || stream.received() >= before + AFTER_RESTART,
                    );
                    judge_restarts += 1;
                }
                w => {
                    let w = (w - 2) as usize;
                    workers[w].sigkill();
                    workers[w] = start_worker(backend, &db, 10 + w as u8, acked.clone());
                }
            }
            // The database opens at once and holds every ban acknowledged so far.
            let snapshot: Vec<String> = acked.lock().unwrap().clone();
            let db2 = db.clone();
            let missing = must_finish("open after SIGKILL", Duration::from_secs(30), move || {
                let s = open_any(&db2, backend).unwrap();
                snapshot
                    .iter()
                    .filter(|a| s.lookup(a.parse::<AddrKey>().unwrap()).unwrap().is_none())
                    .cloned()
                    .collect::<Vec<_>>()
            });
            assert!(
                missing.is_empty(),
                "{backend}, kill {k}: acknowledged bans lost: {missing:?}"
            );
            if backend == Engine::Lmdb {
                lmdb_sizes.push(std::fs::metadata(db.join("lmdb/data.mdb")).unwrap().len());
            }
        }
        stop.store(true, Ordering::Relaxed);
        feeder.join().unwrap();
        for w in &mut workers {
            w.sigkill();
        }
        let total = *fed.lock().unwrap();
        // The parser, restarted many times, catches up: every line banned exactly once.
        let s = open_any(&db, backend).unwrap();
        let last = stream_addr(total - 1);
        let key: AddrKey = last.parse().unwrap();
        wait_until(
            || format!("{backend}: parser did not reach {last}"),
            Duration::from_secs(60),
            || s.lookup(key).unwrap().is_some(),
        );
        let mut wrong = Vec::new();
        for n in 0..total {
            let addr = stream_addr(n);
            let caught = s
                .lookup(addr.parse().unwrap())
                .unwrap()
                .map_or(0, |r| r.caught);
            if caught != 1 {
                wrong.push(format!("{addr}: {caught}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{backend}: lines not banned exactly once: {wrong:?}"
        );
        let acked_n = acked.lock().unwrap().iter().collect::<HashSet<_>>().len();
        eprintln!("{backend}: {kills} kills survived; {acked_n} acknowledged worker bans and {total} log lines all present");
        if let (Some(first), Some(last)) = (lmdb_sizes.first(), lmdb_sizes.last()) {
            let mid = lmdb_sizes[lmdb_sizes.len() / 2];
            eprintln!("lmdb: data.mdb {first} -> {mid} (half way) -> {last} bytes over the kills");
            assert!(*last < 64 << 20, "lmdb: data.mdb grew to {last} bytes");
        }
        // The last judge judged the stream to its end, sentinel included.
        let traffic = stream.finish();
        judge.stop(Duration::from_secs(20));
        let jlog = judge.log();
        let [packets, accepted, ..] = judge_counters(&jlog, 0).expect("judge counters");
        let sent = traffic.sent_from(Link::INNOCENT);
        let got = traffic.received_from(Link::INNOCENT);
        eprintln!(
            "{backend}: {judge_restarts} judge restarts; {got} of {sent} packets through, \
             {packets} judged by the last judge"
        );
        assert!(packets > 0 && accepted == packets, "{backend}: {jlog}");
        assert!(got <= sent);
        drop(parse);
    }
}
