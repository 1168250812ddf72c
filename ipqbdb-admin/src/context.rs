//! Settings resolved from the command line, the configuration file and the defaults, in that order.

use std::path::PathBuf;

use ipqbdb_core::config::{Settings, DEFAULT_CONFIG_FILE, DEFAULT_DB_DIR};
use ipqbdb_core::{ModelParams, V6Prefix};
use ipqbdb_store::{AnyStore, Backend, OpenOptions, Store};

use crate::cli::GlobalArgs;
use crate::error::{AdminError, Result};

/// Everything a subcommand needs to know before it acts.
pub struct Context {
    /// The program name to print in messages (`ibd ban` or `ibd-ban`).
    pub program: String,
    pub config_file: PathBuf,
    pub settings: Settings,
    pub db_dir: PathBuf,
    pub backend: Option<Backend>,
    pub v6_prefix: V6Prefix,
}

impl Context {
    /// `section` is the configuration section of the subcommand (`ban`, `del`, ...).
    pub fn new(global: &GlobalArgs, section: &str, program: String) -> Result<Self> {
        let (config_file, required) = match (&global.config, std::env::var_os("IPQBDB_CONFIG")) {
            (Some(p), _) => (p.clone(), true),
            (None, Some(p)) => (PathBuf::from(p), true),
            (None, None) => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let settings = Settings::load(&config_file, section, required)?;
        let db_dir = global
            .db_dir
            .clone()
            .or_else(|| settings.db_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB_DIR));
        let backend = match (&global.backend, &settings.backend) {
            (Some(b), _) => Some(*b),
            (None, Some(name)) => Some(name.parse().map_err(|e| {
                AdminError::Usage(format!("{}: backend: {e}", config_file.display()))
            })?),
            (None, None) => None,
        };
        let prefix_bits = global.ipv6_prefix.or(settings.ipv6_prefix);
        let v6_prefix = match prefix_bits {
            Some(bits) => V6Prefix::new(bits).map_err(|e| AdminError::Usage(e.to_string()))?,
            None => V6Prefix::default(),
        };
        Ok(Context {
            program,
            config_file,
            settings,
            db_dir,
            backend,
            v6_prefix,
        })
    }

    /// Opens the database; `create` only for commands that write, so that a mistyped directory given
    /// to a listing is an error, not a new empty database.
    pub fn open(&self, create: bool) -> Result<AnyStore> {
        let opts = OpenOptions {
            create,
            backend: self.backend,
            v6_prefix: self.v6_prefix,
            model: ModelParams::default(),
        };
        Ok(AnyStore::open(&self.db_dir, &opts)?)
    }

    /// Reports one refused input on stderr, in the one-line form every program uses.
    pub fn warn(&self, message: impl std::fmt::Display) {
        eprintln!("{}: {message}", self.program);
    }
}
