//! fail2ban's regex tags and Python's regex syntax, turned into the syntax of Rust's `regex` crate
//! (which `fancy-regex` shares, adding back-references, look-around and conditionals).
//!
//! - `<HOST>` and `<ADDR>` become an IPv4 address (optionally `::ffff:`-mapped) in group `ip4` or an
//!   IPv6 address in group `ip6`, in optional brackets; `<IP4>`, `<IP6>`, `<CIDR>` (group `cidr`)
//!   and `<SUBNET>` likewise. `<HOST>` never matches a host name: names are never resolved here.
//!   Our IPv6 form needs no look-behind (fail2ban's ends in `(?<=:):`, whose look-behind always
//!   holds), so most imported regexes stay within the fast engine.
//! - `<F-NAME>...</F-NAME>` becomes the group `name` (`F-ID` is `fid`, `F-PORT` is `fport`),
//!   `<F-ID/>` and `<F-PORT/>` their default groups.
//! - `<SKIPLINES>` (in a multi-line regex, `maxlines` > 1) matches any lines in between.
//! - `<DNS>` is refused (it needs name resolution).
//! - Python spellings the `regex` crate reads otherwise: `\Z`, `\<`/`\>`, `{,n}`, a `{` that is no
//!   repetition, and `[` or `&&`/`~~`/`--` inside a character class.

/// The address groups fail2ban reads, in its order of preference.
pub const ADDRESS_GROUPS: [&str; 2] = ["ip4", "ip6"];

const IP4: &str = r"(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})";
const IP6: &str = r"(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:))";
const CIDR: &str = r"(?P<cidr>\d+)";

fn addr() -> String {
    format!(r"\[?(?:{IP4}|{IP6})\]?")
}

/// Why a regex cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

/// Replaces fail2ban's tags in `regex` and rewrites Python-only syntax.
pub fn translate(regex: &str) -> Result<String, Unsupported> {
    let expanded = expand_tags(regex)?;
    Ok(pythonic_to_rust(&expanded))
}

fn expand_tags(regex: &str) -> Result<String, Unsupported> {
    let mut out = String::with_capacity(regex.len() * 2);
    let mut open: Vec<String> = Vec::new();
    let mut skip = 0;
    let mut rest = regex;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(len) = tag_len(rest) else {
            out.push('<');
            rest = &rest[1..];
            continue;
        };
        let tag = &rest[..len];
        rest = &rest[len..];
        let name = &tag[1..tag.len() - 1];
        let replacement = match name {
            "HOST" | "ADDR" | "F-ADDR/" => addr(),
            "IP4" | "F-IP4/" => IP4.to_string(),
            "IP6" | "F-IP6/" => IP6.to_string(),
            "CIDR" | "F-CIDR/" => CIDR.to_string(),
            "SUBNET" | "F-SUBNET/" => format!(r"\[?(?:{IP4}|{IP6})(?:/{CIDR})?\]?"),
            "F-ID/" => r"(?P<fid>\S+)".to_string(),
            "F-PORT/" => r"(?P<fport>\w+)".to_string(),
            "DNS" | "F-DNS/" => {
                return Err(Unsupported(
                    "<DNS> needs name resolution, which ibd-parse never does".into(),
                ))
            }
            "SKIPLINES" => {
                skip += 1;
                format!(r"\n(?P<skiplines{}>(?:(?:.*\n)*?))", skip - 1)
            }
            _ => match custom(name) {
                Some((true, n)) if open.contains(&n) => ")".to_string(),
                Some((false, n)) => {
                    let group = match n.to_lowercase().as_str() {
                        "id" => "fid".to_string(),
                        "port" => "fport".to_string(),
                        other => other.replace('-', "_"),
                    };
                    open.push(n);
                    format!("(?P<{group}>")
                }
                _ => tag.to_string(),
            },
        };
        out.push_str(&replacement);
    }
    out.push_str(rest);
    Ok(out)
}

/// Length of a tag `</?[\w-]+/?>` at the start of `s`.
fn tag_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 1;
    if b.get(i) == Some(&b'/') {
        i += 1;
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
        i += 1;
    }
    if i == start {
        return None;
    }
    if b.get(i) == Some(&b'/') {
        i += 1;
    }
    (b.get(i) == Some(&b'>')).then_some(i + 1)
}

/// `F-NAME` (opening) or `/F-NAME` (closing) with an upper-case name.
fn custom(tag: &str) -> Option<(bool, String)> {
    let (close, t) = match tag.strip_prefix('/') {
        Some(t) => (true, t),
        None => (false, tag),
    };
    let n = t.strip_prefix("F-")?;
    (!n.is_empty()
        && n.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_' || c == b'-'))
    .then(|| (close, n.to_string()))
}

/// Rewrites the Python spellings the `regex` crate reads differently.
pub fn pythonic_to_rust(re: &str) -> String {
    let chars: Vec<char> = re.chars().collect();
    let mut out = String::with_capacity(re.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let n = chars[i + 1];
                match n {
                    'Z' => out.push_str(r"\z"),
                    '<' | '>' | '\'' | '"' | '/' | '!' | '@' | '%' | ',' | ':' | ';' | '='
                    | '`' | '_' | ' ' => {
                        if n == ' ' {
                            out.push_str(r"\x20");
                        } else if n == '_' {
                            out.push('_');
                        } else {
                            out.push(n);
                        }
                    }
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
                continue;
            }
            // Python's `(?(name)yes|no)`: fancy-regex reads a bare name as a pattern to test.
            '(' if !in_class
                && chars.get(i + 1) == Some(&'?')
                && chars.get(i + 2) == Some(&'(') =>
            {
                let end = chars[i + 3..]
                    .iter()
                    .position(|&c| c == ')')
                    .map(|p| i + 3 + p);
                let name: String = end.map_or(String::new(), |e| chars[i + 3..e].iter().collect());
                if let Some(e) = end.filter(|_| {
                    !name.is_empty()
                        && !name.bytes().all(|b| b.is_ascii_digit())
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                }) {
                    out.push_str(&format!("(?(<{name}>)"));
                    i = e + 1;
                    continue;
                }
                out.push('(');
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // A `]` first in a class is a literal.
                if chars.get(i) == Some(&']') {
                    out.push_str(r"\]");
                    i += 1;
                }
                continue;
            }
            '[' => out.push_str(r"\["),
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            '-' if in_class && chars.get(i + 1) == Some(&'-') => out.push_str(r"\-"),
            '{' if !in_class => match repetition(&chars[i..]) {
                Some((text, len)) => {
                    out.push_str(&text);
                    i += len;
                    continue;
                }
                None => out.push_str(r"\{"),
            },
            '}' if !in_class => out.push_str(r"\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// A `{n}`, `{n,}`, `{n,m}` or `{,m}` repetition at the start of `s`, as the `regex` crate writes it.
fn repetition(s: &[char]) -> Option<(String, usize)> {
    let end = s.iter().position(|&c| c == '}')?;
    let body: String = s[1..end].iter().collect();
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let ok = match body.split_once(',') {
        None => digits(&body),
        Some((a, b)) => {
            (a.is_empty() || digits(a))
                && (b.is_empty() || digits(b))
                && !(a.is_empty() && b.is_empty())
        }
    };
    if !ok {
        return None;
    }
    let body = if body.starts_with(',') {
        format!("0{body}")
    } else {
        body
    };
    let mut text = format!("{{{body}}}");
    // Python's lazy `{n,m}?` keeps its `?`; nothing else to do.
    if s.get(end + 1) == Some(&'?') {
        text.push('?');
        return Some((text, end + 2));
    }
    Some((text, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_become_groups() {
        let t = translate("^<F-USER>.*</F-USER> from <HOST> <F-ID/> </F-X>").unwrap();
        assert!(t.starts_with("^(?P<user>.*) from "), "{t}");
        assert!(t.contains("(?P<ip4>") && t.contains("(?P<ip6>") && t.contains("(?P<fid>"));
        assert!(t.ends_with(" </F-X>"), "{t}");
        assert!(translate("from <DNS>").is_err());
        let t = translate("a<SKIPLINES>b<SKIPLINES>c").unwrap();
        assert!(
            t.contains("(?P<skiplines0>") && t.contains("(?P<skiplines1>"),
            "{t}"
        );
        assert_eq!(
            translate("<F-ALT_USER>a</F-ALT_USER>").unwrap(),
            "(?P<alt_user>a)"
        );
    }

    #[test]
    fn python_spellings() {
        assert_eq!(pythonic_to_rust(r"a{,3}b{2}c{x}\Z"), r"a{0,3}b{2}c\{x\}\z");
        assert_eq!(pythonic_to_rust(r"[[\]a&&b]\<x\>"), r"[\[\]a\&\&b]<x>");
        assert_eq!(pythonic_to_rust(r"[]a]"), r"[\]a]");
        assert_eq!(
            pythonic_to_rust(r"(?(cond)a|b)(?(1)c)"),
            r"(?(<cond>)a|b)(?(1)c)"
        );
    }
}
