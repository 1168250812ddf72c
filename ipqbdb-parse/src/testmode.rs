//! `ibd-parse --test LOGFILE [RULEFILE]`: what a rule set would do to a log, without a database,
//! in the manner of fail2ban-regex.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::Path;

use crate::lines::{Line, Splitter};
use crate::matcher::{Outcome, RuleSet};

/// What the test found; printed by [`report`].
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: u64,
    pub matched: u64,
    pub address_errors: u64,
    pub too_long: u64,
    /// Per rule: matches and address errors.
    pub per_rule: Vec<(u64, u64)>,
    /// Per address: times caught and the first rule that caught it.
    pub addresses: BTreeMap<IpAddr, (u64, usize)>,
}

/// Runs `rules` over `log` (named `name`; rules restricted to a file see it as that file).
/// `verbose` prints each matching line, `missed` also each missed one.
pub fn run(
    rules: &RuleSet,
    name: &Path,
    log: &mut dyn Read,
    verbose: bool,
    missed: bool,
    out: &mut dyn Write,
) -> std::io::Result<Summary> {
    let mut s = Summary {
        per_rule: vec![(0, 0); rules.rules().len()],
        ..Summary::default()
    };
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut io_err = None;
    let mut handle = |line: Line<'_>, _end: u64| {
        s.lines += 1;
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong(_) => {
                s.too_long += 1;
                return;
            }
        };
        let shown = || String::from_utf8_lossy(text);
        let res = match rules.check(text, Some(name)) {
            Outcome::Hit { rule, ip } => {
                s.matched += 1;
                s.per_rule[rule].0 += 1;
                s.addresses.entry(ip).or_insert((0, rule)).0 += 1;
                if verbose {
                    writeln!(
                        out,
                        "+ line {:>4} {ip:<39} | {}",
                        rules.rules()[rule].line,
                        shown()
                    )
                } else {
                    Ok(())
                }
            }
            Outcome::BadAddress { rule, text } => {
                s.address_errors += 1;
                s.per_rule[rule].1 += 1;
                writeln!(
                    out,
                    "! line {:>4} {text:?} is not an address | {}",
                    rules.rules()[rule].line,
                    shown()
                )
            }
            Outcome::Miss if verbose && missed => writeln!(out, "- {}", shown()),
            Outcome::Miss => Ok(()),
        };
        if let Err(e) = res {
            io_err.get_or_insert(e);
        }
    };
    loop {
        let n = log.read(&mut buf)?;
        if n == 0 {
            break;
        }
        splitter.feed(&buf[..n], &mut handle);
    }
    splitter.finish(&mut handle);
    if let Some(e) = io_err {
        return Err(e);
    }
    Ok(s)
}

pub fn report(rules: &RuleSet, s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Lines: {} lines, {} matched, {} missed, {} address errors, {} too long",
        s.lines,
        s.matched,
        s.lines - s.matched - s.address_errors - s.too_long,
        s.address_errors,
        s.too_long
    )?;
    writeln!(
        out,
        "\nRules:\n  {:>5} {:>8} {:>7}  REASON",
        "LINE", "MATCHES", "ERRORS"
    )?;
    for (r, (m, e)) in rules.rules().iter().zip(&s.per_rule) {
        writeln!(out, "  {:>5} {m:>8} {e:>7}  {}", r.line, r.reason)?;
    }
    writeln!(out, "\nAddresses caught: {}", s.addresses.len())?;
    for (ip, (n, rule)) in &s.addresses {
        writeln!(out, "  {ip:<39} {n:>6}  {}", rules.rules()[*rule].reason)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_lists() {
        let rules = crate::rules::parse(
            "/Failed password for \\S+ from <HOST>/ * \"pw\"\n/rip=(\\S+)/ 1 \"dovecot\"\n",
            Path::new("r"),
        )
        .unwrap();
        let set = RuleSet::new(rules).unwrap();
        let log = "Failed password for root from 192.0.2.1 port 1\nhello\nrip=300.1.1.1\nFailed password for x from 192.0.2.1 port 2\n";
        let mut out = Vec::new();
        let s = run(
            &set,
            Path::new("auth.log"),
            &mut log.as_bytes(),
            true,
            true,
            &mut out,
        )
        .unwrap();
        assert_eq!((s.lines, s.matched, s.address_errors), (4, 2, 1));
        assert_eq!(s.per_rule, [(2, 0), (0, 1)]);
        assert_eq!(s.addresses.len(), 1);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("+ line    1 192.0.2.1"), "{text}");
        assert!(text.contains("- hello"), "{text}");
        let mut rep = Vec::new();
        report(&set, &s, &mut rep).unwrap();
        let rep = String::from_utf8(rep).unwrap();
        assert!(
            rep.starts_with("Lines: 4 lines, 2 matched, 1 missed, 1 address errors, 0 too long"),
            "{rep}"
        );
    }
}
