//! Log injection: text a client controls (user names, paths, query strings, HELO names, SASL and IMAP
//! user fields) must never choose the address that is banned.
//!
//! `tests/injection/*.txt` hold log lines, as each service writes them, in which the client at
//! 203.0.113.66 (or 2001:db8:66::66) puts a bystander's address (192.0.2.1 or 2001:db8::1, possibly
//! in forms like `[client 192.0.2.1]` or ` from 192.0.2.1 port 22`) wherever the service lets it
//! write. Each line must ban the attacker or nothing, and every shipped rule must be reached by at
//! least one such line (so every rule is tried against injection).

use crate::common;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipqbdb_core::AddrKey;
use ipqbdb_parse::rules::RuleMode;
use ipqbdb_parse::sessions::{LineCount, Sessions};

const ATTACKERS: [&str; 2] = ["203.0.113.66", "2001:db8:66::66"];

/// Every injection file, or (while writing rules) the one `$IPQBDB_INJECTION` names.
fn case_files() -> Vec<PathBuf> {
    if let Some(f) = std::env::var_os("IPQBDB_INJECTION") {
        return vec![PathBuf::from(f)];
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/injection");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

fn is_attacker(ip: IpAddr) -> bool {
    ATTACKERS
        .iter()
        .any(|a| AddrKey::exact(a.parse().unwrap()) == AddrKey::exact(ip))
}

#[test]
fn injected_addresses_are_never_banned() {
    let rules = common::rules(RuleMode::Aggressive);
    let mut reached = vec![false; rules.rules().len()];
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in case_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        // Lines of one file share sessions, as in a log.
        let mut sessions = Sessions::default();
        for (i, line) in text.lines().enumerate() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            cases += 1;
            let at = format!("{}:{}", file.display(), i + 1);
            match sessions.count(&rules, rules.check(line.as_bytes(), None), 0) {
                LineCount::Caught { rule, ip, .. } | LineCount::Noted { rule, ip } => {
                    if is_attacker(ip) {
                        reached[rule] = true;
                    } else {
                        failures.push(format!(
                            "{at}: rule at line {} took {ip}, not the attacker: {line}",
                            rules.rules()[rule].line
                        ));
                    }
                }
                LineCount::BadAddress { rule, text } => failures.push(format!(
                    "{at}: rule at line {} captured {text:?}: {line}",
                    rules.rules()[rule].line
                )),
                LineCount::Miss | LineCount::NoSession { .. } => {}
            }
        }
    }
    assert!(cases > 0, "no injection cases read");
    for (r, hit) in rules.rules().iter().zip(&reached) {
        if !hit {
            failures.push(format!(
                "rule at line {} ({}) is reached by no injection case",
                r.line, r.reason
            ));
        }
    }
    eprintln!(
        "{cases} injection cases against {} rules",
        rules.rules().len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
