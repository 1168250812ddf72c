//! The configuration file (TOML, default `/etc/ipqbdb/ipqbdb.toml`) and the built-in defaults.
//!
//! Top-level keys apply to every program; a section named after a program (`[ban]`, `[parse]`,
//! `[judge]`, ...) overrides them for that program only, so `ibd-ban` called from a web application
//! needs no command line beyond the address. Command-line options override both. Unknown keys and
//! sections are errors: a misspelt key silently ignored is a security setting not applied.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use ipqbdb_core::units::DurationValue;
use ipqbdb_core::ParseError;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/ipqbdb/ipqbdb.toml";
pub const DEFAULT_DB_DIR: &str = "/var/lib/ipqbdb";
pub const DEFAULT_RULE_FILE: &str = "/etc/ipqbdb-pcre.conf";
pub const DEFAULT_CONNKILL_FILE: &str = "/etc/ipqbdb-connkill.cmd";
/// Name of the parser's FIFO inside the database directory.
pub const PARSE_SOCKET: &str = "ibd-parse.sock";

/// Program sections a configuration file may hold.
pub const SECTIONS: [&str; 10] = [
    "ban", "del", "white", "config", "category", "parse", "judge", "stats", "report", "xdp",
];
/// Where `ibd report` sends reports unless `report-url` says otherwise: AbuseIPDB's API v2.
pub const DEFAULT_REPORT_URL: &str = "https://api.abuseipdb.com/api/v2/report";
pub const DEFAULT_REPORT_KEY_FILE: &str = "/etc/ipqbdb/report.key";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {key}: {source}")]
    Value {
        path: PathBuf,
        key: &'static str,
        #[source]
        source: ParseError,
    },
}

/// Every setting any program reads from the file; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    pub db_dir: Option<PathBuf>,
    /// Engine for a new database directory.
    pub backend: Option<String>,
    pub ipv6_prefix: Option<u32>,
    pub connkill_file: Option<PathBuf>,
    pub exec_connkill: Option<bool>,
    pub log_syslog: Option<bool>,
    pub reason: Option<String>,
    pub initial_count: Option<u32>,
    pub decay: Option<DurationValue>,
    pub rule_file: Option<PathBuf>,
    /// The rule set `ibd-parse` runs: `normal`, `ddos` or `aggressive`.
    pub mode: Option<String>,
    pub verbose: Option<u8>,
    /// Where a daemon serves Prometheus metrics, `ADDR:PORT`.
    pub metrics_listen: Option<String>,
    /// Where a daemon writes Prometheus metrics for node_exporter's textfile collector.
    pub metrics_file: Option<PathBuf>,
    /// `ibd ban` and `ibd-parse`: append the reason's report category to each ban's log line.
    pub log_category: Option<bool>,
    /// `ibd report`: the AbuseIPDB-compatible endpoint (`POST`, form fields `ip`, `categories`,
    /// `comment`).
    pub report_url: Option<String>,
    /// `ibd report`: the file holding the API key (never on the command line, where `ps` shows it).
    pub report_key_file: Option<PathBuf>,
    /// `ibd report`: the comment sent with each report; see `ipqbdb-report` for its fields.
    pub report_comment: Option<String>,
    /// `ibd report`: report a ban only if it left the address at this probability (percent) or more.
    pub report_min_probability: Option<u32>,
    /// `ibd report`: at most one report per address per this long.
    pub report_cooldown: Option<DurationValue>,
    /// `ibd report`: at most this many reports per UTC day.
    pub report_daily_quota: Option<u32>,
    /// `ibd report`: bans older than this are not reported (e.g. those made before reporting began).
    pub report_max_age: Option<DurationValue>,
    /// `ibd report`: how long to wait for the endpoint's answer.
    pub report_timeout: Option<DurationValue>,
    /// `ibd report --follow`: how often to look for new bans.
    pub report_interval: Option<DurationValue>,
    /// fail2ban filters `ibd-parse` runs beside the rule file (`sshd[mode=aggressive]`, a path,
    /// with `reason=`, `initial-count=` and `decay=` options for their bans).
    pub fail2ban_filters: Option<Vec<String>>,
    /// fail2ban's configuration directory: `ibd-parse` runs its enabled jails, and finds filters
    /// named by name in its `filter.d`.
    pub fail2ban_config: Option<PathBuf>,
    /// A fail2ban filter or jail that cannot be loaded stops `ibd-parse` (otherwise it is reported
    /// and left out).
    pub fail2ban_strict: Option<bool>,
    /// The PostgreSQL server of the `postgres` backend (libpq connection string or URL, without a
    /// password).
    pub postgres_url: Option<String>,
    /// A file whose first line is the PostgreSQL password (else libpq's `PGPASSFILE`).
    pub postgres_password_file: Option<PathBuf>,
    /// Whether a judge's view of the shared database listens for writers' commit notices
    /// (default true) or only polls, every `--staleness-ms`: a connection pooler in transaction
    /// mode (PgBouncer's `pool_mode = transaction`) does not carry `LISTEN`.
    pub postgres_notices: Option<bool>,
    /// This host's name in a shared database (parser read positions are per host); default: the
    /// system's host name.
    pub host_name: Option<String>,
}

/// The values of `mode`.
pub const RULE_MODES: [&str; 3] = ["normal", "ddos", "aggressive"];

impl Settings {
    /// Loads `path` for `program`. A missing file is an error only when `required` (the user named
    /// it); the default file is optional.
    pub fn load(path: &Path, program: &str, required: bool) -> Result<Settings, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Settings::default())
            }
            Err(e) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        Self::parse(&text, path, program)
    }

    /// Parses configuration text; `path` only names the source in errors.
    pub fn parse(text: &str, path: &Path, program: &str) -> Result<Settings, ConfigError> {
        let syntax = |message: String| ConfigError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        let mut sections = toml::Table::new();
        for name in table.keys().cloned().collect::<Vec<_>>() {
            if table[&name].is_table() {
                if !SECTIONS.contains(&name.as_str()) {
                    return Err(syntax(format!(
                        "unknown section [{name}] (known: {})",
                        SECTIONS.join(", ")
                    )));
                }
                sections.insert(name.clone(), table.remove(&name).expect("present"));
            }
        }
        let global: Settings = table
            .try_into()
            .map_err(|e: toml::de::Error| syntax(e.to_string()))?;
        let mut merged = global;
        for (name, section) in sections {
            let section: Settings = section
                .try_into()
                .map_err(|e: toml::de::Error| syntax(format!("[{name}]: {e}")))?;
            if name == program {
                merged = merged.overridden_by(section);
            }
        }
        merged.validate(path)?;
        Ok(merged)
    }

    /// `self` with every key `other` sets replaced.
    pub fn overridden_by(self, other: Settings) -> Settings {
        Settings {
            db_dir: other.db_dir.or(self.db_dir),
            backend: other.backend.or(self.backend),
            ipv6_prefix: other.ipv6_prefix.or(self.ipv6_prefix),
            connkill_file: other.connkill_file.or(self.connkill_file),
            exec_connkill: other.exec_connkill.or(self.exec_connkill),
            log_syslog: other.log_syslog.or(self.log_syslog),
            reason: other.reason.or(self.reason),
            initial_count: other.initial_count.or(self.initial_count),
            decay: other.decay.or(self.decay),
            rule_file: other.rule_file.or(self.rule_file),
            mode: other.mode.or(self.mode),
            verbose: other.verbose.or(self.verbose),
            metrics_listen: other.metrics_listen.or(self.metrics_listen),
            metrics_file: other.metrics_file.or(self.metrics_file),
            log_category: other.log_category.or(self.log_category),
            report_url: other.report_url.or(self.report_url),
            report_key_file: other.report_key_file.or(self.report_key_file),
            report_comment: other.report_comment.or(self.report_comment),
            report_min_probability: other.report_min_probability.or(self.report_min_probability),
            report_cooldown: other.report_cooldown.or(self.report_cooldown),
            report_daily_quota: other.report_daily_quota.or(self.report_daily_quota),
            report_max_age: other.report_max_age.or(self.report_max_age),
            report_timeout: other.report_timeout.or(self.report_timeout),
            report_interval: other.report_interval.or(self.report_interval),
            fail2ban_filters: other.fail2ban_filters.or(self.fail2ban_filters),
            fail2ban_config: other.fail2ban_config.or(self.fail2ban_config),
            fail2ban_strict: other.fail2ban_strict.or(self.fail2ban_strict),
            postgres_url: other.postgres_url.or(self.postgres_url),
            postgres_password_file: other.postgres_password_file.or(self.postgres_password_file),
            postgres_notices: other.postgres_notices.or(self.postgres_notices),
            host_name: other.host_name.or(self.host_name),
        }
    }

    /// Checks values whose type TOML cannot express, so a bad file fails at load, naming the key.
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let value = |key, source| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            source,
        };
        if let Some(d) = &self.decay {
            d.ban_seconds().map_err(|e| value("decay", e))?;
        }
        if let Some(c) = self.initial_count {
            ipqbdb_core::model::initial_count(c).map_err(|e| value("initial-count", e))?;
        }
        if let Some(m) = &self.mode {
            if !RULE_MODES.contains(&m.as_str()) {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: format!("mode must be one of {}, not {m:?}", RULE_MODES.join(", ")),
                });
            }
        }
        if let Some(a) = &self.metrics_listen {
            if a.parse::<std::net::SocketAddr>().is_err() {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: format!(
                        "metrics-listen must be ADDR:PORT (127.0.0.1:9100, [::1]:9100), not {a:?}"
                    ),
                });
            }
        }
        for (key, d) in [
            ("report-cooldown", &self.report_cooldown),
            ("report-max-age", &self.report_max_age),
            ("report-timeout", &self.report_timeout),
            ("report-interval", &self.report_interval),
        ] {
            if let Some(d) = d {
                d.seconds().map_err(|e| value(key, e))?;
            }
        }
        if let Some(p) = self.report_min_probability {
            if p > 100 {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: format!("report-min-probability is a percentage (0-100), not {p}"),
                });
            }
        }
        if let Some(p) = self.ipv6_prefix {
            ipqbdb_core::V6Prefix::new(p).map_err(|e| value("ipv6-prefix", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, program: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("/etc/test.toml"), program)
    }

    #[test]
    fn fail2ban_keys() {
        let s = parse(
            "[parse]\nfail2ban-filters = [\"sshd[mode=aggressive]\"]\nfail2ban-config = \"/etc/fail2ban\"\nfail2ban-strict = true\n",
            "parse",
        )
        .unwrap();
        assert_eq!(s.fail2ban_filters.unwrap(), ["sshd[mode=aggressive]"]);
        assert_eq!(s.fail2ban_config.unwrap(), Path::new("/etc/fail2ban"));
        assert_eq!(s.fail2ban_strict, Some(true));
        assert!(parse("fail2ban-filters = \"sshd\"\n", "parse").is_err());
    }

    #[test]
    fn rule_mode() {
        let s = parse("[parse]\nmode = \"aggressive\"\n", "parse").unwrap();
        assert_eq!(s.mode.as_deref(), Some("aggressive"));
        let e = parse("mode = \"wild\"\n", "parse").unwrap_err().to_string();
        assert!(
            e.contains("mode must be one of normal, ddos, aggressive"),
            "{e}"
        );
    }

    #[test]
    fn sections_override_globals_for_their_program_only() {
        let text = r#"
            db-dir = "/srv/ipq"
            decay = "2h"
            [ban]
            reason = "web login failure"
            decay = 600
            [parse]
            db-dir = "/srv/other"
        "#;
        let ban = parse(text, "ban").unwrap();
        assert_eq!(ban.db_dir.as_deref(), Some(Path::new("/srv/ipq")));
        assert_eq!(ban.reason.as_deref(), Some("web login failure"));
        assert_eq!(ban.decay.unwrap().seconds(), Ok(600));
        let parse_ = parse(text, "parse").unwrap();
        assert_eq!(parse_.db_dir.as_deref(), Some(Path::new("/srv/other")));
        assert_eq!(parse_.decay.unwrap().seconds(), Ok(7200));
        assert_eq!(parse_.reason, None);
    }

    #[test]
    fn decays_may_be_bare_numbers_with_a_fraction() {
        let s = parse("decay = 86400.5\n", "ban").unwrap();
        assert_eq!(s.decay.unwrap().ban_seconds(), Ok(86401));
        let s = parse("decay = 0.3\n", "ban").unwrap();
        assert_eq!(s.decay.unwrap().ban_seconds(), Ok(1));
        // Refused at load, naming the file and the key, as a bad text value is.
        for bad in ["0.0", "-1.5", "nan", "inf"] {
            let e = parse(&format!("decay = {bad}\n"), "ban").unwrap_err();
            assert!(
                e.to_string().starts_with("/etc/test.toml: decay: "),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = parse("db-dri = \"/x\"", "ban").unwrap_err().to_string();
        assert!(e.starts_with("/etc/test.toml: "), "{e}");
        assert!(e.contains("db-dri"), "{e}");
        let e = parse("[bna]\nreason = \"x\"", "ban")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown section [bna]"), "{e}");
        let e = parse("decay = \"4y\"", "ban").unwrap_err().to_string();
        assert!(e.contains("decay") && e.contains("4y"), "{e}");
        for zero in ["decay = 0", "decay = \"0s\"", "[ban]\ndecay = \"0m\""] {
            let e = parse(zero, "ban").unwrap_err().to_string();
            assert!(
                e.starts_with("/etc/test.toml: decay: a ban's decay cannot be 0"),
                "{zero}: {e}"
            );
        }
        let e = parse("initial-count = 40", "ban").unwrap_err().to_string();
        assert!(e.contains("initial-count"), "{e}");
        let e = parse("reason = ", "ban").unwrap_err().to_string();
        assert!(e.starts_with("/etc/test.toml: "), "{e}");
    }

    #[test]
    fn metrics_settings() {
        let s = parse(
            "[judge]\nmetrics-listen = \"127.0.0.1:9100\"\nmetrics-file = \"/run/j.prom\"\n",
            "judge",
        )
        .unwrap();
        assert_eq!(s.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
        assert_eq!(s.metrics_file.as_deref(), Some(Path::new("/run/j.prom")));
        let e = parse("[judge]\nmetrics-listen = \"localhost\"\n", "judge")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("/etc/test.toml: metrics-listen must be ADDR:PORT"),
            "{e}"
        );
    }

    #[test]
    fn report_settings() {
        let text = r#"
            [report]
            report-url = "http://127.0.0.1:9/api/v2/report"
            report-key-file = "/etc/ipqbdb/key"
            report-cooldown = "20m"
            report-daily-quota = 500
            report-min-probability = 50
        "#;
        let s = parse(text, "report").unwrap();
        assert_eq!(s.report_cooldown.unwrap().seconds(), Ok(1200));
        assert_eq!(s.report_daily_quota, Some(500));
        assert_eq!(parse(text, "ban").unwrap().report_url, None);
        let e = parse("report-min-probability = 101", "report")
            .unwrap_err()
            .to_string();
        assert!(e.contains("report-min-probability"), "{e}");
        let e = parse("[report]\nreport-timeout = \"soon\"", "report")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/test.toml: report-timeout: "), "{e}");
    }

    #[test]
    fn missing_default_file_is_fine_but_named_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.toml");
        assert_eq!(
            Settings::load(&p, "ban", false).unwrap(),
            Settings::default()
        );
        let e = Settings::load(&p, "ban", true).unwrap_err().to_string();
        assert!(e.contains("none.toml"), "{e}");
    }
}
