//! The XDP program's fixed-point decay (`bpf/decay.h`, built for the host) against ipqbdb-core's
//! model, over random records and ages: the error bound `decay::error_bound` pins.

use ipqbdb_core::model::current_probability;
use ipqbdb_core::{Record, P_MAX};
use ipqbdb_xdp::decay::{error_bound, kernel_decayed};
use rand::Rng;

const NS: i64 = 1_000_000_000;

fn record(p: u32, decay: u32, t0: i64) -> Record {
    Record {
        probability: p,
        decay,
        last_update: t0,
        caught: 1,
        blocked: 0,
        reason: 1,
    }
}

#[test]
fn whole_seconds_match_the_model_within_the_bound() {
    let mut rng = rand::rng();
    let t0 = 1_700_000_000i64;
    let mut worst = 0f64;
    for i in 0..200_000 {
        let p = if i % 10 == 0 {
            P_MAX
        } else {
            rng.random_range(0..=P_MAX)
        };
        // Short and long half-lives, both sides of the exact/millisecond switch (17592 s).
        let decay = match i % 4 {
            0 => rng.random_range(1..60),
            1 => rng.random_range(60..17_592),
            2 => rng.random_range(17_592..40_000_000),
            _ => rng.random_range(1..=u32::MAX),
        };
        // Within what i64 nanoseconds hold (year 2262).
        let age = rng.random_range(0..(i64::from(decay) * 40).min(7_000_000_000));
        let model = current_probability(&record(p, decay, t0), t0 + age);
        let exact = f64::from(p) * (-(age as f64) / f64::from(decay)).exp2();
        let kernel = kernel_decayed(p, decay, t0 * NS, (t0 + age) * NS);
        let diff = (f64::from(kernel) - f64::from(model)).abs();
        assert!(
            diff <= error_bound(exact),
            "p {p} decay {decay} age {age}: kernel {kernel}, model {model}"
        );
        assert!(kernel <= p, "never above the stored probability");
        worst = worst.max(diff / exact.max(1.0));
    }
    eprintln!("worst relative difference: {worst:e}");
}

#[test]
fn edges_are_the_models() {
    let t0 = 5 * NS;
    // Decay 0 is never blocked; time at or before t0 leaves P as stored.
    assert_eq!(kernel_decayed(P_MAX, 0, t0, t0 + NS), 0);
    assert_eq!(kernel_decayed(P_MAX, 60, t0, t0), P_MAX);
    assert_eq!(kernel_decayed(P_MAX, 60, t0, t0 - NS), P_MAX);
    // One half-life halves, 32 of them leave nothing.
    assert_eq!(kernel_decayed(1 << 30, 60, t0, t0 + 60 * NS), 1 << 29);
    assert_eq!(kernel_decayed(P_MAX, 1, t0, t0 + 32 * NS), 0);
    // Nanoseconds count: half a half-life is 1/sqrt(2).
    let half = kernel_decayed(1 << 30, 2, t0, t0 + NS);
    let want = f64::from(1u32 << 30) / 2f64.sqrt();
    assert!(
        (f64::from(half) - want).abs() <= error_bound(want),
        "{half} vs {want}"
    );
    // Monotonic in time.
    let mut last = P_MAX;
    for ms in (0..5_000).step_by(7) {
        let p = kernel_decayed(P_MAX, 1, t0, t0 + ms * 1_000_000);
        assert!(p <= last, "at {ms} ms: {p} > {last}");
        last = p;
    }
}
