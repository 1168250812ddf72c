//! Helpers shared by the benchmarks: building large databases quickly and reproducibly.

pub mod sshd_log;

use std::net::IpAddr;

use ipqbdb_store::{Ban, Store};

/// The `i`-th address of 10.0.0.0/8 (`i` < 2^24).
pub fn addr(i: u32) -> IpAddr {
    let [_, b, c, d] = i.to_be_bytes();
    IpAddr::from([10, b, c, d])
}

/// A cheap deterministic sequence of indices, so every backend is asked for the same keys.
pub struct Indices(u64);

impl Indices {
    pub fn new(seed: u64) -> Self {
        Indices(seed | 1)
    }

    pub fn next_below(&mut self, n: u32) -> u32 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % u64::from(n)) as u32
    }
}

/// Bans addresses `from..to` in durable batches of `batch`, as the parser does under a log burst.
pub fn fill<S: Store>(store: &S, from: u32, to: u32, batch: u32, now: i64) {
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        let bans: Vec<Ban<'_>> = (i..end)
            .map(|j| Ban {
                ip: addr(j),
                reason: "benchmark",
                initial_count: 5,
                decay: None,
            })
            .collect();
        store.ban_batch(&bans, now).expect("fill");
        i = end;
    }
}
