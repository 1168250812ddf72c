//! `ibd-judge`: see the library for the parts; this file wires them.

use std::process::ExitCode;
use std::time::Duration;

use ipqbdb_core::log::{self, Level};
use ipqbdb_core::parse_count;
use ipqbdb_judge::cli::Cli;
use ipqbdb_judge::daemon::{Daemon, Reopener, Signals};
use ipqbdb_judge::metrics::JudgeMetrics;
use ipqbdb_judge::netlink::NfqSocket;
use ipqbdb_judge::netlink_messages::QueueSetup;
use ipqbdb_judge::worker::{Worker, WorkerOptions};
use ipqbdb_judge::writer::CounterWriter;
use ipqbdb_metrics::{Exporter, MetricsOptions};
use ipqbdb_runtime::daemonize::start_daemon;
use ipqbdb_runtime::setup::Setup;

use ipqbdb_judge::PROGRAM;

fn main() -> ExitCode {
    ipqbdb_runtime::daemon_main::daemon_main(PROGRAM, run)
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
    let syslog = cli.log_syslog || setup.settings.log_syslog.unwrap_or(false);
    let (daemon, signals, exporter) = start_daemon(PROGRAM, cli.foreground, syslog, || {
        start(&cli, &setup, rcvbuf as usize, &metrics)
    })?;
    let res = daemon.run(&signals);
    exporter.finish();
    log::log(PROGRAM, Level::Notice, "stopped");
    res
}

fn start(
    cli: &Cli,
    setup: &Setup,
    rcvbuf: usize,
    metrics: &MetricsOptions,
) -> Result<(Daemon<ipqbdb_store::LocalReader>, Signals, Exporter), String> {
    let staleness = Duration::from_millis(cli.staleness_ms);
    let notices = setup.settings.postgres_notices.unwrap_or(true);
    // The sockets first, while no other thread exists (see netlink.rs): one per queue, for its
    // own thread.
    let mut socks = Vec::new();
    let mut got = 0;
    for spec in &cli.specs {
        let (sock, size) = open_queue(cli, spec.queue, rcvbuf, staleness)?;
        socks.push((sock, *spec));
        got = size;
    }
    // A store per packet thread (the first creates the database if need be), and the writer's
    // own: see CounterWriter::start. A shared (postgres) database is judged from one local view
    // for the whole process, refreshed at the staleness bound by a thread of its own, which its
    // readers never wait on: every packet thread gets a handle of that view.
    let first = setup
        .open(true)
        .and_then(|s| s.into_local_view_with(staleness, notices, PROGRAM))
        .map_err(|e| e.to_string())?;
    let view = first.share_view();
    let open_for_thread = {
        let setup = setup.clone();
        move || match view.as_ref().and_then(|v| v.share_view()) {
            Some(shared) => Ok(shared),
            None => setup
                .open(true)
                .and_then(|s| s.into_local_view_with(staleness, notices, PROGRAM))
                .map_err(|e| e.to_string()),
        }
    };
    let mut stores = vec![first];
    for _ in 1..socks.len() {
        stores.push(open_for_thread()?);
    }
    let writer_store = setup.open(false).map_err(|e| e.to_string())?;
    let backend = ipqbdb_store::ReadStore::engine(&writer_store);
    let signals = Signals::register().map_err(|e| format!("signals: {e}"))?;
    // SIGUSR2 opens every thread's store again, as each was opened here; the shared view, which
    // reconnects by itself, is kept.
    let reopen = Reopener::new(open_for_thread);
    let writer_reopen = {
        let setup = setup.clone();
        reopen.with_open(move || setup.open(false).map_err(|e| e.to_string()))
    };
    // After the sockets: threads may exist from here on.
    let writer =
        CounterWriter::start_reopening(writer_store, cli.maintenance.every(), Some(writer_reopen))
            .map_err(|e| format!("writer thread: {e}"))?;
    let queues: Vec<u16> = cli.specs.iter().map(|s| s.queue).collect();
    let mut counted = JudgeMetrics::new(backend.name(), &queues);
    let opts = WorkerOptions {
        staleness,
        verbose: cli.verbose,
        copy_range: cli.copy_range,
    };
    let workers = socks
        .into_iter()
        .zip(stores)
        .map(|((sock, spec), store)| {
            let m = counted.worker(spec.queue);
            Worker::new(store, sock, spec, opts, writer.submitter(), m)
        })
        .collect();
    let specs: Vec<String> = cli.specs.iter().map(ToString::to_string).collect();
    log::log(
        PROGRAM,
        Level::Notice,
        &format!(
            "listening on {} ({backend} backend, a thread per queue, receive buffer {got} bytes)",
            specs.join(" "),
        ),
    );
    let exporter = Exporter::start(PROGRAM, metrics, counted.render(writer.watch()))
        .map_err(|e| e.to_string())?;
    let mut daemon = Daemon::new(writer, workers);
    daemon.set_reopen(reopen);
    Ok((daemon, signals, exporter))
}

/// A socket bound to queue `q` and set up for it.
fn open_queue(
    cli: &Cli,
    q: u16,
    rcvbuf: usize,
    staleness: Duration,
) -> Result<(NfqSocket, usize), String> {
    let ctx = |what: &str, e: std::io::Error| format!("queue {q}: {what}: {e}");
    let mut sock =
        NfqSocket::open().map_err(|e| ctx("NFQUEUE socket (ibd-judge needs CAP_NET_ADMIN)", e))?;
    let got = sock
        .set_rcvbuf(rcvbuf)
        .map_err(|e| ctx("receive buffer", e))?;
    sock.set_timeout(staleness.min(Duration::from_millis(100)))
        .map_err(|e| ctx("receive timeout", e))?;
    sock.queue
        .set_recv_enobufs(true)
        .map_err(|e| ctx("ENOBUFS reporting", e))?;
    let mut setup = QueueSetup {
        copy_range: cli.copy_range,
        max_len: cli.queue_maxlen,
        fail_open: cli.fail_open,
        // A large offloaded (GSO) packet comes whole, one verdict, instead of segmented first
        // into many; the copy range keeps what is copied small.
        gso: true,
    };
    let bound = sock.bind(q, &setup);
    // Kernels before 3.10 refuse the GSO flag, and with it the whole binding.
    let bound = match bound {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            log::log(
                PROGRAM,
                Level::Warning,
                &format!(
                    "queue {q}: unsegmented (GSO) packets: {e}; the kernel segments them first"
                ),
            );
            setup.gso = false;
            sock.bind(q, &setup)
        }
        other => other,
    };
    // The kernel says EPERM both to a second listener and to a process without CAP_NET_ADMIN.
    bound.map_err(|e| match e.raw_os_error() {
        Some(libc::EPERM) => ctx(
            "bind (another program listens on this queue, or ibd-judge lacks CAP_NET_ADMIN)",
            e,
        ),
        _ => ctx("bind", e),
    })?;
    Ok((sock, got))
}
