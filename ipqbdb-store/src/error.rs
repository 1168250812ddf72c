//! Store errors. Every variant names the file or directory involved, because an administrator reading
//! one log line must know which database is in trouble.

use std::path::PathBuf;

use thiserror::Error;

use crate::engines::Engine;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir}: this database directory belongs to the {found} backend, not {wanted}")]
    EngineMismatch {
        dir: PathBuf,
        found: Engine,
        wanted: Engine,
    },
    #[error("{dir}: the database uses the {backend} backend, which this program was built without (built with: {compiled})")]
    NotCompiled {
        dir: PathBuf,
        backend: String,
        compiled: String,
    },
    #[error("{dir}: not an ipqbdb database directory: {why}")]
    Foreign { dir: PathBuf, why: String },
    /// The `postgres` engine was chosen without a usable server configuration.
    #[error("{dir}: postgres: {why}")]
    ServerConfig { dir: PathBuf, why: String },
    /// A dump `ibd import` cannot take (line 0: the file or database as a whole).
    #[error("{}: {what}", at(path, *line))]
    Import {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{dir}: no database here (run a program that creates it first, e.g. ibd ban)")]
    Missing { dir: PathBuf },
    #[error("{path}: corrupt database: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("{path}: {backend}: {source}")]
    Engine {
        path: PathBuf,
        backend: Engine,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reason text is {len} bytes long; at most {max} are allowed")]
    ReasonTooLong { len: usize, max: usize },
    #[error("no reason with id {0}")]
    NoSuchReason(u32),
    #[error("no reason with text {0:?}")]
    NoSuchReasonText(String),
    /// A request the model refuses (a ban's decay of 0).
    #[error(transparent)]
    Invalid(#[from] ipqbdb_core::ParseError),
    /// The database bans IPv6 by another prefix than the program was configured with: the two would
    /// look addresses up under different keys, so the program refuses to start rather than never
    /// blocking IPv6.
    #[error("{dir}: the database bans IPv6 addresses by /{stored} prefixes, but ipv6-prefix is set to {given} here (remove ipv6-prefix from the configuration and command line, or change the database's with `ibd config --set-ipv6-prefix {given}`)")]
    PrefixMismatch { dir: PathBuf, stored: u8, given: u8 },
    /// A read found the database older than a snapshot this process already saw, and the writer did
    /// not publish its commit within the short wait a packet thread can afford (LMDB only). Nothing
    /// is wrong: try again.
    #[error("{path}: a concurrent commit is not yet published; try again")]
    Retry { path: PathBuf },
}

/// `path:line`, or `path` alone for line 0.
fn at(path: &std::path::Path, line: usize) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}

impl StoreError {
    /// Whether the same operation may succeed if simply run again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Retry { .. })
    }

    pub(crate) fn engine(
        path: &std::path::Path,
        backend: Engine,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Engine {
            path: path.to_path_buf(),
            backend,
            source: Box::new(source),
        }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
