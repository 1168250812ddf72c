//! `ibd-xdp`: see the library for the parts; this file wires them.

use std::process::ExitCode;
use std::time::Duration;

use ipqbdb_core::log::{self, Level};
use ipqbdb_runtime::daemonize::start_daemon;
use ipqbdb_runtime::setup::Setup;
use ipqbdb_runtime::signals::Signals;
use ipqbdb_xdp::cli::Cli;
use ipqbdb_xdp::daemon::{Daemon, DaemonOptions};
use ipqbdb_xdp::loader::{self, Sizes};
use ipqbdb_xdp::sync::Syncer;

use ipqbdb_xdp::PROGRAM;

fn main() -> ExitCode {
    ipqbdb_runtime::daemon_main::daemon_main(PROGRAM, run)
}

fn run(cli: Cli) -> Result<(), String> {
    let setup = Setup::resolve(&cli.db, "xdp").map_err(|e| e.to_string())?;
    if cli.staleness_ms == 0 {
        return Err("--staleness-ms must be at least 1".into());
    }
    if cli.max_entries == 0 || cli.max_white == 0 {
        return Err("--max-entries and --max-white must be at least 1".into());
    }
    let syslog = cli.log_syslog || setup.settings.log_syslog.unwrap_or(false);
    let (mut daemon, signals) =
        start_daemon(PROGRAM, cli.foreground, syslog, || start(&cli, &setup))?;
    daemon.run(&signals);
    log::log(PROGRAM, Level::Notice, "stopped");
    Ok(())
}

fn start(cli: &Cli, setup: &Setup) -> Result<(Daemon<ipqbdb_store::AnyStore>, Signals), String> {
    let store = setup.open(true).map_err(|e| e.to_string())?;
    let signals = Signals::register().map_err(|e| format!("signals: {e}"))?;
    let sizes = Sizes {
        max_entries: cli.max_entries,
        max_white: cli.max_white,
        mode: cli.xdp_mode,
    };
    let pin_dir = cli.pin_dir();
    // The first pass fills the maps before the kernel judges from them.
    let (attached, (syncer, pass)) = loader::attach_or_adopt(&cli.iface, &pin_dir, sizes, |maps| {
        let mut syncer = Syncer::new(maps, cli.max_entries, cli.max_white)?;
        let pass = syncer.sync(maps, &store, ipqbdb_core::now())?;
        Ok((syncer, pass))
    })
    .map_err(|e| e.to_string())?;
    let mode = attached.mode;
    let opts = DaemonOptions {
        staleness: Duration::from_millis(cli.staleness_ms),
        detach_on_exit: cli.detach_on_exit,
        verbose: cli.verbose,
    };
    let mut daemon = Daemon::new(attached, syncer, store, opts);
    daemon.note_left_out(&pass);
    log::log(
        PROGRAM,
        Level::Notice,
        &format!(
            "attached to {} ({mode}), {} records in the map, pins in {}",
            cli.iface,
            pass.in_map,
            pin_dir.display()
        ),
    );
    Ok((daemon, signals))
}
