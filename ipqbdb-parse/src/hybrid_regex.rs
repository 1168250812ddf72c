//! A regex written for another program (fail2ban's Python regexes, the rule file's PCRE): compiled
//! with the `regex` crate when it can (linear time), else with `fancy-regex` (back-references,
//! look-around, conditionals) under a backtracking budget, so a hostile line costs bounded work.
//! Both the rule file (`rules`) and the fail2ban filters (`fail2ban_filters`) use it.

use std::collections::BTreeMap;

/// Compiled size limit per regex (as the rule file's).
pub const REGEX_SIZE_LIMIT: usize = 8 << 20;
/// fancy-regex's backtracking budget per match: a hostile line costs at most this much work, and
/// then counts as no match.
const BACKTRACK_LIMIT: usize = 100_000;

/// One regex, on the `regex` crate when it accepts the syntax, else on `fancy-regex`.
#[derive(Debug, Clone)]
pub enum HybridRegex {
    Fast(regex::Regex),
    /// With the literal text a match must start the line with, if the regex says so (`^Failed `):
    /// fancy-regex then runs only on lines that can match.
    Fancy(fancy_regex::Regex, Option<String>),
}

/// The named groups of a match that took part in it.
pub type Groups = BTreeMap<String, String>;

impl HybridRegex {
    /// `regex` first, `fancy-regex` when `regex` refuses the syntax.
    pub fn compile(pattern: &str, multiline: bool) -> Result<HybridRegex, String> {
        let fast = regex::RegexBuilder::new(pattern)
            .multi_line(multiline)
            .size_limit(REGEX_SIZE_LIMIT)
            .build();
        match fast {
            Ok(r) => Ok(HybridRegex::Fast(r)),
            Err(regex::Error::CompiledTooBig(_)) => {
                Err(format!("compiles larger than {REGEX_SIZE_LIMIT} bytes"))
            }
            Err(fast_err) => {
                let p = if multiline {
                    format!("(?m){pattern}")
                } else {
                    pattern.to_string()
                };
                fancy_regex::RegexBuilder::new(&p)
                    .backtrack_limit(BACKTRACK_LIMIT)
                    .delegate_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map(|r| {
                        let lit = (!multiline).then(|| anchored_literal(pattern)).flatten();
                        HybridRegex::Fancy(r, lit)
                    })
                    .map_err(|e| {
                        let fast_err = fast_err.to_string();
                        let last = fast_err.lines().last().unwrap_or("").trim();
                        format!("does not compile: {e} (regex crate: {last})")
                    })
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            HybridRegex::Fast(_) => "regex",
            HybridRegex::Fancy(..) => "fancy-regex",
        }
    }

    /// The capture groups' names by index (0 is the whole match).
    pub fn capture_names(&self) -> Vec<Option<String>> {
        match self {
            HybridRegex::Fast(r) => r.capture_names().map(|n| n.map(String::from)).collect(),
            HybridRegex::Fancy(r, _) => r.capture_names().map(|n| n.map(String::from)).collect(),
        }
    }

    /// Group `index` of the first match: `None` when nothing matches, `Some(None)` when the group
    /// took no part.
    pub fn group(&self, text: &str, index: usize) -> Option<Option<std::ops::Range<usize>>> {
        match self {
            HybridRegex::Fast(r) => Some(r.captures(text)?.get(index).map(|m| m.range())),
            HybridRegex::Fancy(r, lit) => {
                if lit.as_ref().is_some_and(|l| !text.starts_with(l.as_str())) {
                    return None;
                }
                Some(r.captures(text).ok()??.get(index).map(|m| m.range()))
            }
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match self {
            HybridRegex::Fast(r) => r.is_match(text),
            HybridRegex::Fancy(r, lit) => {
                lit.as_ref().is_none_or(|l| text.starts_with(l.as_str()))
                    && r.is_match(text).unwrap_or(false)
            }
        }
    }

    /// The match's span and named groups.
    pub(crate) fn captures(&self, text: &str) -> Option<((usize, usize), Groups)> {
        let mut groups = Groups::new();
        match self {
            HybridRegex::Fast(r) => fast_captures(r, text),
            HybridRegex::Fancy(r, lit) => {
                if lit.as_ref().is_some_and(|l| !text.starts_with(l.as_str())) {
                    return None;
                }
                let c = r.captures(text).ok()??;
                for name in r.capture_names().flatten() {
                    if let Some(m) = c.name(name) {
                        groups.insert(name.to_string(), m.as_str().to_string());
                    }
                }
                let m = c.get(0)?;
                Some(((m.start(), m.end()), groups))
            }
        }
    }

    /// The span of group 1 (a timestamp).
    pub(crate) fn group1(&self, text: &str) -> Option<(usize, usize)> {
        match self {
            HybridRegex::Fast(r) => {
                let mut locs = r.capture_locations();
                r.captures_read(&mut locs, text)?;
                locs.get(1)
            }
            HybridRegex::Fancy(r, _) => {
                let c = r.captures(text).ok()??;
                c.get(1).map(|m| (m.start(), m.end()))
            }
        }
    }
}

/// [`HybridRegex::captures`] of a regex on the `regex` crate.
pub(crate) fn fast_captures(r: &regex::Regex, text: &str) -> Option<((usize, usize), Groups)> {
    let c = r.captures(text)?;
    let groups = r
        .capture_names()
        .flatten()
        .filter_map(|name| Some((name.to_string(), c.name(name)?.as_str().to_string())))
        .collect();
    let m = c.get(0)?;
    Some(((m.start(), m.end()), groups))
}

/// The literal text every match of `pattern` starts the text with (`^Failed (?:...` -> `Failed `),
/// if it is anchored at the start and has no top-level alternative. The pattern is one the regex
/// crate refused (look-around, back-references), so fancy-regex's own parser reads it.
fn anchored_literal(pattern: &str) -> Option<String> {
    use fancy_regex::{Assertion, Expr};
    let Expr::Concat(pieces) = fancy_regex::Expr::parse_tree(pattern).ok()?.expr else {
        return None;
    };
    let (Expr::Assertion(Assertion::StartText), rest) = pieces.split_first()? else {
        return None;
    };
    let lit: String = rest
        .iter()
        .map_while(|p| match p {
            Expr::Literal { val, casei: false } => Some(val.as_str()),
            _ => None,
        })
        .collect();
    (!lit.is_empty()).then_some(lit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes() {
        assert_eq!(
            anchored_literal(r"^Failed \S+ for").as_deref(),
            Some("Failed ")
        );
        assert_eq!(anchored_literal(r"^ab?c").as_deref(), Some("a"));
        assert_eq!(anchored_literal(r"^a\.b(?i)x").as_deref(), Some("a.b"));
        assert_eq!(anchored_literal(r"^a|b"), None);
        assert_eq!(anchored_literal(r"a"), None);
        assert_eq!(anchored_literal(r"^[iI]x"), None);
        assert_eq!(anchored_literal(r"^(?i)abc"), None);
    }
}
