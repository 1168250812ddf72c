//! Metrics end to end: `ibd-judge` with real traffic through NFQUEUE and `ibd-parse` with real log
//! lines (a rename and a copytruncate rotation among them), scraped over real HTTP on loopback
//! and written to their textfiles; every page passes `promtool check metrics`, and every count is
//! the one sent. Then hostile clients (slow, oversized, many) against a running daemon's endpoint.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipqbdb_core::AddrKey;
use ipqbdb_store::{Ban, Engine, ReadStore, Store, WhiteEntry};
use ipqbdb_tests::netns::Netns;
use ipqbdb_tests::root_test;
use ipqbdb_tests::scrape::{
    get, logged_addr, must_value, promtool_check, request, scrape, try_request, value,
};
use ipqbdb_tests::traffic::{queue_counters, Link};
use ipqbdb_tests::{must_finish, open_any, parser_following, wait_until, workspace_bin, Proc};

const LIMIT: Duration = Duration::from_secs(20);
/// Banned at 100 % before the stream (with a half-life of 136 years): every packet of it is dropped.
const HOT: &str = Link::TEST_NET;
const RATE: u32 = 500;
const PACKETS: u64 = 1_000;

fn engine() -> Engine {
    Engine::default_for_new().expect("an engine is compiled in")
}

/// The address the daemon behind `proc` logged for its metrics.
fn metrics_addr(proc: &mut Proc) -> SocketAddr {
    proc.wait_log("metrics at http://", LIMIT);
    logged_addr(&proc.log()).expect("a logged metrics address")
}

fn file_page(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[root_test("network namespaces, iptables, mounts")]
fn judge_metrics_count_the_packets_sent() {
    let judge = workspace_bin("ipqbdb-judge", "ibd-judge");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let store = open_any(&db, engine()).unwrap();
    let hot = store
        .ban(
            &Ban {
                ip: HOT.parse().unwrap(),
                reason: "metrics",
                initial_count: 0,
                // 100 % is exact only within the second of the ban; with the longest half-life a
                // packet passes with probability about 2e-10 per second elapsed, so every one of
                // the stream's is dropped.
                decay: Some(u32::MAX),
            },
            ipqbdb_core::now(),
        )
        .unwrap()
        .key;
    let ns = Netns::new("metrics");
    let mut link = Link::new(&ns);
    let file = tmp.path().join("judge.prom");
    let mut j = ns.command(judge.to_str().unwrap());
    j.args(["--config", "/dev/null", "--db-dir"])
        .arg(&db)
        .args([
            "-D",
            "Q0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--metrics-file",
        ])
        .arg(&file);
    let mut judge_proc = Proc::spawn_logged("ibd-judge", &mut j, &tmp.path().join("judge.err"));
    let addr = metrics_addr(&mut judge_proc);
    // The judge listens on the loopback of its own namespace.
    let page = || ns.enter(|| scrape(addr));

    let before = page();
    promtool_check("the judge's page before traffic", &before);
    assert_eq!(
        must_value(
            &before,
            &format!(
                "ipqbdb_build_info{{engine=\"{}\",program=\"ibd-judge\",version=\"{}\"}}",
                engine().name(),
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
    for verdict in ["accept", "drop", "mark"] {
        let s = format!("ipqbdb_judge_packets_total{{queue=\"0\",verdict=\"{verdict}\"}}");
        assert_eq!(must_value(&before, &s), 0.0, "{s}");
    }
    let started = must_value(&before, "process_start_time_seconds");
    let now = ipqbdb_core::now() as f64;
    assert!(
        started <= now + 1.0 && started > now - 60.0,
        "start time {started}, now {now}"
    );

    let stream = link.stream(&[Link::INNOCENT, HOT], RATE, PACKETS);
    wait_until(|| "the stream sent".into(), LIMIT, || stream.sender_done());
    let report = stream.finish();
    assert_eq!(report.total_sent(), PACKETS);
    assert_eq!(report.received_from(HOT), 0, "100 % drops everything");
    assert_eq!(
        report.received_from(Link::INNOCENT),
        report.sent_from(Link::INNOCENT)
    );
    let q = queue_counters(&ns, 0).expect("queue 0 is bound");
    assert_eq!((q.queue_dropped, q.user_dropped), (0, 0), "{q:?}");

    // The sentinel came through, so every packet has its verdict and its count.
    let after = page();
    promtool_check("the judge's page after traffic", &after);
    let accepted = must_value(
        &after,
        "ipqbdb_judge_packets_total{queue=\"0\",verdict=\"accept\"}",
    );
    let dropped = must_value(
        &after,
        "ipqbdb_judge_packets_total{queue=\"0\",verdict=\"drop\"}",
    );
    // The innocent address's packets and the sentinel are accepted.
    assert_eq!(accepted as u64, report.sent_from(Link::INNOCENT) + 1);
    assert_eq!(dropped as u64, report.sent_from(HOT));
    for cause in ["lookup_error", "no_snapshot", "not_ip", "unknown_queue"] {
        let s = format!("ipqbdb_judge_unjudged_packets_total{{cause=\"{cause}\",queue=\"0\"}}");
        assert_eq!(must_value(&after, &s), 0.0, "{s}");
    }
    let hits = must_value(&after, "ipqbdb_judge_cache_lookups_total{result=\"hit\"}");
    let misses = must_value(&after, "ipqbdb_judge_cache_lookups_total{result=\"miss\"}");
    assert_eq!(hits + misses, accepted + dropped, "one lookup per packet");
    assert!(misses >= 3.0, "each address was read at least once");
    assert_eq!(must_value(&after, "ipqbdb_judge_receive_errors_total"), 0.0);
    assert_eq!(must_value(&after, "ipqbdb_judge_enobufs_total"), 0.0);
    assert!(must_value(&after, "ipqbdb_judge_snapshots_total") >= 1.0);
    let age = must_value(&after, "ipqbdb_judge_snapshot_age_seconds");
    assert!((0.0..5.0).contains(&age), "snapshot age {age}");
    // Every verdict send is counted with the packets it answered.
    wait_until(
        || format!("every verdict in a batch:\n{}", page()),
        LIMIT,
        || value(&page(), "ipqbdb_judge_verdict_batch_packets_sum") == Some(accepted + dropped),
    );

    // The block counters reach the database (handed over every second), and the write-back is
    // counted.
    wait_until(
        || format!("block counters written back:\n{}", page()),
        LIMIT,
        || store.lookup(hot).unwrap().unwrap().blocked == dropped as u64,
    );
    // The writer counts a write just after its commit.
    wait_until(
        || format!("the write-back counted:\n{}", page()),
        LIMIT,
        || {
            let p = page();
            value(&p, "ipqbdb_judge_writeback_batches_total").unwrap_or(0.0) >= 1.0
                && value(&p, "ipqbdb_judge_writeback_blocks_pending") == Some(0.0)
        },
    );
    let last = page();
    assert_eq!(
        must_value(&last, "ipqbdb_judge_writeback_failures_total"),
        0.0
    );
    assert_eq!(
        must_value(&last, "ipqbdb_judge_writeback_batches_dropped_total"),
        0.0
    );

    // The textfile holds the final counts once the judge stops.
    judge_proc.stop(LIMIT);
    let written = file_page(&file);
    promtool_check("the judge's metrics file", &written);
    assert_eq!(
        must_value(
            &written,
            "ipqbdb_judge_packets_total{queue=\"0\",verdict=\"drop\"}"
        ),
        dropped
    );
}

/// Lines for the parser: `ban ADDR` lines the rule catches, and others it does not.
fn append(log: &Path, lines: &[&str]) {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

const RULES: &str = "# metrics\n/^metrics-test ban <HOST>$/ * \"metrics test\" 1\n\
                     /^metrics-test odd (?P<IP>\\S+)$/ - \"metrics odd\"\n";
/// The rule's line in RULES, its label.
const RULE: &str = "rule=\"2\"";

fn bans(page: &str, outcome: &str) -> f64 {
    value(
        page,
        &format!("ipqbdb_parse_bans_total{{outcome=\"{outcome}\",reason=\"metrics test\",{RULE}}}"),
    )
    .unwrap_or(0.0)
}

/// What a test of the parser's metrics starts from: the program, a temporary directory, the place of
/// the database in it, the rule file holding [`RULES`] and the log `app.log` holding `lines`.
struct ParserFiles {
    parse: PathBuf,
    tmp: tempfile::TempDir,
    db: PathBuf,
    rules: PathBuf,
    log: PathBuf,
}

impl ParserFiles {
    /// The parser following the log (see [`parser_following`]).
    fn follow(&self) -> std::process::Command {
        parser_following(&self.parse, &self.db, &self.rules, &self.log)
    }

    fn new(lines: &[&str]) -> ParserFiles {
        let tmp = tempfile::tempdir().unwrap();
        let rules = tmp.path().join("rules.conf");
        std::fs::write(&rules, RULES).unwrap();
        let log = tmp.path().join("app.log");
        append(&log, lines);
        ParserFiles {
            parse: workspace_bin("ipqbdb-parse", "ibd-parse"),
            db: tmp.path().join("db"),
            tmp,
            rules,
            log,
        }
    }
}

#[test]
fn parser_metrics_count_the_lines_sent() {
    let f = ParserFiles::new(&[]);
    let store = open_any(&f.db, engine()).unwrap();
    store
        .white_set(&[WhiteEntry {
            range: "192.0.2.77".parse().unwrap(),
            decay: 0,
        }])
        .unwrap();
    // Two bans of one address (50 %, then 100 %), one of another, one whitelisted, three others.
    append(
        &f.log,
        &[
            "metrics-test ban 198.51.100.1",
            "nothing to see",
            "metrics-test ban 198.51.100.1",
            "metrics-test ban 198.51.100.2",
            "metrics-test ban 192.0.2.77",
            "metrics-test odd not-an-address",
            "still nothing",
        ],
    );
    let file = f.tmp.path().join("parse.prom");
    let mut p = f.follow();
    p.args(["--metrics-listen", "127.0.0.1:0", "--metrics-file"])
        .arg(&file);
    let mut parse_proc = Proc::spawn_logged("ibd-parse", &mut p, &f.tmp.path().join("parse.err"));
    let addr = metrics_addr(&mut parse_proc);
    let input = format!("input=\"{}\"", f.log.display());
    let lines = |page: &str| value(page, &format!("ipqbdb_parse_lines_total{{{input}}}"));

    wait_until(
        || format!("the first lines banned:\n{}", scrape(addr)),
        LIMIT,
        || bans(&scrape(addr), "whitelisted") == 1.0 && bans(&scrape(addr), "new") == 2.0,
    );
    let page = scrape(addr);
    promtool_check("the parser's page", &page);
    assert_eq!(lines(&page), Some(7.0));
    let matches = format!("ipqbdb_parse_matches_total{{reason=\"metrics test\",{RULE}}}");
    assert_eq!(must_value(&page, &matches), 4.0);
    assert_eq!(
        must_value(
            &page,
            "ipqbdb_parse_bad_addresses_total{reason=\"metrics odd\",rule=\"3\"}"
        ),
        1.0
    );
    assert_eq!(bans(&page, "raised"), 1.0);
    assert_eq!(
        must_value(
            &page,
            &format!("ipqbdb_parse_bans_reached_max_total{{reason=\"metrics test\",{RULE}}}")
        ),
        1.0
    );
    assert!(must_value(&page, "ipqbdb_parse_commit_duration_seconds_count") >= 1.0);
    assert_eq!(must_value(&page, "ipqbdb_parse_database_errors_total"), 0.0);
    assert_eq!(must_value(&page, "ipqbdb_parse_bans_waiting"), 0.0);
    assert_eq!(must_value(&page, "ipqbdb_parse_followed_files"), 1.0);
    assert_eq!(
        must_value(
            &page,
            &format!(
                "ipqbdb_build_info{{engine=\"{}\",program=\"ibd-parse\",version=\"{}\"}}",
                engine().name(),
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );

    // logrotate's default: renamed away, a new file in its place.
    let mut rotated = f.log.clone().into_os_string();
    rotated.push(".1");
    std::fs::rename(&f.log, &rotated).unwrap();
    append(&f.log, &["metrics-test ban 198.51.100.3"]);
    let rotations = |page: &str, kind: &str| {
        value(
            page,
            &format!("ipqbdb_parse_rotations_total{{{input},kind=\"{kind}\"}}"),
        )
    };
    wait_until(
        || format!("the renamed log's rotation counted:\n{}", scrape(addr)),
        LIMIT,
        || {
            let p = scrape(addr);
            rotations(&p, "rename") == Some(1.0) && bans(&p, "new") == 3.0
        },
    );
    assert_eq!(lines(&scrape(addr)), Some(8.0));

    // copytruncate: emptied in place and written again.
    std::fs::File::create(&f.log).unwrap();
    append(&f.log, &["metrics-test ban 198.51.100.44", "the end"]);
    wait_until(
        || format!("the truncated log's rotation counted:\n{}", scrape(addr)),
        LIMIT,
        || {
            let p = scrape(addr);
            rotations(&p, "truncate") == Some(1.0) && bans(&p, "new") == 4.0
        },
    );
    wait_until(
        || format!("every line counted:\n{}", scrape(addr)),
        LIMIT,
        || lines(&scrape(addr)) == Some(10.0),
    );
    let page = scrape(addr);
    promtool_check("the parser's page after rotations", &page);
    assert_eq!(must_value(&page, &matches), 6.0);

    parse_proc.stop(LIMIT);
    let written = file_page(&file);
    promtool_check("the parser's metrics file", &written);
    assert_eq!(lines(&written), Some(10.0));
    assert_eq!(bans(&written, "new"), 4.0);
}

/// A client that sends a request's first bytes and then one byte at a time, forever: it holds a
/// connection for as long as the server lets it. Returns when the server closes it.
fn slowloris(addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    std::thread::spawn(move || {
        while s.write_all(b"X").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

#[test]
fn hostile_clients_do_not_stop_the_scrapes() {
    let f = ParserFiles::new(&["metrics-test ban 198.51.100.1"]);
    let mut p = f.follow();
    p.args(["--metrics-listen", "127.0.0.1:0"]);
    let mut parse_proc = Proc::spawn_logged("ibd-parse", &mut p, &f.tmp.path().join("parse.err"));
    let addr = metrics_addr(&mut parse_proc);
    let input = format!("ipqbdb_parse_lines_total{{input=\"{}\"}}", f.log.display());

    // Only GET /metrics.
    assert_eq!(get(addr, "/").status, 404);
    assert_eq!(get(addr, "/metrics/../etc/passwd").status, 404);
    let post = request(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert!(post.head.contains("Allow: GET"), "{}", post.head);
    assert_eq!(request(addr, b"\x16\x03\x01 binary\r\n\r\n").status, 400);
    // An endless header: refused once it passes the limit, whatever follows.
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Junk: ".to_vec();
    huge.resize(64 * 1024, b'a');
    assert_eq!(request(addr, &huge).status, 431);

    // Slow clients holding connections: scrapes go on beside them, and the daemon parses on.
    let slow: Vec<_> = (0..8).map(|_| slowloris(addr)).collect();
    append(&f.log, &["metrics-test ban 198.51.100.2"]);
    wait_until(
        || {
            format!(
                "the new line counted beside slow clients:\n{}",
                scrape(addr)
            )
        },
        LIMIT,
        || {
            must_finish("a scrape beside slow clients", LIMIT, move || scrape(addr))
                .contains(&format!("{input} 2"))
        },
    );
    // The server cuts each off at its deadline, however it trickles.
    for s in slow {
        must_finish("the server closing a slow client", LIMIT, move || {
            s.join().unwrap()
        });
    }

    // More clients than the server serves at once: the extra ones are closed at once, the daemon
    // parses on, and scrapes answer again once the idle ones time out.
    let idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    append(&f.log, &["metrics-test ban 198.51.100.3"]);
    let store = open_any(&f.db, engine()).unwrap();
    let key: AddrKey = "198.51.100.3".parse().unwrap();
    wait_until(
        || "the parser bans while its endpoint is flooded".into(),
        LIMIT,
        || store.lookup(key).unwrap().is_some(),
    );
    wait_until(
        || "a scrape answering after the flood".into(),
        LIMIT,
        || {
            try_request(addr, b"GET /metrics HTTP/1.1\r\n\r\n")
                .is_ok_and(|a| a.status == 200 && a.body.contains(&format!("{input} 3")))
        },
    );
    drop(idle);
    parse_proc.stop(LIMIT);
}

/// The example dashboard's queries are valid PromQL (`promtool check rules` on them as recording
/// rules) and name only metrics the programs export.
#[test]
fn the_dashboard_queries_real_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("packaging/examples/grafana-ipqbdb.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["targets"].as_array())
        .flatten()
        .map(|t| t["expr"].as_str().expect("an expression").to_string())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    // Where the programs name what they export.
    let sources: String = [
        "ipqbdb-metrics/src/lib.rs",
        "ipqbdb-judge/src/metrics.rs",
        "ipqbdb-parse/src/metrics.rs",
        "ipqbdb-admin/src/stats.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(root.join(f)).unwrap())
    .collect();
    let mut rules = Vec::new();
    for (i, e) in exprs.iter().enumerate() {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !(word.starts_with("ipqbdb_") || word.starts_with("process_")) {
                continue;
            }
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            assert!(
                sources.contains(&format!("\"{name}\"")),
                "the dashboard queries {word}, which nothing exports: {e}"
            );
        }
        let promql = e
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        rules.push(serde_json::json!({"record": format!("ipqbdb:dashboard{i}"), "expr": promql}));
    }
    // JSON is YAML: promtool reads it as a rule file.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("dashboard-rules.yml");
    std::fs::write(
        &file,
        serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]}).to_string(),
    )
    .unwrap();
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("promtool: {e} (install the Debian package `prometheus`)"));
    assert!(
        out.status.success(),
        "promtool check rules refuses the dashboard's queries: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A metrics setting that cannot work stops the daemon at start with one line naming it.
#[test]
fn unusable_metrics_settings_are_refused_at_start() {
    let f = ParserFiles::new(&[]);
    let refused = |p: &mut std::process::Command, expected: &str| {
        p.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = Proc::spawn("ibd-parse", p).output(LIMIT);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.starts_with(expected) && err.lines().count() == 1,
            "expected {expected:?}, got {err:?}"
        );
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    refused(
        f.follow().args(["--metrics-listen", &taken_addr]),
        &format!("ibd-parse: metrics listen address {taken_addr}: "),
    );
    refused(
        f.follow()
            .args(["--metrics-file", "/nonexistent-dir/p.prom"]),
        "ibd-parse: metrics file /nonexistent-dir/p.prom: ",
    );
    let config = f.tmp.path().join("bad.toml");
    std::fs::write(&config, "[parse]\nmetrics-listen = \"localhost:9100\"\n").unwrap();
    refused(
        std::process::Command::new(&f.parse)
            .args(["-D", "--no-fifo", "--config"])
            .arg(&config)
            .arg("--db-dir")
            .arg(&f.db)
            .arg("--rule-file")
            .arg(&f.rules)
            .arg(&f.log),
        &format!(
            "ibd-parse: {}: metrics-listen must be ADDR:PORT",
            config.display()
        ),
    );
    drop(taken);
}
