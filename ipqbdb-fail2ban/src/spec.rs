//! `name[opt=value, opt2="value, with comma"]`: how fail2ban names a filter with its options (in a
//! jail's `filter =`), and how ibd-parse's `--fail2ban-filter` names one.

use std::collections::BTreeMap;

/// A filter's name (or path to its file) and its options.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterSpec {
    pub name: String,
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Display for FilterSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)?;
        if !self.options.is_empty() {
            let opts: Vec<String> = self
                .options
                .iter()
                .map(|(k, v)| format!("{k}=\"{v}\""))
                .collect();
            write!(f, "[{}]", opts.join(", "))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for FilterSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (name, rest) = match text.find('[') {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("{text:?}: no filter name"));
        }
        let mut options = BTreeMap::new();
        if let Some(rest) = rest {
            let Some(body) = rest.trim_end().strip_suffix(']') else {
                return Err(format!("{text:?}: no closing ']' after the options"));
            };
            let mut s = body;
            loop {
                s = s.trim_start();
                if s.is_empty() {
                    break;
                }
                let Some(eq) = s.find('=') else {
                    return Err(format!("{text:?}: expected name=value at {s:?}"));
                };
                let key = s[..eq].trim();
                if key.is_empty()
                    || !key
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
                {
                    return Err(format!("{text:?}: bad option name {key:?}"));
                }
                let after = &s[eq + 1..];
                let (value, rest) = match after.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let Some(end) = after[1..].find(q) else {
                            return Err(format!("{text:?}: unterminated quote after {key}="));
                        };
                        (&after[1..1 + end], &after[end + 2..])
                    }
                    _ => {
                        let end = after.find([',', ']']).unwrap_or(after.len());
                        (after[..end].trim(), &after[end..])
                    }
                };
                options.insert(key.to_lowercase(), value.to_string());
                let rest = rest.trim_start();
                s = match rest.strip_prefix(',') {
                    Some(r) => r,
                    None if rest.is_empty() => rest,
                    // fail2ban's `]  [` between option groups.
                    None => match rest.strip_prefix(']').map(str::trim_start) {
                        Some(r) if r.starts_with('[') => &r[1..],
                        _ => return Err(format!("{text:?}: unexpected {rest:?} after {key}=")),
                    },
                };
            }
        }
        Ok(FilterSpec {
            name: name.to_string(),
            options,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_options() {
        let s: FilterSpec = "sshd[mode=aggressive, reason=\"ssh, brute\", x='y']"
            .parse()
            .unwrap();
        assert_eq!(s.name, "sshd");
        assert_eq!(s.options["mode"], "aggressive");
        assert_eq!(s.options["reason"], "ssh, brute");
        assert_eq!(s.options["x"], "y");
        assert_eq!("postfix".parse::<FilterSpec>().unwrap().options.len(), 0);
        assert!("sshd[mode=x".parse::<FilterSpec>().is_err());
        assert!("sshd[mode]".parse::<FilterSpec>().is_err());
        assert!("[a=b]".parse::<FilterSpec>().is_err());
    }
}
