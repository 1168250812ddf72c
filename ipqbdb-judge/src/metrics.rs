//! What `ibd-judge` tells Prometheus (`--metrics-listen`, `--metrics-file`): counters the packet
//! threads bump as they go (atomics shared by every clone, no lock, no allocation per packet), and
//! figures read at render time from where they already live (the writer's counters, the snapshots'
//! ages).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ipqbdb_metrics::prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry,
};
use ipqbdb_metrics::{counter, gauge, Render};

use crate::writer::WriterWatch;

/// Why a packet was accepted without a verdict from the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjudged {
    /// No IPv4 or IPv6 header to take an address from.
    NotIp,
    /// The kernel delivered a packet of a queue the judge was not given.
    UnknownQueue,
    /// No snapshot could be opened and the previous one had not seen the address.
    NoSnapshot,
    /// The lookup failed (a damaged record).
    LookupError,
}

impl Unjudged {
    const ALL: [Unjudged; 4] = [
        Unjudged::NotIp,
        Unjudged::UnknownQueue,
        Unjudged::NoSnapshot,
        Unjudged::LookupError,
    ];

    fn label(self) -> &'static str {
        match self {
            Unjudged::NotIp => "not_ip",
            Unjudged::UnknownQueue => "unknown_queue",
            Unjudged::NoSnapshot => "no_snapshot",
            Unjudged::LookupError => "lookup_error",
        }
    }
}

/// The counters of one queue, resolved once so a packet costs one atomic add.
#[derive(Clone)]
pub struct QueueMetrics {
    pub accepted: IntCounter,
    pub dropped: IntCounter,
    pub marked: IntCounter,
    unjudged: [IntCounter; 4],
}

impl QueueMetrics {
    pub fn unjudged(&self, why: Unjudged) -> &IntCounter {
        &self.unjudged[why as usize]
    }
}

/// Cache lookups, counted by the [`crate::judge::Judge`]s that own the caches (one per packet
/// thread, all counting here).
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

pub struct JudgeMetrics {
    registry: Registry,
    packets: IntCounterVec,
    unjudged: IntCounterVec,
    queues: BTreeMap<u16, QueueMetrics>,
    all_queues: AllQueuesMetrics,
    /// When each packet thread's snapshot in use was opened (see [`WorkerMetrics`]).
    opened: Vec<Arc<AtomicU64>>,
    cache: Arc<CacheStats>,
}

/// The counters every packet thread bumps: clones of one another, so they sum.
#[derive(Clone)]
pub struct AllQueuesMetrics {
    pub enobufs: IntCounter,
    pub receive_errors: IntCounter,
    pub verdict_errors: IntCounter,
    pub snapshots: IntCounter,
    pub snapshot_failures: IntCounter,
    /// Packets per verdict send: the batching a receive burst achieved.
    pub batch: Histogram,
    epoch: Instant,
}

/// What one packet thread (`worker.rs`) counts into: the counters of all queues, its queue's, the
/// shared cache counts, and the opening time of its own snapshot.
pub struct WorkerMetrics {
    pub all_queues: AllQueuesMetrics,
    pub queue: QueueMetrics,
    pub cache: Arc<CacheStats>,
    /// When this thread's snapshot in use was opened, in microseconds after `all_queues.epoch`; 0
    /// before the first.
    snapshot_opened: Arc<AtomicU64>,
}

impl WorkerMetrics {
    /// A snapshot was opened now.
    pub fn snapshot_opened(&self) {
        let us = self.all_queues.epoch.elapsed().as_micros().max(1) as u64;
        self.snapshot_opened.store(us, Ordering::Relaxed);
    }
}

fn must<T>(r: ipqbdb_metrics::prometheus::Result<T>) -> T {
    r.expect("metric names and labels are constants")
}

impl JudgeMetrics {
    pub fn new(engine: &str, queues: &[u16]) -> JudgeMetrics {
        let registry = ipqbdb_metrics::registry("ibd-judge", engine);
        let packets = must(IntCounterVec::new(
            Opts::new(
                "ipqbdb_judge_packets_total",
                "Packets given a verdict from the database, by queue and verdict (accept, drop, mark)",
            ),
            &["queue", "verdict"],
        ));
        let unjudged = must(IntCounterVec::new(
            Opts::new(
                "ipqbdb_judge_unjudged_packets_total",
                "Packets accepted without a verdict from the database, by queue and cause",
            ),
            &["queue", "cause"],
        ));
        let simple = |name: &str, help: &str| {
            let c = must(IntCounter::new(name, help));
            must(registry.register(Box::new(c.clone())));
            c
        };
        let enobufs = simple(
            "ipqbdb_judge_enobufs_total",
            "Receive errors that were ENOBUFS: the kernel dropped queue messages (a full socket buffer)",
        );
        let receive_errors = simple(
            "ipqbdb_judge_receive_errors_total",
            "Errors receiving from the NFQUEUE socket, ENOBUFS included",
        );
        let verdict_errors = simple(
            "ipqbdb_judge_verdict_errors_total",
            "Errors sending a verdict to the kernel",
        );
        let snapshots = simple(
            "ipqbdb_judge_snapshots_total",
            "Database snapshots opened to judge from",
        );
        let snapshot_failures = simple(
            "ipqbdb_judge_snapshot_failures_total",
            "Database snapshots that could not be opened (the previous one judged meanwhile)",
        );
        let batch = must(Histogram::with_opts(
            HistogramOpts::new(
                "ipqbdb_judge_verdict_batch_packets",
                "Packets answered by one verdict send (one receive burst, at most 64)",
            )
            // A send answers one receive burst: at most `receive::BURST` (64) packets.
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]),
        ));
        must(registry.register(Box::new(packets.clone())));
        must(registry.register(Box::new(unjudged.clone())));
        must(registry.register(Box::new(batch.clone())));
        let mut m = JudgeMetrics {
            registry,
            packets,
            unjudged,
            queues: BTreeMap::new(),
            all_queues: AllQueuesMetrics {
                enobufs,
                receive_errors,
                verdict_errors,
                snapshots,
                snapshot_failures,
                batch,
                epoch: Instant::now(),
            },
            opened: Vec::new(),
            cache: Arc::default(),
        };
        for &q in queues {
            m.queue(q);
        }
        m
    }

    /// The counters of queue `q`, made at first use (every configured queue is made at start, so
    /// they show as 0 before the first packet).
    pub fn queue(&mut self, q: u16) -> &QueueMetrics {
        let (packets, unjudged) = (&self.packets, &self.unjudged);
        self.queues.entry(q).or_insert_with(|| {
            let q = q.to_string();
            let v = |verdict: &str| packets.with_label_values(&[q.as_str(), verdict]);
            QueueMetrics {
                accepted: v("accept"),
                dropped: v("drop"),
                marked: v("mark"),
                unjudged: Unjudged::ALL
                    .map(|c| unjudged.with_label_values(&[q.as_str(), c.label()])),
            }
        })
    }

    /// What the packet thread of queue `q` counts into.
    pub fn worker(&mut self, q: u16) -> WorkerMetrics {
        let snapshot_opened = Arc::new(AtomicU64::new(0));
        self.opened.push(snapshot_opened.clone());
        WorkerMetrics {
            all_queues: self.all_queues.clone(),
            queue: self.queue(q).clone(),
            cache: self.cache.clone(),
            snapshot_opened,
        }
    }

    /// What the exporter renders: the counters above, the writer's and the caches' counters, and
    /// the age of the oldest snapshot in use.
    pub fn render(&self, writer: WriterWatch) -> Render {
        let (opened, epoch) = (self.opened.clone(), self.all_queues.epoch);
        let cache = self.cache.clone();
        ipqbdb_metrics::render_with(self.registry.clone(), move || {
            let w = writer.stats();
            let n = |v: u64| v as f64;
            let mut families = vec![
                counter(
                    "ipqbdb_judge_cache_lookups_total",
                    "Verdict-state lookups, by result: hit (cached for the current snapshot) or miss (read from the database)",
                    vec![
                        (vec![("result", "hit".into())], n(cache.hits.load(Ordering::Relaxed))),
                        (vec![("result", "miss".into())], n(cache.misses.load(Ordering::Relaxed))),
                    ],
                ),
                counter(
                    "ipqbdb_judge_writeback_batches_total",
                    "Batches of block counters written back to the database",
                    vec![(vec![], n(w.batches_written))],
                ),
                counter(
                    "ipqbdb_judge_writeback_failures_total",
                    "Block counter writes that failed (kept and tried again)",
                    vec![(vec![], n(w.write_errors))],
                ),
                counter(
                    "ipqbdb_judge_writeback_batches_dropped_total",
                    "Batches of block counters dropped because the writer was too far behind",
                    vec![(vec![], n(w.batches_dropped))],
                ),
                gauge(
                    "ipqbdb_judge_writeback_blocks_pending",
                    "Blocks counted and not yet written to the database",
                    vec![(vec![], n(w.blocks_unwritten))],
                ),
            ];
            // The oldest: a packet thread stuck on an old snapshot must show.
            let at = opened
                .iter()
                .map(|o| o.load(Ordering::Relaxed))
                .filter(|&at| at > 0)
                .min();
            if let Some(at) = at {
                let age = epoch.elapsed().as_micros() as f64 / 1e6 - at as f64 / 1e6;
                families.push(gauge(
                    "ipqbdb_judge_snapshot_age_seconds",
                    "Age of the oldest database snapshot verdicts are given from (one per queue)",
                    vec![(vec![], age.max(0.0))],
                ));
            }
            families
        })
    }
}
