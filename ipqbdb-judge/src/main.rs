//! `ibd-judge`: see the library for the parts; this file wires them.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use ipqbdb_core::log::{self, Level};
use ipqbdb_core::parse_count;
use ipqbdb_judge::cli::Cli;
use ipqbdb_judge::daemon::{Daemon, Options, Signals};
use ipqbdb_judge::netlink::NfqSocket;
use ipqbdb_judge::writer::CounterWriter;
use ipqbdb_metrics::{Exporter, MetricsOptions};
use ipqbdb_store::cli::Setup;

const PROGRAM: &str = "ibd-judge";

fn main() -> ExitCode {
    ipqbdb_store::cli::daemon_main(PROGRAM, run)
}

fn run(cli: Cli) -> Result<(), String> {
    let setup = Setup::resolve(&cli.db, "judge").map_err(|e| e.to_string())?;
    let rcvbuf = parse_count(&cli.rcvbuf).map_err(|e| format!("--rcvbuf: {e}"))?;
    if cli.staleness_ms == 0 {
        return Err("--staleness-ms must be at least 1".into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = cli.specs.iter().find(|s| !seen.insert(s.queue)) {
        return Err(format!("queue {} is given twice", dup.queue));
    }
    let metrics = MetricsOptions::resolve(&cli.metrics, &setup.settings);
    let ready = if cli.foreground {
        None
    } else {
        Some(ipqbdb_core::process::detach(PROGRAM)?)
    };
    if !cli.foreground || cli.log_syslog || setup.settings.log_syslog.unwrap_or(false) {
        log::use_syslog(PROGRAM);
    }
    let started = start(&cli, &setup, rcvbuf as usize, &metrics);
    let (mut daemon, signals, exporter) = match started {
        Ok(x) => x,
        Err(msg) => {
            if let Some(mut w) = ready {
                let _ = w.write_all(msg.as_bytes());
            }
            return Err(msg);
        }
    };
    drop(ready);
    if let Err(e) = ipqbdb_core::process::notify_ready() {
        log::log(
            PROGRAM,
            Level::Warning,
            &format!("systemd notification: {e}"),
        );
    }
    daemon.run(&signals);
    exporter.finish();
    log::log(PROGRAM, Level::Notice, "stopped");
    Ok(())
}

fn start(
    cli: &Cli,
    setup: &Setup,
    rcvbuf: usize,
    metrics: &MetricsOptions,
) -> Result<(Daemon<ipqbdb_store::AnyStore>, Signals, Exporter), String> {
    // The socket first, while no other thread exists (see netlink.rs).
    let mut sock = NfqSocket::open()
        .map_err(|e| format!("NFQUEUE socket: {e} (ibd-judge needs CAP_NET_ADMIN)"))?;
    let got = sock
        .set_rcvbuf(rcvbuf)
        .map_err(|e| format!("receive buffer: {e}"))?;
    let staleness = Duration::from_millis(cli.staleness_ms);
    sock.set_timeout(staleness.min(Duration::from_millis(100)))
        .map_err(|e| format!("receive timeout: {e}"))?;
    sock.queue
        .set_recv_enobufs(true)
        .map_err(|e| format!("ENOBUFS reporting: {e}"))?;
    // A shared (postgres) database is judged from a local view refreshed at the staleness bound.
    let store = setup
        .open(true)
        .and_then(|s| s.into_local_view(staleness, PROGRAM))
        .map_err(|e| e.to_string())?;
    // The writer's own: see CounterWriter::start.
    let writer_store = setup.open(false).map_err(|e| e.to_string())?;
    for spec in &cli.specs {
        let q = spec.queue;
        let ctx = |what: &str, e: std::io::Error| format!("queue {q}: {what}: {e}");
        sock.queue
            .bind(q)
            .map_err(|e| ctx("bind (is another judge on it?)", e))?;
        sock.queue
            .set_copy_range(q, cli.copy_range)
            .map_err(|e| ctx("copy range", e))?;
        sock.queue
            .set_queue_max_len(q, cli.queue_maxlen)
            .map_err(|e| ctx("maximum length", e))?;
        sock.queue
            .set_fail_open(q, cli.fail_open)
            .map_err(|e| ctx("fail-open", e))?;
    }
    let signals = Signals::register().map_err(|e| format!("signals: {e}"))?;
    // After the socket: threads may exist from here on.
    let writer = CounterWriter::start(writer_store, cli.maintenance.every())
        .map_err(|e| format!("writer thread: {e}"))?;
    let specs: Vec<String> = cli.specs.iter().map(ToString::to_string).collect();
    log::log(
        PROGRAM,
        Level::Notice,
        &format!(
            "listening on {} ({} backend, receive buffer {got} bytes)",
            specs.join(" "),
            ipqbdb_store::Store::backend(&store)
        ),
    );
    let opts = Options {
        staleness,
        verbose: cli.verbose,
    };
    let daemon = Daemon::new(store, writer, sock, cli.specs.clone(), opts);
    let exporter =
        Exporter::start(PROGRAM, metrics, daemon.metrics_render()).map_err(|e| e.to_string())?;
    Ok((daemon, signals, exporter))
}
