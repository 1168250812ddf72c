//! The shipped rule set against realistic log lines, written here, of every service it claims to
//! cover: attacks it must catch for the right address, and normal operation it must leave alone.

use crate::common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipqbdb_core::AddrKey;
use ipqbdb_parse::matcher::RuleSet;
use ipqbdb_parse::rules::RuleMode;
use ipqbdb_parse::sessions::{LineCount, Sessions};

use common::service_lines::{SERVICE_LINES, UNCLAIMED};

/// What one line, alone, does: the rule that caught it and the address (notes and misses: none).
fn catch(rules: &RuleSet, line: &str) -> Result<Option<(usize, IpAddr)>, String> {
    match Sessions::default().count(rules, rules.check(line.as_bytes(), None), 0) {
        LineCount::Caught { rule, ip, .. } => Ok(Some((rule, ip))),
        LineCount::BadAddress { text, .. } => Err(text),
        _ => Ok(None),
    }
}

fn same(a: IpAddr, b: IpAddr) -> bool {
    AddrKey::exact(a) == AddrKey::exact(b)
}

#[test]
fn own_lines_of_each_service() {
    // Every attack of a claimed service is caught by the whole set (aggressive), for its address;
    // no line of normal operation is banned by the default set.
    let rules = common::rules(RuleMode::Normal);
    let all = common::rules(RuleMode::Aggressive);
    // Per service: attacks caught, attacks missed, normal lines, normal lines caught.
    let mut per_service: BTreeMap<&str, [u32; 4]> = BTreeMap::new();
    let mut failures = Vec::new();
    for (service, line, want) in SERVICE_LINES {
        let claimed = !UNCLAIMED.contains(service);
        let counts = per_service.entry(service).or_default();
        let want = want.map(|a| a.parse::<IpAddr>().unwrap());
        let set = if want.is_some() { &all } else { &rules };
        match (catch(set, line), want) {
            (Err(text), _) => failures.push(format!("address error {text:?}: {line}")),
            (Ok(Some((_, ip))), Some(want)) => {
                counts[0] += 1;
                if !same(ip, want) {
                    failures.push(format!("caught {ip}, expected {want}: {line}"));
                }
            }
            (Ok(None), Some(_)) => {
                counts[1] += 1;
                if claimed {
                    failures.push(format!("missed ({service}): {line}"));
                }
            }
            (Ok(Some((_, ip))), None) => {
                counts[2] += 1;
                counts[3] += 1;
                failures.push(format!("false catch {ip} ({service}): {line}"));
            }
            (Ok(None), None) => counts[2] += 1,
        }
    }
    eprintln!("own lines, per service: attacks caught / missed, normal lines caught / seen");
    for (service, [hit, miss, normal, wrong]) in &per_service {
        let claimed = if UNCLAIMED.contains(service) {
            ""
        } else {
            "claimed"
        };
        eprintln!("  {service}: {hit} / {miss}, {wrong} / {normal} {claimed}");
        if !UNCLAIMED.contains(service) && (hit + miss == 0 || *normal == 0) {
            failures.push(format!(
                "{service}: needs at least one attack and one normal line"
            ));
        }
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
];

/// Forms and messages the corpora lack (syslog forms of services that also write their own files,
/// address-less lines after the line that names the client), in order: they share sessions.
const MORE_FORMS: &[&str] = &[
    "Nov 21 10:09:01 gw sshd[3001]: Failed none for invalid user admin from 203.0.113.10 port 40100 ssh2",
    "Nov 21 10:09:02 gw sshd[3002]: drop connection #3 from [203.0.113.11]:40101 on [192.0.2.1]:22 penalty: failed authentication",
    "Nov 21 10:09:03 gw [sshd]: Failed password for root from 203.0.113.12 port 40102 ssh2",
    "Nov 21 10:09:04 gw sshd[3004]: drop connection #4 from [203.0.113.13]:40103 on [192.0.2.1]:22 past MaxStartups",
    "Nov 21 10:09:05 gw dropbear[3005]: Child connection from 203.0.113.14:40104",
    "Nov 21 10:09:06 gw dropbear[3006]: Exit before auth from <203.0.113.15:40105>: (user 'root', 10 fails): Max auth tries reached - user 'root'",
    "Nov 21 10:09:07 gw dropbear[3007]: Child connection from 203.0.113.16:40106",
    "Nov 21 10:09:07 gw dropbear[3007]: Exit before auth (user 'root', 10 fails): Max auth tries reached - user 'root'",
    "Nov 21 10:09:08 mx roundcube: FAILED login for admin from 203.0.113.17",
    "Nov 21 10:09:09 web nginx: 2026/11/21 10:09:09 [error] 812#812: *33 limiting connections by zone \"addr\", client: 203.0.113.18, server: example.org, request: \"GET / HTTP/1.1\", host: \"example.org\"",
    "Nov 21 10:09:10 ftp proftpd[3010] ftp.example.org (203.0.113.19[203.0.113.19]): USER nosuch: no such user found from 203.0.113.19 [203.0.113.19] to 192.0.2.1:21",
    "Nov 21 10:09:11 ftp proftpd[3011] ftp.example.org (203.0.113.20[203.0.113.20]): USER bob (Login failed): Incorrect password",
    "Nov 21 10:09:12 ftp proftpd[3012] ftp.example.org (203.0.113.21[203.0.113.21]): SECURITY VIOLATION: Root login attempted",
    "Nov 21 10:09:13 ftp proftpd[3013] ftp.example.org (203.0.113.22[203.0.113.22]): Maximum login attempts (3) exceeded",
    "Nov 21 10:09:14 pbx asterisk[3014]: NOTICE[1638] chan_sip.c: Call from '' (203.0.113.23:5060) to extension '0046123' rejected because extension not found in context 'default'.",
    "Nov 21 10:09:15 pbx asterisk[3015]: NOTICE[1638] res_pjsip/pjsip_distributor.c: Request 'INVITE' from '<sip:100@192.0.2.1>' failed for '203.0.113.24:5060' (callid: abc@x) - No matching endpoint found",
    "Nov 21 10:09:16 pbx asterisk[3016]: NOTICE[1638] chan_iax2.c: Host 203.0.113.25 failed MD5 authentication for 'admin' (a != b)",
    "Nov 21 10:09:17 pbx asterisk[3017]: NOTICE[1638] chan_iax2.c: No registration for peer 'x' (from 203.0.113.26)",
    "Nov 21 10:09:18 pbx asterisk[3018]: NOTICE[1638] chan_sip.c: hacking attempt detected '203.0.113.27'",
    "Nov 21 10:09:19 pbx asterisk[3019]: SECURITY[1204] res_security_log.c: SecurityEvent=\"InvalidAccountID\",EventTV=\"1368439853-500975\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"1\",AccountID=\"00972599580679\",SessionID=\"0x7f8ecc0421f8\",LocalAddress=\"IPV4/UDP/192.0.2.1/5060\",RemoteAddress=\"IPV4/UDP/203.0.113.28/5070\"",
    "Nov 21 10:09:20 pbx asterisk[3020]: SECURITY[1204] res_security_log.c: SecurityEvent=\"InvalidPassword\",EventTV=\"1389368346-880526\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"2\",AccountID=\"1001\",SessionID=\"0x7f8ecc0421f8\",LocalAddress=\"IPV4/UDP/192.0.2.1/5060\",RemoteAddress=\"IPV4/UDP/203.0.113.29/5060\",Challenge=\"1234\",ReceivedChallenge=\"1234\",ReceivedHash=\"abcd\"",
];

/// Lines of normal operation that must never ban anyone.
const BENIGN: &[&str] = &[
    // Clients try their keys in turn: a refused key is no attack by itself.
    "Nov 21 11:00:00 gw sshd[1202]: Failed publickey for git from 198.51.100.23 port 40022 ssh2: RSA SHA256:abcdef",
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
    let mut failures = Vec::new();
    // Each attack is caught by the rule set of some mode (the whole set).
    let all = common::rules(RuleMode::Aggressive);
    for (line, addr, _what) in ATTACKS {
        match catch(&all, line) {
            Ok(Some((_, ip))) if same(ip, addr.parse().unwrap()) => {}
            other => failures.push(format!("{other:?} instead of {addr}: {line}")),
        }
    }
    // The other forms, in order with shared sessions: each line that names 203.0.113.x (or names no
    // address but follows one of its session) bans that address or is a note.
    let mut sessions = Sessions::default();
    let mut last = None;
    for line in MORE_FORMS {
        let want = line
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .find(|w| w.starts_with("203.0.113."))
            .map(String::from)
            .or_else(|| last.clone());
        last = want.clone();
        match sessions.count(&all, all.check(line.as_bytes(), None), 0) {
            LineCount::Caught { ip, .. } | LineCount::Noted { ip, .. }
                if want
                    .as_deref()
                    .is_some_and(|w| same(ip, w.parse().unwrap())) => {}
            other => failures.push(format!("{other:?} instead of {want:?}: {line}")),
        }
    }
    // Benign lines are tried in every mode: even the aggressive set must leave them alone.
    for mode in [RuleMode::Normal, RuleMode::Aggressive] {
        let rules = common::rules(mode);
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

/// What real servers write that the rules once missed (issue 26), written from each program's log
/// format: the default set must catch each, with the address and reason given.
const SERVER_FORMS: &[(&str, &str, &str)] = &[
    // postfix with dovecot SASL: the reason is unavailable, the SASL user name follows.
    ("Dec  7 10:00:01 mx postfix/smtpd[3301]: warning: unknown[203.0.113.40]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=user@example.org", "203.0.113.40", "postfix: SASL authentication failed"),
    ("Dec  7 10:00:01 mx postfix/submission/smtpd[3302]: warning: mail.example.net[2001:db8:40::1]:587: SASL PLAIN authentication failed: authentication failure, sasl_username=bob", "2001:db8:40::1", "postfix: SASL authentication failed"),
    // exim through syslog without its own timestamp, with and without the client's port.
    ("Dec  7 10:00:02 mx exim[1234]: dovecot_login authenticator failed for (helo) [203.0.113.42]:50102: 535 Incorrect authentication data (set_id=admin)", "203.0.113.42", "exim: authentication failed"),
    ("exim[1234]: dovecot_login authenticator failed for host [203.0.113.43]: 535 Incorrect authentication data", "203.0.113.43", "exim: authentication failed"),
    // exim's TLS fields (X=, CV=) before the sender; cPanel's answer for an unknown recipient.
    ("2026-12-07 10:00:03 H=(helo) [203.0.113.44]:4321 X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no F=<a@b.example> rejected RCPT <x@example.org>: relay not permitted", "203.0.113.44", "exim: recipient rejected"),
    ("2026-12-07 10:00:03 [4321] H=host.example.net (helo) [203.0.113.45]:4321 I=[192.0.2.1]:25 X=TLS1.2:ECDHE-RSA-AES256-GCM-SHA384:256 CV=no F=<a@b.example> rejected RCPT <x@example.org>: No Such User Here", "203.0.113.45", "exim: recipient rejected"),
    // BIND: print-time through syslog, and channel files without timestamps.
    ("Dec  7 10:00:04 ns named[812]: 07-Dec-2026 10:00:04.425 client @0x7f1234567890 203.0.113.46#53124 (example.org): query (cache) 'example.org/ANY/IN' denied", "203.0.113.46", "named: query or zone transfer denied"),
    ("Dec  7 10:00:04 ns named[812]: 07-Dec-2026 10:00:04.425 client @0x7f1234567890 2001:db8:46::7#53124 (example.org): zone transfer 'example.org/AXFR/IN' denied", "2001:db8:46::7", "named: query or zone transfer denied"),
    ("security: client @0x7f1234567890 203.0.113.48#53124 (example.org): query (cache) 'example.org/ANY/IN' denied", "203.0.113.48", "named: query or zone transfer denied"),
    ("client @0x7f1234567890 203.0.113.49#53124 (example.org): zone transfer 'example.org/AXFR/IN' denied", "203.0.113.49", "named: query or zone transfer denied"),
    // nginx through syslog: nginx writes its host name after the syslog daemon's.
    ("Dec  7 10:00:05 web web nginx: 2026/12/07 10:00:05 [error] 812#812: *33 user \"admin\": password mismatch, client: 203.0.113.50, server: example.org, request: \"GET /private/ HTTP/1.1\", host: \"example.org\"", "203.0.113.50", "nginx: basic auth failure"),
    ("Dec  7 10:00:05 web web nginx: 203.0.113.51 - admin [07/Dec/2026:10:00:05 +0000] \"GET /private/ HTTP/1.1\" 401 381 \"-\" \"curl/8.5.0\"", "203.0.113.51", "web: basic auth failure"),
    ("Dec  7 10:00:05 web nginx[812]: 203.0.113.56 - - [07/Dec/2026:10:00:05 +0000] \"GET /phpmyadmin/ HTTP/1.1\" 404 153 \"-\" \"-\"", "203.0.113.56", "web: probe for admin/webmail path"),
    // The nginx mail proxy, in its own error log and through syslog.
    ("2026/12/07 10:00:06 [info] 812#812: *34 client login failed: \"Authentication credentials invalid\" while in http auth state, client: 203.0.113.52, server: 0.0.0.0:993, login: \"bob\"", "203.0.113.52", "nginx: mail proxy login failed"),
    ("Dec  7 10:00:06 mail mail nginx: 2026/12/07 10:00:06 [info] 812#812: *35 client login failed: \"Authentication credentials invalid\" while in http auth state, client: 2001:db8:52::1, server: [::]:143", "2001:db8:52::1", "nginx: mail proxy login failed"),
    // vsftpd's own log pads the day with one space or none.
    ("Mon Jun 8 12:08:53 2026 [pid 5521] [bob] FAIL LOGIN: Client \"203.0.113.54\"", "203.0.113.54", "vsftpd: login failed"),
    ("Mon Jun  8 12:08:53 2026 [pid 5521] [bob] FAIL LOGIN: Client \"::ffff:203.0.113.53\"", "203.0.113.53", "vsftpd: login failed"),
];

/// A failed login in MySQL's general query log.
const MYSQL_GENERAL_LOG: &str = "2026-12-07T10:00:07.123456Z\t   12 Connect\tAccess denied for user 'root'@'203.0.113.55' (using password: YES)";

#[test]
fn what_real_servers_write_is_caught_in_the_default_set() {
    let rules = common::rules(RuleMode::Normal);
    let mut failures = Vec::new();
    for (line, addr, reason) in SERVER_FORMS {
        match catch(&rules, line) {
            Ok(Some((rule, ip)))
                if same(ip, addr.parse().unwrap()) && rules.rules()[rule].reason == *reason => {}
            Ok(Some((rule, ip))) => failures.push(format!(
                "{ip} by {:?} instead of {addr} by {reason:?}: {line}",
                rules.rules()[rule].reason
            )),
            other => failures.push(format!("{other:?} instead of {addr}: {line}")),
        }
    }
    // MySQL's general query log writes queries as sent, newlines included: its line is caught
    // only by the aggressive set.
    let general = MYSQL_GENERAL_LOG;
    if let Ok(Some((_, ip))) = catch(&rules, general) {
        failures.push(format!("normal set caught {ip}: {general}"));
    }
    match catch(&common::rules(RuleMode::Aggressive), general) {
        Ok(Some((_, ip))) if same(ip, "203.0.113.55".parse().unwrap()) => {}
        other => failures.push(format!("aggressive: {other:?}: {general}")),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_shipped_rule_is_exercised() {
    // Every rule must be reached by a realistic line: ours, or one of fail2ban's sample
    // logs (the injection test checks the same with injection lines).
    let rules = common::rules(RuleMode::Aggressive);
    let mut used = vec![false; rules.rules().len()];
    let mut lines: Vec<String> = ATTACKS.iter().map(|a| a.0.to_string()).collect();
    lines.extend(MORE_FORMS.iter().map(|l| l.to_string()));
    lines.extend(SERVER_FORMS.iter().map(|a| a.0.to_string()));
    lines.push(MYSQL_GENERAL_LOG.to_string());
    lines.extend(SERVICE_LINES.iter().map(|(_, l, _)| l.to_string()));
    let samples = Path::new(common::FAIL2BAN_SAMPLES);
    for entry in
        std::fs::read_dir(samples).expect("fail2ban's sample logs (apt-get install fail2ban)")
    {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue;
        }
        let text = std::fs::read(path).unwrap();
        // Blocks whose options give a prefix (the journal form of a service) get it, as in
        // fail2ban's own test.
        let mut prefix = String::new();
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some(opts) = line.strip_prefix("# filterOptions:") {
                prefix = opts
                    .split("\"test.prefix-line\": \"")
                    .nth(1)
                    .and_then(|p| p.split('"').next())
                    .unwrap_or("")
                    .to_string();
            } else if !line.starts_with('#') {
                lines.push(format!("{prefix}{line}"));
            }
        }
    }
    let mut sessions = Sessions::default();
    for line in &lines {
        match sessions.count(&rules, rules.check(line.as_bytes(), None), 0) {
            LineCount::Caught { rule, .. } | LineCount::Noted { rule, .. } => used[rule] = true,
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
