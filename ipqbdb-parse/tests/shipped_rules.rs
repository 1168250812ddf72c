//! The shipped rule set against sshguard's parser test cases and against realistic log lines of every
//! service it claims to cover.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipqbdb_core::AddrKey;
use ipqbdb_parse::matcher::RuleSet;
use ipqbdb_parse::rules::Mode;
use ipqbdb_parse::sessions::{Counted, Sessions};

/// The shipped rule file, or (while writing rules) the file `$IPQBDB_RULES` names.
fn rule_path() -> PathBuf {
    std::env::var_os("IPQBDB_RULES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/ipqbdb-pcre.conf"),
        PathBuf::from,
    )
}

fn shipped() -> RuleSet {
    RuleSet::new(ipqbdb_parse::rules::load(&rule_path()).expect("shipped rules parse")).unwrap()
}

/// What one line, alone, does: the rule that caught it and the address (notes and misses: none).
fn catch(rules: &RuleSet, line: &str) -> Result<Option<(usize, IpAddr)>, String> {
    match Sessions::default().count(rules, rules.check(line.as_bytes(), None), 0) {
        Counted::Caught { rule, ip, .. } => Ok(Some((rule, ip))),
        Counted::BadAddress { text, .. } => Err(text),
        _ => Ok(None),
    }
}

/// sshguard's corpus gives most messages without the syslog prefix of the program that writes
/// them; the shipped rules are anchored at that prefix, so each case is also tried as its program
/// logs it. Service code to the prefixes to try.
fn prefixes(code: u32) -> &'static [&'static str] {
    match code {
        100 => &["Nov 21 10:00:00 gw sshd[123]: "],
        101 => &["Nov 21 10:00:00 gw dropbear[123]: "],
        120 => &["Nov 21 10:00:00 gw named[123]: "],
        210 => &["Nov 21 10:00:00 mx dovecot: "],
        240 => &["2026-11-21 10:00:00 "],
        260 => &["Nov 21 10:00:00 mx postfix/smtpd[123]: "],
        280 => &["Nov 21 10:00:00 mx imapd: "],
        310 => &["Nov 21 10:00:00 ftp proftpd[123]: "],
        320 => &["Nov 21 10:00:00 ftp pure-ftpd: "],
        330 => &[
            "Nov 21 10:00:00 ftp vsftpd[123]: ",
            "Sat Nov 21 10:00:00 2026 [pid 123] ",
        ],
        _ => &[],
    }
}

/// Every prefix of a claimed service, for lines that must not be caught as any of them.
fn all_prefixes() -> Vec<&'static str> {
    CLAIMED
        .iter()
        .flat_map(|c| prefixes(*c).iter().copied())
        .collect()
}

fn has_header(line: &str) -> bool {
    let b = line.as_bytes();
    (b.len() > 15 && b[0].is_ascii_uppercase() && b[3] == b' ' && b[9] == b':')
        || (b.len() > 10 && b[4] == b'-' && b[7] == b'-')
}

fn corpus_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/sshguard-parser-tests.txt")
}

/// One corpus case: a log line, and sshguard's verdict (service code and address) or none.
struct Case {
    line: String,
    expected: Option<(u32, IpAddr)>,
}

fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus_path()).expect("the corpus in tests/corpus");
    let mut cases = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i + 1 < lines.len() {
        let (line, verdict) = (lines[i], lines[i + 1]);
        if line.is_empty() || line.starts_with('#') || line == "M" || line.starts_with("M ") {
            i += 1;
            continue;
        }
        let expected = if verdict == "*" {
            None
        } else {
            let mut w = verdict.split_whitespace();
            let code: u32 = w
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("verdict {verdict:?}"));
            let addr: IpAddr = w
                .next()
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("verdict {verdict:?}"));
            Some((code, addr))
        };
        cases.push(Case {
            line: line.to_string(),
            expected,
        });
        i += 2;
    }
    cases
}

/// sshguard service codes of what the shipped rules claim to cover: sshd, dropbear, named, dovecot,
/// exim, postfix, courier, ProFTPD, Pure-FTPd, vsftpd, web basic-auth failures, web bot probes and
/// MySQL.
const CLAIMED: [u32; 13] = [
    100, 101, 120, 210, 240, 260, 280, 310, 320, 330, 350, 360, 601,
];

/// Attacks of claimed services deliberately not caught, each with the reason.
const NOT_CAUGHT: [(&str, &str); 4] = [
    (
        "lost connection after CONNECT from",
        "health checks and impatient MTAs do the same; too noisy",
    ),
    (
        "postgrey[",
        "greylisting is normal mail delivery, not abuse",
    ),
    (
        "\"GET /wp-admin.php HTTP/1\" 401 - ",
        "a 401 without a user name is a browser's first basic-auth request",
    ),
    (
        "\"GET / HTTP/1.1\" 401 314",
        "a 401 without a user name is a browser's first basic-auth request",
    ),
];

fn same(a: IpAddr, b: IpAddr) -> bool {
    AddrKey::exact(a) == AddrKey::exact(b)
}

#[test]
fn sshguard_corpus() {
    let rules = shipped();
    let cases = corpus();
    assert!(cases.len() >= 216, "corpus read: {} cases", cases.len());
    let mut per_code: BTreeMap<u32, (u32, u32)> = BTreeMap::new();
    let mut failures = Vec::new();
    for c in &cases {
        let mut tries = vec![c.line.clone()];
        if !has_header(&c.line) {
            let extra = match &c.expected {
                Some((code, _)) => prefixes(*code).to_vec(),
                None => all_prefixes(),
            };
            tries.extend(extra.iter().map(|p| format!("{p}{}", c.line)));
        }
        let mut got = None;
        for t in &tries {
            match catch(&rules, t) {
                Err(text) => failures.push(format!("address error {text:?}: {t}")),
                Ok(Some((_, ip))) => {
                    got.get_or_insert(ip);
                    match &c.expected {
                        None => failures.push(format!("false positive {ip}: {t}")),
                        Some((_, want)) if !same(ip, *want) => {
                            failures.push(format!("caught {ip}, expected {want}: {t}"))
                        }
                        _ => {}
                    }
                }
                Ok(None) => {}
            }
        }
        if let Some((code, _)) = &c.expected {
            if got.is_some() {
                per_code.entry(*code).or_default().0 += 1;
            } else {
                per_code.entry(*code).or_default().1 += 1;
                let excused = NOT_CAUGHT.iter().any(|(s, _)| c.line.contains(s));
                if CLAIMED.contains(code) && !excused {
                    failures.push(format!("missed (service {code}): {}", c.line));
                }
            }
        }
    }
    eprintln!("sshguard corpus, per service code: caught / missed");
    for (code, (hit, miss)) in &per_code {
        let claimed = if CLAIMED.contains(code) {
            "claimed"
        } else {
            ""
        };
        eprintln!("  {code}: {hit} / {miss} {claimed}");
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Log lines as these services write them (syslog prefixes included), with the address each must
/// yield and the reason that must be recorded.
const ATTACKS: &[(&str, &str, &str)] = &[
    // OpenSSH
    ("Nov 21 10:01:02 gw sshd[1201]: Failed password for root from 203.0.113.9 port 52144 ssh2", "203.0.113.9", "sshd: failed authentication"),
    ("Nov 21 10:01:03 gw sshd[1201]: Failed password for invalid user oracle from 2001:db8:5::9 port 52145 ssh2", "2001:db8:5::9", "sshd: failed authentication"),
    ("Nov 21 10:01:04 gw sshd[1202]: Failed publickey for git from 198.51.100.23 port 40022 ssh2: RSA SHA256:abcdef", "198.51.100.23", "sshd: failed authentication"),
    ("Nov 21 10:01:05 gw sshd[1203]: Invalid user ubnt from 192.0.2.77 port 33902", "192.0.2.77", "sshd: invalid user"),
    ("Nov 21 10:01:06 gw sshd[1204]: Connection closed by invalid user admin 192.0.2.78 port 44120 [preauth]", "192.0.2.78", "sshd: disconnect before authentication"),
    ("Nov 21 10:01:07 gw sshd[1205]: Disconnected from authenticating user root 192.0.2.79 port 60122 [preauth]", "192.0.2.79", "sshd: disconnect before authentication"),
    ("Nov 21 10:01:08 gw sshd[1206]: Unable to negotiate with 192.0.2.80 port 47060: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]", "192.0.2.80", "sshd: key exchange failure"),
    ("Nov 21 10:01:09 gw sshd[1207]: error: maximum authentication attempts exceeded for root from 192.0.2.81 port 51002 ssh2 [preauth]", "192.0.2.81", "sshd: too many authentication failures"),
    ("Nov 21 10:01:10 gw sshd[1208]: Disconnecting authenticating user root 192.0.2.82 port 51003: Too many authentication failures [preauth]", "192.0.2.82", "sshd: too many authentication failures"),
    ("Nov 21 10:01:11 gw sshd[1209]: User guest from 192.0.2.83 not allowed because not listed in AllowUsers", "192.0.2.83", "sshd: user not allowed"),
    ("Nov 21 10:01:12 gw sshd[1210]: fatal: Timeout before authentication for 192.0.2.84 port 40000", "192.0.2.84", "sshd: login timeout"),
    ("Nov 21 10:01:13 gw sshd[1211]: Connection reset by 2001:db8:7::1 port 5022 [preauth]", "2001:db8:7::1", "sshd: disconnect before authentication"),
    // Postfix
    ("Nov 21 10:02:01 mx postfix/smtpd[3301]: warning: unknown[203.0.113.40]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", "203.0.113.40", "postfix: SASL authentication failed"),
    ("Nov 21 10:02:02 mx postfix/submission/smtpd[3302]: warning: host.example.net[2001:db8:40::2]:587: SASL PLAIN authentication failed: authentication failure", "2001:db8:40::2", "postfix: SASL authentication failed"),
    ("Nov 21 10:02:03 mx postfix/smtpd[3303]: NOQUEUE: reject: RCPT from spam.example.com[198.51.100.41]: 554 5.7.1 Service unavailable; Client host [198.51.100.41] blocked using zen.spamhaus.org; https://www.spamhaus.org/query/ip/198.51.100.41; from=<a@b.example> to=<me@example.org> proto=ESMTP helo=<x>", "198.51.100.41", "postfix: client on a DNS blocklist"),
    ("Nov 21 10:02:04 mx postfix/postscreen[3304]: DNSBL rank 6 for [198.51.100.42]:51234", "198.51.100.42", "postfix: client on a DNS blocklist"),
    ("Nov 21 10:02:05 mx postfix/smtpd[3305]: lost connection after AUTH from unknown[198.51.100.43]", "198.51.100.43", "postfix: lost connection after AUTH"),
    // Dovecot
    ("Nov 21 10:03:01 mx dovecot: imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<info>, method=PLAIN, rip=203.0.113.50, lip=192.0.2.1, TLS, session=<abc>", "203.0.113.50", "dovecot: authentication failed"),
    ("Nov 21 10:03:02 mx dovecot: pop3-login: Aborted login (auth failed, 1 attempts in 2 secs): user=<x>, method=PLAIN, rip=2001:db8:50::5, lip=2001:db8::1, session=<def>", "2001:db8:50::5", "dovecot: authentication failed"),
    ("Nov 21 10:03:03 mx dovecot: auth-worker(4012): pam(info,203.0.113.51,<Zx1>): unknown user", "203.0.113.51", "dovecot: authentication failed"),
    ("Nov 21 10:03:04 mx dovecot: auth: passwd-file(sales,203.0.113.52,<Zx2>): Password mismatch", "203.0.113.52", "dovecot: authentication failed"),
    // Courier
    ("Nov 21 10:04:01 mx imapd-ssl: LOGIN FAILED, user=webmaster, ip=[::ffff:203.0.113.60]", "203.0.113.60", "courier: login failed"),
    ("Nov 21 10:04:02 mx pop3d: LOGIN FAILED, method=PLAIN, ip=[2001:db8:60::6]", "2001:db8:60::6", "courier: login failed"),
    // Exim
    ("2026-11-21 10:05:01 dovecot_login authenticator failed for (User) [203.0.113.70]:50102: 535 Incorrect authentication data (set_id=admin@example.org)", "203.0.113.70", "exim: authentication failed"),
    ("2026-11-21 10:05:02 H=(ylmf-pc) [203.0.113.71]:61000 F=<spam@example.com> rejected RCPT <me@example.org>: JunkMail rejected - 203.0.113.71 is listed at zen.spamhaus.org", "203.0.113.71", "exim: client on a DNS blocklist"),
    ("2026-11-21 10:05:03 SMTP protocol error in \"AUTH LOGIN\" H=(User) [2001:db8:70::7] AUTH command used when not advertised", "2001:db8:70::7", "exim: AUTH protocol abuse"),
    // vsftpd and ProFTPD
    ("Sat Nov 21 10:06:01 2026 [pid 5521] [anonymous] FAIL LOGIN: Client \"::ffff:203.0.113.80\"", "203.0.113.80", "vsftpd: login failed"),
    ("Sat Nov 21 10:06:02 2026 [pid 5522] [admin] FAIL LOGIN: Client \"2001:db8:80::8\"", "2001:db8:80::8", "vsftpd: login failed"),
    ("Nov 21 10:06:03 ftp proftpd[6601]: ftp.example.org (203.0.113.81[203.0.113.81]) - USER administrator: no such user found from 203.0.113.81 [203.0.113.81] to 192.0.2.1:21", "203.0.113.81", "proftpd: no such user"),
    ("Nov 21 10:06:04 ftp proftpd[6602]: ftp.example.org (203.0.113.82[203.0.113.82]) - USER bob (Login failed): Incorrect password", "203.0.113.82", "proftpd: login failed"),
    ("Nov 21 10:06:05 ftp proftpd[6603]: ftp.example.org (203.0.113.83[203.0.113.83]) - Maximum login attempts (3) exceeded, connection refused", "203.0.113.83", "proftpd: too many login attempts"),
    // Apache and nginx
    ("[Sat Nov 21 10:07:01.123456 2026] [auth_basic:error] [pid 7701:tid 140] [client 203.0.113.90:51000] AH01617: user admin: authentication failure for \"/private\": Password Mismatch", "203.0.113.90", "apache: basic auth password mismatch"),
    ("[Sat Nov 21 10:07:02.123456 2026] [auth_basic:error] [pid 7702:tid 141] [client 2001:db8:90::9:51001] AH01618: user nosuch not found: /private", "2001:db8:90::9", "apache: basic auth unknown user"),
    ("[Sat Nov 21 10:07:03 2026] [error] [client 203.0.113.91] user admin: authentication failure for \"/admin\": Password Mismatch", "203.0.113.91", "apache: basic auth password mismatch"),
    ("[Sat Nov 21 10:07:03 2026] [error] [client 2001:db8:91::1] user nobody not found: /admin", "2001:db8:91::1", "apache: basic auth unknown user"),
    ("2026/11/21 10:07:04 [error] 8801#8801: *12 user \"admin\": password mismatch, client: 203.0.113.92, server: example.org, request: \"GET /private/ HTTP/1.1\", host: \"example.org\"", "203.0.113.92", "nginx: basic auth failure"),
    ("2026/11/21 10:07:05 [error] 8801#8801: *13 user \"root\" was not found in \"/etc/nginx/.htpasswd\", client: 2001:db8:92::1, server: example.org, request: \"GET /private/ HTTP/2.0\"", "2001:db8:92::1", "nginx: basic auth failure"),
    ("203.0.113.93 - admin [21/Nov/2026:10:07:06 +0000] \"GET /private/ HTTP/1.1\" 401 381 \"-\" \"curl/8.5.0\"", "203.0.113.93", "web: basic auth failure"),
    // Generic PAM
    ("Nov 21 10:08:01 gw login[9901]: pam_unix(login:auth): authentication failure; logname= uid=0 euid=0 tty=/dev/pts/1 ruser= rhost=203.0.113.99  user=root", "203.0.113.99", "pam: authentication failure"),
];

/// Lines of normal operation that must never ban anyone.
const BENIGN: &[&str] = &[
    "Nov 21 11:00:01 gw sshd[2001]: Accepted publickey for alice from 192.0.2.10 port 50000 ssh2: ED25519 SHA256:xyz",
    "Nov 21 11:00:02 gw sshd[2002]: Accepted password for bob from 2001:db8::10 port 50001 ssh2",
    "Nov 21 11:00:03 gw sshd[2003]: Disconnected from user alice 192.0.2.10 port 50000",
    "Nov 21 11:00:04 gw sshd[2004]: Received disconnect from 192.0.2.10 port 50000:11: disconnected by user",
    "Nov 21 11:00:05 gw sshd[2005]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
    "Nov 21 11:00:06 mx postfix/smtpd[3401]: connect from mail.example.net[198.51.100.5]",
    "Nov 21 11:00:07 mx postfix/smtpd[3402]: 4F1A2: client=mail.example.net[198.51.100.5], sasl_method=PLAIN, sasl_username=alice",
    "Nov 21 11:00:08 mx dovecot: imap-login: Login: user=<alice>, method=PLAIN, rip=192.0.2.10, lip=192.0.2.1, mpid=123, TLS",
    "Nov 21 11:00:09 mx imapd-ssl: LOGIN, user=alice, ip=[::ffff:192.0.2.10], port=[50012], protocol=IMAP",
    "2026-11-21 11:00:10 1vABCD-0001 <= alice@example.org H=(laptop) [192.0.2.10] P=esmtpsa A=dovecot_login:alice S=1234",
    "Sat Nov 21 11:00:11 2026 [pid 5601] [alice] OK LOGIN: Client \"::ffff:192.0.2.10\"",
    "192.0.2.10 - alice [21/Nov/2026:11:00:12 +0000] \"GET /private/ HTTP/1.1\" 200 5120 \"-\" \"Mozilla/5.0\"",
    "192.0.2.11 - - [21/Nov/2026:11:00:13 +0000] \"GET /private/ HTTP/1.1\" 401 381 \"-\" \"Mozilla/5.0\"",
    "[Sat Nov 21 11:00:14.1 2026] [ssl:info] [pid 7801:tid 1] [client 192.0.2.12:50100] AH01964: Connection to child 3 established",
];

#[test]
fn realistic_lines_of_every_claimed_service() {
    let rules = shipped();
    let mut failures = Vec::new();
    for (line, addr, _what) in ATTACKS {
        match catch(&rules, line) {
            Ok(Some((_, ip))) if same(ip, addr.parse().unwrap()) => {}
            other => failures.push(format!("{other:?} instead of {addr}: {line}")),
        }
    }
    // Benign lines are tried in every mode: even the aggressive set must leave them alone.
    for mode in [Mode::Normal, Mode::Aggressive] {
        let rules =
            RuleSet::with_mode(ipqbdb_parse::rules::load(&rule_path()).unwrap(), mode).unwrap();
        for line in BENIGN {
            if let Ok(Some((rule, ip))) = catch(&rules, line) {
                failures.push(format!(
                    "{mode}: false positive {ip} by {:?}: {line}",
                    rules.rules()[rule].reason
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shipped_rule_is_exercised() {
    // Every rule must be reached by a realistic line: ours, sshguard's, or one of fail2ban's sample
    // logs (the injection test checks the same with injection lines).
    let rules = RuleSet::with_mode(
        ipqbdb_parse::rules::load(&rule_path()).unwrap(),
        Mode::Aggressive,
    )
    .unwrap();
    let mut used = vec![false; rules.rules().len()];
    let mut lines: Vec<String> = ATTACKS.iter().map(|a| a.0.to_string()).collect();
    for c in corpus() {
        if let Some((code, _)) = c.expected {
            lines.extend(prefixes(code).iter().map(|p| format!("{p}{}", c.line)));
        }
        lines.push(c.line);
    }
    let samples = Path::new("/usr/lib/python3/dist-packages/fail2ban/tests/files/logs");
    for entry in
        std::fs::read_dir(samples).expect("fail2ban's sample logs (apt-get install fail2ban)")
    {
        let text = std::fs::read(entry.unwrap().path()).unwrap();
        lines.extend(
            String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from),
        );
    }
    let mut sessions = Sessions::default();
    for line in &lines {
        match sessions.count(&rules, rules.check(line.as_bytes(), None), 0) {
            Counted::Caught { rule, .. } | Counted::Noted { rule, .. } => used[rule] = true,
            _ => {}
        }
    }
    let unused: Vec<String> = rules
        .rules()
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(r, _)| format!("line {}: {}", r.line, r.reason))
        .collect();
    assert!(
        unused.is_empty(),
        "rules no realistic line reaches:\n{}",
        unused.join("\n")
    );
}
