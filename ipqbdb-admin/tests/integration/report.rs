//! `ibd report` against a scripted HTTP server on loopback (`ipqbdb_tests::http_server`): the exact
//! requests, exclusions, dry run, cooldown, quota, backoff with Retry-After, timeouts, an
//! unreachable endpoint, and SIGKILL in the middle of a report.
//!
//! The reported addresses are only data sent to the test server; public-looking ones are used
//! where a report must go out, special-purpose ones where it must not.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ipqbdb_core::report::ReportKind;
use ipqbdb_core::{now, UnixTime};
use ipqbdb_store::{AnyStore, Ban, Engine, OpenOptions, ReadStore, Store, WhiteEntry};
use ipqbdb_tests::http_server::{Reply, Request, ScriptedServer};
use ipqbdb_tests::{ip, wait_until, Proc};

const IBD: &str = env!("CARGO_BIN_EXE_ibd");
const KEY: &str = "test-key-0123456789abcdef";
const PATH: &str = "/api/v2/report";

struct Fixture {
    tmp: tempfile::TempDir,
    server: ScriptedServer,
    backend: Engine,
}

impl Fixture {
    /// A database, a key file, and a configuration whose `[report]` section points at a new
    /// server answering `script`, then `default`; `extra` is added to that section.
    fn new(backend: Engine, extra: &str, script: Vec<Reply>, default: Reply) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let server = ScriptedServer::start(script, default);
        let key = tmp.path().join("key");
        std::fs::write(&key, format!("{KEY}\n")).unwrap();
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let f = Fixture {
            tmp,
            server,
            backend,
        };
        f.write_config("ipqbdb.toml", &f.server.url(PATH), extra);
        f
    }

    /// On LMDB, with a server that accepts every report.
    fn answering_ok(extra: &str) -> Fixture {
        Fixture::new(Engine::Lmdb, extra, vec![], Reply::ok())
    }

    fn write_config(&self, name: &str, url: &str, extra: &str) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(
            &path,
            format!(
                "db-dir = {:?}\nbackend = \"{}\"\n[report]\nreport-url = {url:?}\n\
                 report-key-file = {:?}\n{extra}\n",
                self.db(),
                self.backend.name(),
                self.tmp.path().join("key"),
            ),
        )
        .unwrap();
        path
    }

    fn db(&self) -> PathBuf {
        self.tmp.path().join("db")
    }

    fn config(&self) -> PathBuf {
        self.tmp.path().join("ipqbdb.toml")
    }

    fn cmd(&self, config: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(IBD);
        cmd.arg("report")
            .args(args)
            .arg("--config")
            .arg(config)
            .env_remove("IPQBDB_CONFIG");
        cmd
    }

    fn report(&self, args: &[&str]) -> Output {
        self.report_with(&self.config(), args)
    }

    fn report_with(&self, config: &Path, args: &[&str]) -> Output {
        self.cmd(config, args).output().unwrap()
    }

    /// Starts `ibd report --follow`, its output appended to `follow.log`.
    fn follow(&self, name: &str) -> Proc {
        let log = self.tmp.path().join("follow.log");
        Proc::spawn_logged(name, &mut self.cmd(&self.config(), &["--follow"]), &log)
    }

    fn store(&self) -> AnyStore {
        AnyStore::open(
            &self.db(),
            &OpenOptions {
                backend: Some(self.backend),
                ..OpenOptions::default()
            },
        )
        .unwrap()
    }

    /// Bans `addr` at `at` for `reason`, which gets `category` (0: none).
    fn ban_at(&self, addr: &str, reason: &str, category: u8, count: u8, at: UnixTime) {
        let s = self.store();
        let r = s
            .ban(
                &Ban {
                    ip: ip(addr),
                    reason,
                    initial_count: count,
                    decay: None,
                },
                at,
            )
            .unwrap();
        s.set_category(r.reason, category).unwrap();
    }

    fn ban(&self, addr: &str, reason: &str, category: u8) {
        self.ban_at(addr, reason, category, 5, now());
    }

    fn state(&self, addr: &str) -> Option<ReportKind> {
        let key = addr.parse().unwrap();
        self.store()
            .report_states()
            .unwrap()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, s)| s.kind)
    }

    fn reported_ips(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .map(|r| r.field("ip").unwrap_or_default())
            .collect()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_exit(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}stderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

fn assert_report_request(r: &Request, addr: &str, category: &str, comment: &str) {
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, PATH);
    assert_eq!(r.header("key"), Some(KEY));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let want: Vec<(String, String)> =
        [("ip", addr), ("categories", category), ("comment", comment)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    assert_eq!(r.form(), want);
}

const SSH: &str = "sshd: failed password";
const SSH_COMMENT: &str = "sshd: failed password (caught 1 times; ipqbdb)";

#[test]
fn one_shot_sends_exact_requests_and_never_the_excluded() {
    let f = Fixture::answering_ok("report-min-probability = 3");
    let t = now();
    f.ban("45.33.32.156", SSH, 18);
    // Never reported: special-purpose addresses, a whitelisted one, an IPv6 network (the database
    // bans /64s), a reason without category, a ban below the threshold, a ban older than an hour.
    for special in [
        "192.0.2.5",
        "10.1.2.3",
        "100.64.1.1",
        "127.0.0.2",
        "169.254.1.1",
    ] {
        f.ban(special, SSH, 18);
    }
    f.store()
        .white_set(&[WhiteEntry {
            range: "80.80.80.0/24".parse().unwrap(),
            decay: 60,
        }])
        .unwrap();
    f.ban("80.80.80.80", SSH, 18);
    f.ban("2a01:4f8:10:20::1", SSH, 18);
    f.ban("81.2.69.1", "web: no category", 0);
    f.ban_at("45.33.32.157", "probe", 14, 6, t); // 1.5625 % < 3 %
    f.ban_at("91.198.174.192", SSH, 18, 5, t - 7200);

    let out = f.report(&[]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "45.33.32.156: reported, category 18 (200)\n");
    assert_eq!(stderr(&out), "");
    let reqs = f.server.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_report_request(&reqs[0], "45.33.32.156", "18", SSH_COMMENT);
    assert_eq!(f.state("45.33.32.156"), Some(ReportKind::Accepted));

    // Nothing new: nothing sent again. (A key every user can read is worth a warning.)
    let key = f.tmp.path().join("key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = f.report(&[]);
    assert_exit(&out, 0);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("the API key is readable by every user (mode 644)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.server.requests().len(), 1);

    let out = f.report(&["--status"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(text.starts_with("reports today (UTC): 1\n"), "{text}");
    assert!(text.contains("\n45.33.32.156 accepted 200 ban "), "{text}");
    assert_eq!(text.lines().count(), 2, "{text}");
}

#[test]
fn dry_run_prints_the_request_and_changes_nothing() {
    let f = Fixture::answering_ok("");
    std::fs::remove_file(f.tmp.path().join("key")).unwrap();
    f.ban("45.33.32.156", SSH, 18);
    f.ban("192.168.1.1", SSH, 18);
    let out = f.report(&["--dry-run"]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        format!(
            "POST {} ip=45.33.32.156&categories=18&comment=sshd%3A+failed+password+%28caught+1+times%3B+ipqbdb%29\n",
            f.server.url(PATH)
        )
    );
    assert!(f.server.requests().is_empty());
    assert!(f.store().report_states().unwrap().is_empty());
    // Without --dry-run the key is needed, and its absence is one line naming the file.
    let out = f.report(&[]);
    assert_exit(&out, 1);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("ibd report: ") && err.contains("/key: No such file"),
        "{err}"
    );
    assert!(f.server.requests().is_empty());
}

#[test]
fn daily_quota_stops_and_holds() {
    let f = Fixture::answering_ok("report-daily-quota = 2");
    let t = now();
    for (i, a) in ["45.33.32.1", "45.33.32.2", "45.33.32.3"]
        .iter()
        .enumerate()
    {
        f.ban_at(a, SSH, 18, 5, t - 10 + i as i64);
    }
    let out = f.report(&[]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("daily quota reached (2 reports)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.reported_ips(), ["45.33.32.1", "45.33.32.2"]);
    let out = f.report(&[]);
    assert_exit(&out, 0);
    assert_eq!(f.reported_ips().len(), 2, "the quota holds across runs");
    assert_eq!(f.state("45.33.32.3"), None);
    let out = f.report(&["--status"]);
    assert!(stdout(&out).starts_with("reports today (UTC): 2\n"));
}

#[test]
fn one_report_per_address_per_cooldown() {
    let f = Fixture::answering_ok("report-cooldown = \"3s\"");
    let first = now();
    f.ban("45.33.32.156", SSH, 18);
    assert_exit(&f.report(&[]), 0);
    assert_eq!(f.reported_ips().len(), 1);
    // A new ban, in a later second than the reported one, waits for the cooldown.
    wait_until(
        || "the next second".into(),
        Duration::from_secs(3),
        || now() > first,
    );
    f.ban("45.33.32.156", SSH, 18);
    assert_exit(&f.report(&[]), 0);
    assert_eq!(
        f.reported_ips().len(),
        1,
        "reported again within the cooldown"
    );
    let attempt = f.store().report_states().unwrap()[0].1.at;
    wait_until(
        || "the end of the cooldown".into(),
        Duration::from_secs(10),
        || now() >= attempt + 3,
    );
    assert_exit(&f.report(&[]), 0);
    let reqs = f.server.requests();
    assert_eq!(reqs.len(), 2);
    assert_report_request(
        &reqs[1],
        "45.33.32.156",
        "18",
        "sshd: failed password (caught 2 times; ipqbdb)",
    );
}

#[test]
fn follow_backs_off_on_429_and_5xx_honouring_retry_after() {
    let f = Fixture::new(
        Engine::Lmdb,
        "report-interval = \"1s\"",
        vec![
            Reply::status(429, &[("Retry-After", "3")], "{\"errors\":[]}"),
            Reply::status(503, &[], ""),
        ],
        Reply::ok(),
    );
    f.ban("45.33.32.156", SSH, 18);
    let mut p = f.follow("ibd report --follow");
    wait_until(
        || format!("three requests, got {:?}", f.reported_ips()),
        Duration::from_secs(30),
        || f.server.requests().len() >= 3,
    );
    wait_until(
        || "the report recorded as accepted".into(),
        Duration::from_secs(10),
        || f.state("45.33.32.156") == Some(ReportKind::Accepted),
    );
    p.stop(Duration::from_secs(10));
    let reqs = f.server.requests();
    assert_eq!(reqs.len(), 3, "{reqs:?}");
    for r in &reqs {
        assert_report_request(r, "45.33.32.156", "18", SSH_COMMENT);
    }
    let gap1 = reqs[1].at - reqs[0].at;
    let gap2 = reqs[2].at - reqs[1].at;
    assert!(
        gap1 >= Duration::from_secs(3),
        "Retry-After 3 honoured: {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_secs(2),
        "second backoff doubles to 2 s: {gap2:?}"
    );
    let text = p.log();
    assert!(
        text.contains("45.33.32.156: not taken (429, Retry-After 3s), next try in 3s"),
        "{text}"
    );
    assert!(
        text.contains("45.33.32.156: not taken (503), next try in 2s"),
        "{text}"
    );
    assert!(
        text.contains("stopping: 1 reported, 0 refused, 0 in doubt"),
        "{text}"
    );
}

#[test]
fn refused_timed_out_and_unreachable() {
    let f = Fixture::new(
        Engine::Lmdb,
        "report-timeout = 1",
        vec![
            Reply::Stall(Duration::from_secs(8)),
            Reply::status(422, &[], "{\"errors\":[{\"detail\":\"bad ip\"}]}"),
        ],
        Reply::ok(),
    );
    let t = now();
    f.ban_at("45.33.32.1", SSH, 18, 5, t - 3);
    f.ban_at("45.33.32.2", SSH, 18, 5, t - 2);
    f.ban_at("45.33.32.3", SSH, 18, 5, t - 1);
    // The first request gets no answer within the timeout: it may have arrived, so it is recorded
    // in doubt and never sent again; the run stops (exit 1) to back off.
    let out = f.report(&[]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("45.33.32.1: no answer ("),
        "{}",
        stdout(&out)
    );
    assert_eq!(f.state("45.33.32.1"), Some(ReportKind::InDoubt));
    // A 4xx is final; the next address goes on.
    let out = f.report(&[]);
    assert_exit(&out, 1);
    assert_eq!(
        stdout(&out),
        "45.33.32.2: refused by the server (422): {\"errors\":[{\"detail\":\"bad ip\"}]}\n\
         45.33.32.3: reported, category 18 (200)\n"
    );
    assert_eq!(f.state("45.33.32.2"), Some(ReportKind::Refused));
    assert_exit(&f.report(&[]), 0);
    assert_eq!(f.reported_ips(), ["45.33.32.1", "45.33.32.2", "45.33.32.3"]);

    // An endpoint nobody listens on: nothing left, so the address stays due.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{PATH}", closed.local_addr().unwrap());
    drop(closed);
    let down = f.write_config("down.toml", &url, "");
    f.ban("45.33.32.4", SSH, 18);
    let out = f.report_with(&down, &[]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("45.33.32.4: not sent ("),
        "{}",
        stdout(&out)
    );
    assert_eq!(f.state("45.33.32.4"), None);
    assert_exit(&f.report(&[]), 0);
    assert_eq!(
        f.reported_ips().last().map(String::as_str),
        Some("45.33.32.4")
    );
    assert_eq!(f.reported_ips().len(), 4);
}

#[test]
fn a_wrong_key_or_url_burns_no_report() {
    let f = Fixture::new(
        Engine::Lmdb,
        "",
        vec![
            Reply::status(
                401,
                &[],
                "{\"errors\":[{\"detail\":\"Authentication failed\"}]}",
            ),
            Reply::status(301, &[("Location", "https://example.invalid/")], ""),
        ],
        Reply::ok(),
    );
    f.ban("45.33.32.156", SSH, 18);
    for want in [
        "(401): {\"errors\"",
        "(301): redirected to \"https://example.invalid/\"",
    ] {
        let out = f.report(&[]);
        assert_exit(&out, 1);
        assert!(stdout(&out).contains(want), "{}", stdout(&out));
        assert_eq!(f.state("45.33.32.156"), None, "still due");
    }
    assert_exit(&f.report(&[]), 0);
    assert_eq!(f.state("45.33.32.156"), Some(ReportKind::Accepted));
    assert_eq!(f.reported_ips().len(), 3);
}

/// SIGKILL while a request waits for its answer, then a restart: the request in flight is not
/// sent again (it shows as `sent`), every other due report goes out exactly once.
fn crash_mid_report(backend: Engine) {
    let f = Fixture::new(
        backend,
        "report-interval = \"1s\"",
        vec![Reply::Stall(Duration::from_secs(60))],
        Reply::ok(),
    );
    let t = now();
    f.ban_at("45.33.32.1", SSH, 18, 5, t - 3);
    f.ban_at("45.33.32.2", SSH, 18, 5, t - 2);
    f.ban_at("45.33.32.3", SSH, 18, 5, t - 1);
    let mut p = f.follow("ibd report --follow");
    wait_until(
        || "the first request at the server".into(),
        Duration::from_secs(20),
        || !f.server.requests().is_empty(),
    );
    p.sigkill();
    assert_eq!(f.reported_ips(), ["45.33.32.1"]);
    assert_eq!(f.state("45.33.32.1"), Some(ReportKind::Sent));
    assert_eq!(f.state("45.33.32.2"), None);

    let mut p = f.follow("ibd report --follow (restarted)");
    wait_until(
        || format!("the other two reported, got {:?}", f.reported_ips()),
        Duration::from_secs(20),
        || {
            f.state("45.33.32.2") == Some(ReportKind::Accepted)
                && f.state("45.33.32.3") == Some(ReportKind::Accepted)
        },
    );
    // One more ban, and its report: the pass that sent it saw the others again and left them.
    f.ban("45.33.32.4", SSH, 18);
    wait_until(
        || format!("the new ban reported, got {:?}", f.reported_ips()),
        Duration::from_secs(20),
        || f.state("45.33.32.4") == Some(ReportKind::Accepted),
    );
    p.stop(Duration::from_secs(10));
    assert_eq!(
        f.reported_ips(),
        ["45.33.32.1", "45.33.32.2", "45.33.32.3", "45.33.32.4"],
        "each once, in ban order"
    );
    assert_eq!(f.state("45.33.32.1"), Some(ReportKind::Sent));
    let text = p.log();
    assert!(
        text.contains("1 reports were being sent when a reporter stopped"),
        "{text}"
    );
    let out = f.report(&["--status"]);
    assert!(
        stdout(&out).contains("\n45.33.32.1 sent 0 ban "),
        "{}",
        stdout(&out)
    );
}

#[cfg(feature = "lmdb")]
#[test]
fn crash_mid_report_lmdb() {
    crash_mid_report(Engine::Lmdb);
}

#[cfg(feature = "sqlite")]
#[test]
fn crash_mid_report_sqlite() {
    crash_mid_report(Engine::Sqlite);
}

#[cfg(feature = "redb")]
#[test]
fn crash_mid_report_redb() {
    crash_mid_report(Engine::Redb);
}

#[test]
fn ban_log_category_appends_the_category() {
    let f = Fixture::answering_ok("");
    let ban = |extra: &[&str]| {
        let out = Command::new(IBD)
            .args(["ban", "--config"])
            .arg(f.config())
            .args(["-r", SSH, "45.33.32.156"])
            .args(extra)
            .env_remove("IPQBDB_CONFIG")
            .output()
            .unwrap();
        assert_exit(&out, 0);
        stdout(&out)
    };
    assert_eq!(
        ban(&["--log-category"]),
        "45.33.32.156: new, 3.125%, decay 1h, category 0\n"
    );
    let out = Command::new(IBD)
        .args(["category", "--config"])
        .arg(f.config())
        .args([SSH, "18"])
        .output()
        .unwrap();
    assert_exit(&out, 0);
    assert!(ban(&["--log-category"]).ends_with(", caught 2 times, category 18\n"));
    assert!(!ban(&[]).contains("category"));
}

/// A reporter sends nothing for an address whitelisted or deleted while its pass runs: the
/// endpoint itself runs the real `ibd white` / `ibd del` when it receives the first report, so the
/// change lands between the pass's reading of its candidates and the second report.
#[test]
fn an_address_whitelisted_or_deleted_during_a_pass_is_not_reported() {
    for backend in Engine::compiled_local() {
        for change in ["white", "del"] {
            let f = Fixture::new(backend, "", vec![], Reply::ok());
            let white = f.tmp.path().join("white");
            std::fs::write(&white, "45.33.32.157 0\n").unwrap();
            let mut argv = vec![IBD.to_string(), change.to_string(), "--config".to_string()];
            argv.push(f.config().to_str().unwrap().to_string());
            match change {
                "white" => argv.push(white.to_str().unwrap().to_string()),
                _ => argv.extend(["--del".to_string(), "45.33.32.157".to_string()]),
            }
            f.server.rescript(
                vec![Reply::RunFirst {
                    argv,
                    then: Box::new(Reply::ok()),
                }],
                Reply::ok(),
            );
            // Oldest ban first: .156 is reported first, .157 (due when the pass began) second.
            let t = now();
            f.ban_at("45.33.32.156", SSH, 18, 5, t - 20);
            f.ban_at("45.33.32.157", SSH, 18, 5, t - 10);

            let out = f.report(&[]);
            assert_exit(&out, 0);
            let what = format!("{backend:?}, ibd {change}");
            assert_eq!(f.reported_ips(), ["45.33.32.156"], "{what}");
            assert_eq!(f.state("45.33.32.157"), None, "{what}: nothing recorded");
            assert_eq!(f.store().report_quota_used(now()).unwrap(), 1, "{what}");
            let s = f.store();
            match change {
                "white" => assert!(!s.white_list().unwrap().is_empty(), "{what}"),
                _ => assert_eq!(s.lookup("45.33.32.157".parse().unwrap()).unwrap(), None),
            }
        }
    }
}

/// Plain http:// to another host would carry the API key in clear: refused at start, in one line
/// naming the configuration file, before anything is sent or recorded.
#[test]
fn plain_http_to_another_host_is_refused() {
    let f = Fixture::answering_ok("");
    f.ban("45.33.32.156", SSH, 18);
    let config = f.write_config("clear.toml", "http://192.0.2.10/api/v2/report", "");
    for args in [&[][..], &["--follow"][..]] {
        let out = f.report_with(&config, args);
        assert_exit(&out, 1);
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{}: report-url: ", config.display()))
                && err.contains("in clear"),
            "{err}"
        );
    }
    assert_eq!(f.state("45.33.32.156"), None);
    assert!(f.server.requests().is_empty());
}
