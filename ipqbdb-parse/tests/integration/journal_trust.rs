//! `--journal` believes what journald records that a process cannot choose (its executable and
//! user), not what it says of itself. Real processes pose as sshd here, running as `www-data` as
//! code injected into a web application would: one renames itself (Perl's `$0`, which is
//! `prctl(PR_SET_NAME)`), one runs a copy of a program named `sshd` from a directory it can write.
//! Their records are made from their own `/proc` entries, as journald makes them (no journald runs
//! on the test machines, so a script stands in for `journalctl`, as in `daemon.rs`), beside the
//! records of the installed OpenSSH programs; only the latter ban.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Setup;
use ipqbdb_core::AddrKey;
use ipqbdb_store::{Engine, ReadStore};
use ipqbdb_tests::{daemon_options, open_existing, wait_until, Proc};
use serde_json::{json, Value};

const PARSE: &str = env!("CARGO_BIN_EXE_ibd-parse");
const LIMIT: Duration = Duration::from_secs(20);
/// www-data on Debian: a system account, as a web application runs.
const WWW_DATA: &str = "33";
const RULE: &str = "/Failed password for \\S+ from <HOST> port \\d+ ssh2$/ * \"ssh\" 5 \
                    tag=sshd,sshd-session,sshd-auth\n";

/// A helper process, killed and reaped however the test ends.
struct Helper(Child);

impl Helper {
    /// Runs `argv` as www-data.
    fn as_www_data(argv: &[&str]) -> Helper {
        let child = Command::new("setpriv")
            .args([
                "--reuid",
                WWW_DATA,
                "--regid",
                WWW_DATA,
                "--clear-groups",
                "--",
            ])
            .args(argv)
            .stdin(Stdio::null())
            .spawn()
            .expect("setpriv (util-linux) runs the helper as www-data");
        Helper(child)
    }

    fn proc(&self, name: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{name}", self.0.id()))
            .unwrap_or_default()
            .trim_end()
            .to_string()
    }

    /// The record journald would make of `message` from this process: the fields it takes from
    /// the kernel, and the identifier the process claims.
    fn record(&self, cursor: &str, message: &str) -> Value {
        let pid = self.0.id();
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("/proc/PID/exe");
        let uid = self
            .proc("status")
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|u| u.split_whitespace().next())
            .expect("Uid in /proc/PID/status")
            .to_string();
        json!({
            "__CURSOR": cursor,
            "_TRANSPORT": "syslog",
            "PRIORITY": "6",
            "SYSLOG_FACILITY": "4",
            "SYSLOG_IDENTIFIER": "sshd",
            "SYSLOG_PID": pid.to_string(),
            "_PID": pid.to_string(),
            "_UID": uid,
            "_GID": uid,
            "_COMM": self.proc("comm"),
            "_EXE": exe.to_str().unwrap(),
            "_CMDLINE": self.proc("cmdline").replace('\0', " ").trim_end(),
            "_SYSTEMD_UNIT": "apache2.service",
            "MESSAGE": message,
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A record of an installed OpenSSH program as journald writes it.
fn openssh(cursor: &str, exe: &str, uid: &str, pid: u32, message: &str) -> Value {
    let name = exe.rsplit('/').next().unwrap();
    json!({
        "__CURSOR": cursor,
        "_TRANSPORT": "syslog",
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "4",
        "SYSLOG_IDENTIFIER": name,
        "SYSLOG_PID": pid.to_string(),
        "_PID": pid.to_string(),
        "_UID": uid,
        "_GID": uid,
        "_COMM": name,
        "_EXE": exe,
        "_CMDLINE": format!("{name}: root [priv]"),
        "_SYSTEMD_UNIT": "ssh.service",
        "MESSAGE": message,
    })
}

fn failed(addr: &str) -> String {
    format!("Failed password for root from {addr} port 22 ssh2")
}

#[test]
fn processes_posing_as_sshd_ban_nothing() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test runs its helpers as www-data, which needs root"
    );
    let s = Setup::empty();
    // A process that renames itself.
    let renamed = Helper::as_www_data(&["perl", "-e", "$0 = 'sshd'; sleep 60"]);
    wait_until(
        || format!("the helper's name is {:?}", renamed.proc("comm")),
        LIMIT,
        || renamed.proc("comm") == "sshd",
    );
    // A copy of a program named sshd, where www-data can write.
    let bin = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fake = bin.path().join("sshd");
    std::fs::copy("/usr/bin/sleep", &fake).unwrap();
    let copied = Helper::as_www_data(&[fake.to_str().unwrap(), "60"]);
    wait_until(
        || "the copy running as sshd".into(),
        LIMIT,
        || std::fs::read_link(format!("/proc/{}/exe", copied.0.id())).is_ok_and(|e| e == fake),
    );
    assert_eq!(copied.proc("comm"), "sshd");

    let records = [
        renamed.record("c1", &failed("192.0.2.1")),
        copied.record("c2", &failed("192.0.2.2")),
        openssh("c3", "/usr/sbin/sshd", "0", 900, &failed("192.0.2.3")),
        openssh(
            "c4",
            "/usr/lib/openssh/sshd-session",
            "0",
            901,
            &failed("192.0.2.4"),
        ),
    ];
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    s.write("records.json", &text);
    s.write("rules.conf", RULE);
    let script = s.path("journalctl");
    s.write(
        "journalctl",
        &format!(
            "#!/bin/sh\ncat {}\nexec sleep 60\n",
            s.path("records.json").display()
        ),
    );
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();

    let db = s.path("db");
    let mut cmd = Command::new(PARSE);
    daemon_options(&mut cmd, Engine::compiled_local()[0], &db)
        .args(["-v", "--no-fifo", "--journal", "--journalctl"])
        .arg(&script)
        .arg("--rule-file")
        .arg(s.path("rules.conf"))
        .env_remove("IPQBDB_CONFIG");
    let mut parser = Proc::spawn_logged("ibd-parse", &mut cmd, &s.path("parse.log"));
    parser.wait_log("ibd-parse: started", LIMIT);
    let caught = |addr: &str| caught(&db, addr);
    // The installed programs' lines come last: once they are in, every record was read.
    wait_until(
        || format!("sshd's bans: {}", parser.log()),
        LIMIT,
        || caught("192.0.2.3") == 1 && caught("192.0.2.4") == 1,
    );
    assert_eq!(caught("192.0.2.1"), 0, "a process that renamed itself sshd");
    assert_eq!(caught("192.0.2.2"), 0, "a copy of a program named sshd");
    parser.stop(LIMIT);
}

fn caught(db: &Path, addr: &str) -> u64 {
    let key: AddrKey = addr.parse().unwrap();
    open_existing(db)
        .lookup(key)
        .unwrap()
        .map_or(0, |r| r.caught)
}
