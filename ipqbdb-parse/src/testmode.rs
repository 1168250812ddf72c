//! `ibd-parse --test LOGFILE [RULEFILE]`: what a rule set would do to a log, without a database,
//! in the manner of fail2ban-regex.

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use foldhash::HashMap;
use thiserror::Error;

use crate::cli::InputSpec;
use crate::fail2ban_jails::{self, Fail2banConfig};
use crate::lines::{Line, Splitter};
use crate::matcher::RuleSet;
use crate::rule_loading::{build_rules, RuleSetError};
use crate::rules::RuleMode;
use crate::sessions::{LineCount, Sessions};

#[derive(Debug, Error)]
pub enum TestError {
    #[error(transparent)]
    Rules(#[from] RuleSetError),
    /// The log could not be opened or read (named, as the line numbers of what was read are).
    #[error("{}: {source}", path.display())]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] std::io::Error),
}

/// `ibd-parse --test LOG[:program=NAME]`: loads the rules (and the fail2ban filters, described
/// first), runs them over the log (`-` for standard input) and prints the summary on standard
/// output.
pub fn test_log(
    log: &InputSpec,
    rule_file: &Path,
    mode: RuleMode,
    f2b: &Fail2banConfig,
    verbose: bool,
    missed: bool,
) -> Result<(), TestError> {
    let (log_file, program) = (log.path.as_path(), log.program.as_deref());
    let log_error = |source| TestError::Log {
        path: log_file.into(),
        source,
    };
    let (rules, loaded) = build_rules(rule_file, mode, f2b)?;
    let mut input: Box<dyn Read> = if log_file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(log_file).map_err(log_error)?)
    };
    // Standard output flushes at every line; a summary can list hundreds of thousands.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if !f2b.is_empty() {
        let mut all = loaded;
        if let Some(set) = rules.filters() {
            // The description reads the filters where they now live, in the set.
            fail2ban_jails::describe_filters(&set.filters, &mut out)?;
        }
        all.filters.clear();
        fail2ban_jails::describe(&all, &mut out)?;
        writeln!(out)?;
    }
    let summary = run(
        &rules, log_file, program, &mut input, verbose, missed, &mut out,
    )
    .map_err(log_error)?;
    print_summary(&rules, &summary, &mut out)?;
    Ok(out.flush()?)
}

/// What the test found; printed by [`print_summary`].
#[derive(Debug, Default)]
pub struct Summary {
    pub lines: u64,
    /// Lines a rule caught, including those folded into an attempt already banned.
    pub matched: u64,
    /// Bans the daemon would make.
    pub bans: u64,
    /// Caught lines that belonged to an attempt already banned.
    pub folded: u64,
    /// Lines of `ban=no` rules, and address-less lines of sessions the log did not show.
    pub noted: u64,
    pub address_errors: u64,
    pub too_long: u64,
    /// Per rule: matches and address errors.
    pub per_rule: Vec<(u64, u64)>,
    /// Per address: times caught and the first rule that caught it.
    /// (A hash map: a log may name hundreds of thousands of addresses; the report sorts them.)
    pub addresses: HashMap<IpAddr, (u64, usize)>,
}

/// Runs `rules` over `log` (named `name`; rules restricted to a file see it as that file; the
/// own log of `program`, when given). `verbose` prints each matching line, `missed` also each
/// missed one.
pub fn run(
    rules: &RuleSet,
    name: &Path,
    program: Option<&str>,
    log: &mut dyn Read,
    verbose: bool,
    missed: bool,
    out: &mut dyn Write,
) -> std::io::Result<Summary> {
    let mut s = Summary {
        per_rule: vec![(0, 0); rules.catcher_count()],
        ..Summary::default()
    };
    let mut splitter = Splitter::default();
    let mut sessions = Sessions::default();
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
        let rule_line = |r: usize| rules.catcher(r).label();
        let outcome = rules.check_from(text, Some(name), program);
        // What a recognised line is shown as with -v: mark, address, rule and a remark.
        let mut shown_as: Option<(char, Option<IpAddr>, usize, String)> = None;
        let res = match sessions.count(rules, outcome, 0) {
            LineCount::Caught {
                rule,
                ip,
                bans,
                folded,
            } => {
                s.matched += 1;
                s.bans += u64::from(bans);
                s.folded += u64::from(folded);
                s.per_rule[rule].0 += 1;
                s.addresses.entry(ip).or_insert((0, rule)).0 += u64::from(bans);
                if verbose {
                    let (mark, remark) = match (bans, folded) {
                        (0, _) => ('=', "(folded into the attempt already banned) ".into()),
                        (1, 0) => ('+', String::new()),
                        (n, _) => ('+', format!("({n} bans) ")),
                    };
                    shown_as = Some((mark, Some(ip), rule, remark));
                }
                Ok(())
            }
            LineCount::Noted { rule, ip } => {
                s.noted += 1;
                s.per_rule[rule].0 += 1;
                if verbose {
                    shown_as = Some(('~', Some(ip), rule, "(noted, not banned) ".into()));
                }
                Ok(())
            }
            LineCount::NoSession { rule } => {
                s.noted += 1;
                s.per_rule[rule].0 += 1;
                if verbose {
                    let remark = "(its session's address is unknown) ".into();
                    shown_as = Some(('?', None, rule, remark));
                }
                Ok(())
            }
            LineCount::BadAddress { rule, text } => {
                s.address_errors += 1;
                s.per_rule[rule].1 += 1;
                writeln!(
                    out,
                    "! line {:>4} {text:?} is not an address | {}",
                    rule_line(rule),
                    shown()
                )
            }
            LineCount::Miss if verbose && missed => writeln!(out, "- {}", shown()),
            LineCount::Miss => Ok(()),
        };
        let res = res.and_then(|()| match shown_as {
            Some((mark, ip, rule, remark)) => {
                let ip = ip.map_or_else(|| "-".to_string(), |ip| ip.to_string());
                writeln!(
                    out,
                    "{mark} line {:>4} {ip:<39} | {remark}{}",
                    rule_line(rule),
                    shown()
                )
            }
            None => Ok(()),
        });
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

/// Prints the `--test` summary: totals, each catcher's counters (a rule by its line in the rule
/// file, a fail2ban filter by its name), and the addresses caught.
pub fn print_summary(rules: &RuleSet, s: &Summary, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "Lines: {} lines, {} matched, {} missed, {} address errors, {} too long",
        s.lines,
        s.matched,
        s.lines - s.matched - s.noted - s.address_errors - s.too_long,
        s.address_errors,
        s.too_long
    )?;
    writeln!(
        out,
        "Bans: {} ({} caught lines folded into an attempt already banned; {} lines noted, not banned)",
        s.bans, s.folded, s.noted
    )?;
    writeln!(
        out,
        "\nRules (mode {}; rules of other modes are off):\n  {:>5} {:>8} {:>7}  {:<10}  REASON",
        rules.mode(),
        "LINE",
        "MATCHES",
        "ERRORS",
        "MODE"
    )?;
    for (r, (m, e)) in rules.catchers().zip(&s.per_rule) {
        let mode = if rules.mode().includes(r.mode()) {
            r.mode().to_string()
        } else {
            format!("{} (off)", r.mode())
        };
        writeln!(
            out,
            "  {:>5} {m:>8} {e:>7}  {mode:<10}  {}",
            r.label(),
            r.reason_label()
        )?;
    }
    // Which engine each rule runs on, for rules that do not run on the default one.
    for r in rules.rules().iter().filter(|r| r.backtrack.is_some()) {
        writeln!(
            out,
            "  rule at line {} runs on {} (backtracking, budget per line): the regex crate refuses its syntax",
            r.label(),
            r.regex_kind()
        )?;
    }
    if let Some(msg) = crate::rules::database_fields(rules.rules()) {
        writeln!(out, "  {msg}")?;
    }
    writeln!(out, "\nAddresses caught: {}", s.addresses.len())?;
    let mut sorted: Vec<_> = s.addresses.iter().collect();
    sorted.sort_unstable_by_key(|(ip, _)| **ip);
    // A log may name hundreds of thousands of addresses: each line is built in one buffer, padded by
    // slices rather than by the formatter's character-at-a-time padding.
    let mut line = String::with_capacity(128);
    for (ip, (n, rule)) in sorted {
        line.clear();
        line.push_str("  ");
        let start = line.len();
        push_address(&mut line, *ip);
        pad(&mut line, start, 39, false);
        line.push(' ');
        push_padded(&mut line, format_args!("{n}"), 6, true);
        line.push_str("  ");
        line.push_str(&rules.catcher(*rule).reason_label());
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    Ok(())
}

/// Appends `value` to `line`, padded with spaces to `width` on the left (`right`) or on the right.
fn push_padded(line: &mut String, value: std::fmt::Arguments<'_>, width: usize, right: bool) {
    use std::fmt::Write as _;
    let start = line.len();
    // Writing to a String cannot fail.
    let _ = line.write_fmt(value);
    pad(line, start, width, right);
}

/// Pads what was appended to `line` from `start` with spaces to `width`, on the left (`right`) or
/// on the right.
fn pad(line: &mut String, start: usize, width: usize, right: bool) {
    const SPACES: &str = "                                                  ";
    let pad = width.saturating_sub(line.len() - start).min(SPACES.len());
    if right {
        line.insert_str(start, &SPACES[..pad]);
    } else {
        line.push_str(&SPACES[..pad]);
    }
}

/// Appends `ip` as its `Display` writes it: an IPv4 address digit by digit, at a tenth of the
/// formatter's cost (the summary of an attack-dense log lists a third as many addresses as it
/// has lines), any other through the formatter.
fn push_address(line: &mut String, ip: IpAddr) {
    use std::fmt::Write as _;
    match ip {
        IpAddr::V4(a) => {
            for (i, &o) in a.octets().iter().enumerate() {
                if i > 0 {
                    line.push('.');
                }
                if o >= 100 {
                    line.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    line.push(char::from(b'0' + o / 10 % 10));
                }
                line.push(char::from(b'0' + o % 10));
            }
        }
        // Writing to a String cannot fail.
        IpAddr::V6(_) => {
            let _ = write!(line, "{ip}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_matches_the_formatter() {
        for (v, w) in [
            ("192.0.2.1", 39),
            ("2001:db8::1", 6),
            ("1234567", 6),
            ("", 3),
        ] {
            let (mut left, mut right) = (String::new(), String::new());
            push_padded(&mut left, format_args!("{v}"), w, false);
            push_padded(&mut right, format_args!("{v}"), w, true);
            assert_eq!(left, format!("{v:<w$}"));
            assert_eq!(right, format!("{v:>w$}"));
        }
    }

    #[test]
    fn addresses_are_written_as_the_formatter_writes_them() {
        let mut ips: Vec<IpAddr> = [
            "0.0.0.0",
            "255.255.255.255",
            "10.0.100.9",
            "2001:db8::1",
            "::ffff:192.0.2.1",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        // Every octet value in every place.
        ips.extend((0..=255u8).map(|o| IpAddr::from([o, 255 - o, o / 2, o.wrapping_mul(7)])));
        for ip in ips {
            let mut line = String::from("x");
            push_address(&mut line, ip);
            assert_eq!(line, format!("x{ip}"));
        }
    }

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
            None,
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
        print_summary(&set, &s, &mut rep).unwrap();
        let rep = String::from_utf8(rep).unwrap();
        assert!(
            rep.starts_with("Lines: 4 lines, 2 matched, 1 missed, 1 address errors, 0 too long"),
            "{rep}"
        );
    }
}
