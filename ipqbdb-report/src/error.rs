//! Report errors: each names the file or setting involved.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    BadKey { path: PathBuf, why: &'static str },
    /// A setting that cannot work, named as in the configuration file.
    #[error("{file}: {key}: {why}")]
    Setting {
        file: PathBuf,
        key: &'static str,
        why: String,
    },
    #[error(transparent)]
    Store(#[from] ipqbdb_store::StoreError),
    #[error("writing the output: {0}")]
    Output(#[source] std::io::Error),
}

pub type Result<T, E = ReportError> = std::result::Result<T, E>;
