//! Admin errors and their exit codes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AdminError {
    /// Wrong words on the command line (exit 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ipqbdb_runtime::settings::ConfigError),
    #[error(transparent)]
    Store(#[from] ipqbdb_store::StoreError),
    #[error(transparent)]
    Report(#[from] ipqbdb_report::ReportError),
    #[error(transparent)]
    ConnKill(#[from] ipqbdb_runtime::connkill::ConnKillError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Some inputs were refused; each was reported already (exit 1).
    #[error("{0}")]
    Partial(String),
    /// `ban`: every ban applied, but killing some connections failed (exit 3), so that a script
    /// can tell a ban that stands from one that did not happen.
    #[error("{0}")]
    KillsFailed(String),
}

impl AdminError {
    pub fn exit_code(&self) -> u8 {
        match self {
            AdminError::Usage(_) => 2,
            AdminError::KillsFailed(_) => 3,
            _ => 1,
        }
    }
}

pub type Result<T, E = AdminError> = std::result::Result<T, E>;
