//! Log lines of the services the shipped rules cover, shared by the tests of the rules
//! (`shipped_rules.rs`) and of the address automata (`fast_capture.rs`).

/// Log lines of each service the shipped rules claim (and of a few they do not), written here from
/// each program's documented log formats: hosts, users, pids, times and addresses are made up. Each
/// is `(service, line, address)`: the address an attack line must be banned for, or `None` for a
/// line of normal operation (or an attack deliberately left alone, with the reason beside it) that
/// the default set must not ban.
pub const SERVICE_LINES: &[(&str, &str, Option<&str>)] = &[
    // OpenSSH
    ("sshd", "Mar  3 04:12:55 bastion sshd[28817]: Failed password for invalid user pi from 198.51.100.201 port 41122 ssh2", Some("198.51.100.201")),
    ("sshd", "Mar  3 04:12:56 bastion sshd[28818]: Failed password for root from 2001:db8:aa::17 port 22910 ssh2", Some("2001:db8:aa::17")),
    ("sshd", "Mar  3 04:12:57 bastion sshd[28819]: Invalid user test from 198.51.100.202 port 50312", Some("198.51.100.202")),
    ("sshd", "Mar  3 04:12:58 bastion sshd[28820]: Failed keyboard-interactive/pam for invalid user support from 198.51.100.203 port 61200 ssh2", Some("198.51.100.203")),
    ("sshd", "Mar  3 04:12:59 bastion sshd[28821]: error: PAM: Authentication failure for illegal user admin from 198.51.100.204", Some("198.51.100.204")),
    ("sshd", "Mar  3 04:13:00 bastion sshd[28822]: Did not receive identification string from 198.51.100.206 port 34001", Some("198.51.100.206")),
    ("sshd", "Mar  3 04:13:01 bastion sshd[28823]: Bad protocol version identification 'GET / HTTP/1.1' from 198.51.100.207 port 50022", Some("198.51.100.207")),
    ("sshd", "Mar  3 04:13:02 bastion sshd[28824]: refused connect from 198.51.100.209 (198.51.100.209)", Some("198.51.100.209")),
    ("sshd", "Mar  3 04:13:03 bastion sshd[28825]: User root from 198.51.100.210 not allowed because listed in DenyUsers", Some("198.51.100.210")),
    ("sshd", "Mar  3 04:13:04 bastion sshd[28826]: Connection closed by authenticating user git 198.51.100.212 port 33322 [preauth]", Some("198.51.100.212")),
    ("sshd", "Mar  3 04:13:05 bastion sshd[28827]: banner exchange: Connection from 198.51.100.213 port 54000: invalid format", Some("198.51.100.213")),
    ("sshd", "Mar  3 04:13:06 bastion sshd[28828]: Unable to negotiate with 2001:db8:aa::18 port 50100: no matching key exchange method found. Their offer: diffie-hellman-group1-sha1 [preauth]", Some("2001:db8:aa::18")),
    ("sshd", "Mar  3 04:13:07 bastion sshd[28829]: Disconnecting invalid user admin 198.51.100.215 port 42000: Too many authentication failures [preauth]", Some("198.51.100.215")),
    ("sshd", "Mar  3 04:13:07 bastion sshd[701]: drop connection #0 from [198.51.100.216]:50123 on [192.0.2.1]:22 penalty: exceeded LoginGraceTime", Some("198.51.100.216")),
    ("sshd", "Mar  3 04:13:08 bastion sshd[28830]: Accepted publickey for deploy from 192.0.2.50 port 51000 ssh2: ED25519 SHA256:Q2xhc3NpYw", None),
    ("sshd", "Mar  3 04:13:09 bastion sshd[28830]: pam_unix(sshd:session): session closed for user deploy", None),
    ("sshd", "Mar  3 04:13:10 bastion sshd[28830]: Disconnected from user deploy 192.0.2.50 port 51000", None),
    ("sshd", "Mar  3 04:13:11 bastion sshd[702]: Server listening on 0.0.0.0 port 22.", None),
    // Dropbear
    ("dropbear", "Jul 14 22:05:01 router dropbear[1432]: Bad password attempt for 'root' from 198.51.100.31:50212", Some("198.51.100.31")),
    ("dropbear", "Jul 14 22:05:02 router dropbear[1433]: Login attempt for nonexistent user 'admin' from 198.51.100.32:40111", Some("198.51.100.32")),
    ("dropbear", "Jul 14 22:05:03 router dropbear[1434]: Exit before auth from <198.51.100.33:41000>: (user 'admin', 10 fails): Max auth tries reached - user 'admin'", Some("198.51.100.33")),
    ("dropbear", "Jul 14 22:05:03 router dropbear[1436]: Exit before auth from <198.51.100.34:41001>: Error reading: Connection reset by peer", Some("198.51.100.34")),
    ("dropbear", "Jul 14 22:05:04 router dropbear[1435]: Password auth succeeded for 'root' from 192.0.2.60:50000", None),
    ("dropbear", "Jul 14 22:05:05 router dropbear[1435]: Exit (root) from <192.0.2.60:50000>: Disconnect received", None),
    // BIND
    ("named", "Feb  2 08:30:11 ns1 named[702]: client @0x7f00aa001122 198.51.100.41#40001 (example.com): query (cache) 'example.com/A/IN' denied", Some("198.51.100.41")),
    ("named", "Feb  2 08:30:12 ns1 named[702]: client @0x7f00aa001123 2001:db8:bb::4#5353 (example.net): zone transfer 'example.net/AXFR/IN' denied", Some("2001:db8:bb::4")),
    ("named", "Feb  2 08:30:13 ns1 named[702]: client 198.51.100.42#1024 (version.bind): query (cache) 'version.bind/TXT/CH' denied", Some("198.51.100.42")),
    ("named", "Feb  2 08:30:14 ns1 named[702]: client @0x7f00aa001124 192.0.2.70#40100 (www.example.com): query: www.example.com IN A + (192.0.2.1)", None),
    ("named", "Feb  2 08:30:15 ns1 named[702]: zone example.com/IN: loaded serial 2026120701", None),
    // Dovecot
    ("dovecot", "Apr  9 17:44:02 mail dovecot: imap-login: Disconnected (auth failed, 2 attempts in 8 secs): user=<postmaster>, method=PLAIN, rip=198.51.100.51, lip=192.0.2.5, TLS, session=<kP3aQ>", Some("198.51.100.51")),
    ("dovecot", "Apr  9 17:44:03 mail dovecot: pop3-login: Disconnected (auth failed, 1 attempts in 4 secs): user=<test>, method=LOGIN, rip=2001:db8:cc::5, lip=2001:db8::5, session=<aB1>", Some("2001:db8:cc::5")),
    ("dovecot", "Apr  9 17:44:04 mail dovecot: auth: pam(admin,198.51.100.52,<Yw2>): pam_authenticate() failed: Authentication failure (password mismatch?)", Some("198.51.100.52")),
    ("dovecot", "Apr  9 17:44:05 mail dovecot: auth-worker(9122): sql(info@example.com,198.51.100.53,<Qq9>): unknown user", Some("198.51.100.53")),
    ("dovecot", "Apr  9 17:44:06 mail dovecot: imap-login: Login: user=<carol>, method=PLAIN, rip=192.0.2.80, lip=192.0.2.5, mpid=4411, TLS, session=<x>", None),
    ("dovecot", "Apr  9 17:44:07 mail dovecot: imap(carol)<4411><x>: Logged out in=120 out=3400", None),
    // Exim, its own main log
    ("exim", "2026-03-14 09:12:33 plain_login authenticator failed for ([192.0.2.1]) [198.51.100.61]:51234: 535 Incorrect authentication data (set_id=sales@example.com)", Some("198.51.100.61")),
    ("exim", "2026-03-14 09:12:34 login authenticator failed for (WIN-ABC) [2001:db8:dd::6]:40012: 535 Incorrect authentication data", Some("2001:db8:dd::6")),
    ("exim", "2026-03-14 09:12:35 H=(mail.spammer.example) [198.51.100.62]:40100 F=<x@spammer.example> rejected RCPT <ceo@example.com>: 198.51.100.62 is listed at bl.spamcop.net", Some("198.51.100.62")),
    ("exim", "2026-03-14 09:12:36 SMTP protocol synchronization error (input sent without waiting for greeting): rejected connection from H=[198.51.100.63]:40200 input=\"EHLO x\\r\\n\"", Some("198.51.100.63")),
    ("exim", "2026-03-14 09:12:37 SMTP call from (User) [198.51.100.65]:40400 dropped: too many syntax or protocol errors (last command was \"AUTH LOGIN\", C=EHLO,AUTH)", Some("198.51.100.65")),
    ("exim", "2026-03-14 09:12:38 1vXYZ1-000ABC-2Q <= bob@example.com H=laptop.example.com [192.0.2.90]:50000 P=esmtpsa X=TLS1.3:TLS_AES_256_GCM_SHA384:256 CV=no A=dovecot_plain:bob S=4321 id=x@example.com", None),
    ("exim", "2026-03-14 09:12:39 1vXYZ1-000ABC-2Q Completed", None),
    ("exim", "2026-03-14 09:12:40 SMTP connection from [192.0.2.91]:50100 (TCP/IP connection count = 1)", None),
    // Postfix
    ("postfix", "Oct 30 23:01:45 relay postfix/smtpd[18222]: warning: unknown[198.51.100.71]: SASL LOGIN authentication failed: authentication failure", Some("198.51.100.71")),
    ("postfix", "Oct 30 23:01:46 relay postfix/smtpd[18223]: NOQUEUE: reject: RCPT from unknown[198.51.100.72]: 554 5.7.1 <spam@example.net>: Relay access denied; from=<a@example.net> to=<spam@example.net> proto=ESMTP helo=<ylmf-pc>", Some("198.51.100.72")),
    ("postfix", "Oct 30 23:01:47 relay postfix/smtpd[18224]: improper command pipelining after CONNECT from unknown[198.51.100.73]: \\r\\n", Some("198.51.100.73")),
    ("postfix", "Oct 30 23:01:48 relay postfix/smtpd[18225]: warning: non-SMTP command from unknown[198.51.100.74]: GET / HTTP/1.1", Some("198.51.100.74")),
    ("postfix", "Oct 30 23:01:49 relay postfix/smtpd[18226]: too many errors after RCPT from unknown[198.51.100.75]", Some("198.51.100.75")),
    ("postfix", "Oct 30 23:01:50 relay postfix/smtpd[18227]: lost connection after AUTH from unknown[198.51.100.76]", Some("198.51.100.76")),
    ("postfix", "Oct 30 23:01:51 relay postfix/postscreen[18228]: PREGREET 11 after 0.15 from [198.51.100.77]:40500: EHLO User\\r\\n", Some("198.51.100.77")),
    ("postfix", "Oct 30 23:01:52 relay postfix/postscreen[18228]: DNSBL rank 4 for [198.51.100.78]:40600", Some("198.51.100.78")),
    ("postfix", "Oct 30 23:01:53 relay postfix/postscreen[18228]: COMMAND COUNT LIMIT from [198.51.100.79]:40700 after RCPT", Some("198.51.100.79")),
    ("postfix", "Oct 30 23:01:54 relay postfix/smtpd[18229]: connect from localhost[127.0.0.1]", None),
    ("postfix", "Oct 30 23:01:55 relay postfix/smtpd[18230]: disconnect from mail.example.org[192.0.2.100] ehlo=2 starttls=1 mail=1 rcpt=1 data=1 quit=1 commands=7", None),
    ("postfix", "Oct 30 23:01:56 relay postfix/postscreen[18228]: PASS OLD [192.0.2.102]:50000", None),
    // Left alone on purpose: health checks and impatient MTAs do the same; too noisy.
    ("postfix", "Oct 30 23:01:57 relay postfix/smtpd[18231]: lost connection after CONNECT from unknown[192.0.2.101]", None),
    // Left alone on purpose: greylisting is normal mail delivery, not abuse.
    ("postfix", "Oct 30 23:01:58 relay postgrey[901]: action=greylist, reason=new, client_name=unknown, client_address=192.0.2.104, sender=a@b.example, recipient=c@example.com", None),
    // Courier
    ("courier", "May  5 06:06:06 mail imapd: LOGIN FAILED, user=info, ip=[::ffff:198.51.100.81]", Some("198.51.100.81")),
    ("courier", "May  5 06:06:07 mail pop3d-ssl: LOGIN FAILED, user=admin@example.com, ip=[::ffff:198.51.100.82]", Some("198.51.100.82")),
    ("courier", "May  5 06:06:08 mail imapd-ssl: LOGIN FAILED, method=PLAIN, ip=[2001:db8:ff::8]", Some("2001:db8:ff::8")),
    ("courier", "May  5 06:06:09 mail imapd: LOGIN, user=dave, ip=[::ffff:192.0.2.110], port=[50110], protocol=IMAP", None),
    ("courier", "May  5 06:06:10 mail imapd: LOGOUT, user=dave, ip=[::ffff:192.0.2.110], headers=0, body=0, rcvd=10, sent=200, time=5", None),
    // ProFTPD
    ("proftpd", "Aug 19 13:13:13 files proftpd[7711]: files.example.com (scanner.example.net[198.51.100.91]) - USER admin: no such user found from scanner.example.net [198.51.100.91] to 192.0.2.7:21", Some("198.51.100.91")),
    ("proftpd", "Aug 19 13:13:14 files proftpd[7712]: files.example.com (198.51.100.92[198.51.100.92]) - USER root (Login failed): Incorrect password", Some("198.51.100.92")),
    ("proftpd", "Aug 19 13:13:15 files proftpd[7713]: files.example.com (198.51.100.93[198.51.100.93]) - SECURITY VIOLATION: Root login attempted", Some("198.51.100.93")),
    ("proftpd", "Aug 19 13:13:16 files proftpd[7714]: files.example.com (2001:db8:1::9[2001:db8:1::9]) - Maximum login attempts (5) exceeded, connection refused", Some("2001:db8:1::9")),
    ("proftpd", "Aug 19 13:13:17 files proftpd[7715]: files.example.com (192.0.2.120[192.0.2.120]) - USER erin: Login successful.", None),
    ("proftpd", "Aug 19 13:13:18 files proftpd[7715]: files.example.com (192.0.2.120[192.0.2.120]) - FTP session closed.", None),
    // Pure-FTPd
    ("pure-ftpd", "Sep  9 09:09:09 files pure-ftpd: (?@198.51.100.95) [WARNING] Authentication failed for user [admin]", Some("198.51.100.95")),
    ("pure-ftpd", "Sep  9 09:09:10 files pure-ftpd: (?@2001:db8:2::9) [WARNING] Authentication failed for user [ftp]", Some("2001:db8:2::9")),
    ("pure-ftpd", "Sep  9 09:09:11 files pure-ftpd: (?@192.0.2.130) [INFO] New connection from 192.0.2.130", None),
    ("pure-ftpd", "Sep  9 09:09:12 files pure-ftpd: (frank@192.0.2.130) [INFO] Logout.", None),
    // vsftpd: its own log and syslog
    ("vsftpd", "Tue Sep 10 11:11:11 2026 [pid 8812] [ftpuser] FAIL LOGIN: Client \"198.51.100.97\"", Some("198.51.100.97")),
    ("vsftpd", "Sep 10 11:11:12 files vsftpd[8813]: [admin] FAIL LOGIN: Client \"::ffff:198.51.100.98\"", Some("198.51.100.98")),
    ("vsftpd", "Tue Sep 10 11:12:00 2026 [pid 8815] [grace] OK LOGIN: Client \"192.0.2.140\"", None),
    ("vsftpd", "Tue Sep 10 11:12:01 2026 [pid 8815] CONNECT: Client \"192.0.2.140\"", None),
    // Apache and nginx: basic authentication and probes
    ("http", "[Wed Oct 14 15:16:17.181920 2026] [auth_basic:error] [pid 3311:tid 1400] [client 198.51.100.101:60000] AH01617: user webadmin: authentication failure for \"/admin/\": Password Mismatch", Some("198.51.100.101")),
    ("http", "[Wed Oct 14 15:16:18.100000 2026] [auth_basic:error] [pid 3312] [client 198.51.100.102:60001] AH01618: user ghost not found: /admin/", Some("198.51.100.102")),
    ("http", "198.51.100.103 - root [14/Oct/2026:15:16:19 +0200] \"POST /manager/html HTTP/1.1\" 401 2473 \"-\" \"python-requests/2.31\"", Some("198.51.100.103")),
    ("http", "2026/10/14 15:16:20 [error] 4411#4411: *901 user \"guest\": password mismatch, client: 198.51.100.104, server: intranet.example.com, request: \"GET / HTTP/1.1\", host: \"intranet.example.com\"", Some("198.51.100.104")),
    ("http", "198.51.100.107 - - [14/Oct/2026:15:16:23 +0200] \"POST /login HTTP/1.1\" 401 52 \"-\" \"Go-http-client/1.1\"", Some("198.51.100.107")),
    ("http", "198.51.100.108 - - [14/Oct/2026:15:16:24 +0200] \"GET /phpmyadmin/index.php HTTP/1.1\" 404 162 \"-\" \"Mozilla/5.0 zgrab/0.x\"", Some("198.51.100.108")),
    ("http", "192.0.2.151 - carol [14/Oct/2026:15:17:01 +0200] \"GET /private/ HTTP/1.1\" 200 900 \"-\" \"Mozilla/5.0\"", None),
    ("http", "192.0.2.152 - - [14/Oct/2026:15:17:02 +0200] \"GET /favicon.ico HTTP/1.1\" 404 162 \"-\" \"Mozilla/5.0\"", None),
    // Left alone on purpose: a 401 without a user name is a browser's first basic-auth request.
    ("http", "192.0.2.150 - - [14/Oct/2026:15:17:00 +0200] \"GET /private/ HTTP/1.1\" 401 179 \"-\" \"Mozilla/5.0\"", None),
    ("http", "2026/10/14 15:17:03 [error] 4411#4411: *903 no user/password was provided for basic authentication, client: 192.0.2.153, server: intranet.example.com, request: \"GET / HTTP/1.1\", host: \"intranet.example.com\"", None),
    // MySQL and MariaDB
    ("mysql", "Nov 11 11:11:11 db mysqld[1201]: 2026-11-11T11:11:11.234567Z 13 [Note] [MY-010926] [Server] Access denied for user 'root'@'198.51.100.112' (using password: YES)", Some("198.51.100.112")),
    ("mysql", "Nov 11 11:11:12 db mariadbd[1301]: 2026-11-11 11:11:12 14 [Warning] Access denied for user 'admin'@'198.51.100.113' (using password: NO)", Some("198.51.100.113")),
    ("mysql", "Nov 11 11:12:00 db mysqld[1201]: 2026-11-11T11:12:00.000000Z 0 [System] [MY-010931] [Server] /usr/sbin/mysqld: ready for connections.", None),
    // Services the rules do not claim: counted, never required.
    ("cyrus", "Dec  1 01:02:03 mail imaps[2214]: badlogin: unknown[198.51.100.84] PLAIN [SASL(-13): authentication failure: checkpass failed]", Some("198.51.100.84")),
    ("cyrus", "Dec  1 01:02:04 mail imaps[2215]: login: client.example.org [192.0.2.160] henry plaintext+TLS User logged in", None),
    ("uw-imap", "Dec  1 01:03:03 mail ipop3d[3001]: Login failed user=admin auth=admin host=unknown [198.51.100.85]", Some("198.51.100.85")),
    ("uw-imap", "Dec  1 01:03:04 mail imapd[3002]: Login user=ida host=client.example.org [192.0.2.161]", None),
    ("gitea", "2026/12/01 01:04:05 ...routers/web/auth/auth.go:213:SignInPost() [I] Failed authentication attempt for admin from 198.51.100.86:0: user does not exist", Some("198.51.100.86")),
    ("gitea", "2026/12/01 01:04:06 ...routers/web/auth/auth.go:250:SignInPost() [I] Request: GET /user/login 200 OK in 3.1ms from 192.0.2.162:0", None),
];

/// The services of [`SERVICE_LINES`] the shipped rules do not claim.
pub const UNCLAIMED: [&str; 3] = ["cyrus", "uw-imap", "gitea"];
