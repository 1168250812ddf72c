//! `ibd-judge` as a whole: a packet thread per queue (`worker.rs`), the block-counter writer
//! (`writer.rs`), and this thread, which waits for signals, reports the merged counters and stops
//! the others in order: the workers answer every packet and close their sockets before the writer
//! is given its grace.
//!
//! Nothing on a packet thread waits for the database's writer, nor for another packet thread.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipqbdb_core::log::{log, Level};
pub use ipqbdb_core::process::{Reopener, Signals};
use ipqbdb_store::ReadStore;

use crate::worker::{Worker, WorkerStats};
use crate::writer::CounterWriter;

pub(crate) const PROGRAM: &str = "ibd-judge";
/// How often block counters are handed to the writer.
pub(crate) const COUNTER_FLUSH: Duration = Duration::from_secs(1);
/// How often this thread looks at the signal flags.
const SIGNAL_POLL: Duration = Duration::from_millis(50);
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

pub struct Daemon<S: ReadStore> {
    writer: CounterWriter,
    workers: Vec<Worker<S>>,
    stats: Vec<(u16, Arc<Mutex<WorkerStats>>)>,
    /// Asks every thread to open its store again on SIGUSR2.
    reopen: Option<Reopener<S>>,
}

impl<S: ReadStore + 'static> Daemon<S> {
    /// `workers` serve the queues, one thread each; `writer` (with a store of its own) writes
    /// block counters.
    pub fn new(writer: CounterWriter, workers: Vec<Worker<S>>) -> Self {
        let stats = workers.iter().map(|w| (w.queue(), w.stats())).collect();
        Daemon {
            writer,
            workers,
            stats,
            reopen: None,
        }
    }

    /// Makes SIGUSR2 reopen the database (ipqbdb 2.03's recovery signal): each packet thread
    /// opens a new store with `reopen` before its next snapshot; the writer was given its own
    /// reopener on the same asking (`CounterWriter::start_reopening`). Without it SIGUSR2 is
    /// logged and ignored.
    pub fn set_reopen(&mut self, reopen: Reopener<S>) {
        for w in &mut self.workers {
            w.set_reopen(reopen.clone());
        }
        self.reopen = Some(reopen);
    }

    /// Runs until SIGTERM or SIGINT (or until a packet thread dies, which stops the others);
    /// SIGUSR1 logs the counters, SIGUSR2 reopens the database, SIGHUP is logged.
    pub fn run(self, signals: &Signals) -> Result<(), String> {
        let Daemon {
            writer,
            workers,
            stats,
            reopen,
        } = self;
        let terminate = &*signals.terminate;
        let lost = std::thread::scope(|s| {
            let handles: Result<Vec<_>, _> = workers
                .into_iter()
                .map(|w| {
                    let q = w.queue();
                    std::thread::Builder::new()
                        .name(format!("queue-{q}"))
                        .spawn_scoped(s, move || w.run(terminate))
                        .map(|h| (q, h))
                })
                .collect();
            let handles: Vec<_> = match handles {
                Ok(h) => h,
                Err(e) => {
                    terminate.store(true, Ordering::Relaxed);
                    return Some(format!("packet thread: {e}"));
                }
            };
            let mut lost = None;
            while !terminate.load(Ordering::Relaxed) {
                if signals.report.swap(false, Ordering::Relaxed) {
                    report(&stats, writer.stats());
                }
                if signals.reload.swap(false, Ordering::Relaxed) {
                    // The judge has no rules to reload: its settings are its command line.
                    log(PROGRAM, Level::Notice, "SIGHUP: nothing to reload");
                }
                if signals.reopen.swap(false, Ordering::Relaxed) {
                    match &reopen {
                        Some(r) => {
                            log(PROGRAM, Level::Notice, "SIGUSR2: reopening the database");
                            r.ask();
                        }
                        None => log(PROGRAM, Level::Warning, "SIGUSR2: cannot reopen here"),
                    }
                }
                if let Some((q, _)) = handles.iter().find(|(_, h)| h.is_finished()) {
                    lost = Some(format!("the thread of queue {q} stopped"));
                    terminate.store(true, Ordering::Relaxed);
                    break;
                }
                std::thread::sleep(SIGNAL_POLL);
            }
            for (q, h) in handles {
                if h.join().is_err() {
                    lost = Some(format!("the thread of queue {q} panicked"));
                }
            }
            lost
        });
        let w = writer.finish(WRITER_GRACE);
        if w.blocks_unwritten > 0 {
            log(
                PROGRAM,
                Level::Warning,
                &format!(
                    "block counters: {} blocks not written within {} s (the database's writer \
                     is busy); they are lost",
                    w.blocks_unwritten,
                    WRITER_GRACE.as_secs()
                ),
            );
        }
        report(&stats, w);
        lost.map_or(Ok(()), Err)
    }
}

/// Logs every queue's counters, and the sums of the rest.
fn report(stats: &[(u16, Arc<Mutex<WorkerStats>>)], w: crate::writer::WriterStats) {
    let mut total = WorkerStats::default();
    let mut by_queue: Vec<(u16, WorkerStats)> = stats
        .iter()
        .map(|(q, s)| (*q, *s.lock().unwrap_or_else(|p| p.into_inner())))
        .collect();
    by_queue.sort_by_key(|&(q, _)| q);
    for (q, s) in &by_queue {
        let c = &s.counters;
        log(
            PROGRAM,
            Level::Notice,
            &format!(
                "queue {q}: {} packets, {} accepted, {} dropped, {} marked, {} errors",
                c.packets, c.accepted, c.dropped, c.marked, c.errors
            ),
        );
        total.recv_errors += s.recv_errors;
        total.enobufs += s.enobufs;
        total.send_errors += s.send_errors;
        total.sends += s.sends;
        total.counters.packets += c.packets;
        let (l, t) = (&s.loop_stats, &mut total.loop_stats);
        t.longest_pause = t.longest_pause.max(l.longest_pause);
        t.snapshots += l.snapshots;
        t.snapshot_failures += l.snapshot_failures;
        t.lookup_errors += l.lookup_errors;
    }
    log(
        PROGRAM,
        Level::Notice,
        &format!(
            "receive errors: {}, of which ENOBUFS: {}; verdict sends: {} ({:.1} packets each), \
             failed: {}",
            total.recv_errors,
            total.enobufs,
            total.sends,
            total.counters.packets as f64 / total.sends.max(1) as f64,
            total.send_errors
        ),
    );
    let l = &total.loop_stats;
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
