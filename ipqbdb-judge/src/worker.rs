//! One queue's packet loop, on a thread of its own: receive a burst (`receive.rs`), judge, answer
//! the burst with one send (`batch.rs`); renew the snapshot at the staleness bound; hand block counters
//! to the writer; survive every receive and send error; on stop, answer every packet.
//!
//! A worker owns its socket, its store handle, its snapshot and its cache: the threads share
//! nothing on the packet path. Its counters are published to the daemon with every send, so a
//! dump never shows fewer packets than have been answered.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipqbdb_core::log::{log, Level};
use ipqbdb_core::{now, percent};
use ipqbdb_runtime::rate_limit::{RateLimit, Repeat};
use ipqbdb_runtime::reopen::Reopener;
use ipqbdb_store::{ReadStore, Snapshot};

use crate::batch::VerdictBatch;
use crate::judge::Judge;
use crate::metrics::{Unjudged, WorkerMetrics};
use crate::netlink::NfqSocket;
use crate::netlink_messages::Verdict;
use crate::packet;
use crate::qspec::QSpec;
use crate::receive::{parse, Burst, Item};
use crate::stats::WorkerStats;
use crate::writer::{Refused, Submitter, COUNTER_FLUSH};
use crate::PROGRAM;

/// How long a stop keeps reading what is already in the socket before it accepts the rest
/// unjudged: a flood must not hold the stop up.
const DRAIN_LIMIT: Duration = Duration::from_millis(500);
/// An error that may come with every packet: the first at once, then one summary a minute.
const PER_PACKET: Repeat = Repeat::Summarised {
    every: Duration::from_secs(60),
    named: "minute",
};

/// Logs a line a [`RateLimit`] let through, about `what`.
fn log_limited(what: &str, line: Option<String>) {
    if let Some(line) = line {
        log(PROGRAM, Level::Error, &format!("{what}: {line}"));
    }
}

/// How a worker serves its queue.
#[derive(Debug, Clone, Copy)]
pub struct WorkerOptions {
    /// How old the snapshot the verdicts use may be.
    pub staleness: Duration,
    pub verbose: u8,
    /// How much of each packet the kernel copies (the receive buffers are sized for it).
    pub copy_range: u16,
}

pub struct Worker<S: ReadStore> {
    store: S,
    /// Replaces `store` when SIGUSR2 asks (see `Daemon::set_reopen`).
    reopen: Option<Reopener<S>>,
    sock: NfqSocket,
    spec: QSpec,
    staleness: Duration,
    verbose: u8,
    writer: Submitter,
    published: Arc<Mutex<WorkerStats>>,
    state: LoopState,
}

/// One received item, read out of the burst's buffers before judging.
#[derive(Debug, Clone, Copy)]
enum Received {
    /// A packet's id, and its address or why it has none to judge by.
    Packet(u32, Result<std::net::IpAddr, Unjudged>),
    Error(i32),
    Malformed,
}

/// The state the packet loop changes while the snapshot is borrowed.
struct LoopState {
    burst: Burst,
    received: Vec<Received>,
    judge: Judge,
    batch: VerdictBatch,
    stats: WorkerStats,
    last_flush: Instant,
    /// A snapshot that cannot be opened, said once per new message.
    snapshot_errors: RateLimit,
    /// When the loop last left its queue, to measure the pause until it is back.
    away_since: Option<Instant>,
    /// When the stop was first seen.
    stopping_since: Option<Instant>,
    lookup_errors: RateLimit,
    dropped_batches: RateLimit,
    send_errors: RateLimit,
    enobufs: RateLimit,
    receive_errors: RateLimit,
    metrics: WorkerMetrics,
}

impl<S: ReadStore> Worker<S> {
    pub fn new(
        store: S,
        sock: NfqSocket,
        spec: QSpec,
        opts: WorkerOptions,
        writer: Submitter,
        metrics: WorkerMetrics,
    ) -> Self {
        Worker {
            store,
            reopen: None,
            sock,
            spec,
            staleness: opts.staleness,
            verbose: opts.verbose,
            writer,
            published: Arc::default(),
            state: LoopState {
                burst: Burst::new(opts.copy_range),
                received: Vec::with_capacity(crate::receive::BURST),
                judge: Judge::with_stats(metrics.cache.clone()),
                batch: VerdictBatch::new(spec.queue),
                stats: WorkerStats::default(),
                last_flush: Instant::now(),
                snapshot_errors: RateLimit::new(Repeat::WhenChanged),
                away_since: None,
                stopping_since: None,
                lookup_errors: RateLimit::new(PER_PACKET),
                dropped_batches: RateLimit::new(PER_PACKET),
                send_errors: RateLimit::new(PER_PACKET),
                enobufs: RateLimit::new(Repeat::AtPowersOfTwo),
                receive_errors: RateLimit::new(Repeat::AtPowersOfTwo),
                metrics,
            },
        }
    }

    pub fn queue(&self) -> u16 {
        self.spec.queue
    }

    /// Makes the worker open its store again with `reopen` when asked, between two snapshots.
    pub fn set_reopen(&mut self, reopen: Reopener<S>) {
        self.reopen = Some(reopen);
    }

    /// Swaps in a new store if a reopen was asked; a failure keeps the store in use.
    fn reopen_if_asked(&mut self) {
        let q = self.spec.queue;
        match self.reopen.as_mut().and_then(Reopener::due) {
            Some(Ok(store)) => {
                self.store = store;
                log(
                    PROGRAM,
                    Level::Notice,
                    &format!("queue {q}: reopened the database"),
                );
            }
            Some(Err(e)) => log(
                PROGRAM,
                Level::Error,
                &format!("queue {q}: reopening the database: {e}; keeping the handle in use"),
            ),
            None => {}
        }
    }

    /// Where the worker publishes its counters.
    pub fn stats(&self) -> Arc<Mutex<WorkerStats>> {
        self.published.clone()
    }

    /// Serves the queue until `terminate`, then answers every packet and closes the socket (by
    /// consuming the worker).
    pub fn run(mut self, terminate: &AtomicBool) {
        let mut stopped = false;
        while !stopped {
            stopped = terminate.load(Ordering::Relaxed);
            self.reopen_if_asked();
            let deadline = Instant::now() + self.staleness;
            let mut opened = false;
            let (store, sock, state) = (&self.store, &mut self.sock, &mut self.state);
            let inputs = LoopInputs {
                spec: self.spec,
                verbose: self.verbose,
                terminate,
                published: &self.published,
            };
            let res = store.with_snapshot(&mut |snap| {
                opened = true;
                state.stats.loop_stats.snapshots += 1;
                state.metrics.all_queues.snapshots.inc();
                state.metrics.snapshot_opened();
                // The cache belongs to the previous snapshot: forgotten only now that a new one
                // exists, so a failed refresh leaves it to judge by.
                state.judge.new_snapshot();
                state.serve(&inputs, sock, Some(snap), deadline);
                Ok(())
            });
            match res {
                Err(e) if !opened => {
                    state.stats.loop_stats.snapshot_failures += 1;
                    state.metrics.all_queues.snapshot_failures.inc();
                    if let Some(msg) = state.snapshot_errors.hit(|_| e.to_string()) {
                        log(
                            PROGRAM,
                            Level::Error,
                            &format!(
                                "{msg}; judging by the previous snapshot (addresses it did not \
                                 cover are accepted), trying again every {} ms",
                                self.staleness.as_millis()
                            ),
                        );
                    }
                    // Packets are still answered, never left queued, until the next attempt.
                    state.serve(&inputs, sock, None, deadline);
                }
                // Closing a snapshot after serving from it: the verdicts were given; nothing
                // to recover.
                Err(e) => log_limited(
                    "lookup",
                    state
                        .lookup_errors
                        .hit(|_| format!("closing a snapshot: {e}")),
                ),
                Ok(()) => {
                    if state.snapshot_errors.clear() {
                        log(PROGRAM, Level::Notice, "the database reads again");
                    }
                }
            }
            log_limited("lookup", state.lookup_errors.tick());
            log_limited("block counters", state.dropped_batches.tick());
            log_limited("sending verdicts", state.send_errors.tick());
            if state.last_flush.elapsed() >= COUNTER_FLUSH || stopped {
                state.flush_counters(&self.writer);
            }
            // The snapshot figures, also when no packet comes to publish them with a send.
            *self.published.lock().unwrap_or_else(|p| p.into_inner()) = state.stats;
        }
        // Every packet read was answered by `serve`; what the kernel still holds is accepted.
        let closing = self.state.batch.closing();
        if let Err(e) = self.sock.send(closing) {
            self.state.metrics.all_queues.verdict_errors.inc();
            log(
                PROGRAM,
                Level::Error,
                &format!(
                    "queue {}: the last batch: {e}; packets still queued are dropped by the \
                     kernel",
                    self.spec.queue
                ),
            );
        }
        *self.published.lock().unwrap_or_else(|p| p.into_inner()) = self.state.stats;
    }
}

/// What the packet loop reads but does not change.
struct LoopInputs<'a> {
    spec: QSpec,
    verbose: u8,
    terminate: &'a AtomicBool,
    published: &'a Mutex<WorkerStats>,
}

impl LoopState {
    /// Verdicts packets until `deadline` or a receive timeout; on termination, until the socket
    /// is empty. Without a snapshot, addresses the previous one covered are judged by it, others
    /// accepted.
    fn serve(
        &mut self,
        inputs: &LoopInputs<'_>,
        sock: &mut NfqSocket,
        snap: Option<&Snapshot<'_>>,
        deadline: Instant,
    ) {
        if let Some(t) = self.away_since.take() {
            let l = &mut self.stats.loop_stats;
            l.longest_pause = l.longest_pause.max(t.elapsed());
        }
        self.serve_until(inputs, sock, snap, deadline);
        // Nothing waits while the loop is away.
        self.send(inputs, sock);
        self.away_since = Some(Instant::now());
    }

    fn serve_until(
        &mut self,
        inputs: &LoopInputs<'_>,
        sock: &mut NfqSocket,
        snap: Option<&Snapshot<'_>>,
        deadline: Instant,
    ) {
        loop {
            let stopping = inputs.terminate.load(Ordering::Relaxed);
            if stopping {
                let since = *self.stopping_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= DRAIN_LIMIT {
                    return;
                }
            } else if Instant::now() >= deadline {
                return;
            }
            // Every burst is answered before the next receive, so nothing is held while this
            // waits. A stop empties the socket without waiting.
            match self.burst.recv(sock.fd(), !stopping) {
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    return
                }
                Err(e) => {
                    self.receive_error(&e);
                    continue;
                }
            }
            let spec = inputs.spec;
            let mut received = std::mem::take(&mut self.received);
            received.clear();
            for d in self.burst.datagrams() {
                parse(d, |item| {
                    received.push(match item {
                        // A queue is bound to one socket: another queue's packet cannot come.
                        Item::Packet { queue, id, payload } => Received::Packet(
                            id,
                            if queue != spec.queue {
                                Err(Unjudged::UnknownQueue)
                            } else {
                                packet::address(payload, spec.side).ok_or(Unjudged::NotIp)
                            },
                        ),
                        Item::Error(e) => Received::Error(e),
                        Item::Malformed => Received::Malformed,
                    })
                });
            }
            for r in &received {
                match *r {
                    Received::Packet(id, ip) => {
                        let verdict = self.verdict(inputs, snap, ip);
                        self.batch.add(id, verdict);
                    }
                    Received::Error(e) => self.receive_error(&std::io::Error::from_raw_os_error(e)),
                    Received::Malformed => self.receive_error(&std::io::Error::new(
                        ErrorKind::InvalidData,
                        "a malformed netlink message",
                    )),
                }
            }
            self.received = received;
            self.send(inputs, sock);
        }
    }

    fn verdict(
        &mut self,
        inputs: &LoopInputs<'_>,
        snap: Option<&Snapshot<'_>>,
        ip: Result<std::net::IpAddr, Unjudged>,
    ) -> Verdict {
        let counters = &mut self.stats.counters;
        let qm = &self.metrics.queue;
        let q = inputs.spec.queue;
        counters.packets += 1;
        let ip = match ip {
            Ok(ip) => ip,
            Err(why) => {
                counters.errors += 1;
                qm.unjudged(why).inc();
                return Verdict::Accept;
            }
        };
        let now = now();
        let j = match snap {
            Some(snap) => self.judge.judge(snap, ip, now).map(Some),
            None => Ok(self.judge.judge_cached(ip, now)),
        };
        match j {
            Ok(Some(j)) => {
                if inputs.verbose >= 3 || (inputs.verbose >= 2 && j.guilty) {
                    let draw = j.draw.map_or_else(|| "-".into(), |d| d.to_string());
                    log(
                        PROGRAM,
                        Level::Debug,
                        &format!(
                            "queue {q} {ip}: {:.3}% draw {draw} -> {}",
                            percent(j.probability),
                            if j.guilty { "guilty" } else { "innocent" }
                        ),
                    );
                }
                match (j.guilty, inputs.spec.mark) {
                    (false, _) => {
                        counters.accepted += 1;
                        qm.accepted.inc();
                        Verdict::Accept
                    }
                    (true, None) => {
                        counters.dropped += 1;
                        qm.dropped.inc();
                        Verdict::Drop
                    }
                    (true, Some(mark)) => {
                        counters.marked += 1;
                        qm.marked.inc();
                        Verdict::Mark(mark)
                    }
                }
            }
            // No snapshot, and the previous one did not cover the address.
            Ok(None) => {
                counters.errors += 1;
                qm.unjudged(Unjudged::NoSnapshot).inc();
                Verdict::Accept
            }
            Err(e) => {
                // A damaged record, say: accepted, and said, so it is seen.
                counters.errors += 1;
                qm.unjudged(Unjudged::LookupError).inc();
                self.stats.loop_stats.lookup_errors += 1;
                log_limited(
                    "lookup",
                    self.lookup_errors
                        .hit(|_| format!("{ip} (queue {q}): {e}; accepted")),
                );
                Verdict::Accept
            }
        }
    }

    /// Sends the held verdicts; publishes the counters first, so a dump made once a packet is
    /// answered counts it.
    fn send(&mut self, inputs: &LoopInputs<'_>, sock: &NfqSocket) {
        if !self.batch.pending() {
            return;
        }
        let n = self.batch.held();
        self.stats.sends += 1;
        self.metrics.all_queues.batch.observe(n as f64);
        *inputs.published.lock().unwrap_or_else(|p| p.into_inner()) = self.stats;
        if let Err(e) = sock.send(self.batch.take()) {
            // The guilty packets of this send are accepted by the next batch (or the stop's).
            self.stats.send_errors += 1;
            self.metrics.all_queues.verdict_errors.inc();
            let q = inputs.spec.queue;
            log_limited(
                "sending verdicts",
                self.send_errors
                    .hit(|_| format!("queue {q}: {e}; {n} packets wait for the next batch")),
            );
        }
    }

    fn receive_error(&mut self, e: &std::io::Error) {
        self.stats.recv_errors += 1;
        self.metrics.all_queues.receive_errors.inc();
        if e.raw_os_error() == Some(libc::ENOBUFS) {
            self.metrics.all_queues.enobufs.inc();
            // The kernel dropped messages: the socket buffer overflowed. Count, say so now and
            // then, and go on. The packets it could not deliver are not queued (the kernel
            // dropped them, or accepted them with fail-open): no verdict is owed.
            self.stats.enobufs += 1;
            if let Some(line) = self
                .enobufs
                .hit(|n| format!("receive buffer overflow (ENOBUFS), {n} so far"))
            {
                log(PROGRAM, Level::Warning, &line);
            }
        } else {
            let total = self.stats.recv_errors;
            if let Some(line) = self
                .receive_errors
                .hit(|_| format!("receive: {e} ({total} errors so far)"))
            {
                log(PROGRAM, Level::Error, &line);
            }
        }
    }

    /// Hands the summed block counters to the writer; never waits for it.
    fn flush_counters(&mut self, writer: &Submitter) {
        self.last_flush = Instant::now();
        let counts = self.judge.take_blocked();
        if counts.is_empty() {
            return;
        }
        let blocks: u64 = counts.iter().map(|&(_, n)| n).sum();
        if let Err(why) = writer.submit(counts) {
            let why = match why {
                Refused::Full => format!(
                    "the writer is {} batches behind (the database's writer is busy)",
                    crate::writer::QUEUE
                ),
                Refused::Gone => "the writer thread is gone".to_string(),
            };
            log_limited(
                "block counters",
                self.dropped_batches
                    .hit(|_| format!("dropped a batch of {blocks} blocks: {why}")),
            );
        }
    }
}
