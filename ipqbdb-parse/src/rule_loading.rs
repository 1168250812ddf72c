//! The rule set the daemon and `--test` match with: the rule file's rules, then the fail2ban
//! filters the command line and the configuration name. The daemon builds it again on SIGHUP.

use std::path::{Path, PathBuf};

use ipqbdb_runtime::settings::Settings;
use thiserror::Error;

use crate::cli::Cli;
use crate::fail2ban_jails::{self, Fail2banConfig, Loaded};
use crate::matcher::RuleSet;
use crate::rules::{self, RuleError, RuleMode};

#[derive(Debug, Error)]
pub enum RuleSetError {
    #[error(transparent)]
    Rules(#[from] RuleError),
    #[error(transparent)]
    Fail2ban(#[from] ipqbdb_fail2ban::Error),
    /// Neither the rule file nor fail2ban gave a rule: a daemon that can never ban is a mistake.
    #[error("{}: no rules", path.display())]
    NoRules { path: PathBuf },
    #[error("{}: {source}", path.display())]
    Regex { path: PathBuf, source: regex::Error },
}

/// The fail2ban filters and jails the command line and the configuration name (the command line's
/// filters after the configuration's).
pub fn fail2ban_config(cli: &Cli, s: &Settings) -> Fail2banConfig {
    let dir = cli
        .fail2ban_config
        .clone()
        .or_else(|| s.fail2ban_config.clone());
    let mut specs = s.fail2ban_filters.clone().unwrap_or_default();
    specs.extend(cli.fail2ban_filters.iter().cloned());
    Fail2banConfig {
        jails: dir.is_some(),
        dir: dir.unwrap_or_else(|| fail2ban_jails::default_dir().to_path_buf()),
        specs,
        strict: cli.fail2ban_strict || s.fail2ban_strict.unwrap_or(false),
    }
}

/// The rule file's rules and the fail2ban filters, as one set; the fail2ban filters' load report
/// (the filters themselves moved into the set).
pub fn build_rules(
    path: &Path,
    mode: RuleMode,
    f2b: &Fail2banConfig,
) -> Result<(RuleSet, Loaded), RuleSetError> {
    let rules = rules::load(path)?;
    let mut loaded = if f2b.is_empty() {
        Loaded::default()
    } else {
        fail2ban_jails::load(f2b)?
    };
    if rules.is_empty() && loaded.filters.is_empty() {
        return Err(RuleSetError::NoRules { path: path.into() });
    }
    let set = RuleSet::with_mode(rules, mode).map_err(|source| RuleSetError::Regex {
        path: path.into(),
        source,
    })?;
    let filters = std::mem::take(&mut loaded.filters);
    Ok((set.with_filters(filters), loaded))
}
