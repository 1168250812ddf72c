//! What the syntax trees of a filter's regexes let it skip: a timestamp found by the DFA alone,
//! and a `prefregex` whose own groups are only captured on lines a failregex matches.

use regex_syntax::ast::{Ast, GroupKind};

use crate::hybrid_regex::{HybridRegex, REGEX_SIZE_LIMIT};

/// How a filter finds a line's timestamp.
pub(super) enum DateFinder {
    /// `^\W{0,2}(X)`, as the regex X at the start of the line after at most two non-word
    /// characters: found by the DFA alone (capturing group 1 costs most of a line's time).
    LineBegin(regex::Regex),
    /// Any other form: group 1 of the regex.
    Group1(HybridRegex),
}

impl DateFinder {
    pub(super) fn find(&self, line: &str) -> Option<(usize, usize)> {
        match self {
            DateFinder::Group1(e) => e.group1(line),
            DateFinder::LineBegin(body) => {
                // As many leading non-word characters as the timestamp allows, most first.
                let mut offsets = vec![0];
                for (i, c) in line.char_indices().take(2) {
                    if c.is_alphanumeric() || c == '_' {
                        break;
                    }
                    offsets.push(i + c.len_utf8());
                }
                offsets
                    .into_iter()
                    .rev()
                    .find_map(|k| body.find(&line[k..]).map(|m| (k, k + m.end())))
            }
        }
    }
}

/// The pieces every match of `pattern` runs through in order, as the regex crate reads it: `None`
/// when it does not parse or has a top-level alternative, for then no piece is in every match.
fn chain(pattern: &str) -> Option<Vec<Ast>> {
    let mut ast = regex_syntax::ast::parse::Parser::new()
        .parse(pattern)
        .ok()?;
    if let Ast::Concat(c) = &mut ast {
        return Some(std::mem::take(&mut c.asts));
    }
    (!matches!(ast, Ast::Alternation(_))).then(|| vec![ast])
}

/// `^HEAD(?P<content>.+)$` -> `HEAD` compiled, when HEAD is a whole regex of its own.
pub(super) fn content_head(pattern: &str) -> Option<regex::Regex> {
    let head = pattern.strip_suffix("(?P<content>.+)$")?;
    // A chain of its own: the content group is not inside another group nor one alternative.
    chain(head)?;
    regex::RegexBuilder::new(head)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// For a date regex of the `{^LN-BEG}` form `^\W{0,2}(X)` (whose group 1 is all of X), X: the
/// timestamp is then X matched at the start of the line, after at most two non-word characters (as
/// many as X allows, most first), which a matcher can find without capturing groups.
pub(super) fn line_begin_body(regex: &str) -> Option<&str> {
    let rest = regex.strip_prefix(r"^\W{0,2}")?;
    let pieces = chain(rest)?;
    let [Ast::Group(g)] = pieces.as_slice() else {
        return None;
    };
    if !matches!(g.kind, GroupKind::CaptureIndex(_)) || has_unnamed_group(&g.ast) {
        return None;
    }
    let span = g.ast.span();
    Some(&rest[span.start.offset..span.end.offset])
}

/// Whether `ast` holds an unnamed group: datepattern wraps only a body without one (with one, the
/// body's own group 1 is the date), so such a body is left to group 1 of the whole regex.
fn has_unnamed_group(ast: &Ast) -> bool {
    match ast {
        Ast::Group(g) => matches!(g.kind, GroupKind::CaptureIndex(_)) || has_unnamed_group(&g.ast),
        Ast::Repetition(r) => has_unnamed_group(&r.ast),
        Ast::Alternation(a) => a.asts.iter().any(has_unnamed_group),
        Ast::Concat(c) => c.asts.iter().any(has_unnamed_group),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_begin_bodies() {
        use ipqbdb_fail2ban::datepattern::regexes;
        let r = regexes(Some("^%Y-%m-%d %H:%M:%S\n{^LN-BEG}Epoch"));
        assert_eq!(line_begin_body(&r[1]), Some(r"\d{10}(?:\.\d{1,9})?"));
        assert_eq!(line_begin_body(&r[0]), None);
        assert!(line_begin_body(&regexes(None)[0]).is_some());
        assert_eq!(line_begin_body(r"^\W{0,2}(a)(b)"), None);
        assert_eq!(line_begin_body(r"^\W{0,2}(?:a)"), None);
        assert_eq!(line_begin_body(r"^\W{0,2}(a(b))"), None);
        assert_eq!(line_begin_body(r"^\W{0,2}([)]b)"), Some("[)]b"));
    }

    #[test]
    fn content_heads() {
        let head = |p: &str| content_head(p).map(|r| r.as_str().to_string());
        assert_eq!(
            head(r"^(?:a|b) x(?P<content>.+)$").as_deref(),
            Some(r"^(?:a|b) x")
        );
        assert_eq!(head(r"^a|b(?P<content>.+)$"), None);
        assert_eq!(head(r"^(a(?P<content>.+)$)"), None);
        assert_eq!(head(r"^[(]\((?P<content>.+)$").as_deref(), Some(r"^[(]\("));
        assert_eq!(head(r"^a(?P<content>.*)$"), None);
    }
}
