//! The shipped rule set over arbitrary log bytes: a hit always carries a real address.
#![no_main]
use std::sync::OnceLock;

use ipqbdb_parse::matcher::{Outcome, RuleSet};
use libfuzzer_sys::fuzz_target;

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| {
        let text = include_str!("../../ipqbdb-parse/rules/ipqbdb-pcre.conf");
        let rules = ipqbdb_parse::rules::parse(text, std::path::Path::new("ipqbdb-pcre.conf")).unwrap();
        RuleSet::new(rules).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Outcome::Hit { rule, .. } = rules().check(data, None) {
        assert!(rule < rules().rules().len());
    }
});
