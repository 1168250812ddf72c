//! The `ibd` administration program, also run as `ibd-ban`, `ibd-del`, `ibd-white`, `ibd-config`,
//! `ibd-category` and `ibd-report` through links (it dispatches on the name it was called by).

mod ban;
mod category;
pub mod cli;
mod context;
mod del;
mod error;
mod import_2x;
mod links;
mod report;
mod show_config;
mod stats;
mod transfer;
mod white;

use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

pub use error::AdminError;
/// The whitelist line parser, public for the fuzzer.
pub use white::parse_line as parse_white_line;

use cli::{Cli, Command, LINKS};
use context::Context;

/// Global options that take a value, to find the subcommand in `ibd [GLOBAL...] SUB ...`.
const GLOBAL_VALUE_OPTIONS: [&str; 6] = [
    "--config",
    "--db-dir",
    "--backend",
    "--ipv6-prefix",
    "--postgres-url",
    "--option-file",
];

/// Options a setuid run refuses: each names a file, a directory or a server the caller would pick
/// for a program running with the owner's rights (and `--connkill-file` a command it would run).
const PRIVILEGED_REFUSED: [&str; 10] = [
    "config",
    "db-dir",
    "backend",
    "ipv6-prefix",
    "postgres-url",
    "option-file",
    "connkill-file",
    "db-block",
    "db-white",
    "db-descr",
];

/// Runs `ibd` with `args` (program name first) and returns the exit code.
pub fn run(args: impl IntoIterator<Item = OsString>) -> u8 {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let called = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ibd".into());
    let privileged = ipqbdb_runtime::setuid::privileged();
    if privileged {
        // Before anything reads the environment: $IPQBDB_CONFIG, $IPQBDB_OPTION_FILE, $HOME...
        ipqbdb_runtime::setuid::reset_environment();
    }
    // `ibd-ban ARGS` is `ibd ban ARGS`; usage messages keep the name the user typed.
    let link = LINKS.iter().find(|(name, _)| *name == called);
    if let Some((_, sub)) = link {
        args.splice(
            0..1.min(args.len()),
            [OsString::from("ibd"), OsString::from(sub)],
        );
    }
    let sub_at = subcommand_index(&args);
    let sub = sub_at
        .and_then(|i| args[i].to_str())
        .unwrap_or("")
        .to_string();
    if privileged {
        if let Err(why) = privileged_check(&args, &sub) {
            eprintln!("{called}: {why}");
            return 2;
        }
    }
    let args = match legacy_command_line(&called, &sub, sub_at, args, privileged) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{called}: {e}");
            return 2;
        }
    };
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
        Command::Export(_) => ("config", "export"),
        Command::Import(_) => ("config", "import"),
    };
    let program = if link.is_some() {
        called
    } else {
        format!("ibd {shown}")
    };
    if privileged && (section != "ban" || cli.global.is_given()) {
        // The checks on the raw command line found nothing, but an alias of the option file did.
        eprintln!("{program}: {}", privileged_refusal());
        return 2;
    }
    match dispatch(&cli, section, &program) {
        Ok(()) => 0,
        // A setuid run never shows why the configuration was refused: the message may quote the
        // file, which the caller may not read.
        Err(AdminError::Config(_)) if privileged => {
            eprintln!(
                "{program}: the configuration file is not valid; run as its owner to see why"
            );
            1
        }
        Err(e) => {
            eprintln!("{program}: {e}");
            e.exit_code()
        }
    }
}

/// Where the subcommand is in `ibd [GLOBAL...] SUB ...`.
fn subcommand_index(args: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_str()?;
        if GLOBAL_VALUE_OPTIONS.contains(&a) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            return Some(i);
        }
    }
    None
}

/// The option file's aliases and the old spellings, applied to the subcommand's arguments (the
/// aliases of `ibd-SUB` apply to `ibd SUB` too) and to those before it.
fn legacy_command_line(
    called: &str,
    sub: &str,
    sub_at: Option<usize>,
    mut args: Vec<OsString>,
    privileged: bool,
) -> Result<Vec<OsString>, ipqbdb_runtime::command_line::CommandLineError> {
    use ipqbdb_runtime::command_line::{option_file, prepare};
    use ipqbdb_runtime::legacy_args::Kind;
    let mut warn = |w: String| eprintln!("{called}: {w}");
    let file = option_file(&args[1.min(args.len())..], privileged, &mut warn)?;
    let split = sub_at.map_or(args.len(), |i| i + 1);
    let rest = args.split_off(split);
    let head_args = args.split_off(1.min(args.len()));
    let link_name = format!("ibd-{sub}");
    let mut names = vec![called];
    if sub_at.is_some() {
        names.push(&link_name);
        if sub == "category" {
            names.extend(["ibd-category", "ibd-descr"]);
        }
    }
    let kind = if sub == "ban" { Kind::Ban } else { Kind::Other };
    args.extend(prepare(&file, &["ibd"], Kind::Other, head_args, &mut warn)?);
    args.extend(prepare(&file, &names, kind, rest, &mut warn)?);
    Ok(args)
}

/// What a setuid run allows: `ban`, without options naming files or servers.
fn privileged_check(args: &[OsString], sub: &str) -> Result<(), String> {
    if sub != "ban" {
        return Err(privileged_refusal());
    }
    if let Some(opt) = ipqbdb_runtime::setuid::refused_option(&args[1..], &PRIVILEGED_REFUSED, &[])
    {
        let name = opt.to_string_lossy();
        let name = name.split('=').next().unwrap_or("");
        return Err(format!("{name}: {}", privileged_refusal()));
    }
    Ok(())
}

fn privileged_refusal() -> String {
    "refused: running setuid, only `ibd-ban` runs, with the system configuration (no --config, \
     --db-dir, --option-file, --connkill-file or other file options)"
        .to_string()
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
        Command::Export(a) => transfer::export(&ctx()?, a),
        Command::Import(a) => transfer::import(&ctx()?, a),
    }
}
