//! The `ibd-judge` loop: receive, judge, verdict; renew the snapshot at the staleness bound; write
//! block counters back in batches; survive every receive error.

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
use crate::netlink::NfqSocket;
use crate::packet;
use crate::qspec::QSpec;

const PROGRAM: &str = "ibd-judge";
/// How often block counters are written back.
const COUNTER_FLUSH: Duration = Duration::from_secs(1);

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

pub struct Options {
    /// How old the snapshot the verdicts use may be.
    pub staleness: Duration,
    pub verbose: u8,
}

pub struct Daemon<S: Store> {
    store: S,
    sock: NfqSocket,
    specs: Vec<QSpec>,
    opts: Options,
    judge: Judge,
    counters: BTreeMap<u16, Counters>,
    recv_errors: u64,
    enobufs: u64,
    last_flush: Instant,
    last_db_error: Option<String>,
}

impl<S: Store> Daemon<S> {
    pub fn new(store: S, sock: NfqSocket, specs: Vec<QSpec>, opts: Options) -> Self {
        let counters = specs
            .iter()
            .map(|s| (s.queue, Counters::default()))
            .collect();
        Daemon {
            store,
            sock,
            specs,
            opts,
            judge: Judge::default(),
            counters,
            recv_errors: 0,
            enobufs: 0,
            last_flush: Instant::now(),
            last_db_error: None,
        }
    }

    pub fn run(&mut self, signals: &Signals) {
        while !signals.terminate.load(Ordering::Relaxed) {
            if signals.report.swap(false, Ordering::Relaxed) {
                self.report();
            }
            let deadline = Instant::now() + self.opts.staleness;
            self.judge.new_snapshot();
            let store = &self.store;
            let mut inner = Inner {
                sock: &mut self.sock,
                specs: &self.specs,
                judge: &mut self.judge,
                counters: &mut self.counters,
                recv_errors: &mut self.recv_errors,
                enobufs: &mut self.enobufs,
                verbose: self.opts.verbose,
                terminate: &signals.terminate,
            };
            let res = store.with_snapshot(&mut |snap| {
                inner.serve(Some(snap), deadline);
                Ok(())
            });
            if let Err(e) = res {
                // Without a snapshot, packets are still answered (accepted), never left queued.
                let msg = e.to_string();
                if self.last_db_error.as_deref() != Some(&msg) {
                    log(
                        PROGRAM,
                        Level::Error,
                        &format!("{msg}; accepting packets until the database reads again"),
                    );
                    self.last_db_error = Some(msg);
                }
                inner.serve(None, deadline);
            } else if self.last_db_error.take().is_some() {
                log(PROGRAM, Level::Notice, "the database reads again");
            }
            if self.last_flush.elapsed() >= COUNTER_FLUSH {
                self.flush_counters();
            }
        }
        self.flush_counters();
        self.report();
    }

    fn flush_counters(&mut self) {
        self.last_flush = Instant::now();
        let counts = self.judge.take_blocked();
        if counts.is_empty() {
            return;
        }
        if let Err(e) = self.store.add_blocked(&counts) {
            log(PROGRAM, Level::Error, &format!("block counters: {e}"));
            self.judge.restore_blocked(counts);
        }
    }

    fn report(&self) {
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
    }

    pub fn counters(&self) -> &BTreeMap<u16, Counters> {
        &self.counters
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
    verbose: u8,
    terminate: &'a AtomicBool,
}

impl Inner<'_> {
    /// Verdicts packets until `deadline` (or a receive timeout, or termination).
    fn serve(&mut self, snap: Option<&ipqbdb_store::Snapshot<'_>>, deadline: Instant) {
        while Instant::now() < deadline && !self.terminate.load(Ordering::Relaxed) {
            let mut msg = match self.sock.queue.recv() {
                Ok(m) => m,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    return
                }
                Err(e) => {
                    *self.recv_errors += 1;
                    if e.raw_os_error() == Some(libc::ENOBUFS) {
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
            let verdict = match (spec, snap) {
                (Some(spec), Some(snap)) => match packet::address(msg.get_payload(), spec.side) {
                    Some(ip) => match self.judge.judge(snap, ip, now()) {
                        Ok(j) => {
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
                                    Verdict::Accept
                                }
                                (true, None) => {
                                    counters.dropped += 1;
                                    Verdict::Drop
                                }
                                (true, Some(mark)) => {
                                    counters.marked += 1;
                                    msg.set_nfmark(mark);
                                    Verdict::Accept
                                }
                            }
                        }
                        Err(_) => {
                            counters.errors += 1;
                            Verdict::Accept
                        }
                    },
                    None => {
                        counters.errors += 1;
                        Verdict::Accept
                    }
                },
                _ => {
                    counters.errors += 1;
                    Verdict::Accept
                }
            };
            msg.set_verdict(verdict);
            if let Err(e) = self.sock.queue.verdict(msg) {
                *self.recv_errors += 1;
                if self.recv_errors.is_power_of_two() {
                    log(PROGRAM, Level::Error, &format!("verdict: {e}"));
                }
            }
        }
    }
}
