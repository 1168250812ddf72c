use std::path::{Path, PathBuf};

use thiserror::Error;

/// Anything wrong with fail2ban configuration: shown as `FILE:LINE: message` (or `FILE: message`
/// when no line applies, as for a file that cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct Error {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl Error {
    pub fn at(file: &Path, line: usize, message: impl Into<String>) -> Self {
        Error {
            file: file.to_path_buf(),
            line: (line > 0).then_some(line),
            message: message.into(),
        }
    }

    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        Error {
            file: file.to_path_buf(),
            line: None,
            message: message.into(),
        }
    }
}
