//! Command-line definition of `ibd-parse`, apart from the program so man pages can be generated.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};
use ipqbdb_metrics::MetricsArgs;
use ipqbdb_store::cli::{ConnKillArgs, DbArgs, MaintenanceArgs};

use crate::rules::Mode;

#[derive(Debug, Parser)]
#[command(
    name = "ibd-parse",
    version,
    about = "Ban the addresses that log lines matching the rules denounce",
    long_about = "Ban the addresses that log lines matching the rules denounce.\n\n\
        Lines come from the FIFO ibd-parse.sock in the database directory (write to it from syslog, \
        or `cat log > ibd-parse.sock`), from standard input with --stdin, and from FILEs followed \
        across rotation. Signals: SIGUSR1 logs per-rule counters, SIGHUP reloads the rule file \
        (a broken file keeps the old rules), SIGTERM and SIGINT exit cleanly.\n\n\
        Test mode: `ibd-parse --test LOGFILE [RULEFILE]` prints what the rules catch in LOGFILE, \
        without a database.\n\n\
        Metrics: --metrics-listen serves the Prometheus text format at /metrics (lines per input, \
        matches and bans per rule, commit durations, database errors, rotations); the packaged unit \
        has no network, so give it --metrics-file in node_exporter's textfile directory instead."
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    /// Log files to follow (like tail -F); with --test, the rule file
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Rule file [default: /etc/ipqbdb-pcre.conf]
    #[arg(short = 'f', long, value_name = "FILE")]
    pub rule_file: Option<PathBuf>,
    /// Rule set to run: normal (the conservative default), ddos (adds noisy pre-authentication
    /// signals) or aggressive (every rule) [default: normal, or `mode` in the configuration]
    #[arg(long, value_name = "MODE")]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub maintenance: MaintenanceArgs,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Read the systemd journal (through journalctl): each line's program comes from the fields
    /// journald records itself, so a local user cannot forge another program's lines; lines of
    /// regular users' processes are skipped; the journal cursor is kept with the bans
    #[arg(long)]
    pub journal: bool,
    /// The journalctl program for --journal
    #[arg(
        long,
        value_name = "PATH",
        default_value = "journalctl",
        requires = "journal"
    )]
    pub journalctl: PathBuf,
    /// Do not create or read the FIFO
    #[arg(long)]
    pub no_fifo: bool,
    /// Read standard input too (implies -D; exits at its end when it is the only input)
    #[arg(long)]
    pub stdin: bool,
    /// Stay in the foreground (as under systemd); otherwise detach and log to syslog
    #[arg(short = 'D', long)]
    pub foreground: bool,
    /// More messages: -v each ban, -vv each matching line, -vvv every line
    #[arg(short, action = ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub connkill: ConnKillArgs,
    /// Log to syslog even in the foreground
    #[arg(long)]
    pub log_syslog: bool,
    /// Log every ban (as -v does) with its reason's report category appended (`, category N`), for
    /// reporting with one's own scripts
    #[arg(long)]
    pub log_category: bool,
    /// Read followed files without a saved position from the start (default: from the end)
    #[arg(long)]
    pub from_start: bool,
    /// Test mode: match LOGFILE (- for standard input) and print what the rules catch
    #[arg(long, value_name = "LOGFILE")]
    pub test: Option<PathBuf>,
    /// With --test -v, print the lines no rule matched too
    #[arg(long, requires = "test")]
    pub missed: bool,
}

pub fn command() -> clap::Command {
    Cli::command()
}
