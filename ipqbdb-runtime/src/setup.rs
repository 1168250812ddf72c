//! Which database a program opens: the options every program shares (`--config`, `--db-dir`,
//! `--backend`, `--ipv6-prefix`, `--postgres-url`), resolved against the configuration file and the defaults.
//!
//! Precedence is command line, then the program's section of the configuration file, then its top
//! level, then the built-in default.

use std::path::PathBuf;

use clap::Args;
use ipqbdb_core::log::{self, Level};
use ipqbdb_core::{ModelParams, V6Prefix};
use ipqbdb_store::{AnyStore, Engine, OpenOptions, ServerOptions, Store, StoreError};
use thiserror::Error;

use crate::settings::{ConfigError, Settings, DEFAULT_CONFIG_FILE, DEFAULT_DB_DIR};

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Configuration file [default: /etc/ipqbdb/ipqbdb.toml, or $IPQBDB_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database directory [default: /var/lib/ipqbdb]
    #[arg(long, global = true, value_name = "DIR")]
    pub db_dir: Option<PathBuf>,
    /// Storage engine for a new database directory (an existing one keeps its own)
    #[arg(long, global = true, value_name = "ENGINE")]
    pub backend: Option<Engine>,
    /// IPv6 prefix length bans apply to: a new database stores it [default: 64]; an existing one
    /// keeps its own, and a different value here is an error
    #[arg(long, global = true, value_name = "BITS")]
    pub ipv6_prefix: Option<u32>,
    /// PostgreSQL server of the postgres backend, as a libpq connection string or URL without a
    /// password (e.g. "host=db1 dbname=ipqbdb user=ipqbdb"); the password comes from
    /// postgres-password-file in the configuration or from the PGPASSFILE file
    #[arg(long, global = true, value_name = "CONNINFO")]
    pub postgres_url: Option<String>,
    /// popt option file whose `PROGRAM alias OPTION EXPANSION...` lines apply to this program's
    /// command line [default: /etc/ipqbdb.popt, or $IPQBDB_OPTION_FILE]
    #[arg(long, global = true, value_name = "FILE")]
    pub option_file: Option<PathBuf>,
}

impl DbArgs {
    /// Whether any of these options was given: a setuid `ibd-ban` accepts none.
    pub fn is_given(&self) -> bool {
        let DbArgs {
            config,
            db_dir,
            backend,
            ipv6_prefix,
            postgres_url,
            option_file,
        } = self;
        config.is_some()
            || db_dir.is_some()
            || backend.is_some()
            || ipv6_prefix.is_some()
            || postgres_url.is_some()
            || option_file.is_some()
    }
}

/// The housekeeping option of the daemons.
#[derive(Debug, Clone, Args)]
pub struct MaintenanceArgs {
    /// How often to do the database's housekeeping (LMDB's stale reader slots, SQLite's WAL
    /// checkpoint); 0 for never
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval)]
    pub maintenance_interval: u32,
}

impl MaintenanceArgs {
    /// The interval, `None` for never.
    pub fn every(&self) -> Option<std::time::Duration> {
        (self.maintenance_interval > 0)
            .then(|| std::time::Duration::from_secs(self.maintenance_interval.into()))
    }
}

fn parse_interval(s: &str) -> Result<u32, String> {
    ipqbdb_core::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Debug, Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{file}: backend: {source}")]
    Engine {
        file: PathBuf,
        #[source]
        source: ipqbdb_store::UnknownEngine,
    },
    #[error(transparent)]
    Prefix(#[from] ipqbdb_core::ParseError),
}

/// The resolved location and settings of a program's database.
#[derive(Debug, Clone)]
pub struct Setup {
    pub config_file: PathBuf,
    /// The merged configuration (file top level and the program's section).
    pub settings: Settings,
    pub db_dir: PathBuf,
    pub backend: Option<Engine>,
    /// The IPv6 prefix given on the command line or in the configuration, checked against the
    /// database's at open (see [`OpenOptions::v6_prefix`]).
    pub v6_prefix: Option<V6Prefix>,
    /// The server of the postgres backend, when a connection string is given.
    pub server: Option<ServerOptions>,
    /// The popt option file the command line was read with.
    pub option_file: PathBuf,
}

impl Setup {
    /// `section` is the program's configuration section (`ban`, `parse`, `judge`, ...).
    pub fn resolve(args: &DbArgs, section: &str) -> Result<Setup, SetupError> {
        let (config_file, required) = match (&args.config, std::env::var_os("IPQBDB_CONFIG")) {
            (Some(p), _) => (p.clone(), true),
            (None, Some(p)) => (PathBuf::from(p), true),
            (None, None) => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let settings = Settings::load(&config_file, section, required)?;
        let db_dir = args
            .db_dir
            .clone()
            .or_else(|| settings.db_dir.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DB_DIR));
        // A daemon that detaches changes its directory to `/`: a relative path must not change
        // meaning then.
        let db_dir = std::path::absolute(&db_dir).unwrap_or(db_dir);
        // Every program resolves its directory once at start: the place to say, each time, that
        // an old database lies there unread.
        if let Some(notice) = ipqbdb_store::dir::legacy_notice(&db_dir) {
            log::log(&format!("ibd-{section}"), Level::Warning, &notice);
        }
        let option_file = args
            .option_file
            .clone()
            .unwrap_or_else(|| crate::popt::locate(&[]).0);
        let backend = match (&args.backend, &settings.backend) {
            (Some(b), _) => Some(*b),
            (None, Some(name)) => Some(name.parse().map_err(|source| SetupError::Engine {
                file: config_file.clone(),
                source,
            })?),
            (None, None) => None,
        };
        let v6_prefix = args
            .ipv6_prefix
            .or(settings.ipv6_prefix)
            .map(V6Prefix::new)
            .transpose()?;
        let server = args
            .postgres_url
            .clone()
            .or_else(|| settings.postgres_url.clone())
            .map(|url| ServerOptions {
                url,
                password_file: settings.postgres_password_file.clone(),
                host_name: settings.host_name.clone(),
            });
        Ok(Setup {
            config_file,
            settings,
            db_dir,
            backend,
            v6_prefix,
            server,
            option_file,
        })
    }

    /// Opens the database; `create` only for programs that write.
    pub fn open(&self, create: bool) -> Result<AnyStore, StoreError> {
        AnyStore::open(
            &self.db_dir,
            &OpenOptions {
                create,
                backend: self.backend,
                v6_prefix: self.v6_prefix,
                model: ModelParams::default(),
                server: self.server.clone(),
            },
        )
    }
}
