//! Ban lines as a 2.x reporting script reads them from the system log: `ibd-parse` and `ibd ban`
//! log through syslog(3) for real (into a socket this test binds over `/dev/log` in a mount
//! namespace of their own), the test writes what arrives as rsyslog writes daemon.log, and
//! READMEreportcategory's `sed -rn` recipe, run verbatim with the real `sed`, extracts address,
//! time, new/old and the three fields, and its sixth match the category.
//!
//! Needs root (a mount namespace, `unshare` and `mount`); without it `unshare` fails and the
//! test says so with its message.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ipqbdb_store::{Engine, Store};
use ipqbdb_tests::{open_any, workspace_bin, Proc};

const PARSE: &str = env!("CARGO_BIN_EXE_ibd-parse");
const LIMIT: Duration = Duration::from_secs(60);

/// READMEreportcategory's recipe, verbatim.
const RECIPE: &str = r"/ibd-(parse|ban)/s/(^.{15})[^:]*: *(old|new) record for ([^,]*), *([^,]*,[^,]*,[^,]*)(, ([0-9]*))?/\3 \1 \2 \4/p";
/// The same match, printing the address and the sixth group (the category), as the recipe's next
/// step does.
const CATEGORY: &str = r"/ibd-(parse|ban)/s/(^.{15})[^:]*: *(old|new) record for ([^,]*), *([^,]*,[^,]*,[^,]*)(, ([0-9]*))?/\3 \6/p";

/// Runs `program args` with `input` on its standard input and its syslog(3) messages caught; returns
/// them as daemon.log lines (`MMM DD HH:MM:SS HOST TAG[PID]: MESSAGE`).
fn syslogged(dir: &Path, program: &Path, args: &[&str], input: &str) -> Vec<String> {
    let dev = dir.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("null"), "").unwrap();
    let _ = std::fs::remove_file(dev.join("log"));
    let socket = UnixDatagram::bind(dev.join("log")).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                // Drained, and the program has ended: nothing more can come.
                Err(_) if rx.try_recv().is_ok() => return got,
                Err(_) => {}
            }
        }
    });
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind /dev/null "$0/null" && mount --bind "$0" /dev && exec "$@""#)
        .arg(&dev)
        .arg(program)
        .args(args)
        .env_remove("IPQBDB_CONFIG")
        .stdout(Stdio::null());
    let out = Proc::run_with_input("syslogged program", &mut cmd, input.as_bytes(), LIMIT);
    tx.send(()).unwrap();
    let messages = reader.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // glibc sends `<PRI>MMM DD HH:MM:SS TAG[PID]: MESSAGE`; rsyslog's file format drops the
    // priority and puts the host after the time.
    messages
        .iter()
        .map(|m| {
            let m = m.split_once('>').expect("a priority").1;
            let (time, rest) = m.split_at(15);
            format!("{time} gw{rest}")
        })
        .collect()
}

/// `sed -rn SCRIPT` over `lines`.
fn sed(script: &str, lines: &[String]) -> Vec<String> {
    let mut cmd = Command::new("sed");
    cmd.args(["-rn", script]);
    let text = lines.join("\n") + "\n";
    let out = Proc::run_with_input("sed", &mut cmd, text.as_bytes(), LIMIT);
    assert!(out.status.success(), "sed failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Drops the 15 characters of time the recipe puts second, which the test cannot know.
fn timeless(extracted: &[String]) -> Vec<String> {
    extracted
        .iter()
        .map(|l| {
            let (addr, rest) = l.split_once(' ').unwrap();
            format!("{addr} {}", &rest[16..])
        })
        .collect()
}

#[test]
fn the_report_category_recipe_reads_both_programs() {
    let tmp = tempfile::tempdir().unwrap();
    let db: PathBuf = tmp.path().join("db");
    {
        let store = open_any(&db, Engine::Lmdb).unwrap();
        let ssh = store.reason_id("ssh").unwrap();
        store.set_category(ssh, 22).unwrap();
    }
    let rules = tmp.path().join("rules.conf");
    std::fs::write(
        &rules,
        "/Failed password for \\S+ from <HOST> port/ * \"ssh\" 5 - 1h\n",
    )
    .unwrap();
    let db_arg = db.to_str().unwrap();
    let base = [
        "--config",
        "/dev/null",
        "--backend",
        "lmdb",
        "--db-dir",
        db_arg,
    ];
    let line = |a: &str| format!("Failed password for root from {a} port 22\n");
    let mut log = syslogged(
        tmp.path(),
        Path::new(PARSE),
        &[
            &base[..],
            &[
                "--stdin",
                "--no-fifo",
                "--log-syslog",
                "--log-category",
                "--rule-file",
            ],
            &[rules.to_str().unwrap()],
        ]
        .concat(),
        &(line("192.0.2.50") + &line("192.0.2.50")),
    );
    // The default verbosity logs the bans (no -v), without a category unless asked.
    log.extend(syslogged(
        tmp.path(),
        Path::new(PARSE),
        &[
            &base[..],
            &["--stdin", "--no-fifo", "--log-syslog", "--rule-file"],
            &[rules.to_str().unwrap()],
        ]
        .concat(),
        &line("192.0.2.51"),
    ));
    let ibd = workspace_bin("ipqbdb-admin", "ibd");
    log.extend(syslogged(
        tmp.path(),
        &ibd,
        &[
            &base[..],
            &[
                "ban",
                "--log-syslog",
                "--log-category",
                "-r",
                "web, login",
                "-t",
                "2h",
                "198.51.100.7",
            ],
        ]
        .concat(),
        "",
    ));
    assert!(
        log.iter()
            .all(|l| l.as_bytes()[15] == b' ' && l[16..].starts_with("gw ibd-")),
        "{log:#?}"
    );
    assert_eq!(
        timeless(&sed(RECIPE, &log)),
        [
            "192.0.2.50 new 3.125%, decay 1h, ssh",
            "192.0.2.50 old 6.250%, decay 1h, ssh",
            "192.0.2.51 new 3.125%, decay 1h, ssh",
            // A comma in a reason would shift the fields: it is written as `;`.
            "198.51.100.7 new 3.125%, decay 2h, web; login",
        ],
        "{log:#?}"
    );
    assert_eq!(
        sed(CATEGORY, &log),
        [
            "192.0.2.50 22",
            "192.0.2.50 22",
            "192.0.2.51 ",
            "198.51.100.7 0"
        ],
        "{log:#?}"
    );
}
