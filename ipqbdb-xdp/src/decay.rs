//! The kernel's decay (`bpf/decay.h`) built for the host, so tests hold it to ipqbdb-core's model.

unsafe extern "C" {
    fn ipqbdb_decayed_host(p: u32, decay: u32, t0: i64, now: i64) -> u32;
}

/// `P(t)` exactly as the XDP program computes it: `p` at `t0`, half-life `decay` seconds, times in
/// ns on one clock.
pub fn kernel_decayed(p: u32, decay: u32, t0_ns: i64, now_ns: i64) -> u32 {
    // SAFETY: a pure C function of integers.
    unsafe { ipqbdb_decayed_host(p, decay, t0_ns, now_ns) }
}

/// Largest difference between [`kernel_decayed`] and the model's exact `P * 2^(-dt/decay)`: a
/// relative part (the table's interpolation, 2^-20 of a half-life) and one unit of truncation.
pub fn error_bound(exact: f64) -> f64 {
    exact * 2e-6 + 2.0
}
