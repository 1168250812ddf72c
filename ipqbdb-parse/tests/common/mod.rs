//! What the tests of the shipped rules share: the rule file under test and fail2ban's samples.

use std::path::{Path, PathBuf};

use ipqbdb_parse::matcher::RuleSet;
use ipqbdb_parse::rules::Mode;

/// fail2ban's annotated sample logs, one file per filter, as the Debian package installs them.
#[allow(dead_code)] // each test binary compiles this module; the injection test has no use for it
pub const FAIL2BAN_SAMPLES: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// The shipped rule file, or (while writing rules) the file `$IPQBDB_RULES` names.
fn rule_path() -> PathBuf {
    std::env::var_os("IPQBDB_RULES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/ipqbdb-pcre.conf"),
        PathBuf::from,
    )
}

/// The rules under test, as `mode` runs them.
pub fn rules(mode: Mode) -> RuleSet {
    let path = rule_path();
    let rules =
        ipqbdb_parse::rules::load(&path).unwrap_or_else(|e| panic!("the rules under test: {e}"));
    RuleSet::with_mode(rules, mode).unwrap()
}
