//! Block counters are written on their own thread, so no verdict ever waits for the database's
//! writer: another process may hold it for a long time (SQLite waits up to its 60 s busy timeout;
//! an LMDB retention pass is one long transaction), and a durable commit costs an fsync.
//!
//! The packet thread hands over a batch per flush through a bounded queue and never blocks on it:
//! when the queue is full, the batch is dropped and counted. Block counters are statistics; a
//! packet left unanswered is an outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipqbdb_core::log::{log, Level};
use ipqbdb_core::AddrKey;
use ipqbdb_runtime::rate_limit::{RateLimit, Repeat};
use ipqbdb_runtime::reopen::Reopener;
use ipqbdb_store::Store;

use crate::PROGRAM;

/// Batches waiting for the writer: at one batch a second, half a minute of a busy database before
/// anything is dropped.
pub const QUEUE: usize = 32;
/// How soon a failed write is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// How often the packet threads hand their block counters to the writer.
pub const COUNTER_FLUSH: Duration = Duration::from_secs(1);

/// Blocks per address, as a packet thread hands them over.
pub type BlockCounts = Vec<(AddrKey, u64)>;

/// What the writer did, for the SIGUSR1 dump and exit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    pub batches_written: u64,
    pub batches_dropped: u64,
    /// Blocks in the dropped batches: counts the database will never see.
    pub blocks_dropped: u64,
    pub write_errors: u64,
    /// Blocks handed over and not yet written.
    pub blocks_unwritten: u64,
}

#[derive(Default)]
struct WriterCounters {
    batches_written: AtomicU64,
    batches_dropped: AtomicU64,
    blocks_dropped: AtomicU64,
    write_errors: AtomicU64,
    blocks_unwritten: AtomicU64,
}

impl WriterCounters {
    fn stats(&self) -> WriterStats {
        WriterStats {
            batches_written: self.batches_written.load(Ordering::Relaxed),
            batches_dropped: self.batches_dropped.load(Ordering::Relaxed),
            blocks_dropped: self.blocks_dropped.load(Ordering::Relaxed),
            write_errors: self.write_errors.load(Ordering::Relaxed),
            blocks_unwritten: self.blocks_unwritten.load(Ordering::Relaxed),
        }
    }
}

pub struct CounterWriter {
    tx: SyncSender<BlockCounts>,
    shared: Arc<WriterCounters>,
    done: Receiver<()>,
    thread: JoinHandle<()>,
}

/// Reads the writer's counters from another thread (the metrics exporter's).
#[derive(Clone)]
pub struct WriterWatch(Arc<WriterCounters>);

impl WriterWatch {
    pub fn stats(&self) -> WriterStats {
        self.0.stats()
    }
}

/// Why [`CounterWriter::submit`] gave a batch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The writer is behind by [`QUEUE`] batches.
    Full,
    /// The writer thread is gone (it panicked).
    Gone,
}

impl CounterWriter {
    /// Starts the writer thread with its own `store`: SQLite serialises the statements of one
    /// connection, so a writer waiting on the database must not share the packet thread's.
    ///
    /// It also does the database's housekeeping every `maintenance` (LMDB's stale reader slots,
    /// SQLite's WAL checkpoint): off the packet thread, since a checkpoint writes.
    pub fn start<S: Store + 'static>(
        store: S,
        maintenance: Option<Duration>,
    ) -> std::io::Result<Self> {
        Self::start_reopening(store, maintenance, None)
    }

    /// [`CounterWriter::start`], with the store replaced by `reopen`'s when a reopen is asked
    /// (SIGUSR2): at the next write, as the writer waits for batches in between.
    pub fn start_reopening<S: Store + 'static>(
        store: S,
        maintenance: Option<Duration>,
        reopen: Option<Reopener<S>>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::new(WriterCounters::default());
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("counter-writer".into())
                .spawn(move || {
                    write_loop(store, reopen, &rx, &shared, maintenance);
                    let _ = done_tx.send(());
                })?
        };
        Ok(CounterWriter {
            tx,
            shared,
            done,
            thread,
        })
    }

    /// A handle for a packet thread to hand over its batches.
    pub fn submitter(&self) -> Submitter {
        Submitter {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
        }
    }

    /// Hands `batch` to the writer without waiting; a refused batch is dropped and counted.
    pub fn submit(&self, batch: BlockCounts) -> Result<(), Refused> {
        submit(&self.tx, &self.shared, batch)
    }

    pub fn stats(&self) -> WriterStats {
        self.shared.stats()
    }

    pub fn watch(&self) -> WriterWatch {
        WriterWatch(self.shared.clone())
    }

    /// Lets the writer write what it holds, for at most `grace`: a stop must not wait on another
    /// process's transaction for as long as that one likes. Returns the final stats; their
    /// `blocks_unwritten` were lost.
    pub fn finish(self, grace: Duration) -> WriterStats {
        let CounterWriter {
            tx,
            shared,
            done,
            thread,
        } = self;
        drop(tx);
        match done.recv_timeout(grace) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let _ = thread.join();
            }
            // Left behind: the process is about to exit, which ends it.
            Err(RecvTimeoutError::Timeout) => {}
        }
        shared.stats()
    }
}

/// The packet threads' side of the writer's queue.
#[derive(Clone)]
pub struct Submitter {
    tx: SyncSender<BlockCounts>,
    shared: Arc<WriterCounters>,
}

impl Submitter {
    /// See [`CounterWriter::submit`].
    pub fn submit(&self, batch: BlockCounts) -> Result<(), Refused> {
        submit(&self.tx, &self.shared, batch)
    }
}

fn submit(
    tx: &SyncSender<BlockCounts>,
    shared: &WriterCounters,
    batch: BlockCounts,
) -> Result<(), Refused> {
    let blocks: u64 = batch.iter().map(|&(_, n)| n).sum();
    shared.blocks_unwritten.fetch_add(blocks, Ordering::Relaxed);
    let refused = match tx.try_send(batch) {
        Ok(()) => return Ok(()),
        Err(TrySendError::Full(_)) => Refused::Full,
        Err(TrySendError::Disconnected(_)) => Refused::Gone,
    };
    shared.blocks_unwritten.fetch_sub(blocks, Ordering::Relaxed);
    shared.batches_dropped.fetch_add(1, Ordering::Relaxed);
    shared.blocks_dropped.fetch_add(blocks, Ordering::Relaxed);
    Err(refused)
}

/// Merges batches while a write is under way or failing, so a busy database costs one larger
/// transaction afterwards rather than a backlog of small ones.
fn write_loop<S: Store>(
    store: S,
    mut reopen: Option<Reopener<S>>,
    rx: &Receiver<BlockCounts>,
    shared: &WriterCounters,
    maintenance: Option<Duration>,
) {
    let store = std::cell::RefCell::new(store);
    let mut last_maintenance = Instant::now();
    let mut maintain = || {
        let every = maintenance?;
        let due = every.saturating_sub(last_maintenance.elapsed());
        if due.is_zero() {
            last_maintenance = Instant::now();
            if let Err(e) = store.borrow().maintenance() {
                log(
                    PROGRAM,
                    Level::Warning,
                    &format!("database housekeeping: {e}"),
                );
            }
            return Some(every);
        }
        Some(due)
    };
    let mut pending: HashMap<AddrKey, u64> = HashMap::new();
    let mut pending_batches = 0u64;
    let mut closed = false;
    let mut write_errors = RateLimit::new(Repeat::WhenChanged);
    let mut failed_at: Option<Instant> = None;
    loop {
        let next = if closed {
            if pending.is_empty() {
                return;
            }
            std::thread::sleep(RETRY.saturating_sub(failed_at.map_or(RETRY, |t| t.elapsed())));
            None
        } else if pending.is_empty() {
            // Idle: wake for the housekeeping when it is due.
            match maintain() {
                None => match rx.recv() {
                    Ok(b) => Some(b),
                    Err(_) => return,
                },
                Some(due) => match rx.recv_timeout(due) {
                    Ok(b) => Some(b),
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
            }
        } else {
            maintain();
            let wait = RETRY.saturating_sub(failed_at.map_or(RETRY, |t| t.elapsed()));
            match rx.recv_timeout(wait) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    closed = true;
                    None
                }
            }
        };
        for batch in next
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            pending_batches += 1;
            for (k, n) in batch {
                *pending.entry(k).or_default() += n;
            }
        }
        // After a failure, new batches only join the pending ones until the retry is due.
        if failed_at.is_some_and(|t| t.elapsed() < RETRY) {
            continue;
        }
        if pending.is_empty() {
            continue;
        }
        match reopen.as_mut().and_then(Reopener::due) {
            Some(Ok(s)) => {
                *store.borrow_mut() = s;
                log(
                    PROGRAM,
                    Level::Notice,
                    "block counters: reopened the database",
                );
            }
            Some(Err(e)) => log(
                PROGRAM,
                Level::Error,
                &format!("block counters: reopening the database: {e}; keeping the handle in use"),
            ),
            None => {}
        }
        let counts: Vec<(AddrKey, u64)> = pending.iter().map(|(&k, &n)| (k, n)).collect();
        let written = store.borrow().add_blocked(&counts);
        match written {
            Ok(()) => {
                let blocks: u64 = counts.iter().map(|&(_, n)| n).sum();
                shared.blocks_unwritten.fetch_sub(blocks, Ordering::Relaxed);
                shared
                    .batches_written
                    .fetch_add(pending_batches, Ordering::Relaxed);
                pending.clear();
                pending_batches = 0;
                failed_at = None;
                if write_errors.clear() {
                    log(PROGRAM, Level::Notice, "block counters are written again");
                }
            }
            Err(e) => {
                shared.write_errors.fetch_add(1, Ordering::Relaxed);
                failed_at = Some(Instant::now());
                if let Some(msg) = write_errors.hit(|_| e.to_string()) {
                    log(
                        PROGRAM,
                        Level::Error,
                        &format!("block counters: {msg}; kept and tried again"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipqbdb_store::{AnyStore, Ban, Engine, OpenOptions, ReadStore};
    use std::sync::mpsc::channel;

    const NOW: i64 = 1_700_000_000;

    fn open(dir: &std::path::Path, backend: Engine) -> AnyStore {
        let opts = OpenOptions {
            backend: Some(backend),
            ..OpenOptions::default()
        };
        AnyStore::open(dir, &opts).unwrap()
    }

    /// With the database's writer held elsewhere, submissions never wait: once the queue is full
    /// they are refused and counted; what was queued is written once the writer is free.
    #[test]
    fn a_held_writer_fills_the_queue_and_nothing_waits() {
        for backend in Engine::compiled_local() {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), backend);
            let ip = "192.0.2.7".parse().unwrap();
            let key = store
                .ban(
                    &Ban {
                        ip,
                        reason: "t",
                        initial_count: 0,
                        decay: None,
                    },
                    NOW,
                )
                .unwrap()
                .key;
            // Opened first: redb's open waits for a held writer.
            let writer = CounterWriter::start(open(dir.path(), backend), None).unwrap();
            let (holding_tx, holding) = channel();
            let (release_tx, release) = channel::<()>();
            let holder = {
                let store = open(dir.path(), backend);
                std::thread::spawn(move || {
                    store
                        .write(&mut |_| {
                            let _ = holding_tx.send(());
                            let _ = release.recv();
                            Ok(())
                        })
                        .unwrap();
                })
            };
            holding.recv().unwrap();
            let started = Instant::now();
            let (mut accepted, mut refused) = (0u64, 0u64);
            for _ in 0..QUEUE + 10 {
                match writer.submit(vec![(key, 1)]) {
                    Ok(()) => accepted += 1,
                    Err(r) => {
                        assert_eq!(r, Refused::Full);
                        refused += 1;
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "{backend}: submitting waited {:?}",
                started.elapsed()
            );
            // The writer thread holds at most one batch, waiting; the queue the rest.
            assert!(
                (QUEUE as u64..=QUEUE as u64 + 1).contains(&accepted),
                "{backend}: {accepted} accepted"
            );
            let held = writer.stats();
            assert_eq!(held.batches_dropped, refused, "{backend}");
            assert_eq!(held.blocks_dropped, refused, "{backend}");
            assert_eq!(held.blocks_unwritten, accepted, "{backend}");
            assert_eq!(held.batches_written, 0, "{backend}");
            release_tx.send(()).unwrap();
            holder.join().unwrap();
            let done = writer.finish(Duration::from_secs(30));
            assert_eq!(done.blocks_unwritten, 0, "{backend}");
            assert_eq!(done.batches_written, accepted, "{backend}");
            assert_eq!(done.write_errors, 0, "{backend}");
            assert_eq!(
                store.lookup(key).unwrap().unwrap().blocked,
                accepted,
                "{backend}: every accepted block written, once"
            );
        }
    }
}
