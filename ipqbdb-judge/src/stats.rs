//! What each queue's thread counts and publishes; the daemon sums it in the SIGUSR1 dump.

use std::time::Duration;

/// Per-queue counters, as the SIGUSR1 dump logs them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub accepted: u64,
    pub dropped: u64,
    pub marked: u64,
    /// Packets that could not be judged (not IP, database error) and were accepted.
    pub errors: u64,
}

/// Health of the packet loop itself, as the SIGUSR1 dump logs it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopStats {
    /// The longest time the loop spent away from its queues between two receives: opening a
    /// snapshot, handing over counters, logging. What a packet may wait beyond the kernel's queue.
    pub longest_pause: Duration,
    pub snapshots: u64,
    pub snapshot_failures: u64,
    pub lookup_errors: u64,
}

/// What a worker publishes for the dump and the daemon's exit.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WorkerStats {
    pub counters: Counters,
    pub loop_stats: LoopStats,
    pub recv_errors: u64,
    pub enobufs: u64,
    /// Sends of verdicts that failed (the packets stay queued until a later batch accepts them).
    pub send_errors: u64,
    /// Sends of verdicts: packets per send is the batching achieved.
    pub sends: u64,
}
