//! The database keeps wall-clock seconds; the program reads `bpf_ktime_get_boot_ns` (CLOCK_BOOTTIME,
//! which keeps counting through suspend). A record's `t0` is converted once, when it is written to
//! the map, with the offset between the two clocks; the offset is kept until the wall clock is
//! stepped by more than `STEP`, so map entries are not rewritten for jitter between two readings.

use ipqbdb_core::UnixTime;

const NS: i64 = 1_000_000_000;
/// A change of the clocks' offset smaller than this is reading jitter or NTP slew, not a step.
pub const STEP: i64 = 50_000_000;

fn read(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own; both clocks exist on every Linux we run on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * NS + ts.tv_nsec
}

/// `CLOCK_REALTIME - CLOCK_BOOTTIME` now, in ns.
pub fn measure_offset() -> i64 {
    let boot = read(libc::CLOCK_BOOTTIME);
    let real = read(libc::CLOCK_REALTIME);
    let boot2 = read(libc::CLOCK_BOOTTIME);
    real - (boot + (boot2 - boot) / 2)
}

/// The boot-clock time of a wall-clock second.
pub fn to_boot_ns(t: UnixTime, offset: i64) -> i64 {
    t.saturating_mul(NS).saturating_sub(offset)
}

/// The boot clock now, in ns: what `bpf_ktime_get_boot_ns` returns.
pub fn boot_now_ns() -> i64 {
    read(libc::CLOCK_BOOTTIME)
}

/// The offset to use: the previous one unless the clocks moved apart by a step.
pub fn settle(previous: Option<i64>, measured: i64) -> i64 {
    match previous {
        Some(p) if (measured - p).abs() < STEP => p,
        _ => measured,
    }
}
