//! Writes a deterministic mixed syslog of N lines (sshd, postfix, dovecot; about one line in six an
//! attack) to standard output, for the parser benchmark.
//!
//! Usage: ipqbdb-gen-log N > log
//!        ipqbdb-gen-log --dense N > log   (an internet-facing sshd host: a third of the lines are
//!                                          attacks the default rules ban)
//!        ipqbdb-gen-log --sshd CONNECTIONS > log   (multi-line OpenSSH failures; prints the number
//!                                                  of attempts on standard error)

use std::io::{BufWriter, Write};

use ipqbdb_benches::Indices;

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--sshd") {
        let n: u32 = std::env::args()
            .nth(2)
            .and_then(|a| a.parse().ok())
            .unwrap_or(10_000);
        let log = ipqbdb_benches::sshd_log::generate(n, 7);
        let mut out = BufWriter::new(std::io::stdout().lock());
        for line in &log.lines {
            writeln!(out, "{line}")?;
        }
        eprintln!("{}", log.attempts);
        return out.flush();
    }
    let dense = std::env::args().nth(1).as_deref() == Some("--dense");
    let n: u64 = std::env::args()
        .nth(1 + usize::from(dense))
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    if dense {
        return dense_log(n, &mut out);
    }
    let mut rng = Indices::new(42);
    for i in 0..n {
        let (h, m, s) = (i / 3600 % 24, i / 60 % 60, i % 60);
        let pid = 1000 + rng.next_below(30000);
        let a = format!(
            "{}.{}.{}.{}",
            1 + rng.next_below(223),
            rng.next_below(256),
            rng.next_below(256),
            1 + rng.next_below(254)
        );
        let v6 = format!(
            "2001:db8:{:x}::{:x}",
            rng.next_below(65536),
            rng.next_below(65536)
        );
        let user =
            ["root", "admin", "oracle", "test", "alice", "ubuntu"][rng.next_below(6) as usize];
        let ts = format!("Nov 21 {h:02}:{m:02}:{s:02} mail");
        let line = match rng.next_below(24) {
            // Attacks.
            0 => format!("{ts} sshd[{pid}]: Failed password for {user} from {a} port {} ssh2", 1024 + pid),
            1 => format!("{ts} sshd[{pid}]: Invalid user {user} from {v6} port {}", 1024 + pid),
            2 => format!("{ts} postfix/smtpd[{pid}]: warning: unknown[{a}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"),
            3 => format!("{ts} dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<{user}>, method=PLAIN, rip={a}, lip=192.0.2.1, TLS, session=<x{pid}>"),
            // Normal operation.
            4 | 5 => format!("{ts} sshd[{pid}]: Accepted publickey for {user} from {a} port {} ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4", 1024 + pid),
            6 | 7 => format!("{ts} sshd[{pid}]: pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"),
            8..=10 => format!("{ts} postfix/smtpd[{pid}]: connect from mail{pid}.example.net[{a}]"),
            11..=13 => format!("{ts} postfix/smtpd[{pid}]: disconnect from mail{pid}.example.net[{a}] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"),
            14 | 15 => format!("{ts} postfix/qmgr[{pid}]: 4F{pid:X}A2: from=<{user}@example.org>, size={}, nrcpt=1 (queue active)", 900 + pid),
            16 | 17 => format!("{ts} postfix/smtp[{pid}]: 4F{pid:X}A2: to=<{user}@example.com>, relay=mx.example.com[{a}]:25, delay=0.4, status=sent (250 2.0.0 Ok)"),
            18 | 19 => format!("{ts} dovecot: imap-login: Login: user=<{user}>, method=PLAIN, rip={a}, lip=192.0.2.1, mpid={pid}, TLS, session=<y{pid}>"),
            20 | 21 => format!("{ts} dovecot: imap({user})<{pid}><z{pid}>: Logged out in=120 out=4500 deleted=0 expunged=0 trashed=0 hdr_count=0"),
            _ => format!("{ts} CRON[{pid}]: pam_unix(cron:session): session closed for user {user}"),
        };
        writeln!(out, "{line}")?;
    }
    out.flush()
}

/// What an sshd host on the internet logs: a third of the lines are attacks (failed passwords of
/// root and of unknown users, invalid users), the rest PAM's notes, disconnects before
/// authentication, logins and cron.
fn dense_log(n: u64, out: &mut impl Write) -> std::io::Result<()> {
    let mut rng = Indices::new(43);
    for i in 0..n {
        let (h, m, s) = (i / 3600 % 24, i / 60 % 60, i % 60);
        let pid = 1000 + rng.next_below(30000);
        let port = 1024 + rng.next_below(64000);
        let a = format!(
            "{}.{}.{}.{}",
            1 + rng.next_below(223),
            rng.next_below(256),
            rng.next_below(256),
            1 + rng.next_below(254)
        );
        let user = [
            "admin", "oracle", "test", "ubuntu", "git", "postgres", "user1", "pi",
        ][rng.next_below(8) as usize];
        let ts = format!("Nov 21 {h:02}:{m:02}:{s:02} gw");
        let line = match rng.next_below(9) {
            // Attacks.
            0 => format!("{ts} sshd[{pid}]: Failed password for root from {a} port {port} ssh2"),
            1 => format!("{ts} sshd[{pid}]: Failed password for invalid user {user} from {a} port {port} ssh2"),
            2 => format!("{ts} sshd[{pid}]: Invalid user {user} from {a} port {port}"),
            // What comes with them, and normal operation.
            3 => format!("{ts} sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={a}  user=root"),
            4 => format!("{ts} sshd[{pid}]: Received disconnect from {a} port {port}:11: Bye Bye [preauth]"),
            5 => format!("{ts} sshd[{pid}]: Disconnected from invalid user {user} {a} port {port} [preauth]"),
            6 => format!("{ts} sshd[{pid}]: Connection closed by authenticating user root {a} port {port} [preauth]"),
            7 => format!("{ts} sshd[{pid}]: Accepted publickey for alice from {a} port {port} ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4"),
            _ => format!("{ts} CRON[{pid}]: pam_unix(cron:session): session closed for user root"),
        };
        writeln!(out, "{line}")?;
    }
    out.flush()
}
