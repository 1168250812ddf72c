//! The `ibd` administration program, also run as `ibd-ban`, `ibd-del`, `ibd-white`, `ibd-config`,
//! `ibd-category` and `ibd-report` through links (it dispatches on the name it was called by).

mod ban;
mod category;
pub mod cli;
mod context;
mod del;
mod error;
mod links;
mod report;
mod show_config;
mod stats;
mod white;

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

pub use error::AdminError;
/// The whitelist line parser, public for the fuzzer.
pub use white::parse_line as parse_white_line;

use cli::{Cli, Command, LINKS};
use context::Context;

/// Runs `ibd` with `args` (program name first) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let called = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ibd".into());
    // `ibd-ban ARGS` is `ibd ban ARGS`; usage messages keep the name the user typed.
    let link = LINKS.iter().find(|(name, _)| *name == called);
    if let Some((_, sub)) = link {
        args.splice(
            0..1.min(args.len()),
            [OsString::from("ibd"), OsString::from(sub)],
        );
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let (section, shown) = match &cli.command {
        Command::Ban(_) => ("ban", "ban"),
        Command::Del(_) => ("del", "del"),
        Command::White(_) => ("white", "white"),
        Command::Config(_) => ("config", "config"),
        Command::Category(_) => ("category", "category"),
        Command::Stats(_) => ("stats", "stats"),
        Command::Report(_) => ("report", "report"),
        Command::InstallLinks(_) => ("config", "install-links"),
    };
    let program = if link.is_some() {
        called
    } else {
        format!("ibd {shown}")
    };
    match dispatch(&cli, section, &program) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{program}: {e}");
            e.exit_code()
        }
    }
}

fn dispatch(cli: &Cli, section: &str, program: &str) -> Result<(), AdminError> {
    let ctx = || Context::new(&cli.global, section, program.to_string());
    match &cli.command {
        Command::Ban(a) => ban::run(&ctx()?, a),
        Command::Del(a) => del::run(&ctx()?, a),
        Command::White(a) => white::run(&ctx()?, a),
        Command::Config(a) => show_config::run(&ctx()?, a),
        Command::Category(a) => category::run(&ctx()?, a),
        Command::Stats(a) => stats::run(&ctx()?, a),
        Command::Report(a) => report::run(&ctx()?, a),
        Command::InstallLinks(a) => links::run(a),
    }
}
