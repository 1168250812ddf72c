//! `ibd-judge` as a whole: a packet thread per queue (`worker.rs`), the block-counter writer
//! (`writer.rs`), and this thread, which waits for signals, dumps the merged counters and stops
//! the others in order: the workers answer every packet and close their sockets before the writer
//! is given its grace.
//!
//! Nothing on a packet thread waits for the database's writer, nor for another packet thread.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipqbdb_core::log::{log, Level};
pub use ipqbdb_runtime::reopen::Reopener;
pub use ipqbdb_runtime::signals::Signals;
use ipqbdb_store::ReadStore;

use crate::stats::WorkerStats;
use crate::worker::Worker;
use crate::writer::{CounterWriter, WriterStats};
use crate::PROGRAM;

/// How often this thread looks at the signal flags.
const SIGNAL_POLL: Duration = Duration::from_millis(50);
/// How long a stop waits for the writer to write what it holds.
pub const WRITER_GRACE: Duration = Duration::from_secs(5);

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
    /// SIGUSR1 dumps the counters, SIGUSR2 reopens the database, SIGHUP is logged.
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
                if signals.dump.swap(false, Ordering::Relaxed) {
                    dump(&stats, writer.stats());
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
        dump(&stats, w);
        lost.map_or(Ok(()), Err)
    }
}

/// The SIGUSR1 dump (also logged at exit): every queue's counters, and the sums of the rest.
fn dump(stats: &[(u16, Arc<Mutex<WorkerStats>>)], w: WriterStats) {
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
