//! The loop of `ibd-xdp`: a synchronisation every staleness bound, the kernel's drop counts written
//! to the records' blocked counters every second (kept and retried while the database refuses), and
//! the signals. Verdicts never depend on it: the kernel keeps judging whatever the loop does.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ipqbdb_core::log::{self, Level};
use ipqbdb_core::AddrKey;
use ipqbdb_runtime::rate_limit::{RateLimit, Repeat};
use ipqbdb_runtime::signals::Signals;
use ipqbdb_store::Store;

use crate::error::XdpError;
use crate::loader::{self, Attached};
use crate::sync::Syncer;

use crate::PROGRAM;
/// How often drop counts go to the database, like ibd-judge's `COUNTER_FLUSH`.
pub const COUNTER_FLUSH: Duration = Duration::from_secs(1);
/// A pass is followed by at least this many times its duration without one.
pub const SYNC_SPACING: u32 = 4;
/// The loop's longest sleep: how soon it sees a signal.
const TICK: Duration = Duration::from_millis(100);

/// How the loop runs.
pub struct DaemonOptions {
    pub staleness: Duration,
    pub detach_on_exit: bool,
    pub verbose: u8,
}

pub struct Daemon<S: Store> {
    attached: Attached,
    syncer: Syncer,
    store: S,
    opts: DaemonOptions,
    pending: std::collections::HashMap<AddrKey, u64>,
    /// Errors of the loop, each said once while it lasts.
    errors: RateLimit,
    written_blocked: u64,
}

impl<S: Store> Daemon<S> {
    pub fn new(attached: Attached, syncer: Syncer, store: S, opts: DaemonOptions) -> Self {
        Daemon {
            attached,
            syncer,
            store,
            opts,
            pending: Default::default(),
            errors: RateLimit::new(Repeat::WhenChanged),
            written_blocked: 0,
        }
    }

    /// One synchronisation now; the first one's error stops the start.
    pub fn sync_once(&mut self) -> Result<crate::sync::SyncPass, XdpError> {
        let r = self
            .syncer
            .sync(&mut self.attached.maps, &self.store, ipqbdb_core::now())?;
        self.note_left_out(&r);
        Ok(r)
    }

    /// Logs (once while it lasts) that a pass left live records out of the map.
    pub fn note_left_out(&mut self, r: &crate::sync::SyncPass) {
        if r.left_out > 0 {
            self.note_error(
                "map full",
                XdpError::Map {
                    map: crate::maps::BLOCK,
                    reason: format!(
                        "{} live records do not fit (--max-entries); the highest probabilities \
                         are in the map",
                        r.left_out
                    ),
                },
            );
        }
    }

    fn note_error(&mut self, what: &str, e: XdpError) {
        if let Some(msg) = self.errors.hit(|_| format!("{what}: {e}")) {
            log::log(PROGRAM, Level::Error, &msg);
        }
    }

    fn flush_counters(&mut self) {
        // A second after a resize the replaced program has long finished its last packets: its
        // counts are read once, and its maps freed.
        let mut taken = Vec::with_capacity(2);
        if let Some(mut old) = self.attached.retired.take() {
            taken.push(self.syncer.take_dropped(&mut old));
        }
        taken.push(self.syncer.take_dropped(&mut self.attached.maps));
        for batch in taken {
            match batch {
                Ok(batch) => {
                    for (k, n) in batch {
                        let e = self.pending.entry(k).or_default();
                        *e = e.saturating_add(n);
                    }
                }
                Err(e) => self.note_error("reading drop counts", e),
            }
        }
        if self.pending.is_empty() {
            return;
        }
        let batch: Vec<(AddrKey, u64)> = self.pending.iter().map(|(k, n)| (*k, *n)).collect();
        match self.store.add_blocked(&batch) {
            Ok(()) => {
                self.written_blocked = batch
                    .iter()
                    .fold(self.written_blocked, |a, (_, n)| a.saturating_add(*n));
                self.pending.clear();
            }
            Err(e) => self.note_error("writing blocked counts (kept for the next try)", e.into()),
        }
    }

    pub fn run(&mut self, signals: &Signals) {
        let mut next_sync = Instant::now() + self.opts.staleness;
        let mut next_flush = Instant::now() + COUNTER_FLUSH;
        while !signals.terminate.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_sync {
                let result = self.sync_once();
                // A pass reads the whole block table: on a large database the interval stretches
                // so passes take at most 1/SYNC_SPACING of a core.
                next_sync = now + self.opts.staleness.max(now.elapsed() * SYNC_SPACING);
                match result {
                    Ok(r) => {
                        if r.left_out == 0 {
                            self.errors.clear();
                        }
                        if self.opts.verbose > 0 && (r.written > 0 || r.removed > 0) {
                            let took = now.elapsed().as_secs_f64() * 1000.0;
                            log::log(PROGRAM, Level::Info, &format!("map: {r:?} in {took:.0} ms"));
                        }
                    }
                    Err(e) => self.note_error("synchronisation", e),
                }
            }
            if now >= next_flush {
                next_flush = now + COUNTER_FLUSH;
                self.flush_counters();
            }
            // The SIGUSR1 dump.
            if signals.dump.swap(false, Ordering::Relaxed) {
                log::log(
                    PROGRAM,
                    Level::Notice,
                    &format!(
                        "{} records in the map, {} whitelist blocks, {} blocked packets written, {} \
                         addresses' counts pending",
                        self.syncer.in_map(),
                        self.syncer.white_blocks(),
                        self.written_blocked,
                        self.pending.len()
                    ),
                );
            }
            let wake = next_sync.min(next_flush);
            std::thread::sleep(wake.saturating_duration_since(Instant::now()).min(TICK));
        }
        self.flush_counters();
        if !self.pending.is_empty() {
            log::log(
                PROGRAM,
                Level::Warning,
                &format!("blocked counts of {} addresses lost", self.pending.len()),
            );
        }
        if self.opts.detach_on_exit {
            match loader::detach(&self.attached.pin_dir) {
                Ok(()) => log::log(PROGRAM, Level::Notice, "detached"),
                Err(e) => log::log(PROGRAM, Level::Error, &format!("detaching: {e}")),
            }
        }
    }
}
