//! `ibd-parse`: see the library for the parts; this file wires them and handles detaching.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ipqbdb_core::log::{self, Level};
use ipqbdb_metrics::{Exporter, MetricsOptions};
use ipqbdb_parse::cli::Cli;
use ipqbdb_parse::daemon::{Daemon, Reopener, Signals};
use ipqbdb_parse::fail2ban_jails::{self, Fail2banConfig};
use ipqbdb_parse::input_readers;
use ipqbdb_parse::inputs::{self, Inputs};
use ipqbdb_parse::matcher::RuleSet;
use ipqbdb_parse::rule_loading::{build_rules, fail2ban_config};
use ipqbdb_parse::rules::RuleMode;
use ipqbdb_parse::testmode;
use ipqbdb_runtime::connkill::ConnKill;
use ipqbdb_runtime::settings::{DEFAULT_RULE_FILE, PARSE_SOCKET};
use ipqbdb_runtime::setup::Setup;

const PROGRAM: &str = "ibd-parse";

fn main() -> ExitCode {
    ipqbdb_runtime::daemon_main::daemon_main(PROGRAM, run)
}

fn run(mut cli: Cli) -> Result<(), String> {
    let setup = Setup::resolve(&cli.db, "parse").map_err(|e| e.to_string())?;
    let s = &setup.settings;
    let verbose = cli.verbose.max(s.verbose.unwrap_or(0));
    let mode = match (cli.mode, &s.mode) {
        (Some(m), _) => m,
        (None, Some(m)) => m.parse()?,
        (None, None) => RuleMode::Normal,
    };
    let f2b = fail2ban_config(&cli, s);
    let rule_file = |given: Option<&PathBuf>| {
        given
            .or(s.rule_file.as_ref())
            .cloned()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RULE_FILE))
    };
    if let Some(log) = &cli.test {
        ipqbdb_runtime::signals::default_sigpipe();
        let rule_file = rule_file(cli.files.first().or(cli.rule_file.as_ref()));
        return testmode::test_log(log, &rule_file, mode, &f2b, verbose > 0, cli.missed)
            .map_err(|e| e.to_string());
    }
    let rule_file = rule_file(cli.rule_file.as_ref());
    // Everything that can be wrong with the configuration is found before detaching, and every path
    // made absolute: detaching changes the directory to `/`, and a reload reads the rules again.
    let absolute = |p: &Path| inputs::absolute(p).map_err(|e| e.to_string());
    let rule_file = absolute(&rule_file)?;
    cli.files = cli
        .files
        .iter()
        .map(|f| absolute(f))
        .collect::<Result<_, _>>()?;
    for input in &mut cli.inputs {
        input.path = absolute(&input.path)?;
    }
    let (rules, loaded) = build_rules(&rule_file, mode, &f2b).map_err(|e| e.to_string())?;
    for e in &loaded.errors {
        log::log(PROGRAM, Level::Error, &format!("fail2ban: {e} (left out)"));
    }
    let jail_files = fail2ban_jails::jail_files(&loaded)
        .iter()
        .map(|f| absolute(f))
        .collect::<Result<Vec<_>, _>>()?;
    for p in &loaded.jails {
        for m in &p.missing {
            let msg = format!(
                "fail2ban jail [{}]: logpath {m} names no file now",
                p.jail.name
            );
            log::log(PROGRAM, Level::Warning, &msg);
        }
    }
    let white = fail2ban_jails::white_lines(&loaded.jails);
    if !white.is_empty() {
        let msg = format!(
            "fail2ban ignoreip, not applied: give these lines to `ibd white`: {}",
            white.join("; ")
        );
        log::log(PROGRAM, Level::Notice, &msg);
    }
    let connkill = cli.connkill.load(s).map_err(|e| e.to_string())?;
    let metrics = MetricsOptions::resolve(&cli.metrics, s);
    // Standard input is an input only for a process that keeps it.
    let foreground = cli.foreground || cli.stdin;
    let syslog = cli.log_syslog || s.log_syslog.unwrap_or(false);
    let (mut daemon, rx, signals, exporter) =
        ipqbdb_runtime::daemonize::start_daemon(PROGRAM, foreground, syslog, || {
            let started = start(
                &cli,
                &setup,
                rule_file,
                rules,
                (f2b, jail_files),
                connkill,
                verbose,
                &metrics,
            )?;
            log::log(PROGRAM, Level::Notice, "started");
            Ok(started)
        })?;
    daemon.run(&rx, &signals);
    exporter.finish();
    log::log(PROGRAM, Level::Notice, "stopped");
    Ok(())
}

type Started = (
    Daemon<ipqbdb_store::AnyStore>,
    std::sync::mpsc::Receiver<input_readers::Event>,
    Signals,
    Exporter,
);

#[expect(
    clippy::too_many_arguments,
    reason = "each is a part resolved before detaching; start wires them once"
)]
fn start(
    cli: &Cli,
    setup: &Setup,
    rule_file: PathBuf,
    rules: RuleSet,
    (f2b, jail_files): (Fail2banConfig, Vec<PathBuf>),
    connkill: Option<ConnKill>,
    verbose: u8,
    metrics: &MetricsOptions,
) -> Result<Started, String> {
    let store = setup.open(true).map_err(|e| e.to_string())?;
    let signals = Signals::register().map_err(|e| format!("signals: {e}"))?;
    let inputs = Inputs {
        fifo: (!cli.no_fifo).then(|| setup.db_dir.join(PARSE_SOCKET)),
        stdin: cli.stdin,
        journalctl: cli.journal.then(|| cli.journalctl.clone()),
        named: cli.files.clone(),
        declared: cli.inputs.clone(),
        jail_files,
        from_start: cli.from_start,
    };
    let (infos, rx) = inputs::start(&inputs, &store).map_err(|e| e.to_string())?;
    let reload_file = rule_file.clone();
    let mut daemon = Daemon::new(store, rule_file, rules, infos, connkill, verbose);
    daemon.start_checks()?;
    let again = setup.clone();
    daemon.set_reopen(Reopener::new(move || {
        again.open(true).map_err(|e| e.to_string())
    }));
    if !f2b.is_empty() {
        daemon.set_loader(Box::new(move |mode| {
            let (set, loaded) = build_rules(&reload_file, mode, &f2b).map_err(|e| e.to_string())?;
            for e in &loaded.errors {
                log::log(PROGRAM, Level::Error, &format!("fail2ban: {e} (left out)"));
            }
            Ok(set)
        }));
    }
    daemon.set_maintenance_interval(cli.maintenance.every());
    daemon.set_log_category(cli.log_category || setup.settings.log_category.unwrap_or(false));
    let exporter =
        Exporter::start(PROGRAM, metrics, daemon.metrics_render()).map_err(|e| e.to_string())?;
    Ok((daemon, rx, signals, exporter))
}
