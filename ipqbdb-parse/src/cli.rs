//! Command-line definition of `ibd-parse`, apart from the program so man pages can be generated.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser};
use ipqbdb_metrics::MetricsArgs;
use ipqbdb_runtime::connkill::ConnKillArgs;
use ipqbdb_runtime::setup::{DbArgs, MaintenanceArgs};

use crate::rules::RuleMode;

#[derive(Debug, Parser)]
#[command(
    name = "ibd-parse",
    version,
    about = "Ban the addresses that log lines matching the rules denounce",
    long_about = "Ban the addresses that log lines matching the rules denounce.\n\n\
        Lines come from the FIFO ibd-parse.sock in the database directory (write to it from syslog, \
        or `cat log > ibd-parse.sock`), from standard input with --stdin, and from FILEs followed \
        across rotation. Signals: SIGUSR1 logs per-rule counters, SIGHUP reloads the rule file and fail2ban filters \
        (a broken file keeps the old rules), SIGUSR2 reopens the database, SIGTERM and SIGINT exit \
        cleanly.\n\n\
        Test mode: `ibd-parse --test LOGFILE [RULEFILE]` prints what the rules catch in LOGFILE, \
        without a database.\n\n\
        Metrics: --metrics-listen serves the Prometheus text format at /metrics (lines per input, \
        matches and bans per rule, commit durations, database errors, rotations); the packaged unit \
        has no network, so give it --metrics-file in node_exporter's textfile directory instead.\n\n\
        fail2ban users: `ibd-parse --test /var/log/auth.log --fail2ban-config` shows what your \
        enabled jails (their filters, unchanged) catch and how each maps to a reason, initial count \
        and decay; drop --test to run them. Bans are probabilistic: an address's block \
        probability doubles at each offence and halves every decay, instead of a fixed bantime."
)]
pub struct Cli {
    #[command(flatten)]
    pub db: DbArgs,
    /// Log files to follow (like tail -F); with --test, the rule file
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// A log file to follow, as FILE; FILE:program=NAME declares it NAME's own log (`sshd -E FILE`,
    /// a container's output): its lines have no syslog header, the rules tagged for NAME read each
    /// line whole, and no other rule reads it (but those with input= for it). Repeatable
    #[arg(long = "input", value_name = "FILE[:program=NAME]", value_parser = InputSpec::parse)]
    pub inputs: Vec<InputSpec>,
    /// Rule file [default: /etc/ipqbdb-pcre.conf]
    #[arg(short = 'f', long, value_name = "FILE")]
    pub rule_file: Option<PathBuf>,
    /// Rule set to run: normal (the conservative default), ddos (adds noisy pre-authentication
    /// signals) or aggressive (every rule) [default: normal, or `mode` in the configuration]
    #[arg(long, value_name = "MODE")]
    pub mode: Option<RuleMode>,
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
    #[arg(short = 'D', long, alias = "no-daemon")]
    pub foreground: bool,
    /// More messages: each ban's line is logged at every verbosity (in ipqbdb 2.x's shape), -vv adds
    /// each matching line, -vvv every line (ipqbdb 2.x's `-v N` and `--verbose=N` are N+1 of these)
    #[arg(short, action = ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub connkill: ConnKillArgs,
    /// Log to syslog even in the foreground
    #[arg(long)]
    pub log_syslog: bool,
    /// Append the reason's report category to each ban's line (`, N`, 0 for none), for reporting
    /// with one's own scripts (ipqbdb 2.x's READMEreportcategory recipe)
    #[arg(long)]
    pub log_category: bool,
    /// Read followed files without a saved position from the start (default: from the end)
    #[arg(long)]
    pub from_start: bool,
    /// Test mode: match LOGFILE (- for standard input) and print what the rules catch;
    /// LOGFILE:program=NAME reads it as NAME's own log, as --input does
    #[arg(long, value_name = "LOGFILE", value_parser = InputSpec::parse)]
    pub test: Option<InputSpec>,
    /// With --test -v, print the lines no rule matched too
    #[arg(long, requires = "test")]
    pub missed: bool,
    /// Run a fail2ban filter beside the rule file: NAME[opt=value, ...] with NAME a filter of
    /// filter.d in the fail2ban directory (or a path to a filter file), its options as a jail gives
    /// them (mode=aggressive), and options of ours for its bans: reason= (default: the filter's
    /// name), initial-count= and decay= (default: the defaults). Repeatable; adds to
    /// `fail2ban-filters` in the configuration
    #[arg(long = "fail2ban-filter", value_name = "SPEC")]
    pub fail2ban_filters: Vec<String>,
    /// Run fail2ban's enabled jails from its configuration directory (jail.conf, jail.d/*.conf,
    /// jail.local, jail.d/*.local, later files overriding earlier ones): each jail's filter with its
    /// options, its logpath files followed (glob patterns expanded at start), maxretry N mapped to
    /// initial count N-1 (so the N-th offence in a row reaches 100 %: each ban doubles the
    /// probability from 2^-(N-1)), bantime to the decay (the time the block probability takes to
    /// halve; a permanent ban, bantime < 0, to 30 days). ignoreip is printed as `ibd white` lines
    /// for the administrator to apply, never applied silently. --test shows the whole mapping.
    /// Without DIR: /etc/fail2ban. Filters named by --fail2ban-filter are looked up in DIR/filter.d
    #[arg(
        long,
        value_name = "DIR",
        num_args = 0..=1,
        default_missing_value = ipqbdb_fail2ban::DEFAULT_CONFIG_DIR
    )]
    pub fail2ban_config: Option<PathBuf>,
    /// A fail2ban filter or jail that cannot be loaded is fatal (default: it is reported on one
    /// line naming the file and line, and the others run)
    #[arg(long)]
    pub fail2ban_strict: bool,
}

/// A file read as input, and the program whose own log it is, if declared (`FILE:program=NAME`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub path: PathBuf,
    pub program: Option<String>,
}

impl InputSpec {
    /// `FILE` or `FILE:program=NAME`. A path that itself holds `:program=` needs the suffix
    /// added (`a:program=b:program=sshd`).
    pub fn parse(text: &str) -> Result<InputSpec, String> {
        let Some((path, name)) = text.rsplit_once(":program=") else {
            return Ok(InputSpec {
                path: PathBuf::from(text),
                program: None,
            });
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
        if path.is_empty() {
            return Err(format!("{text:?}: no file before :program="));
        }
        if name.is_empty() || !name.chars().all(valid) {
            return Err(format!(
                "{text:?}: a program name is letters, digits and _ . / - (as a syslog tag)"
            ));
        }
        Ok(InputSpec {
            path: PathBuf::from(path),
            program: Some(name.to_string()),
        })
    }
}

pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_declare_their_program() {
        let spec = |t: &str| InputSpec::parse(t);
        assert_eq!(
            spec("/var/log/sshd.log:program=sshd"),
            Ok(InputSpec {
                path: "/var/log/sshd.log".into(),
                program: Some("sshd".into())
            })
        );
        assert_eq!(
            spec("/var/log/a:b.log"),
            Ok(InputSpec {
                path: "/var/log/a:b.log".into(),
                program: None
            })
        );
        assert_eq!(
            spec("x:program=a:program=sshd").unwrap().path,
            PathBuf::from("x:program=a")
        );
        assert!(spec("/x:program=").unwrap_err().contains("program name"));
        assert!(spec("/x:program=ss hd")
            .unwrap_err()
            .contains("program name"));
        assert!(spec(":program=sshd").unwrap_err().contains("no file"));
    }
}
