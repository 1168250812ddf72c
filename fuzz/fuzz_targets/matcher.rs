//! The shipped rule set (every mode) and the session logic over arbitrary log bytes: a hit always
//! carries a rule of the set, and what it counts stays within its repeat count.
#![no_main]
use std::sync::OnceLock;

use ipqbdb_parse::matcher::{RuleSet, MAX_REPEAT};
use ipqbdb_parse::rules::RuleMode;
use ipqbdb_parse::sessions::{LineCount, Sessions};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = include_str!("../../ipqbdb-parse/rules/ipqbdb-pcre.conf");
        let rules = ipqbdb_parse::rules::parse(text, std::path::Path::new("ipqbdb-pcre.conf")).unwrap();
        RuleSet::with_mode(rules, RuleMode::Aggressive).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    // Lines of one input share a small session table, so eviction is exercised too.
    let mut sessions = Sessions::new(8, 600);
    let n = rules().rules().len();
    for line in data.split(|&b| b == b'\n') {
        match sessions.count(rules(), rules().check(line, None), 0) {
            LineCount::Caught { rule, bans, folded, .. } => {
                assert!(rule < n);
                assert!(folded <= 1 && bans + folded >= 1 && bans <= MAX_REPEAT);
            }
            LineCount::Noted { rule, .. } | LineCount::NoSession { rule } | LineCount::BadAddress { rule, .. } => {
                assert!(rule < n)
            }
            LineCount::Miss => {}
        }
    }
});
