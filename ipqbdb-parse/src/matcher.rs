//! Matching log lines against a rule set.
//!
//! Most log lines match no rule, so a `RegexSet` over every rule decides first, in one pass, whether
//! any rule matches; only then is the first applicable rule run for its captures. Lines are bytes:
//! logs carry attacker-chosen bytes, and invalid UTF-8 must neither panic nor hide an address.

use std::net::IpAddr;
use std::path::Path;

use ipqbdb_core::parse_ip;
use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::rules::{AddrGroup, Rule};

/// What a line did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No rule matched.
    Miss,
    /// Rule `rule` (index in the set) matched and captured `ip`.
    Hit { rule: usize, ip: IpAddr },
    /// Rule `rule` matched, but what it captured is not an address.
    BadAddress { rule: usize, text: String },
}

pub struct RuleSet {
    rules: Vec<Rule>,
    set: RegexSet,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>) -> Result<Self, regex::Error> {
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.pattern()))
            .unicode(false)
            .size_limit(256 << 20)
            .dfa_size_limit(64 << 20)
            .build()?;
        Ok(RuleSet { rules, set })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Checks one line (without its newline) read from `input` (`None`: FIFO or stdin).
    pub fn check(&self, line: &[u8], input: Option<&Path>) -> Outcome {
        if !self.set.is_match(line) {
            return Outcome::Miss;
        }
        for i in self.set.matches(line).iter() {
            let rule = &self.rules[i];
            if !rule.applies_to(input) {
                continue;
            }
            let Some(caps) = rule.regex.captures(line) else {
                continue;
            };
            let text = match rule.group {
                AddrGroup::Named => caps.name("IP"),
                AddrGroup::Index(n) => caps.get(n),
            }
            .map_or(&b""[..], |m| m.as_bytes());
            let text = String::from_utf8_lossy(text);
            return match parse_ip(&text) {
                Ok(ip) => Outcome::Hit { rule: i, ip },
                Err(_) => Outcome::BadAddress {
                    rule: i,
                    text: text.into_owned(),
                },
            };
        }
        Outcome::Miss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> RuleSet {
        RuleSet::new(crate::rules::parse(text, Path::new("r")).unwrap()).unwrap()
    }

    #[test]
    fn first_applicable_rule_wins() {
        let s = set(concat!(
            "/Failed password for .* from <HOST>/ * \"pw\" - secure\n",
            "/from <HOST>/ * \"generic\"\n",
            "/Failed password for .* from <HOST>/ * \"pw-any\"\n",
        ));
        let line = b"sshd[1]: Failed password for root from 192.0.2.1 port 22";
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            s.check(line, Some(Path::new("/var/log/secure"))),
            Outcome::Hit { rule: 0, ip }
        );
        assert_eq!(s.check(line, None), Outcome::Hit { rule: 1, ip });
        assert_eq!(s.check(b"nothing here", None), Outcome::Miss);
    }

    #[test]
    fn bad_captures_and_binary_lines() {
        let s = set("/user=\\S+ rip=(\\S+)/ 1 \"dovecot\"\n");
        assert_eq!(
            s.check(b"user=x rip=999.1.1.1", None),
            Outcome::BadAddress {
                rule: 0,
                text: "999.1.1.1".into()
            }
        );
        let mut line = b"\xff\xfe\x00 user=\xc3\x28 rip=192.0.2.7".to_vec();
        line.extend_from_slice(&[0x80; 100]);
        // Bytes glued to an address make it no address: an error, not a wrong ban.
        assert!(matches!(s.check(&line, None), Outcome::BadAddress { .. }));
        let line = b"\xff\x00 user=\xc3\x28 rip=192.0.2.7 \xff";
        assert_eq!(
            s.check(line, None),
            Outcome::Hit {
                rule: 0,
                ip: "192.0.2.7".parse().unwrap()
            }
        );
    }
}
