//! The rule-file parser over arbitrary text: an error or rules, never a panic; rules it accepts
//! compile into a rule set.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(rules) = ipqbdb_parse::rules::parse(text, std::path::Path::new("fuzz.conf")) {
        let _ = ipqbdb_parse::matcher::RuleSet::new(rules);
    }
});
