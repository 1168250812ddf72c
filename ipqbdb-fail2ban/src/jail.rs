//! fail2ban's jails: `jail.conf`, `jail.d/*.conf`, `jail.local`, `jail.d/*.local` in that order
//! (later files override earlier ones option by option), each section but `[DEFAULT]` and
//! `[INCLUDES]` a jail. Only enabled jails are returned, with what ibd-parse maps: the filter and
//! its options, the log paths (glob patterns), `maxretry`, `bantime`, `ignoreip` and `backend`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ini::Config;
use crate::{Error, FilterSpec};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jail {
    pub name: String,
    pub filter: FilterSpec,
    /// `logpath` entries (glob patterns), without fail2ban's `tail`/`head` suffix.
    pub logpaths: Vec<String>,
    pub maxretry: Option<u32>,
    /// `bantime` in seconds; negative: for ever.
    pub bantime: Option<i64>,
    pub ignoreip: Vec<String>,
    pub backend: String,
    /// `usedns` (fail2ban's default: `warn`).
    pub usedns: String,
    /// Where the jail's section is (the file that enabled it, as far as known).
    pub file: PathBuf,
    pub line: usize,
}

/// The enabled jails of the fail2ban configuration in `dir`, in the order of their sections.
pub fn read(dir: &Path) -> Result<Vec<Jail>, Error> {
    let cfg = Config::read_named(&dir.join("jail"))?;
    let none = BTreeMap::new();
    let mut jails = Vec::new();
    let names: Vec<String> = cfg
        .section_names()
        .filter(|n| *n != "INCLUDES" && *n != "DEFAULT")
        .map(String::from)
        .collect();
    for name in names {
        let get = |key: &str| cfg.get(&name, key, &none);
        let enabled = get("enabled")?.unwrap_or_default();
        let (file, line) = cfg
            .raw(&name, "enabled")
            .map(|v| ((*v.file).clone(), v.line))
            .unwrap_or_else(|| (dir.join("jail.conf"), 0));
        match parse_bool(&enabled) {
            Some(true) => {}
            Some(false) => continue,
            None => {
                return Err(Error::at(
                    &file,
                    line,
                    format!("[{name}] enabled = {enabled:?}: not true or false"),
                ))
            }
        }
        let at = |key: &str| {
            cfg.raw(&name, key)
                .map(|v| ((*v.file).clone(), v.line))
                .unwrap_or_else(|| (file.clone(), line))
        };
        let filter_text = get("filter")?.unwrap_or_else(|| name.clone());
        let filter: FilterSpec = filter_text.trim().parse().map_err(|e: String| {
            let (f, l) = at("filter");
            Error::at(&f, l, format!("[{name}] filter: {e}"))
        })?;
        let logpaths = get("logpath")?
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.strip_suffix(" tail")
                    .or_else(|| l.strip_suffix(" head"))
                    .unwrap_or(l)
                    .trim()
                    .to_string()
            })
            .collect();
        let maxretry = match get("maxretry")? {
            None => None,
            Some(v) => Some(v.trim().parse::<u32>().map_err(|_| {
                let (f, l) = at("maxretry");
                Error::at(&f, l, format!("[{name}] maxretry = {v:?}: not a count"))
            })?),
        };
        let bantime = match get("bantime")? {
            None => None,
            Some(v) => Some(parse_time(&v).ok_or_else(|| {
                let (f, l) = at("bantime");
                Error::at(&f, l, format!("[{name}] bantime = {v:?}: not a duration"))
            })?),
        };
        let ignoreip = get("ignoreip")?
            .unwrap_or_default()
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        jails.push(Jail {
            name: name.clone(),
            filter,
            logpaths,
            maxretry,
            bantime,
            ignoreip,
            backend: get("backend")?.unwrap_or_else(|| "auto".into()),
            usedns: get("usedns")?.unwrap_or_else(|| "warn".into()),
            file,
            line,
        });
    }
    Ok(jails)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

/// fail2ban's time abbreviations: `600`, `10m`, `1h 30m`, `1d`, `2w`, `1mo`, `1y`, `-1`.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim().to_lowercase();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let mut total: i64 = 0;
    let mut rest = s.as_str();
    let mut any = false;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let neg = rest.starts_with('-');
        let digits_start = usize::from(neg);
        let n_len = rest[digits_start..]
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len() - digits_start);
        if n_len == 0 {
            return None;
        }
        let n: f64 = rest[digits_start..digits_start + n_len].parse().ok()?;
        rest = rest[digits_start + n_len..].trim_start();
        let u_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..u_len];
        rest = &rest[u_len..];
        let mult: f64 = match unit {
            "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "mi" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "wk" | "week" | "weeks" => 604800.0,
            "mo" | "mon" | "month" | "months" => 2_629_800.0,
            "y" | "yy" | "year" | "years" => 31_557_600.0,
            _ => return None,
        };
        let v = (n * mult) as i64;
        total = total.checked_add(if neg { -v } else { v })?;
        any = true;
    }
    any.then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("600"), Some(600));
        assert_eq!(parse_time("10m"), Some(600));
        assert_eq!(parse_time("1h 30m"), Some(5400));
        assert_eq!(parse_time("-1"), Some(-1));
        assert_eq!(parse_time("1x"), None);
    }

    #[test]
    fn later_files_override() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir(d.join("jail.d")).unwrap();
        std::fs::write(
            d.join("jail.conf"),
            "[DEFAULT]\nenabled = false\nmode = normal\nfilter = %(__name__)s[mode=%(mode)s]\nmaxretry = 5\nbantime = 10m\nignoreip = 127.0.0.1/8 ::1\n[sshd]\nlogpath = /var/log/auth.log\n           /var/log/x*.log tail\n[apache-auth]\nlogpath = /a\n",
        )
        .unwrap();
        std::fs::write(
            d.join("jail.d/x.conf"),
            "[sshd]\nenabled = true\nmode = aggressive\n",
        )
        .unwrap();
        std::fs::write(d.join("jail.local"), "[sshd]\nmaxretry = 3\n").unwrap();
        let jails = read(d).unwrap();
        assert_eq!(jails.len(), 1);
        let j = &jails[0];
        assert_eq!(j.name, "sshd");
        assert_eq!(j.filter.to_string(), "sshd[mode=\"aggressive\"]");
        assert_eq!(j.logpaths, ["/var/log/auth.log", "/var/log/x*.log"]);
        assert_eq!((j.maxretry, j.bantime), (Some(3), Some(600)));
        assert_eq!(j.ignoreip, ["127.0.0.1/8", "::1"]);
        std::fs::write(d.join("jail.local"), "[sshd]\nmaxretry = many\n").unwrap();
        let e = read(d).unwrap_err().to_string();
        assert!(e.contains("jail.local:2") && e.contains("maxretry"), "{e}");
    }
}
