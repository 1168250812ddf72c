//! The daemon's inputs, assembled from the command line: the FIFO, standard input, the journal, and
//! the followed files (named, declared with `--input FILE:program=NAME`, or a fail2ban jail's
//! `logpath`), each started on its own thread, resuming where the database says it stopped.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use ipqbdb_store::{Store, StoreError};
use thiserror::Error;

use crate::cli::InputSpec;
use crate::daemon::{position_key, InputInfo};
use crate::input_readers::{self, Event, FilePos, Start};
use crate::journal;

/// Reads (each up to 64 KiB of lines) queued between the inputs and the matcher: enough to ride
/// out a commit, bounded in memory (4 MiB).
pub const QUEUE: usize = 64;

/// Which inputs to read.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// The FIFO to create and read, if any.
    pub fifo: Option<PathBuf>,
    pub stdin: bool,
    /// The journalctl program, to read the journal.
    pub journalctl: Option<PathBuf>,
    /// Files to follow: those named (no program), then those declared with `--input`.
    pub named: Vec<PathBuf>,
    pub declared: Vec<InputSpec>,
    /// Files fail2ban jails name (`logpath`), followed unless named already.
    pub jail_files: Vec<PathBuf>,
    /// A followed file with no saved position is read from its start (else from its end).
    pub from_start: bool,
}

#[derive(Debug, Error)]
pub enum InputError {
    #[error("{}: declared the log of two programs ({first} and {second})", file.display())]
    TwoPrograms {
        file: PathBuf,
        first: String,
        second: String,
    },
    /// An input that could not be opened or started: `what` names it.
    #[error("{what}: {source}")]
    Start {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no input: give files to follow, --stdin, --journal, or drop --no-fifo")]
    None,
}

fn start_error(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> InputError {
    let what = what.to_string();
    move |source| InputError::Start { what, source }
}

/// Each followed file once, with the program declared for it: a file named twice is followed once,
/// and a file declared the log of two different programs is an error.
pub fn followed_files(inputs: &Inputs) -> Result<Vec<(PathBuf, Option<String>)>, InputError> {
    let mut files: Vec<(PathBuf, Option<String>)> = Vec::new();
    let named = inputs.named.iter().map(|f| (f.clone(), None));
    let declared = inputs
        .declared
        .iter()
        .map(|i| (i.path.clone(), i.program.clone()));
    for (file, program) in named.chain(declared) {
        match files.iter_mut().find(|(f, _)| *f == file) {
            Some((_, Some(p))) if program.as_ref().is_some_and(|q| q != p) => {
                return Err(InputError::TwoPrograms {
                    file,
                    first: p.clone(),
                    second: program.unwrap_or_default(),
                })
            }
            Some((_, p)) => *p = p.take().or(program),
            None => files.push((file, program)),
        }
    }
    for f in &inputs.jail_files {
        if !files.iter().any(|(g, _)| g == f) {
            files.push((f.clone(), None));
        }
    }
    Ok(files)
}

/// Starts every input, each on its own thread, resuming followed files and the journal at the
/// positions `store` holds. Returns what the daemon needs to know of each input, in the order of
/// their indices, and the channel their lines arrive on (it ends when every input has).
pub fn start<S: Store>(
    inputs: &Inputs,
    store: &S,
) -> Result<(Vec<InputInfo>, Receiver<Event>), InputError> {
    let files = followed_files(inputs)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
    let mut infos = Vec::new();
    if let Some(fifo) = &inputs.fifo {
        input_readers::make_fifo(fifo).map_err(start_error(fifo.display()))?;
        input_readers::spawn_fifo(fifo.clone(), infos.len(), tx.clone())
            .map_err(start_error(fifo.display()))?;
        infos.push(InputInfo {
            name: fifo.display().to_string(),
            path: None,
            program: None,
            position_key: None,
            can_end: false,
        });
    }
    if inputs.stdin {
        input_readers::spawn_stdin(infos.len(), tx.clone()).map_err(start_error("stdin"))?;
        infos.push(InputInfo {
            name: "<stdin>".into(),
            path: None,
            program: None,
            position_key: None,
            can_end: true,
        });
    }
    if let Some(journalctl) = &inputs.journalctl {
        let cursor = store
            .note(journal::CURSOR_KEY)?
            .map(|c| String::from_utf8_lossy(&c).into_owned());
        journal::spawn_journal(journalctl.clone(), cursor, infos.len(), tx.clone())
            .map_err(start_error("journal"))?;
        infos.push(InputInfo {
            name: "journal".into(),
            path: None,
            program: None,
            position_key: Some(journal::CURSOR_KEY.to_vec()),
            can_end: false,
        });
    }
    let stop = Arc::new(AtomicBool::new(false));
    for (file, program) in &files {
        let path = std::path::absolute(file).map_err(start_error(file.display()))?;
        let saved = store
            .note(&position_key(&path))?
            .and_then(|b| FilePos::decode(&b));
        let start = match saved {
            Some(p) => Start::Saved(p),
            None if inputs.from_start => Start::Beginning,
            None => Start::End,
        };
        input_readers::spawn_follow(path.clone(), start, infos.len(), tx.clone(), stop.clone())
            .map_err(start_error(path.display()))?;
        infos.push(InputInfo {
            name: path.display().to_string(),
            position_key: Some(position_key(&path)),
            path: Some(path),
            program: program.clone(),
            can_end: false,
        });
    }
    if infos.is_empty() {
        return Err(InputError::None);
    }
    Ok((infos, rx))
}

/// `path` made absolute (the daemon detaches into `/`, and a reload reads files again).
pub fn absolute(path: &Path) -> Result<PathBuf, InputError> {
    std::path::absolute(path).map_err(start_error(path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &str, program: Option<&str>) -> InputSpec {
        InputSpec {
            path: path.into(),
            program: program.map(String::from),
        }
    }

    #[test]
    fn each_file_once_with_its_program() {
        let inputs = Inputs {
            named: vec!["/l/a".into(), "/l/b".into(), "/l/a".into()],
            declared: vec![spec("/l/b", Some("sshd")), spec("/l/c", Some("nginx"))],
            jail_files: vec!["/l/c".into(), "/l/d".into()],
            ..Inputs::default()
        };
        let files = followed_files(&inputs).unwrap();
        let want: Vec<(PathBuf, Option<String>)> = vec![
            ("/l/a".into(), None),
            ("/l/b".into(), Some("sshd".into())),
            ("/l/c".into(), Some("nginx".into())),
            ("/l/d".into(), None),
        ];
        assert_eq!(files, want);
    }

    #[test]
    fn a_file_is_the_log_of_one_program() {
        let inputs = Inputs {
            declared: vec![spec("/l/a", Some("sshd")), spec("/l/a", Some("nginx"))],
            ..Inputs::default()
        };
        let e = followed_files(&inputs).unwrap_err().to_string();
        assert_eq!(e, "/l/a: declared the log of two programs (sshd and nginx)");
    }
}
