//! The configuration file (TOML, default `/etc/ipqbdb/ipqbdb.toml`) and the built-in defaults.
//!
//! Top-level keys apply to every program; a section named after a program (`[ban]`, `[parse]`,
//! `[judge]`, ...) overrides them for that program only, so `ibd-ban` called from a web application
//! needs no command line beyond the address. Command-line options override both. Unknown keys and
//! sections are errors: a misspelt key silently ignored is a security setting not applied.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

use crate::error::ParseError;
use crate::units::parse_duration;

pub const DEFAULT_CONFIG_FILE: &str = "/etc/ipqbdb/ipqbdb.toml";
pub const DEFAULT_DB_DIR: &str = "/var/lib/ipqbdb";
pub const DEFAULT_RULE_FILE: &str = "/etc/ipqbdb-pcre.conf";
pub const DEFAULT_CONNKILL_FILE: &str = "/etc/ipqbdb-connkill.cmd";
/// Name of the parser's FIFO inside the database directory.
pub const PARSE_SOCKET: &str = "ibd-parse.sock";

/// Program sections a configuration file may hold.
pub const SECTIONS: [&str; 8] = [
    "ban", "del", "white", "config", "category", "parse", "judge", "xdp",
];

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

/// A duration written as seconds or as text (`"4h"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u32),
    Text(String),
}

impl DurationValue {
    pub fn seconds(&self) -> Result<u32, ParseError> {
        match self {
            DurationValue::Seconds(s) => Ok(*s),
            DurationValue::Text(t) => parse_duration(t),
        }
    }

    /// The value as a ban's decay, which cannot be 0 ([`crate::model::ban_decay`]): `decay` is only
    /// ever a ban's.
    pub fn ban_seconds(&self) -> Result<u32, ParseError> {
        self.seconds().and_then(crate::model::ban_decay)
    }
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
            crate::model::initial_count(c).map_err(|e| value("initial-count", e))?;
        }
        if let Some(m) = &self.mode {
            if !RULE_MODES.contains(&m.as_str()) {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    message: format!("mode must be one of {}, not {m:?}", RULE_MODES.join(", ")),
                });
            }
        }
        if let Some(p) = self.ipv6_prefix {
            crate::addr::V6Prefix::new(p).map_err(|e| value("ipv6-prefix", e))?;
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
