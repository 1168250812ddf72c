//! `cargo xtask bench-judge [RECORDS] [PACKETS]` (root): `ibd-judge` and `ibd-xdp` under load, in
//! two network namespaces made here and removed at the end.
//!
//! The sender (`ipqbdb-udp-flood`) writes whole frames to its veth through a packet socket from 64
//! source addresses; on a veth pair the receiving stack runs on the sender's core, so the sender is
//! pinned to the first core and the receiver, the judge and the accept-all loops to the last (a
//! scheduler moving them onto the sender's core would make every figure a draw). Per engine, with a
//! database of RECORDS records (default 1,000,000):
//!
//! - accepting: packets/s received through one queue, best of `ROUNDS` interleaved rounds, one
//!   sender: an accept-all loop answering each packet (what `nfq` alone does), one answering each
//!   receive burst with one batch verdict, and `ibd-judge` with no source banned; the ratios
//!   judge/per-packet (goal >= 1.4) and judge/batch (>= 0.9);
//! - saturated: every source banned at 100 %, one sender per core, so the offered load exceeds what
//!   one queue takes: packets/s judged on one queue and on two (`--queue-balance 0:1`), from the
//!   judge's `/metrics`, beside the packets the kernel dropped because a queue or its socket was
//!   full (`/proc/net/netfilter/nfnetlink_queue`); goal: two queues > one;
//! - paced: 100,000 packets/s x 200,000: every packet arrives and is judged (the judge's
//!   `/metrics`), with no kernel queue drop, and the judge's longest pause between verdicts.
//!
//! Then the XDP path on the lmdb database, same sender: packets/s received with no filter and
//! through `ibd-xdp` with no source banned (goal >= 0.8 of no filter); packets/s dropped by
//! `ibd-xdp` with every source banned, saturated (counted by the program and written back as
//! blocked counts), against the one-queue judge's saturated figure (goal >= 3); the map's kernel
//! memory per 1,000,000 entries and one synchronisation's duration. Environment: `BACKENDS`
//! ("lmdb redb sqlite"), `ROUNDS` (3), `SENDER=udp` for UDP sockets instead of the packet socket.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipqbdb_tests::netns::Netns;
use ipqbdb_tests::traffic::QueueCounters;
use ipqbdb_tests::{scrape, Lines, Proc};

use crate::bench::{self, best, io, BenchError, Result};

const JUDGE_PORT: u16 = 9000;
const BALANCED_PORT: u16 = 9001;
const PACED_RATE: u64 = 100_000;
const PACED_COUNT: u64 = 200_000;
/// How long a daemon may take to start (a database of 1,000,000 records opened).
const START: Duration = Duration::from_secs(60);
/// A hang detector for one round of traffic, far above its length.
const ROUND_LIMIT: Duration = Duration::from_secs(120);

struct Bed {
    j: Netns,
    c: Netns,
    bin: PathBuf,
    tmp: tempfile::TempDir,
    sources: String,
    /// `ipqbdb-udp-flood` and its sender options.
    flood: Vec<String>,
    cores: usize,
    packets: u64,
    rounds: usize,
}

pub fn run(args: &[String]) -> Result<()> {
    let num = |s: &String| {
        s.parse::<u64>()
            .map_err(|_| BenchError::Usage(format!("bench-judge: {s:?} is not a number")))
    };
    let (records, packets) = match args {
        [] => (1_000_000, 500_000),
        [r] => (num(r)?, 500_000),
        [r, p] => (num(r)?, num(p)?),
        _ => {
            return Err(BenchError::Usage(
                "usage: cargo xtask bench-judge [RECORDS] [PACKETS]".into(),
            ))
        }
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BenchError::Missing(
            "bench-judge makes network namespaces: run it as root".into(),
        ));
    }
    for tool in ["ip", "iptables", "taskset", "bpftool"] {
        bench::on_path(tool, "install iproute2, iptables, util-linux and bpftool")?;
    }
    let rounds = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "lmdb redb sqlite".into());
    let bin = bench::build_release()?;
    let bed = Bed::new(bin, packets, rounds)?;
    let sender = std::env::var("SENDER").unwrap_or_else(|_| "raw".into());
    println!(
        "nproc {}; sender {sender}; best of {rounds} rounds; load before: {}",
        bed.cores,
        bench::load()
    );
    println!(
        "{:<7} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} | {:<26} {:<26} {:>5} | paced 100k pkt/s x 200k",
        "backend",
        "sent/s",
        "1-by-1/s",
        "batch/s",
        "judge/s",
        "j/1-by-1",
        "j/batch",
        "saturated 1 queue/s (full)",
        "2 queues/s (full)",
        "2q/1q"
    );
    let mut lmdb_saturated = None;
    for backend in backends.split_whitespace() {
        let db = bed.tmp.path().join(format!("db-{backend}"));
        bed.fill(&db, backend, records)?;
        let row = bed.engine(backend, &db)?;
        if backend == "lmdb" {
            lmdb_saturated = Some(row);
        }
    }
    bed.xdp(records, lmdb_saturated)?;
    println!("load after: {}", bench::load());
    Ok(())
}

/// Sums the judge's `ipqbdb_judge_packets_total` series of `queue` (every verdict).
fn judged(page: &str, queue: u16) -> f64 {
    ["accept", "drop", "mark"]
        .iter()
        .filter_map(|v| {
            scrape::value(
                page,
                &format!("ipqbdb_judge_packets_total{{queue=\"{queue}\",verdict=\"{v}\"}}"),
            )
        })
        .sum()
}

/// A running judge (or accept-all loop) in the judge's namespace.
struct Daemon {
    proc: Proc,
    metrics: Option<SocketAddr>,
}

impl Bed {
    fn new(bin: PathBuf, packets: u64, rounds: usize) -> Result<Bed> {
        let j = Netns::new("bj");
        let c = Netns::new("bc");
        let cores = bench::cores();
        let q = cores.to_string();
        // One receive queue per core, as a multi-queue NIC has: native XDP runs per queue, on the
        // core that sent the frame.
        bench::output(
            "ip link add",
            Command::new("ip").args([
                "link",
                "add",
                "vj",
                "netns",
                &j.name,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                "vc",
                "netns",
                &c.name,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
            ]),
        )?;
        j.ip(&["addr", "add", "10.88.0.1/24", "dev", "vj"]);
        let sources: Vec<String> = (2..=65).map(|i| format!("10.88.0.{i}")).collect();
        let batch: String = sources
            .iter()
            .map(|s| format!("addr add {s}/24 dev vc\n"))
            .collect();
        let batch_file = tempfile::NamedTempFile::new().map_err(io("temporary file"))?;
        std::fs::write(batch_file.path(), batch).map_err(io("ip batch file"))?;
        c.ip(&["-batch", batch_file.path().to_str().unwrap_or_default()]);
        j.ip(&["link", "set", "vj", "up"]);
        c.ip(&["link", "set", "vc", "up"]);
        j.queue_udp("iptables", JUDGE_PORT, 0);
        j.queue_port(
            "iptables",
            "filter",
            "udp",
            BALANCED_PORT,
            &["--queue-balance", "0:1"],
        );
        let mut flood = vec![bin.join("ipqbdb-udp-flood").display().to_string()];
        if std::env::var("SENDER").map_or(true, |s| s == "raw") {
            let link = j.must(&["ip", "-br", "link", "show", "vj"]);
            let mac = link
                .split_whitespace()
                .nth(2)
                .ok_or_else(|| BenchError::Output {
                    what: "the judge side's MAC address".into(),
                    output: link.clone(),
                })?;
            flood.extend(["--raw".into(), "vc".into(), mac.to_string()]);
        }
        Ok(Bed {
            j,
            c,
            bin,
            tmp: tempfile::tempdir().map_err(io("temporary directory"))?,
            sources: sources.join(","),
            flood,
            cores,
            packets,
            rounds,
        })
    }

    fn last_core(&self) -> String {
        (self.cores - 1).to_string()
    }

    fn fill(&self, db: &Path, backend: &str, records: u64) -> Result<()> {
        bench::output(
            "ipqbdb-fill-db",
            Command::new(self.bin.join("ipqbdb-fill-db"))
                .arg(db)
                .args([backend, &records.to_string()]),
        )
        .map(|_| ())
    }

    fn ibd(&self, db: &Path, args: &[&str]) -> Result<String> {
        let mut c = Command::new(self.bin.join("ibd"));
        c.args([args[0], "--config", "/dev/null", "--db-dir"])
            .arg(db)
            .args(&args[1..]);
        bench::output("ibd", &mut c)
    }

    fn ban_all(&self, db: &Path) -> Result<()> {
        let mut args = vec!["ban", "--quiet", "-c", "0", "-t", "30d"];
        args.extend(self.sources.split(','));
        self.ibd(db, &args).map(|_| ())
    }

    fn unban_all(&self, db: &Path) -> Result<()> {
        self.ibd(db, &["del", "--del", "10.88.0.0/24"]).map(|_| ())
    }

    /// `n` senders, one pinned per core, `count` packets in all to `port` (paced at `pps` when
    /// given); the packets sent and the slowest sender's seconds.
    fn send(&self, n: usize, count: u64, port: u16, pps: Option<u64>) -> Result<(u64, f64)> {
        let dst = format!("10.88.0.1:{port}");
        let mut children = Vec::new();
        for k in 0..n {
            let mut cmd = self.c.command("taskset");
            cmd.args(["-c", &(k % self.cores).to_string()])
                .args(&self.flood)
                .args([&self.sources, &dst, &(count / n as u64).to_string()]);
            if let Some(pps) = pps {
                cmd.arg(pps.to_string());
            }
            children.push(
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(io("ipqbdb-udp-flood"))?,
            );
        }
        let (mut sent, mut secs) = (0, 0.0f64);
        for child in children {
            let out = child.wait_with_output().map_err(io("ipqbdb-udp-flood"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            // "sent S in T s, R packets/s"
            let w: Vec<&str> = text.split_whitespace().collect();
            match (out.status.success(), w.get(1), w.get(3)) {
                (true, Some(s), Some(t)) => {
                    sent += s.parse::<u64>().unwrap_or(0);
                    secs = secs.max(t.parse().unwrap_or(0.0));
                }
                _ => {
                    return Err(BenchError::Output {
                        what: "ipqbdb-udp-flood".into(),
                        output: format!("{text}{}", String::from_utf8_lossy(&out.stderr)),
                    })
                }
            }
        }
        Ok((sent, secs))
    }

    /// A receiver in the judge's namespace and one sender; packets received and their rate.
    fn traffic(&self, count: u64, port: u16, pps: Option<u64>) -> Result<(u64, f64, f64)> {
        let mut rx = Proc::spawn_piped(
            "ipqbdb-udp-count",
            self.j
                .command("taskset")
                .args(["-c", &self.last_core()])
                .arg(self.bin.join("ipqbdb-udp-count"))
                .args([&format!("0.0.0.0:{port}"), &count.to_string(), "1000"]),
        );
        let lines = Lines::new(rx.child().stdout.take().expect("piped stdout"));
        if lines.next(START).as_deref() != Some("ready") {
            return Err(BenchError::Output {
                what: "ipqbdb-udp-count did not say ready".into(),
                output: String::new(),
            });
        }
        let (_, _secs) = self.send(1, count, port, pps)?;
        let sent_rate = count as f64 / _secs.max(1e-9);
        let line = lines.next(ROUND_LIMIT).unwrap_or_default();
        rx.wait(ROUND_LIMIT);
        // "received N rate R"
        let w: Vec<&str> = line.split_whitespace().collect();
        match (
            w.get(1).and_then(|n| n.parse().ok()),
            w.get(3).and_then(|r| r.parse().ok()),
        ) {
            (Some(n), Some(r)) => Ok((n, r, sent_rate)),
            _ => Err(BenchError::Output {
                what: "ipqbdb-udp-count".into(),
                output: line,
            }),
        }
    }

    /// Starts `argv` in the judge's namespace (pinned to the last core when `pin`), logging to a
    /// file, and waits for `ready` in its log.
    fn start(&self, name: &str, argv: &[String], pin: bool, ready: &str) -> Daemon {
        let mut cmd = if pin {
            let mut c = self.j.command("taskset");
            c.args(["-c", &self.last_core()]);
            c.args(argv);
            c
        } else {
            let mut c = self.j.command(&argv[0]);
            c.args(&argv[1..]);
            c
        };
        cmd.stdin(Stdio::null());
        let log = self.tmp.path().join(format!("{name}.log"));
        let _ = std::fs::remove_file(&log);
        let mut proc = Proc::spawn_logged(name, &mut cmd, &log);
        proc.wait_log(ready, START);
        let metrics = scrape::logged_addr(&proc.log());
        Daemon { proc, metrics }
    }

    fn judge(&self, db: &Path, queues: &[&str], pin: bool) -> Daemon {
        let mut argv = vec![
            self.bin.join("ibd-judge").display().to_string(),
            "-D".into(),
            "--config".into(),
            "/dev/null".into(),
            "--db-dir".into(),
            db.display().to_string(),
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
        ];
        argv.extend(queues.iter().map(|q| q.to_string()));
        let mut d = self.start("ibd-judge", &argv, pin, "listening on");
        // The metrics line may follow the queue's: wait for it too.
        d.proc.wait_log("metrics at http://", START);
        d.metrics = scrape::logged_addr(&d.proc.log());
        d
    }

    /// The judge's page, fetched inside its namespace (its loopback is the namespace's).
    fn page(&self, d: &Daemon) -> String {
        let addr = d.metrics.expect("the judge logged its metrics address");
        self.j.enter(|| scrape::scrape(addr))
    }

    /// Packets the kernel dropped from `queues` because a queue or its socket buffer was full.
    fn kernel_drops(&self, queues: &[u16]) -> u64 {
        let text = self.j.enter(|| {
            std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue")
                .unwrap_or_default()
        });
        queues
            .iter()
            .filter_map(|q| QueueCounters::read(&text, *q))
            .map(|c| c.queue_dropped + c.user_dropped)
            .sum()
    }

    fn accept_rate(&self, mode: &str) -> Result<(f64, f64)> {
        let argv = [
            self.bin.join("ipqbdb-nfq-accept-all").display().to_string(),
            "0".into(),
            mode.into(),
        ];
        let mut d = self.start("accept-all", &argv, true, "listening");
        let (_, rate, sent) = self.traffic(self.packets, JUDGE_PORT, None)?;
        d.proc.signal(libc::SIGTERM);
        d.proc.wait(ROUND_LIMIT);
        Ok((rate, sent))
    }

    fn judge_rate(&self, db: &Path) -> Result<f64> {
        let mut d = self.judge(db, &["Q0"], true);
        let (_, rate, _) = self.traffic(self.packets, JUDGE_PORT, None)?;
        d.proc.stop(ROUND_LIMIT);
        Ok(rate)
    }

    /// Every source banned, one sender per core: packets judged per second and kernel drops.
    fn saturated(&self, db: &Path, two: bool) -> Result<(f64, u64)> {
        let (queues, spec, port): (&[u16], &[&str], u16) = if two {
            (&[0, 1], &["Q0", "Q1"], BALANCED_PORT)
        } else {
            (&[0], &["Q0"], JUDGE_PORT)
        };
        let mut d = self.judge(db, spec, false);
        let count = |page: &str| queues.iter().map(|q| judged(page, *q)).sum::<f64>();
        let (j0, f0) = (count(&self.page(&d)), self.kernel_drops(queues));
        let (_, secs) = self.send(self.cores, self.packets, port, None)?;
        let (j1, f1) = (count(&self.page(&d)), self.kernel_drops(queues));
        d.proc.stop(ROUND_LIMIT);
        Ok(((j1 - j0) / secs, f1 - f0))
    }

    /// Paced traffic through one queue: nothing may be lost or pass unjudged.
    fn paced(&self, db: &Path) -> Result<String> {
        let mut d = self.judge(db, &["Q0"], false);
        let (received, _, _) = self.traffic(PACED_COUNT, JUDGE_PORT, Some(PACED_RATE))?;
        let judged = judged(&self.page(&d), 0) as u64;
        let drops = self.kernel_drops(&[0]);
        // The longest pause is in the judge's SIGUSR1 report only (no metric holds it).
        d.proc.signal(libc::SIGUSR1);
        d.proc.wait_log("longest pause", START);
        let pause =
            ipqbdb_tests::traffic::logged_number(&d.proc.log(), "longest pause between verdicts")
                .unwrap_or(0);
        d.proc.stop(ROUND_LIMIT);
        let ok = received == PACED_COUNT && judged == PACED_COUNT && drops == 0;
        Ok(format!(
            "received {received}, judged {judged}, queue drops {drops}, longest pause {pause} ms: {}",
            if ok { "ok" } else { "LOSS" }
        ))
    }

    /// One engine's row; returns its one-queue saturated figure.
    fn engine(&self, backend: &str, db: &Path) -> Result<f64> {
        let (mut singles, mut batches, mut judges, mut sents) = (vec![], vec![], vec![], vec![]);
        for _ in 0..self.rounds {
            let (single, sent) = self.accept_rate("per-packet")?;
            singles.push(single);
            sents.push(sent);
            batches.push(self.accept_rate("batch")?.0);
            judges.push(self.judge_rate(db)?);
        }
        let (single, batch, judge, sent) =
            (best(&singles), best(&batches), best(&judges), best(&sents));
        let paced = self.paced(db)?;
        self.ban_all(db)?;
        let (mut one, mut two) = (vec![], vec![]);
        for _ in 0..self.rounds {
            one.push(self.saturated(db, false)?);
            two.push(self.saturated(db, true)?);
        }
        self.unban_all(db)?;
        let top = |v: &[(f64, u64)]| {
            v.iter().copied().fold(
                (f64::NAN, 0),
                |a, b| if b.0 > a.0 || a.0.is_nan() { b } else { a },
            )
        };
        let ((sat1, full1), (sat2, full2)) = (top(&one), top(&two));
        println!(
            "{backend:<7} {sent:9.0} {single:9.0} {batch:9.0} {judge:9.0} {:7.2} {:7.2} | {:<26} {:<26} {:5.2} | {paced}",
            judge / single,
            judge / batch,
            format!("{sat1:.0} ({full1})"),
            format!("{sat2:.0} ({full2})"),
            sat2 / sat1
        );
        Ok(sat1)
    }

    /// The blocked counts of the sources, summed over their records (`ibd del --json`).
    fn blocked_sum(&self, db: &Path) -> Result<u64> {
        let out = self.ibd(db, &["del", "--json", "10.88.0.0/24"])?;
        Ok(out
            .match_indices("\"blocked\":")
            .filter_map(|(i, m)| {
                let digits: String = out[i + m.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse::<u64>().ok()
            })
            .sum())
    }

    fn xdp(&self, records: u64, judge_sat: Option<f64>) -> Result<()> {
        // No NFQUEUE rule from here on: "no filter" is the bare stack.
        self.j.must(&[
            "iptables",
            "-D",
            "INPUT",
            "-p",
            "udp",
            "--dport",
            &JUDGE_PORT.to_string(),
            "-j",
            "NFQUEUE",
            "--queue-num",
            "0",
        ]);
        let db = self.tmp.path().join("db-lmdb");
        if !db.exists() {
            self.fill(&db, "lmdb", records)?;
        }
        let judge_sat = match judge_sat {
            Some(s) => s,
            None => {
                self.j.queue_udp("iptables", BALANCED_PORT + 1, 0);
                self.ban_all(&db)?;
                let s = self.saturated_on(&db, BALANCED_PORT + 1)?;
                self.unban_all(&db)?;
                s
            }
        };
        let bpf = self.tmp.path().join("bpf");
        std::fs::create_dir_all(&bpf).map_err(io("bpf directory"))?;
        let _mount = BpfMount::new(&bpf)?;
        let mut nones = vec![];
        for _ in 0..self.rounds {
            nones.push(self.traffic(self.packets, JUDGE_PORT, None)?.1);
        }
        let none = best(&nones);
        println!();
        println!(
            "XDP, {} cores, {records} records in the database and the map, same sender:",
            self.cores
        );
        println!(
            "  {:<44} {none:10.0} pkt/s",
            "no filter, received (1 sender)"
        );
        println!(
            "  {:<44} {judge_sat:10.0} pkt/s",
            format!(
                "ibd-judge on lmdb, saturated, judged ({} senders)",
                self.cores
            )
        );
        for mode in ["native", "generic"] {
            let pins = bpf.join("vj");
            let argv = [
                self.bin.join("ibd-xdp").display().to_string(),
                "-D".into(),
                "-v".into(),
                "--config".into(),
                "/dev/null".into(),
                "--db-dir".into(),
                db.display().to_string(),
                "--pin-dir".into(),
                pins.display().to_string(),
                "--max-entries".into(),
                (records + 1000).to_string(),
                "--xdp-mode".into(),
                mode.into(),
                "--detach-on-exit".into(),
                "vj".into(),
            ];
            let mut d = self.start(&format!("ibd-xdp-{mode}"), &argv, false, "attached to");
            let mut passes = vec![];
            for _ in 0..self.rounds {
                passes.push(self.traffic(self.packets, JUDGE_PORT, None)?.1);
            }
            let pass = best(&passes);
            let map = bench::output(
                "bpftool",
                Command::new("bpftool")
                    .args(["-j", "map", "show", "pinned"])
                    .arg(pins.join("ipqbdb_block")),
            )?;
            let block_mem = serde_json::from_str::<serde_json::Value>(&map)
                .ok()
                .and_then(|v| v["bytes_memlock"].as_u64())
                .unwrap_or(0);
            // Every source banned at 100 %: the kernel counts the drops and ibd-xdp writes them back.
            self.ban_all(&db)?;
            d.proc.wait_log("written: 64,", START);
            let sync_ms = d
                .proc
                .log()
                .lines()
                .find(|l| l.contains("written: 64,"))
                .and_then(|l| l.rsplit(" in ").next().map(str::to_string))
                .unwrap_or_default();
            let mut drops: Vec<(f64, u64)> = vec![];
            for _ in 0..self.rounds {
                let before = self.blocked_sum(&db)?;
                let (_, secs) = self.send(self.cores, self.packets, JUDGE_PORT, None)?;
                let mut dropped = 0;
                // The counts reach the database at ibd-xdp's next write-back.
                for _ in 0..100 {
                    dropped = self.blocked_sum(&db)? - before;
                    if dropped >= self.packets {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                drops.push((dropped as f64 / secs, dropped));
            }
            let (drop, dropped) =
                drops
                    .iter()
                    .copied()
                    .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
            self.unban_all(&db)?;
            d.proc.stop(ROUND_LIMIT);
            println!(
                "  {:<44} {pass:10.0} pkt/s   xdp/none {:.3} (goal >= 0.8)",
                format!("ibd-xdp {mode}, none banned, received"),
                pass / none
            );
            println!(
                "  {:<44} {drop:10.0} pkt/s   xdp/judge {:.2} (goal >= 3); {dropped} of {} counted as blocked",
                format!("ibd-xdp {mode}, all banned, dropped ({} senders)", self.cores),
                drop / judge_sat,
                self.packets
            );
            println!(
                "  {:<44} {:10.0} MB per 1,000,000 entries (per-CPU counts: only sources that send)",
                "block map memory",
                block_mem as f64 / (records + 1000) as f64
            );
            println!(
                "  {:<44} {sync_ms:>10}",
                format!("one sync of {records} records")
            );
        }
        Ok(())
    }

    /// The one-queue saturated figure through `port` (when the lmdb row was not measured).
    fn saturated_on(&self, db: &Path, port: u16) -> Result<f64> {
        let mut d = self.judge(db, &["Q0"], false);
        let j0 = judged(&self.page(&d), 0);
        let (_, secs) = self.send(self.cores, self.packets, port, None)?;
        let j1 = judged(&self.page(&d), 0);
        d.proc.stop(ROUND_LIMIT);
        Ok((j1 - j0) / secs)
    }
}

/// A bpf filesystem mounted for ibd-xdp's pins, unmounted on drop.
struct BpfMount(PathBuf);

impl BpfMount {
    fn new(dir: &Path) -> Result<BpfMount> {
        bench::output(
            "mount -t bpf",
            Command::new("mount").args(["-t", "bpf", "bpf"]).arg(dir),
        )?;
        Ok(BpfMount(dir.to_path_buf()))
    }
}

impl Drop for BpfMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn judged_packets_sum_every_verdict_of_a_queue() {
        let page = "ipqbdb_judge_packets_total{queue=\"0\",verdict=\"accept\"} 5\n\
                    ipqbdb_judge_packets_total{queue=\"0\",verdict=\"drop\"} 7\n\
                    ipqbdb_judge_packets_total{queue=\"1\",verdict=\"drop\"} 100\n";
        assert_eq!(super::judged(page, 0), 12.0);
        assert_eq!(super::judged(page, 1), 100.0);
        assert_eq!(super::judged(page, 2), 0.0);
    }
}
