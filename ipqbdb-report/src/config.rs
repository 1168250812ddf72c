//! `ibd report`'s settings: the `report-*` keys of the configuration file, with their defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipqbdb_core::P_MAX;
use ipqbdb_runtime::settings::{Settings, DEFAULT_REPORT_KEY_FILE, DEFAULT_REPORT_URL};

use crate::comment::{CommentTemplate, DEFAULT_COMMENT};
use crate::error::{ReportError, Result};
use crate::select::Policy;

/// AbuseIPDB refuses a second report of one address by one reporter within 15 minutes.
pub const DEFAULT_COOLDOWN: u32 = 15 * 60;
/// AbuseIPDB's free plan allows 1,000 reports a day.
pub const DEFAULT_DAILY_QUOTA: u32 = 1000;
pub const DEFAULT_MAX_AGE: u32 = 3600;
pub const DEFAULT_TIMEOUT: u32 = 10;
pub const DEFAULT_INTERVAL: u32 = 10;

#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub url: String,
    pub key_file: PathBuf,
    pub comment: CommentTemplate,
    pub policy: Policy,
    /// `None`: no daily limit (`report-daily-quota = 0`).
    pub daily_quota: Option<u32>,
    pub timeout: Duration,
    pub interval: Duration,
}

impl ReportConfig {
    /// Resolves the settings of `config_file` (already checked by [`Settings::parse`]).
    pub fn from_settings(s: &Settings, config_file: &Path) -> Result<Self> {
        let bad = |key, why: String| ReportError::Setting {
            file: config_file.to_path_buf(),
            key,
            why,
        };
        let secs = |key, v: &Option<ipqbdb_core::units::DurationValue>, default| match v {
            Some(d) => d.seconds().map_err(|e| bad(key, e.to_string())),
            None => Ok(default),
        };
        let url = s
            .report_url
            .clone()
            .unwrap_or_else(|| DEFAULT_REPORT_URL.to_string());
        check_url(&url).map_err(|why| bad("report-url", why))?;
        let comment =
            CommentTemplate::parse(s.report_comment.as_deref().unwrap_or(DEFAULT_COMMENT))
                .map_err(|why| bad("report-comment", why))?;
        let percent = s.report_min_probability.unwrap_or(0).min(100);
        let timeout = secs("report-timeout", &s.report_timeout, DEFAULT_TIMEOUT)?;
        if timeout == 0 {
            return Err(bad("report-timeout", "must be at least 1s".into()));
        }
        let interval = secs("report-interval", &s.report_interval, DEFAULT_INTERVAL)?.max(1);
        Ok(ReportConfig {
            url,
            key_file: s
                .report_key_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_REPORT_KEY_FILE)),
            comment,
            policy: Policy {
                min_probability: (u64::from(P_MAX) * u64::from(percent) / 100) as u32,
                cooldown: secs("report-cooldown", &s.report_cooldown, DEFAULT_COOLDOWN)?,
                max_age: secs("report-max-age", &s.report_max_age, DEFAULT_MAX_AGE)?,
            },
            daily_quota: match s.report_daily_quota {
                Some(0) => None,
                Some(q) => Some(q),
                None => Some(DEFAULT_DAILY_QUOTA),
            },
            timeout: Duration::from_secs(timeout.into()),
            interval: Duration::from_secs(interval.into()),
        })
    }

    /// Reads the API key: the file's first line, without surrounding blanks.
    pub fn read_key(&self) -> Result<String> {
        read_key(&self.key_file)
    }
}

/// A warning when every user of the machine can read the key file: anyone holding the key can
/// report in the administrator's name.
pub fn key_file_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "{}: the API key is readable by every user (mode {:o}); chmod o-r it",
            path.display(),
            mode & 0o7777
        )
    })
}

/// An http:// or https:// URL; plain http:// only to this machine, because every request carries
/// the API key, and a key read on the way lets anyone report in the administrator's name.
fn check_url(url: &str) -> Result<(), String> {
    let uri: ureq::http::Uri = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(_)) => Ok(()),
        (Some("http"), Some(host)) if is_loopback(host) => Ok(()),
        (Some("http"), Some(_)) => Err(format!(
            "{url:?}: plain http:// would send the API key in clear; use https://, or http:// to \
             a loopback address only"
        )),
        _ => Err(format!("{url:?} is not an http:// or https:// URL")),
    }
}

/// `localhost`, 127.0.0.0/8 or ::1 (written `[::1]` in a URL).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The key is a header value: visible ASCII only, so a stray byte cannot split the request.
pub fn read_key(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|source| ReportError::KeyFile {
        path: path.to_path_buf(),
        source,
    })?;
    let key = text.lines().next().unwrap_or("").trim();
    let bad = |why| ReportError::BadKey {
        path: path.to_path_buf(),
        why,
    };
    if key.is_empty() {
        return Err(bad("the key file is empty"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("the key holds characters other than visible ASCII"));
    }
    Ok(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<ReportConfig> {
        let s = Settings::parse(text, Path::new("/etc/t.toml"), "report").unwrap();
        ReportConfig::from_settings(&s, Path::new("/etc/t.toml"))
    }

    #[test]
    fn defaults_and_values() {
        let c = cfg("").unwrap();
        assert_eq!(c.url, DEFAULT_REPORT_URL);
        assert_eq!(c.policy.cooldown, 900);
        assert_eq!(c.daily_quota, Some(1000));
        let c = cfg("[report]\nreport-daily-quota = 0\nreport-min-probability = 100\n").unwrap();
        assert_eq!(c.daily_quota, None);
        assert_eq!(c.policy.min_probability, P_MAX);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("report-url = \"ftp://x/y\"", "report-url"),
            ("report-url = \"not a url\"", "report-url"),
            ("report-comment = \"{line}\"", "report-comment"),
            ("report-timeout = 0", "report-timeout"),
            // The key would cross the network in clear.
            (
                "report-url = \"http://api.example/v2/report\"",
                "report-url",
            ),
            ("report-url = \"http://10.0.0.1/v2/report\"", "report-url"),
            ("report-url = \"http://[2001:db8::1]:8080/r\"", "report-url"),
            ("report-url = \"http://localhost.example/r\"", "report-url"),
        ] {
            let e = cfg(text).unwrap_err().to_string();
            assert!(e.starts_with(&format!("/etc/t.toml: {key}: ")), "{e}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback() {
        for url in [
            "https://api.example/v2/report",
            "http://127.0.0.1:8080/r",
            "http://127.1.2.3/r",
            "http://[::1]:8080/r",
            "http://localhost/r",
            "http://LocalHost:99/r",
        ] {
            let c = cfg(&format!("report-url = {url:?}")).unwrap();
            assert_eq!(c.url, url);
        }
        let e = cfg("report-url = \"http://api.example/v2/report\"")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/t.toml: report-url: \"http://api.example/v2/report\": plain http:// would send \
             the API key in clear; use https://, or http:// to a loopback address only"
        );
    }

    /// The example configuration's commented `report-*` lines, uncommented, are the defaults.
    #[test]
    fn example_configuration_shows_the_defaults() {
        let example = include_str!("../../packaging/examples/ipqbdb.toml");
        let text: String = example
            .lines()
            .filter_map(|l| l.strip_prefix("# report-"))
            .map(|l| format!("report-{}\n", l.split(" #").next().unwrap()))
            .collect();
        assert_eq!(text.lines().count(), 9, "{text}");
        let c = cfg(&text).unwrap();
        let d = cfg("").unwrap();
        assert_eq!(
            (c.url, c.key_file, c.comment, c.policy, c.daily_quota),
            (d.url, d.key_file, d.comment, d.policy, d.daily_quota)
        );
        assert_eq!((c.timeout, c.interval), (d.timeout, d.interval));
    }

    #[test]
    fn key_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key");
        std::fs::write(&p, "  abc123\nignored\n").unwrap();
        assert_eq!(read_key(&p).unwrap(), "abc123");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_key(&p).unwrap_err().to_string().contains("empty"));
        std::fs::write(&p, "a b").unwrap();
        assert!(read_key(&p)
            .unwrap_err()
            .to_string()
            .contains("visible ASCII"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(key_file_warning(&p), None);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = key_file_warning(&p).unwrap();
        assert!(w.contains("readable by every user (mode 644)"), "{w}");
        let e = read_key(&dir.path().join("none")).unwrap_err().to_string();
        assert!(e.contains("none"), "{e}");
    }
}
