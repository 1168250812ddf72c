//! Readers killed with SIGKILL leave their LMDB reader slots behind, pinning old pages, so every
//! later commit takes new pages and the file grows until some process clears the slots. Opening an
//! environment clears them, which hides the problem in tests that restart programs; the long-running
//! daemons must clear them themselves (`--maintenance-interval`). Here one daemon runs throughout,
//! with and without its housekeeping, while the readers around it are killed: the file must stay
//! far smaller with it. The parser writes the bans itself; beside the judge, a banning worker
//! (which opened the environment before the kills) writes them.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipqbdb_store::Engine;
use ipqbdb_tests::root_test;
use ipqbdb_tests::{open_any, parser_following, stream_addr, wait_until, workspace_bin, Proc};

const WORKER: &str = env!("CARGO_BIN_EXE_ipqbdb-store-worker");
const READERS: usize = 8;

/// Reading processes that open the environment before the kills, then die one every 250 ms.
struct Readers(Vec<Proc>);

impl Readers {
    fn start(db: &std::path::Path) -> Readers {
        Readers(
            (0..READERS)
                .map(|_| {
                    let mut cmd = Command::new(WORKER);
                    cmd.args(["lmdb"])
                        .arg(db)
                        .args(["read-loop", "600"])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    Proc::spawn("reader", &mut cmd)
                })
                .collect(),
        )
    }

    /// Kills the readers whose time has come, `start` being when the first may die.
    fn kill_due(&mut self, start: Instant) {
        let due = (start.elapsed().as_millis() / 250) as usize;
        while READERS - self.0.len() < due.min(READERS) {
            self.0.pop().unwrap().sigkill();
        }
    }

    fn all_killed(&self) -> bool {
        self.0.is_empty()
    }
}

/// Runs the scenario; returns data.mdb's size at the end.
fn run(maintenance: &str) -> u64 {
    let parse = workspace_bin("ipqbdb-parse", "ibd-parse");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    drop(open_any(&db, Engine::Lmdb).unwrap());
    let rules = tmp.path().join("rules.conf");
    std::fs::write(&rules, "/stale <HOST>/ * \"stale\" 5\n").unwrap();
    let log = tmp.path().join("stale.log");
    std::fs::write(&log, "").unwrap();
    let mut readers = Readers::start(&db);
    let mut cmd = parser_following(&parse, &db, &rules, &log);
    cmd.args(["--maintenance-interval", maintenance]);
    let mut parser = Proc::spawn_logged("ibd-parse", &mut cmd, &tmp.path().join("parse.err"));
    parser.wait_log("started", Duration::from_secs(20));

    // The log grows for 12 s, one new address per millisecond or so; the readers die one by one
    // during the first two seconds, each (most likely) inside a read transaction.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed() < Duration::from_secs(12) {
        for _ in 0..10 {
            writeln!(f, "stale {}", stream_addr(n)).unwrap();
            n += 1;
        }
        readers.kill_due(start);
        std::thread::sleep(Duration::from_millis(10));
    }
    // Opening the environment here would clear the slots (the parser's job): the parser's own
    // counters (SIGUSR1) tell when it has read every line.
    let done = format!("ibd-parse: {n} lines, ");
    wait_until(
        || format!("the parser did not reach line {n}: {}", parser.log()),
        Duration::from_secs(60),
        || {
            parser.signal(libc::SIGUSR1);
            std::thread::sleep(Duration::from_millis(50));
            parser.log().contains(&done)
        },
    );
    parser.stop(Duration::from_secs(20));
    std::fs::metadata(db.join("lmdb/data.mdb")).unwrap().len()
}

/// The judge beside a banning worker, both started before the readers are killed.
fn run_judge(maintenance: &str) -> u64 {
    let judge = workspace_bin("ipqbdb-judge", "ibd-judge");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    drop(open_any(&db, Engine::Lmdb).unwrap());
    let mut readers = Readers::start(&db);
    let ns = ipqbdb_tests::netns::Netns::new("stale");
    let mut cmd = ns.command(judge.to_str().unwrap());
    cmd.args(["-D", "--config", "/dev/null", "--db-dir"])
        .arg(&db)
        .args(["--maintenance-interval", maintenance, "Q0"])
        .stdin(Stdio::null());
    let mut judge = Proc::spawn_logged("ibd-judge", &mut cmd, &tmp.path().join("judge.err"));
    judge.wait_log("listening on", Duration::from_secs(20));
    let mut cmd = Command::new(WORKER);
    cmd.args(["lmdb"])
        .arg(&db)
        .args(["ban-loop", "12", "10"])
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    let writer = Proc::spawn_piped("banning worker", &mut cmd);
    let start = Instant::now();
    while !readers.all_killed() {
        readers.kill_due(start);
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = writer.output(Duration::from_secs(60));
    assert!(out.status.success(), "the banning worker failed");
    judge.stop(Duration::from_secs(20));
    std::fs::metadata(db.join("lmdb/data.mdb")).unwrap().len()
}

#[root_test("network namespaces, iptables, mounts")]
fn judge_housekeeping_keeps_lmdb_bounded_beside_killed_readers() {
    let without = run_judge("0");
    let with = run_judge("1s");
    eprintln!("lmdb data.mdb after 12 s of bans beside a judge and {READERS} killed readers: {without} bytes without its housekeeping, {with} with it every second");
    assert!(
        with * 2 < without,
        "the judge's housekeeping should keep the file far smaller: {with} with, {without} without"
    );
}

#[test]
fn housekeeping_keeps_lmdb_bounded_beside_killed_readers() {
    let without = run("0");
    let with = run("1s");
    eprintln!("lmdb data.mdb after 12 s with {READERS} killed readers: {without} bytes without housekeeping, {with} with it every second");
    assert!(
        with * 2 < without,
        "housekeeping should keep the file far smaller: {with} with, {without} without"
    );
}
