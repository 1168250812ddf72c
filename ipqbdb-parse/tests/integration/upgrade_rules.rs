//! Rule files written for ipqbdb 2.x, run by the real `ibd-parse` on a real database: numeric
//! reasons are reason ids, the fifth field (2.x's block database) is set aside with one notice,
//! and PCRE-only regexes run on the backtracking engine, their address still validated.

use crate::common;

use std::process::{Command, Output};
use std::time::Duration;

use common::Setup;
use ipqbdb_store::{Ban, Engine, ReadStore, Store};
use ipqbdb_tests::{db_options, ip, open_any, open_existing, Proc};

const PARSE: &str = env!("CARGO_BIN_EXE_ibd-parse");
const LIMIT: Duration = Duration::from_secs(20);

/// A rule file as 2.x users wrote them (INSTALL's syntax; `1` is the reason the test creates).
const RULES_2X: &str = r#"# ipqbdb 2.x rules
/Failed password for \S+ from <HOST> port/  *  1  5  /var/lib/ipqbdb/block.db  3600
/Invalid user \S+ from <HOST>(?! port 22\b)/  *  "sshd: invalid user"  3  -  1800
/refused connect from \S+ \((?'IP'[0-9.]+)\)/  -  "tcpd"  -  block.db
"#;

impl Setup {
    /// A database holding one reason, whose id it returns.
    fn with_reason(&self, text: &str) -> u32 {
        let store = open_any(&self.db(), Engine::Lmdb).unwrap();
        let ban = Ban {
            ip: ip("198.51.100.1"),
            reason: text,
            initial_count: 5,
            decay: None,
        };
        store.ban(&ban, ipqbdb_core::now()).unwrap().reason
    }

    /// `ibd-parse --stdin` over `input` with the rule file `rules.conf`, to its end.
    fn parse_stdin(&self, input: &str) -> Output {
        let mut cmd = Command::new(PARSE);
        db_options(&mut cmd, Engine::Lmdb, &self.db())
            .args(["--stdin", "--no-fifo", "--rule-file"])
            .arg(self.path("rules.conf"));
        Proc::run_with_input("ibd-parse --stdin", &mut cmd, input.as_bytes(), LIMIT)
    }
}

#[test]
fn a_2x_rule_file_keeps_its_meaning() {
    let s = Setup::empty();
    let id = s.with_reason("sshd: brute force");
    s.write("rules.conf", RULES_2X);
    let out = s.parse_stdin(concat!(
        "Failed password for root from 192.0.2.1 port 22 ssh2\n",
        "Invalid user x from 192.0.2.2 port 2222\n",
        "Invalid user y from 192.0.2.3 port 22\n",
        "Invalid user z from 300.1.2.3 port 1\n",
        "sshd[1]: refused connect from 192.0.2.9 (192.0.2.4)\n",
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let store = open_existing(&s.db());
    let record = |a: &str| store.lookup(a.parse().unwrap()).unwrap();
    // The numeric reason is the reason the database has under that id, not a new reason "1".
    let r1 = record("192.0.2.1").expect("the numeric-reason rule bans");
    assert_eq!(r1.reason, id);
    assert_eq!(r1.decay, 3600);
    let texts: Vec<String> = store
        .reasons()
        .unwrap()
        .into_iter()
        .map(|r| r.text)
        .collect();
    assert!(!texts.iter().any(|t| t == "1"), "{texts:?}");
    // The look-ahead rule (backtracking engine) bans, and refuses where the look-ahead says no.
    assert!(record("192.0.2.2").is_some(), "{err}");
    assert!(record("192.0.2.3").is_none());
    // The `(?'IP'...)` group is the address; the other address on the line is not banned.
    assert!(record("192.0.2.4").is_some(), "{err}");
    assert!(record("192.0.2.9").is_none());
    // What the backtracking rule captured is still validated as an address.
    assert!(err.contains("\"300.1.2.3\" is not an address"), "{err}");
    // Rules with a database field ban whatever input the line came from (stdin here), and the
    // field is named once, with its lines.
    let notice = "rule lines 2, 4: the fifth field (ipqbdb 2.x's block database) is ignored";
    assert_eq!(err.matches(notice).count(), 1, "{err}");
}

#[test]
fn an_unknown_reason_id_stops_the_start_at_its_line() {
    let s = Setup::empty();
    s.with_reason("only one");
    s.write("rules.conf", "# 2.x\n\n/x <HOST>/ * 7 5\n");
    let out = s.parse_stdin("x 192.0.2.1\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("rules.conf:3: reason id 7 does not exist in the database"),
        "{err}"
    );
    assert!(open_existing(&s.db())
        .lookup("192.0.2.1".parse().unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn test_mode_names_ids_and_engines() {
    let s = Setup::empty();
    s.write("rules.conf", RULES_2X);
    s.write(
        "auth.log",
        "Failed password for root from 192.0.2.1 port 22\nInvalid user x from 192.0.2.2 port 2222\n",
    );
    let out = Command::new(PARSE)
        .args(["--config", "/dev/null", "--test"])
        .arg(s.path("auth.log"))
        .arg(s.path("rules.conf"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("reason id 1"), "{text}");
    assert!(
        text.contains("rule at line 3 runs on fancy-regex"),
        "{text}"
    );
    assert!(
        text.contains("rule at line 4 runs on fancy-regex"),
        "{text}"
    );
    assert!(!text.contains("rule at line 2 runs on"), "{text}");
    assert!(text.contains("rule lines 2, 4: the fifth field"), "{text}");
    assert!(!s.db().exists(), "test mode writes no database");
}

#[test]
fn a_decimal_decay_loads() {
    let s = Setup::empty();
    s.write(
        "rules.conf",
        "/Failed password for \\S+ from <HOST> port/ * \"ssh\" 5 block.db 86400.5\n",
    );
    let out = s.parse_stdin("Failed password for root from 192.0.2.1 port 22\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = open_existing(&s.db())
        .lookup("192.0.2.1".parse().unwrap())
        .unwrap()
        .unwrap();
    assert!((86_400..=86_401).contains(&r.decay), "{}", r.decay);
}
