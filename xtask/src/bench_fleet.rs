//! `cargo xtask bench-fleet [HOSTS] [STORM_LINES] [RECORDS]` (root): a fleet on one PostgreSQL
//! server, at scale, and what it costs.
//!
//! HOSTS simulated hosts (default 32), each an `ibd-parse` following its own log and an `ibd-judge`
//! on a queue of its own, all on one private server this run starts (the tests' `PgServer`, on a
//! Unix socket). The judges run in one network namespace, where host 0's queue judges real UDP
//! traffic from a client namespace; the others bind queues no rule feeds, so their cost is their
//! view. Measured:
//!
//! - a ban storm: STORM_LINES attack lines (default 25,000, each a distinct address) appended at
//!   once to the logs of 4 hosts; durable bans per second until every parser's `/metrics` counts
//!   them all, the server's CPU over the storm (its processes' `/proc` times), and its connections
//!   (`pg_stat_activity`) idle and at the storm's peak;
//! - ban propagation: `ibd ban` on host 1 until host 0's judge drops the banned source's packets
//!   (probed every millisecond), p50/p99 from the ban's commit (`ibd` exited) and from its start,
//!   with the judges' default commit notices and a 1 s poll, then to one more judge (a host that
//!   only judges) with `postgres-notices = false` (polling only, every second);
//! - judge memory (resident) after the storm, mean and largest;
//! - one judge's memory with RECORDS records (default 1,000,000) serving 2 queues against 1 (one view
//!   per process: goal within 1.2x).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipqbdb_tests::netns::{self, Netns};
use ipqbdb_tests::postgres::PgServer;
use ipqbdb_tests::{parser_following, scrape, stream_addr, traffic, Proc};

use crate::bench::{self, io, quantile, BenchError, Result};

const STORM_HOSTS: usize = 4;
const PROBE_PORT: u16 = 7000;
/// Where probes for the polling-only judge go.
const POLL_PORT: u16 = 7001;
const DST_IP: &str = "10.66.0.1";
const INNOCENT: &str = "10.66.0.2";
const SAMPLES: usize = 80;
/// A daemon's start: a judge loads its view of the database first.
const START: Duration = Duration::from_secs(120);
/// A hang detector for the storm, far above its length at the default size.
const STORM_LIMIT: Duration = Duration::from_secs(600);
const PROPAGATION_LIMIT: Duration = Duration::from_secs(10);

struct Fleet {
    bin: PathBuf,
    tmp: tempfile::TempDir,
    conninfo: String,
}

pub fn run(args: &[String]) -> Result<()> {
    let num = |s: &String| {
        s.parse::<u64>()
            .map_err(|_| BenchError::Usage(format!("bench-fleet: {s:?} is not a number")))
    };
    let nums = args.iter().map(num).collect::<Result<Vec<u64>>>()?;
    if nums.len() > 3 {
        return Err(BenchError::Usage(
            "usage: cargo xtask bench-fleet [HOSTS] [STORM_LINES] [RECORDS]".into(),
        ));
    }
    let hosts = nums.first().copied().unwrap_or(32) as usize;
    let storm_lines = nums.get(1).copied().unwrap_or(25_000);
    let records = nums.get(2).copied().unwrap_or(1_000_000);
    if hosts < STORM_HOSTS.max(2) {
        return Err(BenchError::Usage(format!(
            "bench-fleet: at least {STORM_HOSTS} hosts"
        )));
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(BenchError::Missing(
            "bench-fleet runs the server as postgres and makes namespaces: run it as root".into(),
        ));
    }
    for tool in ["ip", "iptables", "runuser"] {
        bench::on_path(tool, "install iproute2, iptables and util-linux")?;
    }
    let bin = bench::build_release()?;
    let server = PgServer::start();
    let postmaster = postmaster_pid(&server)?;
    let dbname = server.new_database();
    let fleet = Fleet {
        bin,
        tmp: tempfile::tempdir().map_err(io("temporary directory"))?,
        conninfo: server.conninfo(&dbname),
    };
    println!(
        "{hosts} hosts (a parser and a judge each), one PostgreSQL server on a Unix socket, {} cores; load {}",
        bench::cores(),
        bench::load()
    );

    // The judges' namespace, and a client whose packets host 0's judge judges.
    let j = Netns::new("fleet");
    let client = Netns::new("fleetc");
    let sample_addrs: Vec<String> = (1..=SAMPLES).map(|k| format!("10.66.1.{k}")).collect();
    let mut client_addrs = vec![format!("{INNOCENT}/16")];
    client_addrs.extend(sample_addrs.iter().map(|a| format!("{a}/16")));
    let client_refs: Vec<&str> = client_addrs.iter().map(String::as_str).collect();
    netns::pair(&j, &["10.66.0.1/16"], &client, &client_refs);
    j.queue_udp("iptables", PROBE_PORT, 0);
    let rx = j.udp("0.0.0.0:7000");
    rx.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io("receive timeout"))?;

    // One more judge, of a host of its own that neither bans nor is counted above, with
    // `postgres-notices = false` (polling only): it judges the probes sent to POLL_PORT.
    j.queue_udp("iptables", POLL_PORT, hosts as u16);
    let poll_rx = j.udp(&format!("0.0.0.0:{POLL_PORT}"));
    poll_rx
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io("receive timeout"))?;
    let polling_only = fleet.tmp.path().join("polling-only.toml");
    std::fs::write(&polling_only, "postgres-notices = false\n")
        .map_err(io(polling_only.display().to_string()))?;

    let started = Instant::now();
    let mut poll_judge = fleet.judge_with(
        &j,
        &fleet.host_dir(hosts)?,
        hosts,
        &[hosts as u16],
        &polling_only,
    );
    let mut judges = Vec::new();
    let mut parsers = Vec::new();
    for h in 0..hosts {
        let dir = fleet.host_dir(h)?;
        judges.push(fleet.judge(&j, &dir, h, &[h as u16]));
        parsers.push(fleet.parser(&dir, h)?);
    }
    for (p, _) in &mut parsers {
        p.wait_log("metrics at http://", START);
    }
    let parser_metrics: Vec<SocketAddr> = parsers
        .iter()
        .map(|(p, _)| scrape::logged_addr(&p.log()).expect("the parser's metrics address"))
        .collect();
    for d in &mut judges {
        d.wait_log("listening on", START);
    }
    poll_judge.wait_log("listening on", START);
    println!(
        "fleet up in {:.1} s; connections idle: {}",
        started.elapsed().as_secs_f64(),
        connections(&server, &dbname)
    );

    // The storm: all its lines appended at once to the logs of the first STORM_HOSTS hosts.
    let cpu0 = bench::tree_cpu_secs(postmaster);
    let t0 = Instant::now();
    for (h, (_, log)) in parsers.iter().take(STORM_HOSTS).enumerate() {
        let first = (h as u64 * storm_lines) as u32;
        let lines: String = (0..storm_lines as u32)
            .map(|k| {
                format!(
                    "Nov 21 10:00:00 mail postfix/smtpd[{}]: warning: unknown[{}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n",
                    1000 + k % 30000,
                    stream_addr(first + k)
                )
            })
            .collect();
        std::fs::write(log, lines).map_err(io(log.display().to_string()))?;
    }
    let want = storm_lines * STORM_HOSTS as u64;
    let mut peak_connections = 0;
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let bans = loop {
        let bans: f64 = parser_metrics[..STORM_HOSTS]
            .iter()
            .map(|a| sum_series(&scrape::scrape(*a), "ipqbdb_parse_bans_total"))
            .sum();
        if bans as u64 >= want {
            break bans as u64;
        }
        if last_sample.elapsed() >= Duration::from_millis(250) {
            peak_connections = peak_connections.max(connections(&server, &dbname));
            last_sample = Instant::now();
        }
        if t0.elapsed() > STORM_LIMIT {
            return Err(BenchError::Output {
                what: format!("the storm did not end within {STORM_LIMIT:?}"),
                output: format!("{bans} of {want} bans"),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let storm_secs = t0.elapsed().as_secs_f64();
    let server_cpu = bench::tree_cpu_secs(postmaster) - cpu0;
    println!(
        "ban storm: {bans} bans ({storm_lines} lines on each of {STORM_HOSTS} hosts) in {storm_secs:.2} s: {:.0} durable bans/s",
        bans as f64 / storm_secs
    );
    println!(
        "server CPU during the storm: {server_cpu:.2} s, {:.0} % of one core; connections at its peak: {peak_connections}",
        100.0 * server_cpu / storm_secs
    );

    // Before host 0's judge restarts for the polling-only samples.
    let rss: Vec<u64> = judges.iter().map(|d| bench::rss_bytes(d.id())).collect();

    // Propagation: a ban on host 1 until host 0's judge drops the source (commit notices), then
    // until the polling judge does.
    let (half_a, half_b) = sample_addrs.split_at(SAMPLES / 2);
    let late = fleet.propagation(&client, &rx, half_a, "notices on, 1 s poll", Duration::ZERO)?;
    if !late.is_empty() {
        println!("host 0's judge log:\n{}", judges[0].log());
    }
    let late = fleet.propagation(
        &client,
        &poll_rx,
        half_b,
        "polling only, 1 s poll, bans at every phase of it",
        Duration::from_secs(1),
    )?;
    if !late.is_empty() {
        println!("the polling judge's log:\n{}", poll_judge.log());
    }
    drop(poll_judge);
    println!(
        "judge memory after the storm ({} records): mean {:.1} MB, largest {:.1} MB",
        want,
        rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1e6,
        *rss.iter().max().unwrap_or(&0) as f64 / 1e6
    );
    drop(judges);
    drop(parsers);

    // One view per judge process: its memory with RECORDS records, 1 queue against 2.
    let big = server.new_database();
    let big_conninfo = server.conninfo(&big);
    let big_dir = fleet.tmp.path().join("big");
    let t = Instant::now();
    bench::output(
        "ipqbdb-fill-db",
        Command::new(fleet.bin.join("ipqbdb-fill-db"))
            .arg(&big_dir)
            .args(["postgres", &records.to_string(), &big_conninfo]),
    )?;
    println!(
        "{records} records written in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let big_fleet = Fleet {
        bin: fleet.bin.clone(),
        tmp: tempfile::tempdir().map_err(io("temporary directory"))?,
        conninfo: big_conninfo,
    };
    let mut mem = Vec::new();
    for queues in [&[100u16][..], &[100, 101]] {
        let t = Instant::now();
        let mut d = big_fleet.judge(&j, &big_dir, 100, queues);
        d.wait_log("listening on", START);
        let loaded = t.elapsed().as_secs_f64();
        let rss = settled_rss(d.id());
        d.stop(Duration::from_secs(30));
        println!(
            "judge with {records} records, {} queue(s): {:.1} MB resident (started in {loaded:.1} s)",
            queues.len(),
            rss as f64 / 1e6
        );
        mem.push(rss as f64);
    }
    println!("2 queues / 1 queue: {:.3}x (goal <= 1.2)", mem[1] / mem[0]);
    println!("load after: {}", bench::load());
    Ok(())
}

impl Fleet {
    fn host_dir(&self, h: usize) -> Result<PathBuf> {
        let dir = self.tmp.path().join(format!("host-{h}"));
        std::fs::create_dir_all(&dir).map_err(io(dir.display().to_string()))?;
        Ok(dir)
    }

    fn db_args(&self, cmd: &mut Command, dir: &Path, config: &Path) {
        cmd.arg("--config")
            .arg(config)
            .args(["--backend", "postgres", "--db-dir"])
            .arg(dir)
            .args(["--postgres-url", &self.conninfo]);
    }

    /// Host `h`'s judge in namespace `j`, on `queues`, polling every second besides the notices.
    fn judge(&self, j: &Netns, dir: &Path, h: usize, queues: &[u16]) -> Proc {
        self.judge_with(j, dir, h, queues, Path::new("/dev/null"))
    }

    /// [`Fleet::judge`] with the configuration file `config`.
    fn judge_with(&self, j: &Netns, dir: &Path, h: usize, queues: &[u16], config: &Path) -> Proc {
        let mut cmd = j.command(self.bin.join("ibd-judge").to_str().unwrap_or_default());
        cmd.arg("-D");
        self.db_args(&mut cmd, dir, config);
        cmd.args(["--staleness-ms", "1000"])
            .args(queues.iter().map(|q| format!("Q{q}")))
            .stdin(Stdio::null());
        let log = self
            .tmp
            .path()
            .join(format!("judge-{h}-{}.log", queues.len()));
        Proc::spawn_logged(&format!("ibd-judge of host {h}"), &mut cmd, &log)
    }

    /// Host `h`'s parser following its (empty) log from the start; the parser and the log.
    fn parser(&self, dir: &Path, h: usize) -> Result<(Proc, PathBuf)> {
        let log = dir.join("mail.log");
        std::fs::write(&log, "").map_err(io(log.display().to_string()))?;
        let rules = bench::workspace_root().join("ipqbdb-parse/rules/ipqbdb-pcre.conf");
        let mut cmd = parser_following(&self.bin.join("ibd-parse"), dir, &rules, &log);
        cmd.args(["--backend", "postgres", "--postgres-url", &self.conninfo])
            .args(["--metrics-listen", "127.0.0.1:0"]);
        let plog = self.tmp.path().join(format!("parse-{h}.log"));
        Ok((
            Proc::spawn_logged(&format!("ibd-parse of host {h}"), &mut cmd, &plog),
            log,
        ))
    }

    /// Bans each of `addrs` with `ibd ban` on host 1 and probes host 0's judge every millisecond
    /// until it drops the source; prints p50/p99 from the commit and from the ban's start, and
    /// returns the bans not seen within `PROPAGATION_LIMIT` (printed too, not hidden in a
    /// percentile).
    fn propagation(
        &self,
        client: &Netns,
        rx: &std::net::UdpSocket,
        addrs: &[String],
        how: &str,
        spread: Duration,
    ) -> Result<Vec<String>> {
        let (mut from_commit, mut from_start, mut late) = (Vec::new(), Vec::new(), Vec::new());
        let host_a = self.tmp.path().join("host-1");
        for (i, addr) in addrs.iter().enumerate() {
            // Each ban starts right after the judge saw the last one: when it polls, in step with
            // its poll, so each would wait a whole interval. A pause spread evenly over `spread`
            // (the poll interval) puts the bans at every phase of it.
            let step = spread.as_millis() as u64 * ((i as u64 * 7) % 20) / 20;
            std::thread::sleep(Duration::from_millis(step));
            if !probe(client, rx, addr) {
                return Err(BenchError::Output {
                    what: format!("{addr} was dropped before its ban"),
                    output: String::new(),
                });
            }
            let start = Instant::now();
            self.ibd(&host_a, &["ban", "--quiet", "-c", "0", "-t", "1d", addr])?;
            let committed = Instant::now();
            let dropped = loop {
                if !probe(client, rx, addr) {
                    break true;
                }
                if committed.elapsed() > PROPAGATION_LIMIT {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(1));
            };
            if dropped {
                from_commit.push(committed.elapsed().as_secs_f64() * 1000.0);
                from_start.push(start.elapsed().as_secs_f64() * 1000.0);
            } else {
                late.push(addr.clone());
            }
        }
        from_commit.sort_by(f64::total_cmp);
        from_start.sort_by(f64::total_cmp);
        println!(
            "ban propagation, host 1's `ibd ban` to host 0's verdict ({} bans, {how}): from the commit p50 {:.1} ms, p99 {:.1} ms; from the ban's start p50 {:.1} ms, p99 {:.1} ms",
            addrs.len(),
            quantile(&from_commit, 0.5),
            quantile(&from_commit, 0.99),
            quantile(&from_start, 0.5),
            quantile(&from_start, 0.99)
        );
        if !late.is_empty() {
            println!(
                "NOT PROPAGATED within {PROPAGATION_LIMIT:?} ({how}): {} of {} bans ({})",
                late.len(),
                addrs.len(),
                late.join(" ")
            );
        }
        Ok(late)
    }

    fn ibd(&self, dir: &Path, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(self.bin.join("ibd"));
        cmd.arg(args[0]);
        self.db_args(&mut cmd, dir, Path::new("/dev/null"));
        cmd.args(&args[1..]);
        bench::output("ibd", &mut cmd)
    }
}

/// Whether one packet from `src` passes host 0's judge (a burst of one, closed by a sentinel).
fn probe(client: &Netns, rx: &std::net::UdpSocket, src: &str) -> bool {
    let port = rx.local_addr().map(|a| a.port()).unwrap_or(PROBE_PORT);
    let dst = SocketAddr::new(DST_IP.parse().expect("constant address"), port);
    traffic::burst(client, rx, src, dst, 1, INNOCENT, dst) == 1
}

/// The sum of every series of metric `name` on a page.
fn sum_series(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Client connections to `dbname` now.
fn connections(server: &PgServer, dbname: &str) -> u64 {
    server
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{dbname}'"),
        )
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The server's main process, from its data directory's `postmaster.pid`.
fn postmaster_pid(server: &PgServer) -> Result<u32> {
    let path = server.data_dir().join("postmaster.pid");
    let text = std::fs::read_to_string(&path).map_err(io(path.display().to_string()))?;
    text.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| BenchError::Output {
            what: path.display().to_string(),
            output: text.clone(),
        })
}

/// Resident memory of `pid` once it stops growing (two readings 500 ms apart within 1 %), or the
/// last reading after 30 s: a view is filled before the judge listens, but its allocator may
/// still be settling.
fn settled_rss(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = bench::rss_bytes(pid);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = bench::rss_bytes(pid);
        if now.abs_diff(last) * 100 <= last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn series_of_a_metric_are_summed_and_others_left_out() {
        let page = "# HELP ipqbdb_parse_bans_total Bans\n\
                    ipqbdb_parse_bans_total{outcome=\"new\",rule=\"1\"} 10\n\
                    ipqbdb_parse_bans_total{outcome=\"again\",rule=\"1\"} 2\n\
                    ipqbdb_parse_bans_total_other 100\n\
                    ipqbdb_parse_bans_waiting 5\n";
        assert_eq!(super::sum_series(page, "ipqbdb_parse_bans_total"), 12.0);
    }
}
