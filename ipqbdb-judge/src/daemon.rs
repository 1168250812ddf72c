//! The `ibd-judge` loop: receive, judge, verdict; renew the snapshot at the staleness bound; hand
//! block counters to the writer thread in batches; survive every receive error.
//!
//! Nothing on this thread waits for the database's writer: the snapshot reads do not, and the
//! writes happen on the writer thread (`writer.rs`).

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipqbdb_core::log::{log, Level};
pub use ipqbdb_core::process::Signals;
use ipqbdb_core::{now, percent};
use ipqbdb_store::Store;
use nfq::Verdict;

use crate::judge::Judge;
use crate::metrics::{JudgeMetrics, Unjudged};
use crate::netlink::NfqSocket;
use crate::packet;
use crate::qspec::QSpec;
use crate::writer::{CounterWriter, Refused};

const PROGRAM: &str = "ibd-judge";
/// How often block counters are handed to the writer.
const COUNTER_FLUSH: Duration = Duration::from_secs(1);
/// How long a stop waits for the writer to write what it holds.
pub const WRITER_GRACE: Duration = Duration::from_secs(5);
/// At most one line per this period for an error that may repeat per packet.
const SUMMARY_PERIOD: Duration = Duration::from_secs(60);

/// Per-queue counters, as SIGUSR1 logs them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub accepted: u64,
    pub dropped: u64,
    pub marked: u64,
    /// Packets that could not be judged (not IP, database error) and were accepted.
    pub errors: u64,
}

/// Health of the packet loop itself, as SIGUSR1 logs it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopStats {
    /// The longest time the loop spent away from its queues between two receives: opening a
    /// snapshot, handing over counters, logging. What a packet may wait beyond the kernel's queue.
    pub longest_pause: Duration,
    pub snapshots: u64,
    pub snapshot_failures: u64,
    pub lookup_errors: u64,
}

/// Logs an error that may come with every packet without flooding the log: the first occurrence
/// at once, then at most one summary line per [`SUMMARY_PERIOD`] with the count and the latest.
pub struct Throttle {
    what: &'static str,
    last_line: Option<Instant>,
    suppressed: u64,
    latest: String,
}

impl Throttle {
    pub fn new(what: &'static str) -> Self {
        Throttle {
            what,
            last_line: None,
            suppressed: 0,
            latest: String::new(),
        }
    }

    pub fn hit(&mut self, message: impl FnOnce() -> String) {
        let quiet = self.last_line.is_none_or(|t| t.elapsed() >= SUMMARY_PERIOD);
        if quiet && self.suppressed == 0 {
            log(
                PROGRAM,
                Level::Error,
                &format!("{}: {}", self.what, message()),
            );
            self.last_line = Some(Instant::now());
        } else {
            self.suppressed += 1;
            self.latest = message();
            self.tick();
        }
    }

    /// Writes the summary once it is due, even when no new error comes to call [`Throttle::hit`].
    pub fn tick(&mut self) {
        if self.suppressed > 0 && self.last_line.is_none_or(|t| t.elapsed() >= SUMMARY_PERIOD) {
            log(
                PROGRAM,
                Level::Error,
                &format!(
                    "{}: {} more in the last minute, the latest: {}",
                    self.what, self.suppressed, self.latest
                ),
            );
            self.suppressed = 0;
            self.last_line = Some(Instant::now());
        }
    }
}

pub struct Options {
    /// How old the snapshot the verdicts use may be.
    pub staleness: Duration,
    pub verbose: u8,
}

pub struct Daemon<S: Store> {
    /// Read only: every write goes through `writer`.
    store: S,
    writer: Option<CounterWriter>,
    sock: NfqSocket,
    specs: Vec<QSpec>,
    opts: Options,
    judge: Judge,
    counters: BTreeMap<u16, Counters>,
    recv_errors: u64,
    enobufs: u64,
    last_flush: Instant,
    last_db_error: Option<String>,
    stats: LoopStats,
    /// When the loop last left its queues, to measure the pause until it is back.
    away_since: Option<Instant>,
    lookup_errors: Throttle,
    dropped_batches: Throttle,
    metrics: JudgeMetrics,
}

impl<S: Store> Daemon<S> {
    /// `store` serves the snapshots; `writer` (with a store of its own) writes block counters.
    pub fn new(
        store: S,
        writer: CounterWriter,
        sock: NfqSocket,
        specs: Vec<QSpec>,
        opts: Options,
    ) -> Self {
        let queues: Vec<u16> = specs.iter().map(|s| s.queue).collect();
        let metrics = JudgeMetrics::new(store.backend().name(), &queues);
        let counters = specs
            .iter()
            .map(|s| (s.queue, Counters::default()))
            .collect();
        Daemon {
            store,
            writer: Some(writer),
            sock,
            specs,
            opts,
            judge: Judge::default(),
            counters,
            recv_errors: 0,
            enobufs: 0,
            last_flush: Instant::now(),
            last_db_error: None,
            stats: LoopStats::default(),
            away_since: None,
            lookup_errors: Throttle::new("lookup"),
            dropped_batches: Throttle::new("block counters"),
            metrics,
        }
    }

    /// The metrics page, for an [`ipqbdb_metrics::Exporter`] running beside the loop.
    pub fn metrics_render(&self) -> ipqbdb_metrics::Render {
        let writer = self.writer.as_ref().expect("until run ends").watch();
        self.metrics.render(writer, self.judge.cache_stats())
    }

    pub fn run(&mut self, signals: &Signals) {
        while !signals.terminate.load(Ordering::Relaxed) {
            if signals.report.swap(false, Ordering::Relaxed) {
                self.report();
            }
            let deadline = Instant::now() + self.opts.staleness;
            let store = &self.store;
            let mut inner = Inner {
                sock: &mut self.sock,
                specs: &self.specs,
                judge: &mut self.judge,
                counters: &mut self.counters,
                recv_errors: &mut self.recv_errors,
                enobufs: &mut self.enobufs,
                stats: &mut self.stats,
                away_since: &mut self.away_since,
                lookup_errors: &mut self.lookup_errors,
                metrics: &mut self.metrics,
                verbose: self.opts.verbose,
                terminate: &signals.terminate,
            };
            let mut opened = false;
            let res = store.with_snapshot(&mut |snap| {
                opened = true;
                inner.stats.snapshots += 1;
                inner.metrics.snapshots.inc();
                inner.metrics.snapshot_opened();
                // The cache belongs to the previous snapshot: forgotten only now that a new one
                // exists, so a failed refresh leaves it to judge by.
                inner.judge.new_snapshot();
                inner.serve(Some(snap), deadline);
                Ok(())
            });
            match res {
                Err(e) if !opened => {
                    inner.stats.snapshot_failures += 1;
                    inner.metrics.snapshot_failures.inc();
                    let msg = e.to_string();
                    if self.last_db_error.as_deref() != Some(&msg) {
                        log(
                            PROGRAM,
                            Level::Error,
                            &format!(
                                "{msg}; judging by the previous snapshot (addresses it did not \
                                 cover are accepted), trying again every {} ms",
                                self.opts.staleness.as_millis()
                            ),
                        );
                        self.last_db_error = Some(msg);
                    }
                    // Packets are still answered, never left queued, until the next attempt.
                    inner.serve(None, deadline);
                }
                // Closing a snapshot after serving from it: the verdicts were given; nothing
                // to recover.
                Err(e) => inner
                    .lookup_errors
                    .hit(|| format!("closing a snapshot: {e}")),
                Ok(()) => {
                    if self.last_db_error.take().is_some() {
                        log(PROGRAM, Level::Notice, "the database reads again");
                    }
                }
            }
            self.lookup_errors.tick();
            self.dropped_batches.tick();
            if self.last_flush.elapsed() >= COUNTER_FLUSH {
                self.flush_counters();
            }
        }
        self.flush_counters();
        if let Some(writer) = self.writer.take() {
            let stats = writer.finish(WRITER_GRACE);
            if stats.blocks_unwritten > 0 {
                log(
                    PROGRAM,
                    Level::Warning,
                    &format!(
                        "block counters: {} blocks not written within {} s (the database's \
                         writer is busy); they are lost",
                        stats.blocks_unwritten,
                        WRITER_GRACE.as_secs()
                    ),
                );
            }
            self.report_with(stats);
        }
    }

    /// Hands the summed block counters to the writer; never waits for it.
    fn flush_counters(&mut self) {
        self.last_flush = Instant::now();
        let counts = self.judge.take_blocked();
        if counts.is_empty() {
            return;
        }
        let Some(writer) = &self.writer else { return };
        let blocks: u64 = counts.iter().map(|&(_, n)| n).sum();
        if let Err(why) = writer.submit(counts) {
            let why = match why {
                Refused::Full => format!(
                    "the writer is {} batches behind (the database's writer is busy)",
                    crate::writer::QUEUE
                ),
                Refused::Gone => "the writer thread is gone".to_string(),
            };
            self.dropped_batches
                .hit(|| format!("dropped a batch of {blocks} blocks: {why}"));
        }
    }

    fn report(&self) {
        if let Some(w) = &self.writer {
            self.report_with(w.stats());
        }
    }

    fn report_with(&self, w: crate::writer::WriterStats) {
        for (q, c) in &self.counters {
            log(
                PROGRAM,
                Level::Notice,
                &format!(
                    "queue {q}: {} packets, {} accepted, {} dropped, {} marked, {} errors",
                    c.packets, c.accepted, c.dropped, c.marked, c.errors
                ),
            );
        }
        log(
            PROGRAM,
            Level::Notice,
            &format!(
                "receive errors: {}, of which ENOBUFS: {}",
                self.recv_errors, self.enobufs
            ),
        );
        let l = &self.stats;
        log(
            PROGRAM,
            Level::Notice,
            &format!(
                "longest pause between verdicts {} ms, {} snapshots, {} failed, {} lookup errors",
                l.longest_pause.as_millis(),
                l.snapshots,
                l.snapshot_failures,
                l.lookup_errors
            ),
        );
        log(
            PROGRAM,
            Level::Notice,
            &format!(
                "block counters: {} batches written, batches dropped: {} ({} blocks), \
                 write errors: {}, blocks waiting: {}",
                w.batches_written,
                w.batches_dropped,
                w.blocks_dropped,
                w.write_errors,
                w.blocks_unwritten
            ),
        );
    }

    pub fn counters(&self) -> &BTreeMap<u16, Counters> {
        &self.counters
    }

    pub fn loop_stats(&self) -> LoopStats {
        self.stats
    }
}

/// The parts of the daemon the packet loop borrows while the snapshot is open.
struct Inner<'a> {
    sock: &'a mut NfqSocket,
    specs: &'a [QSpec],
    judge: &'a mut Judge,
    counters: &'a mut BTreeMap<u16, Counters>,
    recv_errors: &'a mut u64,
    enobufs: &'a mut u64,
    stats: &'a mut LoopStats,
    away_since: &'a mut Option<Instant>,
    lookup_errors: &'a mut Throttle,
    metrics: &'a mut JudgeMetrics,
    verbose: u8,
    terminate: &'a AtomicBool,
}

impl Inner<'_> {
    /// Verdicts packets until `deadline` (or a receive timeout, or termination). Without a
    /// snapshot, addresses the previous one covered are judged by it, others accepted.
    fn serve(&mut self, snap: Option<&ipqbdb_store::Snapshot<'_>>, deadline: Instant) {
        if let Some(t) = self.away_since.take() {
            self.stats.longest_pause = self.stats.longest_pause.max(t.elapsed());
        }
        let verdicts = self.serve_until(snap, deadline);
        self.metrics.batch.observe(verdicts as f64);
        *self.away_since = Some(Instant::now());
    }

    /// Returns how many packets got a verdict.
    fn serve_until(&mut self, snap: Option<&ipqbdb_store::Snapshot<'_>>, deadline: Instant) -> u64 {
        let mut verdicts = 0;
        while Instant::now() < deadline && !self.terminate.load(Ordering::Relaxed) {
            let mut msg = match self.sock.queue.recv() {
                Ok(m) => m,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    return verdicts
                }
                Err(e) => {
                    *self.recv_errors += 1;
                    self.metrics.receive_errors.inc();
                    if e.raw_os_error() == Some(libc::ENOBUFS) {
                        self.metrics.enobufs.inc();
                        // The kernel dropped messages: the socket buffer overflowed. Count, say so
                        // now and then, and go on.
                        *self.enobufs += 1;
                        if self.enobufs.is_power_of_two() {
                            log(
                                PROGRAM,
                                Level::Warning,
                                &format!(
                                    "receive buffer overflow (ENOBUFS), {} so far",
                                    self.enobufs
                                ),
                            );
                        }
                    } else if self.recv_errors.is_power_of_two() {
                        log(
                            PROGRAM,
                            Level::Error,
                            &format!("receive: {e} ({} errors so far)", self.recv_errors),
                        );
                    }
                    continue;
                }
            };
            let qnum = msg.get_queue_num();
            let spec = self.specs.iter().find(|s| s.queue == qnum).copied();
            let counters = self.counters.entry(qnum).or_default();
            counters.packets += 1;
            verdicts += 1;
            let qm = self.metrics.queue(qnum);
            let judged = spec.map(|spec| {
                let ip = packet::address(msg.get_payload(), spec.side);
                (spec, ip)
            });
            let verdict = match judged {
                Some((spec, Some(ip))) => {
                    let now = now();
                    let j = match snap {
                        Some(snap) => self.judge.judge(snap, ip, now).map(Some),
                        None => Ok(self.judge.judge_cached(ip, now)),
                    };
                    match j {
                        Ok(Some(j)) => {
                            if self.verbose >= 3 || (self.verbose >= 2 && j.guilty) {
                                let draw = j.draw.map_or_else(|| "-".into(), |d| d.to_string());
                                log(
                                    PROGRAM,
                                    Level::Debug,
                                    &format!(
                                        "queue {qnum} {ip}: {:.3}% draw {draw} -> {}",
                                        percent(j.probability),
                                        if j.guilty { "guilty" } else { "innocent" }
                                    ),
                                );
                            }
                            match (j.guilty, spec.mark) {
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
                                    msg.set_nfmark(mark);
                                    Verdict::Accept
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
                            self.stats.lookup_errors += 1;
                            self.lookup_errors
                                .hit(|| format!("{ip} (queue {qnum}): {e}; accepted"));
                            Verdict::Accept
                        }
                    }
                }
                Some((_, None)) => {
                    counters.errors += 1;
                    qm.unjudged(Unjudged::NotIp).inc();
                    Verdict::Accept
                }
                None => {
                    counters.errors += 1;
                    qm.unjudged(Unjudged::UnknownQueue).inc();
                    Verdict::Accept
                }
            };
            msg.set_verdict(verdict);
            if let Err(e) = self.sock.queue.verdict(msg) {
                *self.recv_errors += 1;
                self.metrics.verdict_errors.inc();
                if self.recv_errors.is_power_of_two() {
                    log(PROGRAM, Level::Error, &format!("verdict: {e}"));
                }
            }
        }
        verdicts
    }
}
