//! Bans per failed login attempt on a generated OpenSSH log (`ipqbdb_benches::sshd_log`), with the
//! shipped rules in their default mode: each attempt must count once however many lines sshd writes
//! for it (goal 0.9 to 1.2), and every line of an attempt must be recognised, so the generator and
//! the rules agree on what OpenSSH writes.

use std::path::Path;

use ipqbdb_benches::sshd_log;
use ipqbdb_parse::matcher::RuleSet;
use ipqbdb_parse::sessions::{LineCount, Sessions};

#[test]
fn one_ban_per_attempt_on_a_multi_line_sshd_log() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ipqbdb-parse/rules/ipqbdb-pcre.conf");
    let rules = RuleSet::new(ipqbdb_parse::rules::load(&path).unwrap()).unwrap();
    let log = sshd_log::generate(2000, 7);
    let mut sessions = Sessions::default();
    let (mut bans, mut folded, mut missed) = (0u64, 0u64, Vec::new());
    for line in &log.lines {
        match sessions.count(&rules, rules.check(line.as_bytes(), None), 0) {
            LineCount::Caught {
                bans: b, folded: f, ..
            } => {
                bans += u64::from(b);
                folded += u64::from(f);
            }
            LineCount::Miss
                if line.contains("Failed password")
                    || line.contains("Invalid user")
                    || line.contains("authentication failure;") =>
            {
                missed.push(line.clone())
            }
            _ => {}
        }
    }
    let ratio = bans as f64 / log.attempts as f64;
    eprintln!(
        "{} lines, {} attempts: {bans} bans ({folded} lines folded), {ratio:.3} bans per attempt",
        log.lines.len(),
        log.attempts
    );
    assert!(
        missed.is_empty(),
        "lines of attempts not recognised:\n{}",
        missed.join("\n")
    );
    assert!((0.9..=1.2).contains(&ratio), "{ratio:.3} bans per attempt");
}
