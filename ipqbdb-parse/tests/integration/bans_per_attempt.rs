//! Bans per authentication attempt on generated logs of sshd, dovecot and nginx, each written as
//! the service writes it, one event on several lines and in two files where the service does so.
//! The files are read interleaved at random (as the parser's followers deliver them), and each file
//! alone too: every way must give about one ban per attempt (0.9 to 1.2; the figures are printed).

use crate::common;

use ipqbdb_parse::matcher::RuleSet;
use ipqbdb_parse::rules::RuleMode;
use ipqbdb_parse::sessions::{LineCount, Sessions};

/// A small deterministic generator (xorshift): the logs are the same at every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A generated log: its files (lines in order) and the attempts they record.
struct Logs {
    files: Vec<Vec<String>>,
    attempts: u64,
}

/// Client addresses, a few of them coming back (as bots retry).
fn client(rng: &mut Rng, i: u64) -> String {
    let n = if rng.below(4) == 0 { rng.below(20) } else { i };
    format!("203.0.{}.{}", 100 + n / 250, n % 250 + 1)
}

/// sshd through syslog: unknown users (Invalid user, PAM, Failed password per try, then the
/// disconnect), MaxAuthTries reached (six tries, the maximum line, Disconnecting), and a repeated
/// message.
fn sshd(connections: u64) -> Logs {
    let mut rng = Rng(0x5eed_0001);
    let (mut log, mut attempts) = (Vec::new(), 0);
    for i in 0..connections {
        let (ip, pid, port) = (client(&mut rng, i), 2000 + i, 40000 + i);
        let h = format!("Dec  7 10:00:00 gw sshd[{pid}]:");
        let pam = format!("{h} pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}");
        match rng.below(3) {
            0 => {
                let tries = 1 + rng.below(3);
                log.push(format!("{h} Invalid user admin{i} from {ip} port {port}"));
                for _ in 0..tries {
                    log.push(pam.clone());
                    log.push(format!(
                        "{h} Failed password for invalid user admin{i} from {ip} port {port} ssh2"
                    ));
                }
                log.push(format!(
                    "{h} Connection closed by invalid user admin{i} {ip} port {port} [preauth]"
                ));
                attempts += tries;
            }
            1 => {
                for _ in 0..6 {
                    log.push(pam.clone());
                    log.push(format!(
                        "{h} Failed password for root from {ip} port {port} ssh2"
                    ));
                }
                log.push(format!("{h} error: maximum authentication attempts exceeded for root from {ip} port {port} ssh2 [preauth]"));
                log.push(format!("{h} Disconnecting authenticating user root {ip} port {port}: Too many authentication failures [preauth]"));
                attempts += 6;
            }
            _ => {
                log.push(pam.clone());
                log.push(format!(
                    "{h} Failed password for root from {ip} port {port} ssh2"
                ));
                log.push(format!("{h} message repeated 2 times: [ Failed password for root from {ip} port {port} ssh2]"));
                log.push(format!(
                    "{h} Connection closed by authenticating user root {ip} port {port} [preauth]"
                ));
                attempts += 3;
            }
        }
    }
    Logs {
        files: vec![log],
        attempts,
    }
}

/// dovecot: mail.log has the login process's summary (`auth failed, N attempts`, session=<id>) and,
/// with auth_verbose=yes, the auth worker's line per try (the same <id>); auth.log has PAM's line
/// per try.
fn dovecot(connections: u64) -> Logs {
    let mut rng = Rng(0x5eed_0002);
    let (mut mail, mut auth, mut attempts) = (Vec::new(), Vec::new(), 0);
    for i in 0..connections {
        let ip = client(&mut rng, i);
        let session = format!("S{i:08x}AAAAAA");
        let tries = 1 + rng.below(3);
        let verbose = rng.below(2) == 0;
        for _ in 0..tries {
            if verbose {
                mail.push(format!("Dec  7 10:00:00 mx dovecot: auth-worker(4012): pam(user{i},{ip},<{session}>): pam_authenticate() failed: Authentication failure (password mismatch?)"));
            }
            auth.push(format!("Dec  7 10:00:00 mx auth: pam_unix(dovecot:auth): authentication failure; logname= uid=0 euid=0 tty=dovecot ruser=user{i} rhost={ip}"));
        }
        mail.push(format!("Dec  7 10:00:00 mx dovecot: imap-login: Disconnected (auth failed, {tries} attempts in 12 secs): user=<user{i}>, method=PLAIN, rip={ip}, lip=192.0.2.1, TLS, session=<{session}>"));
        attempts += tries;
    }
    Logs {
        files: vec![mail, auth],
        attempts,
    }
}

/// nginx: each refused basic-auth request is in the error log and in the access log.
fn nginx(requests: u64) -> Logs {
    let mut rng = Rng(0x5eed_0003);
    let (mut error, mut access) = (Vec::new(), Vec::new());
    for i in 0..requests {
        let ip = client(&mut rng, i);
        let what = if rng.below(2) == 0 {
            "password mismatch".to_string()
        } else {
            "was not found in \"/etc/nginx/.htpasswd\"".to_string()
        };
        let what = if what.starts_with("was") {
            format!("user \"u{i}\" {what}")
        } else {
            format!("user \"u{i}\": {what}")
        };
        error.push(format!("2026/12/07 10:00:00 [error] 812#812: *{i} {what}, client: {ip}, server: example.org, request: \"GET /private/ HTTP/1.1\", host: \"example.org\""));
        access.push(format!("{ip} - u{i} [07/Dec/2026:10:00:00 +0000] \"GET /private/ HTTP/1.1\" 401 179 \"-\" \"curl/8.5.0\""));
    }
    Logs {
        files: vec![error, access],
        attempts: requests,
    }
}

/// Bans for the lines of `files`, taken from the files in a random interleaving.
fn bans(rules: &RuleSet, files: &[&Vec<String>], seed: u64) -> u64 {
    let mut rng = Rng(seed);
    let mut at = vec![0; files.len()];
    let mut sessions = Sessions::default();
    let mut total = 0;
    loop {
        let open: Vec<usize> = (0..files.len())
            .filter(|&f| at[f] < files[f].len())
            .collect();
        if open.is_empty() {
            return total;
        }
        let f = open[rng.below(open.len() as u64) as usize];
        let line = &files[f][at[f]];
        at[f] += 1;
        if let LineCount::Caught { bans, .. } =
            sessions.count(rules, rules.check(line.as_bytes(), None), 0)
        {
            total += u64::from(bans);
        }
    }
}

#[test]
fn about_one_ban_per_attempt() {
    let mut failures = Vec::new();
    for mode in [RuleMode::Normal, RuleMode::Aggressive] {
        let rules = common::rules(mode);
        for (service, logs) in [
            ("sshd", sshd(3000)),
            ("dovecot", dovecot(3000)),
            ("nginx", nginx(3000)),
        ] {
            let all: Vec<&Vec<String>> = logs.files.iter().collect();
            let mut ways = vec![("both files".to_string(), all.clone())];
            if all.len() > 1 {
                for (n, f) in all.iter().enumerate() {
                    ways.push((format!("file {} alone", n + 1), vec![*f]));
                }
            }
            if all.len() == 1 {
                ways[0].0 = "one file".into();
            }
            for (way, files) in ways {
                for seed in [1, 2] {
                    let b = bans(&rules, &files, 0x1234_5678 + seed);
                    let ratio = b as f64 / logs.attempts as f64;
                    println!(
                        "{mode:>10} {service:>8} {way:>14}: {b} bans for {} attempts = {ratio:.3}",
                        logs.attempts
                    );
                    if !(0.9..=1.2).contains(&ratio) {
                        failures.push(format!(
                            "{mode} {service} {way}: {ratio:.3} bans per attempt"
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
