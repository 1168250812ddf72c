//! The systemd journal as an input, read from `journalctl --output=json`.
//!
//! **Whose line it is.** A syslog line's tag is whatever the writer says: any local user can run
//! `logger -t sshd "Failed password for root from X port 22 ssh2"` and, through a rule for sshd,
//! ban X. The journal also records who wrote each message, but not every field it records is
//! trustworthy: `SYSLOG_IDENTIFIER` is the writer's claim, and so is `_COMM`, the kernel's command
//! name, which any process sets for itself (`prctl(PR_SET_NAME)`, `$0` in Perl). What a process
//! cannot choose is its user (`_UID`, from the socket's credentials) and the executable it runs
//! (`_EXE`, the kernel's `/proc/PID/exe`). So each line is built as `TAG[PID]: MESSAGE` where
//! the tag is the executable's file name (`/usr/lib/openssh/sshd-session` is `sshd-session`), or
//! the writer's identifier when its last component is that name (Postfix's `postfix/smtpd` for
//! `.../smtpd`), and the record is used only when that name can be believed:
//! - written by root (`_UID` 0): root could write the database itself;
//! - or by a system user (`_UID` 1 to [`SYSTEM_UID_MAX`]) running an executable under
//!   [`SYSTEM_DIRS`], which only root can write to: a daemon's account running its installed
//!   program. A system account that copies a program to `/tmp/sshd` and runs it (code injected
//!   into a web server running as `www-data`, say) is skipped;
//! - never by a regular user (`_UID` above [`SYSTEM_UID_MAX`]), nor without `_EXE` (journald
//!   could not read it, e.g. the writer had already exited).
//!
//! `_SYSTEMD_UNIT` is not used: it names the service a process runs in, not the program, and a
//! web application's code runs inside the web server's unit whatever it executes. A rule anchored
//! with `tag=sshd,sshd-session,sshd-auth` therefore sees only what the installed OpenSSH programs,
//! or root, wrote.
//!
//! The journal cursor of the last record read is the input's position: it is committed with the
//! bans, and `journalctl` starts after it (at start and whenever it has to be restarted), so nothing
//! logged while the parser was down or `journalctl` was restarting is lost, and nothing is read
//! twice.

use std::io::{ErrorKind, Read};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::input_readers::{Event, LineBatch, Tx};
use crate::lines::{Line, Splitter};

/// Debian's range of system users (adduser's LAST_SYSTEM_UID): daemons run below it, people above.
pub const SYSTEM_UID_MAX: u32 = 999;
/// Where installed programs live; only root can write there on a Debian system, so a program run
/// from there is the one its name says.
pub const SYSTEM_DIRS: [&str; 5] = ["/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/"];
/// The note under which the journal cursor is kept.
pub const CURSOR_KEY: &[u8] = b"pos:journal";
/// How long to wait before starting `journalctl` again after it ended.
const RESTART: Duration = Duration::from_secs(1);

/// What a journal entry becomes: a line to match, or nothing (with why).
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// The line to match.
    Line(Vec<u8>),
    /// Not matched, with the reason (a regular user's process, no trusted program name, no message).
    Skipped(&'static str),
}

/// Converts one JSON record of `journalctl --output=json`.
pub fn convert(record: &Value) -> Entry {
    let field = |name: &str| record.get(name).and_then(Value::as_str);
    let Some(uid) = field("_UID").and_then(|u| u.parse::<u32>().ok()) else {
        return Entry::Skipped("no _UID");
    };
    if uid > SYSTEM_UID_MAX {
        return Entry::Skipped("written by a regular user's process");
    }
    // The kernel's path of the executable; " (deleted)" once the file was replaced (an upgrade).
    let Some(exe) = field("_EXE")
        .map(|e| e.strip_suffix(" (deleted)").unwrap_or(e))
        .filter(|e| e.starts_with('/') && !e.split('/').any(|c| c == "." || c == ".."))
    else {
        return Entry::Skipped("no _EXE");
    };
    if uid != 0 && !SYSTEM_DIRS.iter().any(|d| exe.starts_with(d)) {
        return Entry::Skipped("a system user's program outside the system directories");
    }
    let name = exe.rsplit('/').next().unwrap_or_default();
    if name.is_empty() {
        return Entry::Skipped("no _EXE");
    }
    let tag = match field("SYSLOG_IDENTIFIER") {
        Some(id)
            if id.rsplit('/').next() == Some(name)
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b)) =>
        {
            id
        }
        _ => name,
    };
    // MESSAGE is a string, or an array of bytes when it is not valid UTF-8.
    let message: Vec<u8> = match record.get("MESSAGE") {
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(Value::Array(bytes)) => bytes
            .iter()
            .map(|b| {
                b.as_u64()
                    .and_then(|b| u8::try_from(b).ok())
                    .unwrap_or(b'?')
            })
            .collect(),
        _ => return Entry::Skipped("no MESSAGE"),
    };
    let mut line = tag.as_bytes().to_vec();
    if let Some(pid) = field("_PID").filter(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        line.push(b'[');
        line.extend_from_slice(pid.as_bytes());
        line.push(b']');
    }
    line.extend_from_slice(b": ");
    // One record is one line, whatever it contains.
    line.extend(message.iter().map(|&b| if b == b'\n' { b' ' } else { b }));
    Entry::Line(line)
}

/// Reads the journal through `journalctl` (the program at `journalctl`), after `cursor` or from
/// now, restarting it whenever it ends.
pub fn spawn_journal(
    journalctl: PathBuf,
    cursor: Option<String>,
    input: usize,
    tx: Tx,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("journal".into())
        .spawn(move || {
            let mut cursor = cursor;
            loop {
                match run_once(&journalctl, &mut cursor, input, &tx) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(message) => {
                        if tx.send(Event::Error { input, message }).is_err() {
                            return;
                        }
                    }
                }
                std::thread::sleep(RESTART);
            }
        })?;
    Ok(())
}

/// One run of `journalctl`; `Ok(true)` when the daemon is gone, `Ok(false)` or an error when
/// `journalctl` ended and should be started again.
fn run_once(
    journalctl: &PathBuf,
    cursor: &mut Option<String>,
    input: usize,
    tx: &Tx,
) -> Result<bool, String> {
    let mut cmd = Command::new(journalctl);
    cmd.args(["--follow", "--output=json", "--no-pager", "--quiet"]);
    match cursor {
        Some(c) => cmd.arg(format!("--after-cursor={c}")),
        None => cmd.arg("--lines=0"),
    };
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    // SAFETY: prctl only, between fork and exec: journalctl ends with the parser.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", journalctl.display()))?;
    let mut out = child.stdout.take().expect("piped");
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut gone = false;
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("reading {}: {e}", journalctl.display()));
            }
        };
        let mut lines = LineBatch::default();
        let mut advanced = false;
        splitter.feed(&buf[..n], &mut |line, _| {
            let Line::Text(json) = line else {
                return; // a record too long to keep: its cursor comes with the next one
            };
            let Ok(record) = serde_json::from_slice::<Value>(json) else {
                return;
            };
            if let Some(c) = record.get("__CURSOR").and_then(Value::as_str) {
                *cursor = Some(c.to_string());
                advanced = true;
            }
            if let Entry::Line(l) = convert(&record) {
                lines.push(Line::Text(&l));
            }
        });
        if advanced || !lines.is_empty() {
            let pos = cursor.as_ref().map(|c| c.as_bytes().to_vec());
            if tx.send(Event::Lines { input, lines, pos }).is_err() {
                gone = true;
                break;
            }
        }
    }
    let _ = child.kill();
    let status = child.wait().map_err(|e| e.to_string())?;
    if gone {
        return Ok(true);
    }
    Err(format!(
        "{} ended ({status}); starting it again",
        journalctl.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: Value) -> String {
        match convert(&v) {
            Entry::Line(l) => String::from_utf8(l).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_executable_makes_the_tag() {
        let msg = "Failed password for root from 192.0.2.1 port 22 ssh2";
        assert_eq!(
            line(
                json!({"_UID": "0", "_COMM": "sshd", "_EXE": "/usr/sbin/sshd", "_PID": "42",
                "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": msg})
            ),
            format!("sshd[42]: {msg}")
        );
        // OpenSSH 9.8+: the session and (10.0) the unprivileged authentication process.
        assert_eq!(
            line(json!({"_UID": "0", "_COMM": "sshd-session",
                "_EXE": "/usr/lib/openssh/sshd-session", "_PID": "43",
                "SYSLOG_IDENTIFIER": "sshd-session", "MESSAGE": msg})),
            format!("sshd-session[43]: {msg}")
        );
        assert_eq!(
            line(
                json!({"_UID": "101", "_COMM": "sshd-auth", "_EXE": "/usr/lib/openssh/sshd-auth",
                "_PID": "44", "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": msg})
            ),
            format!("sshd-auth[44]: {msg}")
        );
        // A daemon still running after an upgrade replaced its file.
        assert_eq!(
            line(json!({"_UID": "0", "_EXE": "/usr/sbin/sshd (deleted)", "MESSAGE": "m"})),
            "sshd: m"
        );
        // logger -t sshd: the program is logger, whatever it claims.
        assert_eq!(
            line(
                json!({"_UID": "0", "_COMM": "logger", "_EXE": "/usr/bin/logger", "_PID": "7",
                "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": msg})
            ),
            format!("logger[7]: {msg}")
        );
        // A process that renamed itself: _COMM says sshd, the executable says perl.
        assert_eq!(
            line(
                json!({"_UID": "33", "_COMM": "sshd", "_EXE": "/usr/bin/perl", "_PID": "8",
                "SYSLOG_IDENTIFIER": "sshd", "MESSAGE": msg})
            ),
            format!("perl[8]: {msg}")
        );
        // Postfix names its processes service/command.
        assert_eq!(
            line(
                json!({"_UID": "105", "_COMM": "smtpd", "_EXE": "/usr/lib/postfix/sbin/smtpd",
                "_PID": "9", "SYSLOG_IDENTIFIER": "postfix/smtpd", "MESSAGE": "x"})
            ),
            "postfix/smtpd[9]: x"
        );
        // An identifier with odd bytes is not trusted even if it ends in the program's name.
        assert_eq!(
            line(
                json!({"_UID": "0", "_EXE": "/usr/sbin/sshd", "SYSLOG_IDENTIFIER": "a: b/sshd",
                "MESSAGE": "m"})
            ),
            "sshd: m"
        );
        // Root is believed wherever its program lives.
        assert_eq!(
            line(json!({"_UID": "0", "_EXE": "/opt/x/sshd", "MESSAGE": "m"})),
            "sshd: m"
        );
        // Binary messages and new lines.
        assert_eq!(
            convert(&json!({"_UID": "0", "_EXE": "/usr/sbin/sshd", "_PID": "1",
                "MESSAGE": [104, 105, 10, 255]})),
            Entry::Line(b"sshd[1]: hi \xff".to_vec())
        );
    }

    #[test]
    fn untrusted_records_are_skipped() {
        let outside = "a system user's program outside the system directories";
        for (v, why) in [
            (
                json!({"_UID": "1000", "_EXE": "/usr/sbin/sshd", "MESSAGE": "m"}),
                "written by a regular user's process",
            ),
            (json!({"_EXE": "/usr/sbin/sshd", "MESSAGE": "m"}), "no _UID"),
            // _COMM alone is the writer's own word.
            (
                json!({"_UID": "0", "_COMM": "sshd", "MESSAGE": "m"}),
                "no _EXE",
            ),
            (
                json!({"_UID": "0", "_EXE": "sshd", "MESSAGE": "m"}),
                "no _EXE",
            ),
            (
                json!({"_UID": "0", "_EXE": "/usr/sbin/", "MESSAGE": "m"}),
                "no _EXE",
            ),
            (json!({"_UID": "0", "_EXE": "/usr/sbin/sshd"}), "no MESSAGE"),
            // A copy of a program named sshd, run by a system account from where it can write.
            (
                json!({"_UID": "33", "_COMM": "sshd", "_EXE": "/tmp/x/sshd", "MESSAGE": "m"}),
                outside,
            ),
            (
                json!({"_UID": "33", "_EXE": "/var/www/sshd (deleted)", "MESSAGE": "m"}),
                outside,
            ),
            (
                json!({"_UID": "33", "_EXE": "/usr/../tmp/sshd", "MESSAGE": "m"}),
                "no _EXE",
            ),
        ] {
            assert_eq!(convert(&v), Entry::Skipped(why), "{v}");
        }
    }
}
