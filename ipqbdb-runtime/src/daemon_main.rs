//! The `main` every daemon shares, and its exit codes.

use std::process::ExitCode;

use clap::Parser;
use ipqbdb_core::log::{self, Level};

use crate::command_line::{option_file, prepare};
use crate::legacy_args::Kind;

/// `main` of a daemon: applies the option file's aliases and ipqbdb 2.x's spellings, parses its
/// command line (usage errors exit 2), runs it, and logs a failure as one line (exit 1).
pub fn daemon_main<C: Parser>(
    program: &str,
    run: impl FnOnce(C) -> Result<(), String>,
) -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let called = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .map_or_else(|| program.to_string(), |n| n.to_string_lossy().into_owned());
    let rest = args.split_off(1.min(args.len()));
    let mut warn = |w: String| log::log(program, Level::Warning, &w);
    let prepared = option_file(&rest, false, &mut warn)
        .and_then(|file| prepare(&file, &[program, &called], Kind::Daemon, rest, &mut warn));
    match prepared {
        Ok(rest) => args.extend(rest),
        Err(e) => {
            log::log(program, Level::Error, &e.to_string());
            return ExitCode::from(2);
        }
    }
    let cli = match C::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            log::log(program, Level::Error, &msg);
            ExitCode::FAILURE
        }
    }
}
