//! The real `ibd-parse` binary: inputs, restarts, signals and bad input, against a real database.

use crate::common;

use std::fs::OpenOptions as FileOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Setup;
use ipqbdb_core::AddrKey;
use ipqbdb_store::{AnyStore, Engine, ReadStore, Store};
use ipqbdb_tests::{daemon_options, open_existing, output_ok, wait_until, Proc};

const PARSE: &str = env!("CARGO_BIN_EXE_ibd-parse");
/// Generous: these wait for another process, and CI machines are slow at times.
const LIMIT: Duration = Duration::from_secs(20);
const RULES: &str =
    "/Failed password for \\S+ from <HOST> port/ * \"ssh\" 5\n/FTP fail <HOST>/ * \"ftp\" 5\n";

impl Setup {
    fn new() -> Setup {
        let s = Setup::empty();
        s.write("rules.conf", RULES);
        s
    }
    fn rules(&self) -> PathBuf {
        self.tmp.path().join("rules.conf")
    }
    fn log_of(&self, n: usize) -> PathBuf {
        self.tmp.path().join(format!("parse-{n}.stderr"))
    }

    /// Starts the daemon in the foreground; its output goes to a file the test can read.
    fn start(&self, backend: Engine, extra: &[&str], n: usize) -> Daemon {
        let mut cmd = Command::new(PARSE);
        daemon_options(&mut cmd, backend, &self.db())
            .args(["-v", "--rule-file"])
            .arg(self.rules())
            .args(extra)
            .env_remove("IPQBDB_CONFIG");
        let d = Daemon(Proc::spawn_logged("ibd-parse", &mut cmd, &self.log_of(n)));
        d.wait_log("ibd-parse: started");
        d
    }

    fn store(&self) -> AnyStore {
        open_existing(&self.db())
    }

    /// Waits until `addr` was caught `times` times (or fails after a generous deadline).
    fn wait_caught(&self, addr: &str, times: u64) {
        let key: AddrKey = addr.parse().unwrap();
        let caught = || self.store().lookup(key).unwrap().map_or(0, |r| r.caught);
        wait_until(
            || format!("{addr} caught {} times, not {times}", caught()),
            LIMIT,
            || {
                let now = caught();
                assert!(now <= times, "{addr} caught {now} times, expected {times}");
                now == times
            },
        );
    }

    /// Runs the daemon over `input` on its standard input (no FIFO) until it ends; asserts a clean
    /// exit and returns its standard error.
    fn run_stdin(&self, extra: &[&str], input: &str) -> String {
        let mut cmd = Command::new(PARSE);
        cmd.args(["--stdin", "--no-fifo", "--config", "/dev/null", "--db-dir"])
            .arg(self.db())
            .arg("--rule-file")
            .arg(self.rules())
            .args(extra);
        let out = Proc::run_with_input("ibd-parse --stdin", &mut cmd, input.as_bytes(), LIMIT);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    }

    fn caught(&self, addr: &str) -> u64 {
        self.store()
            .lookup(addr.parse().unwrap())
            .unwrap()
            .map_or(0, |r| r.caught)
    }
}

/// The daemon under test, owned by the shared guard (killed and reaped however the test ends).
struct Daemon(Proc);

impl Daemon {
    fn text(&self) -> String {
        self.0.log()
    }

    fn wait_log(&self, needle: &str) {
        wait_until(
            || format!("no {needle:?} in the log:\n{}", self.text()),
            LIMIT,
            || self.text().contains(needle),
        );
    }

    fn signal(&self, sig: libc::c_int) {
        self.0.signal(sig);
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        self.0.stop(LIMIT);
    }

    fn kill9(mut self) {
        self.0.sigkill();
    }
}

fn ssh(addr: &str) -> String {
    format!("Nov 21 10:00:00 h sshd[1]: Failed password for root from {addr} port 22 ssh2\n")
}

fn append(path: &Path, text: &str) {
    let mut f = FileOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn write_fifo(fifo: &Path, data: &[u8]) {
    let mut f = FileOptions::new().write(true).open(fifo).unwrap();
    f.write_all(data).unwrap();
}

#[test]
fn fifo_serves_successive_writers() {
    for backend in Engine::compiled_local() {
        let s = Setup::new();
        let d = s.start(backend, &[], 0);
        let fifo = s.db().join("ibd-parse.sock");
        // Two writers, one after the other, like `cat log > ibd-parse.sock` run twice.
        write_fifo(&fifo, ssh("192.0.2.1").as_bytes());
        s.wait_caught("192.0.2.1", 1);
        write_fifo(
            &fifo,
            format!("{}{}", ssh("192.0.2.1"), ssh("2001:db8::1")).as_bytes(),
        );
        s.wait_caught("192.0.2.1", 2);
        s.wait_caught("2001:db8::", 1);
        d.stop();
    }
}

#[test]
fn bad_input_through_the_fifo_is_survived() {
    let s = Setup::new();
    let d = s.start(Engine::Lmdb, &[], 0);
    let fifo = s.db().join("ibd-parse.sock");
    let mut junk: Vec<u8> = (0..=255u8).cycle().take(64 * 1024).collect();
    junk.extend_from_slice(b"\n\x00\x00 Failed password for r\x00t from 192.0.2.9 port 1\n");
    junk.extend(std::iter::repeat_n(b'A', 10 * 1024 * 1024));
    junk.extend_from_slice(b" Failed password for root from 192.0.2.66 port 22\n\xff\xfe\n");
    junk.extend_from_slice(ssh("192.0.2.7").as_bytes());
    write_fifo(&fifo, &junk);
    s.wait_caught("192.0.2.7", 1);
    assert_eq!(
        s.caught("192.0.2.66"),
        0,
        "the 10 MB line is skipped, not matched in part"
    );
    assert_eq!(
        s.caught("192.0.2.9"),
        1,
        "rules match bytes: a NUL is just another byte"
    );
    d.wait_log("ibd-parse.sock: skipped a line of 104858");
    d.stop();
}

#[test]
fn followed_file_across_rotation_restart_and_kill() {
    let s = Setup::new();
    let log = s.path("auth.log");
    append(&log, &ssh("198.51.100.1")); // history before the first start is not banned
    let d = s.start(Engine::Sqlite, &[log.to_str().unwrap()], 0);
    append(&log, &ssh("198.51.100.2"));
    s.wait_caught("198.51.100.2", 1);
    // Rotation by rename: the old file gets a last line after the rename, the new one its own.
    let rotated = s.path("auth.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    append(&rotated, &ssh("198.51.100.3"));
    append(&log, &ssh("198.51.100.4"));
    s.wait_caught("198.51.100.3", 1);
    s.wait_caught("198.51.100.4", 1);
    // copytruncate: the file is emptied in place, then written again.
    std::fs::write(&log, "").unwrap();
    append(&log, &ssh("198.51.100.5"));
    s.wait_caught("198.51.100.5", 1);
    d.stop();
    // Written while the daemon is down: read at restart, nothing read twice.
    append(&log, &ssh("198.51.100.6"));
    let d = s.start(Engine::Sqlite, &[log.to_str().unwrap()], 1);
    s.wait_caught("198.51.100.6", 1);
    // Rotated while down: the rest of the old file is read before the new one.
    append(&log, &ssh("198.51.100.7"));
    s.wait_caught("198.51.100.7", 1);
    d.stop();
    append(&log, &ssh("198.51.100.8"));
    std::fs::rename(&log, &rotated).unwrap();
    append(&log, &ssh("198.51.100.9"));
    let d = s.start(Engine::Sqlite, &[log.to_str().unwrap()], 2);
    s.wait_caught("198.51.100.8", 1);
    s.wait_caught("198.51.100.9", 1);
    // SIGKILL during a stream of lines: after the restart every line is banned exactly once.
    let many: String = (0..300)
        .map(|i| ssh(&format!("203.0.113.{}", i % 250 + 1)))
        .collect();
    append(&log, &many);
    d.kill9();
    let d = s.start(Engine::Sqlite, &[log.to_str().unwrap()], 3);
    s.wait_caught("203.0.113.50", 2); // 50 occurs twice among the 300 lines (i = 49 and 299)
    s.wait_caught("203.0.113.51", 1);
    d.stop();
    for addr in [
        "198.51.100.2",
        "198.51.100.3",
        "198.51.100.4",
        "198.51.100.5",
        "198.51.100.6",
        "198.51.100.9",
    ] {
        assert_eq!(s.caught(addr), 1, "{addr} banned once");
    }
    assert_eq!(s.caught("198.51.100.1"), 0);
    let total: u64 = s
        .store()
        .list_records(None)
        .unwrap()
        .iter()
        .map(|(_, r)| r.caught)
        .sum();
    assert_eq!(
        total,
        9 + 300 - 1,
        "every line once: 8 single lines and 300 more (198.51.100.1 was history)"
    );
}

/// A line appended the moment the daemon says "started" is new, not history: the followed file's
/// start is fixed before the daemon reports itself ready. Repeated, since a reader positioning itself
/// late only loses the race now and then.
#[test]
fn a_line_appended_right_after_start_is_read() {
    let s = Setup::new();
    for round in 0..12 {
        let log = s.path(&format!("race-{round}.log"));
        append(&log, &ssh("198.51.100.200")); // history: never banned
        let d = s.start(Engine::Sqlite, &[log.to_str().unwrap()], round);
        let addr = format!("203.0.113.{}", round + 1);
        append(&log, &ssh(&addr));
        s.wait_caught(&addr, 1);
        d.stop();
    }
    assert_eq!(s.caught("198.51.100.200"), 0, "history is not banned");
}

#[test]
fn signals_reload_report_and_refuse_broken_rules() {
    let s = Setup::new();
    let d = s.start(Engine::Redb, &["--stdin"][..0], 0);
    let fifo = s.db().join("ibd-parse.sock");
    write_fifo(&fifo, b"FTP fail 192.0.2.30\n");
    s.wait_caught("192.0.2.30", 1);
    // A broken rule file: the old rules stay.
    std::fs::write(s.rules(), "/Failed (/ * \"x\"\n").unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("rules.conf:1:9: invalid regex: unclosed group; keeping the 2 rules in use");
    write_fifo(&fifo, b"FTP fail 192.0.2.30\n");
    s.wait_caught("192.0.2.30", 2);
    // A good one replaces them.
    std::fs::write(s.rules(), "/NEW <HOST>/ * \"new rule\" 0\n").unwrap();
    d.signal(libc::SIGHUP);
    d.wait_log("reloaded 1 rules");
    write_fifo(&fifo, b"NEW 192.0.2.31\nFTP fail 192.0.2.30\n");
    s.wait_caught("192.0.2.31", 1);
    d.signal(libc::SIGUSR1);
    d.wait_log("rule at line 1: 1 matches, 0 errors (new rule)");
    assert_eq!(s.caught("192.0.2.30"), 2, "the old rule is gone");
    d.stop();
    // Starting with a broken rule file is refused, naming file, line and column.
    std::fs::write(s.rules(), "# ok\n/x <HOST>/ 7 \"r\"\n").unwrap();
    let out = Command::new(PARSE)
        .args(["-D", "--config", "/dev/null", "--db-dir"])
        .arg(s.db())
        .arg("--rule-file")
        .arg(s.rules())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rules.conf:2:12: group 7 does not exist (the regex has 1)"),
        "{err}"
    );
}

/// SIGUSR2, ipqbdb 2.03's recovery signal (its scripts send it to every daemon), reopens the
/// database on every engine: the daemon lives, says so, and bans through the new handle.
#[test]
fn sigusr2_reopens_the_database() {
    for (n, backend) in Engine::compiled_local().into_iter().enumerate() {
        let s = Setup::new();
        let d = s.start(backend, &[], n);
        let fifo = s.db().join("ibd-parse.sock");
        write_fifo(&fifo, ssh("192.0.2.40").as_bytes());
        s.wait_caught("192.0.2.40", 1);
        for (round, addr) in ["192.0.2.41", "192.0.2.42"].into_iter().enumerate() {
            d.signal(libc::SIGUSR2);
            wait_until(
                || format!("{backend}: reopen {}:\n{}", round + 1, d.text()),
                LIMIT,
                || d.text().matches("SIGUSR2: reopened the database").count() == round + 1,
            );
            write_fifo(
                &fifo,
                format!("{}{}", ssh("192.0.2.40"), ssh(addr)).as_bytes(),
            );
            s.wait_caught(addr, 1);
            s.wait_caught("192.0.2.40", round as u64 + 2);
        }
        d.stop();
    }
}

/// Issue 24's forged repeat: a client-chosen user name carrying `: message repeated 1000 times: [`
/// is one line, one ban; a real wrapper right after the tag still counts its repeats.
#[test]
fn a_forged_repeat_wrapper_is_one_ban() {
    let s = Setup::new();
    std::fs::write(
        s.rules(),
        concat!(
            "/^Connection from <HOST> port \\d+/ * \"noted\" ban=no tag=sshd\n",
            "/^Disconnecting: Too many authentication failures/ @ \"too many\" tag=sshd\n",
            "/^Failed password for \\S+ from <HOST> port \\d+ ssh2$/ * \"pw\" tag=sshd\n",
        ),
    )
    .unwrap();
    let err = s.run_stdin(
        &[],
        concat!(
            "Nov 21 10:00:00 gw sshd[42]: Connection from 192.0.2.77 port 5555 on 10.0.0.1 port 22\n",
            "Nov 21 10:00:01 gw sshd[42]: Disconnecting: Too many authentication failures for invalid user x: message repeated 1000 times: [ y [preauth]\n",
            "Nov 21 10:00:02 gw sshd[43]: message repeated 3 times: [ Failed password for root from 192.0.2.78 port 22 ssh2]\n",
        ),
    );
    assert_eq!(s.caught("192.0.2.77"), 1, "{err}");
    assert_eq!(s.caught("192.0.2.78"), 3, "{err}");
}

#[test]
fn stdin_input_and_connection_kill() {
    let s = Setup::new();
    let ck_log = s.path("ck.log");
    let ck = s.path("connkill.cmd");
    std::fs::write(
        &ck,
        format!("sh -c 'echo \"$1\" >> {}' sh ADDRESS\n", ck_log.display()),
    )
    .unwrap();
    std::fs::write(s.rules(), "/evil <HOST>/ * \"evil\" 1\n").unwrap();
    let input: String = (0..3).map(|_| "evil 192.0.2.44\n").collect();
    let ck_arg = ck.to_str().unwrap();
    let err = s.run_stdin(&["-e", "--connkill-file", ck_arg], &input);
    assert_eq!(s.caught("192.0.2.44"), 3, "{err}");
    // 1/2, then 100 % (the event), then still 100 %: exactly one kill. It runs in the background,
    // so wait for its line.
    wait_until(
        || "connection kill never ran".into(),
        LIMIT,
        || ck_log.exists(),
    );
    assert_eq!(std::fs::read_to_string(&ck_log).unwrap(), "192.0.2.44\n");
}

/// `sshd -E FILE` writes its messages alone, ending in `\r\n`: declared with `--input
/// FILE:program=sshd`, the shipped sshd rules read it, one attempt's lines give one ban, and
/// nothing of another program's form is taken from it (here a vsftpd line and a syslog line).
#[test]
fn a_programs_own_log_is_read_by_its_rules() {
    let s = Setup::new();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/ipqbdb-pcre.conf");
    s.write("rules.conf", &std::fs::read_to_string(shipped).unwrap());
    let log = s.path("sshd.log");
    let lines = [
        "Invalid user admin from 203.0.113.7 port 40100",
        "Failed password for invalid user admin from 203.0.113.7 port 40100 ssh2",
        "Failed password for root from 203.0.113.8 port 40200 ssh2",
        "Sat Nov 21 10:06:01 2026 [pid 5521] [x] FAIL LOGIN: Client \"192.0.2.51\"",
        "Nov 21 10:00:00 gw sshd[1]: Failed password for root from 192.0.2.50 port 1 ssh2",
        "Failed password for root from 203.0.113.9 port 40300 ssh2",
    ];
    let text: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
    append(&log, &text);
    let spec = format!("{}:program=sshd", log.display());
    // Test mode reads it the same way.
    let out = Command::new(PARSE)
        .args(["--config", "/dev/null", "--test", &spec])
        .arg(s.rules())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("Lines: 6 lines, 4 matched, 2 missed"),
        "{report}"
    );
    assert!(
        report.contains("Bans: 3 (1 caught lines folded"),
        "{report}"
    );
    let d = s.start(Engine::Lmdb, &["--from-start", "--input", &spec], 0);
    // The last line is caught: every line before it has been read.
    s.wait_caught("203.0.113.9", 1);
    d.stop();
    assert_eq!(s.caught("203.0.113.7"), 1, "one attempt, one ban");
    assert_eq!(s.caught("203.0.113.8"), 1);
    assert_eq!(
        s.caught("192.0.2.50"),
        0,
        "no syslog line in sshd's own log"
    );
    assert_eq!(s.caught("192.0.2.51"), 0, "no other program's line either");
    // Undeclared, sshd's own lines have no header: the tagged rules read none of them (what is
    // caught is the vsftpd line and the one in syslog's form).
    let out = Command::new(PARSE)
        .args(["--config", "/dev/null", "--test"])
        .arg(&log)
        .arg(s.rules())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("Bans: 2 ("), "{report}");
}

#[test]
fn test_mode_prints_what_rules_catch() {
    let s = Setup::new();
    let log = s.path("auth.log");
    std::fs::write(
        &log,
        format!("{}hello\n{}", ssh("192.0.2.1"), ssh("192.0.2.1")),
    )
    .unwrap();
    let out = Command::new(PARSE)
        .args(["--config", "/dev/null", "-v", "--missed", "--test"])
        .arg(&log)
        .arg(s.rules())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Lines: 3 lines, 2 matched, 1 missed"),
        "{text}"
    );
    assert!(text.contains("- hello"), "{text}");
    assert!(
        text.contains("192.0.2.1                                    2  ssh"),
        "{text}"
    );
    assert!(!s.db().exists(), "test mode writes no database");
}

/// `--journal`: lines come from `journalctl --output=json` (here a script standing in for it, so
/// the test controls the records, sees the arguments, and makes it end once). Programs are named
/// by journald's trusted fields: a `logger -t sshd` line and a regular user's line ban nothing;
/// journalctl is started again after the last cursor when it ends, and a restarted parser resumes
/// after the cursor committed with its bans.
#[test]
fn journal_input_trusts_journald_and_resumes_at_its_cursor() {
    let s = Setup::new();
    std::fs::write(
        s.rules(),
        "/Failed password for .* from <HOST> port \\d+ ssh2$/ * \"ssh\" 5 tag=sshd\n",
    )
    .unwrap();
    let rec = |cursor: &str, uid: &str, comm: &str, ident: &str, addr: &str| {
        let exe = if comm == "sshd" {
            "/usr/sbin/sshd"
        } else {
            "/usr/bin/logger"
        };
        format!(
            "{{\"__CURSOR\":\"{cursor}\",\"_UID\":\"{uid}\",\"_COMM\":\"{comm}\",\"_EXE\":\"{exe}\",\"_PID\":\"77\",\"SYSLOG_IDENTIFIER\":\"{ident}\",\"MESSAGE\":\"Failed password for root from {addr} port 22 ssh2\"}}\n"
        )
    };
    let first: String = [
        rec("c1", "0", "sshd", "sshd", "192.0.2.1"),
        rec("c2", "0", "logger", "sshd", "192.0.2.2"),
        rec("c3", "1000", "sshd", "sshd", "192.0.2.3"),
    ]
    .concat();
    std::fs::write(s.path("first.json"), first).unwrap();
    std::fs::write(
        s.path("second.json"),
        rec("c4", "0", "sshd", "sshd", "192.0.2.4"),
    )
    .unwrap();
    let args = s.path("args");
    let script = s.path("journalctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {args}\nn=$(wc -l < {args})\n\
             if [ \"$n\" = 1 ]; then cat {first}; exit 0; fi\n\
             if [ \"$n\" = 2 ]; then cat {second}; fi\nexec sleep 60\n",
            args = args.display(),
            first = s.path("first.json").display(),
            second = s.path("second.json").display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let journal = [
        "--no-fifo",
        "--journal",
        "--journalctl",
        script.to_str().unwrap(),
    ];
    {
        let backend = Engine::compiled_local()[0];
        let d = s.start(backend, &journal, 0);
        s.wait_caught("192.0.2.1", 1);
        s.wait_caught("192.0.2.4", 1);
        assert_eq!(
            s.caught("192.0.2.2"),
            0,
            "logger -t sshd banned its address"
        );
        assert_eq!(
            s.caught("192.0.2.3"),
            0,
            "a regular user's line banned its address"
        );
        d.wait_log("starting it again");
        d.stop();
        let d = s.start(backend, &journal, 1);
        let runs = || std::fs::read_to_string(&args).unwrap_or_default();
        wait_until(
            || format!("journalctl not started a third time: {}", runs()),
            LIMIT,
            || runs().lines().count() == 3,
        );
        let runs: Vec<String> = runs().lines().map(String::from).collect();
        assert!(runs[0].contains("--lines=0"), "{runs:?}");
        assert!(runs[1].contains("--after-cursor=c3"), "{runs:?}");
        assert!(runs[2].contains("--after-cursor=c4"), "{runs:?}");
        d.stop();
        assert_eq!(s.caught("192.0.2.1"), 1, "read twice");
    }
}

/// The pids of processes that hold `path` open.
fn holders(path: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
        {
            pids.push(pid);
        }
    }
    pids
}

/// Kills a detached daemon however the test ends.
struct Detached(i32);

impl Drop for Detached {
    fn drop(&mut self) {
        // SAFETY: signalling a pid this test found holding its own temporary file.
        unsafe { libc::kill(self.0, libc::SIGKILL) };
    }
}

#[test]
fn detached_daemon_keeps_relative_paths() {
    let s = Setup::new();
    let log = s.path("auth.log");
    std::fs::write(&log, "").unwrap();
    // Started from the temporary directory with relative paths; it detaches (to `/`) before it
    // opens the log, the database and, on a reload, the rules again.
    output_ok(
        Command::new(PARSE)
            .args(["--config", "/dev/null", "--no-fifo", "--db-dir", "db"])
            .args(["--rule-file", "rules.conf", "auth.log"])
            .env_remove("IPQBDB_CONFIG")
            .current_dir(s.tmp.path()),
    );
    let mut pid = Vec::new();
    wait_until(
        || "the daemon holds the log open".into(),
        LIMIT,
        || {
            pid = holders(&log);
            !pid.is_empty()
        },
    );
    let daemon = Detached(pid[0]);
    append(&log, &ssh("192.0.2.60"));
    s.wait_caught("192.0.2.60", 1);
    // The reload reads the rule file by the path it was given, relative to where it started.
    std::fs::write(s.rules(), "/NEW <HOST>/ * \"new\" 5\n").unwrap();
    // SAFETY: the daemon's pid, found above.
    unsafe { libc::kill(daemon.0, libc::SIGHUP) };
    // Lines before the reload are read by the old rules: new ones until the new rule catches.
    wait_until(
        || "the reloaded rule catches".into(),
        LIMIT,
        || {
            append(&log, "NEW 192.0.2.61\n");
            std::thread::sleep(Duration::from_millis(20));
            s.caught("192.0.2.61") > 0
        },
    );
}

#[test]
fn log_category_appends_each_bans_category() {
    let s = Setup::new();
    {
        let store = ipqbdb_tests::open_any(&s.db(), Engine::compiled()[0]).unwrap();
        let ssh = store.reason_id("ssh").unwrap();
        store.set_category(ssh, 18).unwrap();
    }
    let input = format!(
        "{}FTP fail 192.0.2.51\n{}",
        ssh("192.0.2.50"),
        ssh("192.0.2.50")
    );
    let err = s.run_stdin(&["--log-category"], &input);
    let bans: Vec<&str> = err.lines().filter(|l| l.contains(" record for ")).collect();
    assert_eq!(
        bans,
        [
            "ibd-parse: new record for 192.0.2.50, 3.125%, decay 1h, ssh, 18",
            "ibd-parse: new record for 192.0.2.51, 3.125%, decay 1h, ftp, 0",
            "ibd-parse: old record for 192.0.2.50, 6.250%, decay 1h, ssh, 18",
        ],
        "{err}"
    );
}
