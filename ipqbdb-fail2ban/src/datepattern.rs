//! fail2ban's `datepattern`, as far as ibd-parse needs it: to find where a line's timestamp is, so
//! that the failure regexes see the line without it (as fail2ban's do). The time itself is not
//! read: ibd-parse bans when it reads a line.
//!
//! Each pattern becomes a regex whose group 1 is the timestamp: `%` directives (`%Y`, `%b`, `%d`,
//! `%H`, `%f`, `%z`, ...), `{^LN-BEG}` (at the start of the line, after at most two
//! non-word characters), `^`, `{DATE}` (any of the common forms), `EPOCH`, `LEPOCH`, `TAI64N`,
//! `{NONE}` (no timestamp). Without a `datepattern`, the common forms are looked for anywhere:
//! syslog (`Jan 23 21:59:59`), ISO 8601 and its relatives, Apache's (`23/Jan/2005:21:59:59 +0100`),
//! the `dd/mm/yyyy` and `mm-dd-yyyy` forms, epoch seconds and TAI64N. Regexes here are written for
//! ipqbdb, not taken from fail2ban.

use crate::tags::pythonic_to_rust;

const MONTH: &str = r"(?:[Jj]an(?:uary)?|[Ff]eb(?:ruary)?|[Mm]ar(?:ch)?|[Aa]pr(?:il)?|[Mm]ay|[Jj]un[e]?|[Jj]ul[y]?|[Aa]ug(?:ust)?|[Ss]ep(?:tember)?|[Oo]ct(?:ober)?|[Nn]ov(?:ember)?|[Dd]ec(?:ember)?)";
const WEEKDAY: &str = r"(?:[Mm]on|[Tt]ue|[Ww]ed|[Tt]hu|[Ff]ri|[Ss]at|[Ss]un)[a-z]*";
const ZONE: &str = r"(?:Z|UTC|GMT|[+-][01]\d(?::?[0-5]\d)?)";

/// The common forms, most specific first, without groups.
fn common_forms() -> Vec<String> {
    let hms = r"[0-2]?\d:[0-5]\d:[0-6]\d";
    vec![
        // ISO 8601 and relatives: 2005-01-23T21:59:59.981746+01:00, 2005/01/23 21:59:59, 2005.01.23
        format!(r"\d{{4}}[-/.][01]?\d[-/.][0-3]?\d(?:T| {{1,2}}){hms}(?:[.,]\d+)?(?:\s*{ZONE})?"),
        // 20050123T215959
        format!(r"\d{{8}}(?:T| {{1,2}})\d{{6}}(?:[.,]\d+)?(?:\s*{ZONE})?"),
        // syslog and asctime: [Sun ]Jan 23 21:59:59[.011][ 2005], Jan 23 2005 21:59:59
        format!(
            r"(?:[A-Z]{{3,5}} )?(?:{WEEKDAY} )?{MONTH} {{1,2}}[0-3]?\d(?: \d{{4}})? {{1,2}}{hms}(?:\.\d+)?(?: \d{{4}})?"
        ),
        // Apache: 23/Jan/2005:21:59:59 +0100; 26-Jul-2007 15:20:52.252
        format!(r"[0-3]?\d[-/]{MONTH}[-/]\d{{4}}[ :]?{hms}(?:\.\d+)?(?: {ZONE})?"),
        // Tomcat: Jan 23, 2005 9:59:59 PM
        format!(r"{MONTH} [0-3]?\d, \d{{4}} [01]?\d:[0-5]\d:[0-6]\d ?[AaPp][Mm]"),
        // 23/01/2005 21:59:59, 17-07-2008 17:23:25, 01-27-2012 16:22:44.252
        format!(r"[0-3]?\d[-/][0-3]?\d[-/](?:\d{{4}}|\d{{2}}) {hms}(?:\.\d+)?"),
        // cPanel: 05/20/2008:01:57:39
        format!(r"[01]?\d/[0-3]?\d/\d{{4}}:{hms}"),
        // MySQL: 130322 11:46:11
        format!(r"\d{{6}}  ?{hms}"),
        // ASSP: Apr-27-13 02:33:06
        format!(r"{MONTH}-[0-3]?\d-\d{{2}} {hms}"),
        // TAI64N and epoch seconds (with fractions)
        r"@[0-9a-f]{24}".to_string(),
        r"\d{10}(?:\.\d{1,9})?".to_string(),
    ]
}

fn common_union() -> String {
    format!("(?:{})", common_forms().join("|"))
}

/// The regexes (group 1: the timestamp) to try in order for `datepattern` (`None`: fail2ban's
/// default). An empty list: the lines carry no timestamp (`{NONE}`).
pub fn regexes(datepattern: Option<&str>) -> Vec<String> {
    let Some(dp) = datepattern else {
        // A timestamp at the start of the line is preferred, as fail2ban does.
        // Elsewhere, the forms are tried one by one (not the leftmost of all): a number that
        // looks like epoch seconds before the real timestamp must not win.
        let u = common_union();
        let mut v = vec![format!(r"^\W{{0,2}}({u})")];
        v.extend(common_forms().iter().map(|f| format!(r"\b({f})")));
        return v;
    };
    dp.split('\n')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .filter_map(one)
        .collect()
}

fn one(pattern: &str) -> Option<String> {
    let mut p = pattern;
    let mut line_begin = false;
    if let Some(r) = p.strip_prefix("{^LN-BEG}") {
        line_begin = true;
        p = r;
    }
    if let Some(r) = p.strip_prefix("{UNB}") {
        p = r;
    }
    if p.eq_ignore_ascii_case("{NONE}") {
        return None;
    }
    let mut caret = false;
    let keyword = p.strip_prefix('^').inspect(|_| caret = true).unwrap_or(p);
    let special = match keyword.to_ascii_uppercase().as_str() {
        "EPOCH" => Some(r"\d{10}(?:\.\d{1,9})?".to_string()),
        "LEPOCH" => Some(r"\d{13}(?:\.\d{1,6})?".to_string()),
        "TAI64N" => Some(r"@[0-9a-f]{24}".to_string()),
        "" if line_begin => Some(common_union()),
        _ => None,
    };
    let p = p.trim_start_matches("**").trim_end_matches("**");
    let is_special = special.is_some();
    let body = match special {
        Some(s) => format!("({s})"),
        None => {
            let re = pythonic_to_rust(&directives(p));
            if has_capture_group(&re) {
                re
            } else {
                format!("({re})")
            }
        }
    };
    let body = if caret && is_special {
        format!("^{body}")
    } else {
        body
    };
    Some(if line_begin {
        format!(r"^\W{{0,2}}{body}")
    } else {
        body
    })
}

/// Whether `re` has an unnamed capturing group (fail2ban then takes its group 1 as the date).
fn has_capture_group(re: &str) -> bool {
    let b = re.as_bytes();
    (0..b.len())
        .any(|i| b[i] == b'(' && (i == 0 || b[i - 1] != b'\\') && b.get(i + 1) != Some(&b'?'))
}

/// `%` directives to regexes; `{DATE}` to the common forms.
fn directives(p: &str) -> String {
    let mut out = String::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("{DATE}") {
            out.push_str(&common_union());
            rest = r;
            continue;
        }
        let Some(r) = rest.strip_prefix('%') else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        // fail2ban's extended directives: %Ex<d> (e.g. %ExY: a 4-digit year of this century).
        let (ext, r) = match r.strip_prefix("Ex") {
            Some(r) => (true, r),
            None => (false, r),
        };
        let Some(d) = r.chars().next() else {
            out.push('%');
            break;
        };
        let _ = ext;
        let re = match d {
            'Y' => r"\d{4}",
            'y' => r"\d{2}",
            'm' => r"(?:1[0-2]|0?[1-9])",
            'd' | 'e' => r"(?:3[01]|[12]\d|0?[1-9])",
            'H' | 'k' => r"(?:2[0-3]|[01]?\d)",
            'I' | 'l' => r"(?:1[0-2]|0?[1-9])",
            'M' => r"[0-5]?\d",
            'S' => r"(?:[0-5]?\d|6[01])",
            'f' => r"\d{1,9}",
            'z' => ZONE,
            'Z' => r"[A-Z]{3,5}",
            'b' | 'B' | 'h' => MONTH,
            'a' | 'A' => WEEKDAY,
            'p' => r"[AaPp][Mm]",
            'j' => r"\d{1,3}",
            's' => r"\d{10}",
            'U' | 'W' => r"\d{1,2}",
            'w' | 'u' => r"\d",
            '%' => "%",
            other => {
                out.push('%');
                out.push(other);
                rest = &r[other.len_utf8()..];
                continue;
            }
        };
        out.push_str(re);
        rest = &r[d.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(regexes(Some("{NONE}")).len(), 0);
        assert_eq!(regexes(None).len(), 1 + common_forms().len());
        let r = regexes(Some("^%Y-%m-%d %H:%M:%S\n{^LN-BEG}Epoch"));
        assert_eq!(r.len(), 2);
        assert!(r[0].starts_with(r"(^\d{4}-"), "{}", r[0]);
        assert!(r[1].starts_with(r"^\W{0,2}(\d{10}"), "{}", r[1]);
        let r = regexes(Some(r"^[^\[]*\[({DATE})"));
        assert!(r[0].starts_with(r"^[^\[]*\[((?:"), "{}", r[0]);
    }
}
