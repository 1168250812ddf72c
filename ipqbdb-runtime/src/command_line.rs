//! The one path every program's arguments take before clap: the option file's aliases first (an
//! alias may expand to an old spelling), then the old spellings' rewriting.

use std::ffi::OsString;

use thiserror::Error;

use crate::legacy_args::{self, Kind, LegacyArgError};
use crate::popt::{self, OptionFile, PoptError};

#[derive(Debug, Error)]
pub enum CommandLineError {
    #[error(transparent)]
    Popt(#[from] PoptError),
    #[error(transparent)]
    Legacy(#[from] LegacyArgError),
}

/// The option file that applies to `args` (without the program name): see [`popt::locate`]. A
/// `privileged` run reads only the default one, whatever the caller named.
pub fn option_file(
    args: &[OsString],
    privileged: bool,
    warn: &mut dyn FnMut(String),
) -> Result<OptionFile, CommandLineError> {
    let (path, required) = if privileged {
        (popt::DEFAULT_OPTION_FILE.into(), false)
    } else {
        popt::locate(args)
    };
    Ok(OptionFile::load(&path, required, warn)?)
}

/// Applies `file`'s aliases for any of `names` (the name the program was called by, and for
/// `ibd ban` also `ibd-ban`) and rewrites old spellings in `args` (without the program name).
/// Warnings (database file options without effect) go to `warn`.
pub fn prepare(
    file: &OptionFile,
    names: &[&str],
    kind: Kind,
    args: Vec<OsString>,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<OsString>, CommandLineError> {
    let expanded = file.expand(names, args)?;
    let translated = legacy_args::translate(kind, expanded)?;
    for w in translated.warnings {
        warn(w);
    }
    Ok(translated.args)
}
