//! The real `ibd-parse` with fail2ban configuration written by the test (a small fail2ban
//! directory of our own: jails across jail.conf, jail.d and jail.local, filters with includes,
//! options and a Python-only regex): what `--test` shows, what the daemon bans in a real
//! database, and one-line errors for broken filters.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::Setup;
use ipqbdb_store::{ReadStore, Store};
use ipqbdb_tests::{open_existing, Proc};

const PARSE: &str = env!("CARGO_BIN_EXE_ibd-parse");
/// How long `ibd-parse --stdin` may take: a hang detector.
const LIMIT: Duration = Duration::from_secs(60);

impl Setup {
    fn with_filters() -> Setup {
        let s = Setup::empty();
        let d = s.f2b();
        std::fs::create_dir_all(d.join("filter.d")).unwrap();
        std::fs::create_dir_all(d.join("jail.d")).unwrap();
        s.write(
            "fail2ban/filter.d/base.conf",
            "[INCLUDES]\nafter = base.local\n[DEFAULT]\n_daemon = \\S+\n\
             __prefix = \\s*\\S+ %(_daemon)s\\[<F-MLFID>\\d+</F-MLFID>\\]:\\s+\n",
        );
        // A conditional (Python only): the quote closes only if it opened.
        s.write(
            "fail2ban/filter.d/svc.conf",
            "[INCLUDES]\nbefore = base.conf\n[DEFAULT]\n_daemon = svc\n[Definition]\n\
             prefregex = ^%(__prefix)s<F-CONTENT>.+</F-CONTENT>$\n\
             failregex = ^bad (?P<q>')?user <F-USER>\\S+</F-USER>(?(q)') from <HOST>$\n\
             \x20           <md-<mode>>\n\
             \x20           ^<F-NOFAIL>connect from <HOST></F-NOFAIL>$\n\
             \x20           ^gave up$\n\
             md-normal =\nmd-aggressive = ^probe from <HOST>$\nmode = normal\n\
             ignoreregex = from 192\\.0\\.2\\.99$\n",
        );
        s.write(
            "fail2ban/jail.conf",
            "[DEFAULT]\nenabled = false\nmode = normal\nfilter = %(__name__)s[mode=%(mode)s]\n\
             maxretry = 5\nbantime = 10m\nignoreip = 127.0.0.1/8 ::1 trusted.example\n\
             [svc]\nlogpath = LOGDIR/svc*.log\n[other]\nlogpath = /nonexistent\n",
        );
        let conf = std::fs::read_to_string(d.join("jail.conf")).unwrap();
        let logdir = s.tmp.path().display().to_string();
        s.write("fail2ban/jail.conf", &conf.replace("LOGDIR", &logdir));
        s.write(
            "fail2ban/jail.d/on.conf",
            "[svc]\nenabled = true\nmode = aggressive\n",
        );
        s.write("fail2ban/jail.local", "[svc]\nmaxretry = 3\nbantime = 1h\n");
        s.write("rules.conf", "# no rules of our own\n");
        s.write("svc1.log", LOG);
        s
    }
    fn f2b(&self) -> PathBuf {
        self.tmp.path().join("fail2ban")
    }
    fn run(&self, args: &[&str]) -> Output {
        Command::new(PARSE)
            .args(["--config", "/dev/null"])
            .args(args)
            .env_remove("IPQBDB_CONFIG")
            .output()
            .unwrap()
    }
}

const LOG: &str = "\
Nov 21 10:00:00 gw svc[7]: bad 'user x' from 192.0.2.1
Nov 21 10:00:01 gw svc[7]: bad 'user x from 192.0.2.2
Nov 21 10:00:02 gw svc[8]: connect from 192.0.2.3
Nov 21 10:00:03 gw svc[8]: gave up
Nov 21 10:00:04 gw svc[9]: probe from 192.0.2.4
Nov 21 10:00:05 gw svc[9]: bad user y from 192.0.2.99
Nov 21 10:00:06 gw other[1]: bad user y from 192.0.2.5
";

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn test_mode_shows_the_jail_mapping_and_what_it_catches() {
    let s = Setup::with_filters();
    let log = s.path("svc1.log");
    let f2b = s.f2b();
    let o = s.run(&[
        "--test",
        log.to_str().unwrap(),
        s.path("rules.conf").to_str().unwrap(),
        "--fail2ban-config",
        f2b.to_str().unwrap(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}{out}");
    for want in [
        "fail2ban jail [svc]",
        "filter    svc[mode=\"aggressive\"]",
        "maxretry  3 -> initial count 2 (3th offence in a row reaches 100 %)",
        "bantime   3600s -> decay 1h",
        &format!("follows   {}", log.display()),
        "127.0.0.1/8 0",
        "::1 0",
        "# trusted.example (jail svc): not an address or range",
        "failregex   fancy-regex",
        "failregex   regex",
        "Bans: 3 ",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The disabled jail is not run; the failure of connection 8 is the address its first line
    // named; the quote that does not close, the ignored address and other programs are not caught.
    assert!(!out.contains("[other]"), "{out}");
    for ip in ["192.0.2.1 ", "192.0.2.3 ", "192.0.2.4 "] {
        assert!(out.contains(&format!("  {ip}")), "{ip} not caught:\n{out}");
    }
    for ip in ["192.0.2.2", "192.0.2.99", "192.0.2.5"] {
        assert!(!out.contains(&format!("  {ip} ")), "{ip} caught:\n{out}");
    }
}

#[test]
fn the_daemon_bans_with_the_filters_reason_count_and_decay() {
    let s = Setup::with_filters();
    let db = s.path("db");
    let filter = format!(
        "{}[mode=aggressive, reason=\"svc attack\", initial-count=1, decay=2h]",
        s.f2b().join("filter.d/svc.conf").display()
    );
    let mut cmd = Command::new(PARSE);
    cmd.args(["--config", "/dev/null", "-D", "--no-fifo", "--stdin"])
        .arg("--db-dir")
        .arg(&db)
        .arg("--rule-file")
        .arg(s.path("rules.conf"))
        .args(["--fail2ban-filter", &filter])
        .env_remove("IPQBDB_CONFIG");
    let o = Proc::run_with_input("ibd-parse", &mut cmd, LOG.as_bytes(), LIMIT);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let store = open_existing(&db);
    for ip in ["192.0.2.1", "192.0.2.3", "192.0.2.4"] {
        let r = store
            .lookup(ip.parse().unwrap())
            .unwrap()
            .unwrap_or_else(|| panic!("{ip} not banned"));
        assert_eq!((r.caught, r.decay), (1, 7200), "{ip}");
        assert_eq!(r.probability, ipqbdb_core::model::initial_probability(1));
        assert_eq!(store.reason(r.reason).unwrap().unwrap().text, "svc attack");
    }
    for ip in ["192.0.2.2", "192.0.2.99", "192.0.2.5"] {
        assert!(store.lookup(ip.parse().unwrap()).unwrap().is_none(), "{ip}");
    }
}

fn one_line_error(o: &Output, want: &[&str]) {
    let (out, err) = text(o);
    assert!(!o.status.success(), "should fail:\n{out}{err}");
    assert!(!err.contains("panicked"), "{err}");
    let line = err.trim();
    assert_eq!(line.lines().count(), 1, "one line: {err}");
    for w in want {
        assert!(line.contains(w), "missing {w:?} in {line:?}");
    }
}

#[test]
fn broken_filters_are_one_line_errors_naming_file_and_line() {
    let s = Setup::with_filters();
    let fd = s.f2b().join("filter.d");
    s.write(
        "fail2ban/filter.d/noinc.conf",
        "[INCLUDES]\nbefore = missing.conf\n[Definition]\nfailregex = x <HOST>\n",
    );
    s.write(
        "fail2ban/filter.d/badre.conf",
        "[Definition]\n\nfailregex = ^ok <HOST>\n            ^broken (<HOST>\n",
    );
    s.write(
        "fail2ban/filter.d/dns.conf",
        "[Definition]\nfailregex = ^x <DNS>\n",
    );
    s.write(
        "fail2ban/filter.d/opt.conf",
        "[Definition]\nfailregex = ^x <HOST> %(undefined)s\n",
    );
    s.write(
        "fail2ban/filter.d/syntax.conf",
        "[Definition]\nthis is not ini\n",
    );
    let log = s.path("svc1.log");
    let rules = s.path("rules.conf");
    // `--test` on the log with the rules, and `options`.
    let test = |options: &[&str]| {
        let mut args = vec!["--test", log.to_str().unwrap(), rules.to_str().unwrap()];
        args.extend_from_slice(options);
        s.run(&args)
    };
    let cases: [(&str, &[&str]); 6] = [
        ("noinc", &["noinc.conf:2", "missing.conf", "does not exist"]),
        ("badre", &["badre.conf:3", "failregex does not compile"]),
        ("dns", &["dns.conf:2", "<DNS>", "name resolution"]),
        ("opt", &["opt.conf:2", "%(undefined)s"]),
        ("syntax", &["syntax.conf:2"]),
        ("nosuch", &["nosuch.conf", "no such file"]),
    ];
    for (name, want) in cases {
        let o = test(&[
            "--fail2ban-strict",
            "--fail2ban-filter",
            &fd.join(name).display().to_string(),
        ]);
        one_line_error(&o, want);
    }
    let bad_opt = format!("{}[mode", fd.join("svc").display());
    let o = test(&["--fail2ban-strict", "--fail2ban-filter", &bad_opt]);
    one_line_error(&o, &["no closing ']'"]);
    // Without --fail2ban-strict, the broken filter is reported and the good one runs.
    let o = test(&[
        "--fail2ban-filter",
        &fd.join("badre").display().to_string(),
        "--fail2ban-filter",
        &fd.join("svc").display().to_string(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("not loaded: ") && out.contains("badre.conf:3"),
        "{out}"
    );
    assert!(out.contains("Bans: 2 "), "{out}");
    // A jail that wants names resolved is refused on one line.
    s.write("fail2ban/jail.d/dns.local", "[svc]\nusedns = yes\n");
    let o = test(&[
        "--fail2ban-strict",
        "--fail2ban-config",
        s.f2b().to_str().unwrap(),
    ]);
    one_line_error(&o, &["jail [svc]", "usedns = yes", "name resolution"]);
    // A daemon with only broken filters and no rules does not start.
    let o = s.run(&[
        "-D",
        "--no-fifo",
        "--stdin",
        "--db-dir",
        s.path("db").to_str().unwrap(),
        "--rule-file",
        rules.to_str().unwrap(),
        "--fail2ban-filter",
        &fd.join("badre").display().to_string(),
    ]);
    assert!(!o.status.success());
    assert!(!Path::new(&s.path("db")).join("ipqbdb-backend").exists());
}
