//! A generated OpenSSH log of failed logins as sshd (with PAM, password authentication) writes them:
//! several lines per attempt, an `Invalid user` line first for unknown users, connections of many
//! clients interleaved, some trying once, some several times, some until MaxAuthTries. It knows how
//! many attempts it wrote, so the parser's bans per attempt can be measured.

use crate::Indices;

/// The log and the number of failed password attempts in it.
pub struct SshdLog {
    pub lines: Vec<String>,
    pub attempts: u64,
}

/// One connection's lines, in order.
fn connection(rng: &mut Indices, pid: u32, addr: &str, lines: &mut Vec<String>) -> u64 {
    let port = 30000 + rng.next_below(30000);
    let invalid = rng.next_below(2) == 0;
    let user = if invalid {
        ["oracle", "ubnt", "test", "admin1", "pi", "guest"][rng.next_below(6) as usize]
    } else {
        "root"
    };
    // Most bots try once per connection; some a few times; some until sshd's MaxAuthTries (6).
    let attempts = match rng.next_below(20) {
        0..=11 => 1,
        12..=16 => 2 + rng.next_below(2),
        _ => 6,
    };
    let tag = format!("sshd[{pid}]");
    if rng.next_below(3) == 0 {
        // LogLevel VERBOSE.
        lines.push(format!(
            "{tag}: Connection from {addr} port {port} on 192.0.2.100 port 22 rdomain \"\""
        ));
    }
    if invalid {
        lines.push(format!(
            "{tag}: Invalid user {user} from {addr} port {port}"
        ));
    }
    for _ in 0..attempts {
        if invalid {
            lines.push(format!(
                "{tag}: pam_unix(sshd:auth): check pass; user unknown"
            ));
            lines.push(format!("{tag}: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}"));
            lines.push(format!(
                "{tag}: Failed password for invalid user {user} from {addr} port {port} ssh2"
            ));
        } else {
            lines.push(format!("{tag}: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}  user={user}"));
            lines.push(format!(
                "{tag}: Failed password for {user} from {addr} port {port} ssh2"
            ));
        }
    }
    let who = if invalid {
        format!("invalid user {user}")
    } else {
        format!("authenticating user {user}")
    };
    if attempts == 6 {
        lines.push(format!("{tag}: error: maximum authentication attempts exceeded for {}{user} from {addr} port {port} ssh2 [preauth]", if invalid { "invalid user " } else { "" }));
        lines.push(format!(
            "{tag}: Disconnecting {who} {addr} port {port}: Too many authentication failures [preauth]"
        ));
    } else {
        lines.push(format!(
            "{tag}: Received disconnect from {addr} port {port}:11: Bye Bye [preauth]"
        ));
        lines.push(format!(
            "{tag}: Disconnected from {who} {addr} port {port} [preauth]"
        ));
    }
    if attempts > 1 {
        let more = attempts - 1;
        let u = if invalid {
            String::new()
        } else {
            format!("  user={user}")
        };
        lines.push(format!("{tag}: PAM {more} more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={addr}{u}"));
    }
    u64::from(attempts)
}

/// `connections` connections from distinct clients, about 16 at a time interleaved line by line,
/// each line with a syslog timestamp and host.
pub fn generate(connections: u32, seed: u64) -> SshdLog {
    let mut rng = Indices::new(seed);
    let mut pending: Vec<std::collections::VecDeque<String>> = Vec::new();
    let mut out = Vec::new();
    let mut attempts = 0;
    let mut started = 0;
    let mut t = 0u64;
    while started < connections || !pending.is_empty() {
        while started < connections && pending.len() < 16 {
            let mut lines = Vec::new();
            let addr = if rng.next_below(5) == 0 {
                format!("2001:db8:{:x}::{:x}", started, 1 + rng.next_below(1000))
            } else {
                let [_, b, c, d] = started.to_be_bytes();
                format!("198.{}.{c}.{}", 18 + b % 2, d.max(1))
            };
            attempts += connection(&mut rng, 10_000 + started, &addr, &mut lines);
            pending.push(lines.into());
            started += 1;
        }
        let i = rng.next_below(pending.len() as u32) as usize;
        let line = pending[i].pop_front().expect("non-empty");
        if pending[i].is_empty() {
            pending.swap_remove(i);
        }
        let (h, m, s) = (t / 3600 % 24, t / 60 % 60, t % 60);
        t += 1;
        out.push(format!("Nov 21 {h:02}:{m:02}:{s:02} gw {line}"));
    }
    SshdLog {
        lines: out,
        attempts,
    }
}
