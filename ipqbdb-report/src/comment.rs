//! The comment sent with each report, from a template checked when the configuration is read.
//!
//! Its fields come from the database, which holds no log text: the reason is the text a rule or an
//! `ibd ban` command gave, written by the administrator, so no attacker- or user-written text (a
//! user name, a mail address, a URL from a log line) can reach the abuse database.

use std::fmt::Write;

use ipqbdb_core::percent;
use ipqbdb_store::ReportCandidate;

/// What AbuseIPDB keeps of a comment; longer ones are cut (at a character boundary).
pub const MAX_COMMENT: usize = 1024;

pub const DEFAULT_COMMENT: &str = "{reason} (caught {caught} times; ipqbdb)";

/// The fields a template may name, in braces; `{{` and `}}` are literal braces.
pub const FIELDS: [&str; 6] = [
    "address",
    "reason",
    "category",
    "caught",
    "probability",
    "time",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Field(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentTemplate(Vec<Part>);

impl CommentTemplate {
    /// Parses a template; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("{{{name} is not closed")),
                        }
                    }
                    let field = FIELDS.iter().find(|f| **f == name).ok_or_else(|| {
                        format!(
                            "unknown field {{{name}}} (known: {})",
                            FIELDS.map(|f| format!("{{{f}}}")).join(", ")
                        )
                    })?;
                    if !lit.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut lit)));
                    }
                    parts.push(Part::Field(field));
                }
                '}' => return Err("a lone } (write }} for a brace)".into()),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        Ok(CommentTemplate(parts))
    }

    /// The comment for `c`, at most [`MAX_COMMENT`] bytes.
    pub fn render(&self, c: &ReportCandidate) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => {
                    let _ = match *f {
                        "address" => write!(out, "{}", c.key),
                        "reason" => write!(out, "{}", c.reason.text),
                        "category" => write!(out, "{}", c.reason.category),
                        "caught" => write!(out, "{}", c.record.caught),
                        "probability" => write!(out, "{:.1}%", percent(c.record.probability)),
                        _ => write!(
                            out,
                            "{}",
                            ipqbdb_core::time::format_utc(c.record.last_update)
                        ),
                    };
                }
            }
        }
        if out.len() > MAX_COMMENT {
            let mut end = MAX_COMMENT;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            out.truncate(end);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipqbdb_core::{Reason, Record, P_MAX};

    fn cand(reason: &str) -> ReportCandidate {
        ReportCandidate {
            key: "45.33.32.156".parse().unwrap(),
            record: Record {
                probability: P_MAX / 2,
                decay: 3600,
                last_update: 1_700_000_000,
                caught: 3,
                blocked: 0,
                reason: 1,
            },
            reason: Reason {
                id: 1,
                text: reason.into(),
                category: 18,
                caught: 0,
                blocked: 0,
            },
            state: None,
            whitelisted: false,
        }
    }

    #[test]
    fn fields_and_braces() {
        let t = CommentTemplate::parse(
            "{address} {reason} cat {category} x{caught} {probability} at {time} {{lit}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&cand("sshd: failed password")),
            "45.33.32.156 sshd: failed password cat 18 x3 50.0% at 2023-11-14T22:13:20Z {lit}"
        );
        assert_eq!(
            CommentTemplate::parse(DEFAULT_COMMENT)
                .unwrap()
                .render(&cand("web")),
            "web (caught 3 times; ipqbdb)"
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        let e = CommentTemplate::parse("{line}").unwrap_err();
        assert!(e.contains("unknown field {line}"), "{e}");
        assert!(CommentTemplate::parse("a } b").is_err());
        assert!(CommentTemplate::parse("{reason").is_err());
    }

    #[test]
    fn long_comments_are_cut_at_a_character() {
        let t = CommentTemplate::parse("{reason}").unwrap();
        let long = "é".repeat(MAX_COMMENT);
        let out = t.render(&cand(&long));
        assert!(out.len() <= MAX_COMMENT && out.len() >= MAX_COMMENT - 1);
        assert!(out.chars().all(|c| c == 'é'));
    }
}
