//! The probability model of DESIGN.md section 4, as pure functions of a record and a time.
//!
//! Nothing here touches storage or the clock: the store runs [`apply_ban`] inside its transaction and
//! the judge runs [`current_probability`] and [`is_guilty`] per packet, so both agree by construction.

use crate::error::ParseError;
use crate::record::{ReasonId, Record, UnixTime};

/// 100 %: probabilities are integers in `0..=P_MAX`.
pub const P_MAX: u32 = (1 << 31) - 1;
/// Default initial count: a new record starts at 1/32.
pub const DEFAULT_INITIAL_COUNT: u8 = 5;
/// Default decay (half-life) of a new record.
pub const DEFAULT_DECAY: u32 = 3600;
/// Default threshold that, crossed upward, lengthens the decay.
pub const DEFAULT_THRESHOLD: u32 = P_MAX / 2;
/// Default amount the decay grows by at each upward crossing of the threshold.
pub const DEFAULT_DECAY_ADDEND: u32 = 3600;
/// Default upper bound of a grown decay: 30 days.
pub const DEFAULT_DECAY_MAX: u32 = 30 * 86_400;

/// Tunables of the model; `Default` gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelParams {
    pub threshold: u32,
    pub decay_addend: u32,
    pub decay_max: u32,
    pub default_decay: u32,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            threshold: DEFAULT_THRESHOLD,
            decay_addend: DEFAULT_DECAY_ADDEND,
            decay_max: DEFAULT_DECAY_MAX,
            default_decay: DEFAULT_DECAY,
        }
    }
}

/// Checks an initial count typed by a user or a rule.
pub fn initial_count(c: u32) -> Result<u8, ParseError> {
    if c <= 31 {
        Ok(c as u8)
    } else {
        Err(ParseError::InitialCount(c))
    }
}

/// `2^(31-c)`, saturated at `P_MAX`: the count is how many doublings reach 100 %.
pub fn initial_probability(count: u8) -> u32 {
    let count = count.min(31);
    let p = 1u64 << (31 - u32::from(count));
    p.min(u64::from(P_MAX)) as u32
}

/// `P * 2^(-(t - t0) / decay)`, truncated. A decay of 0 means the record never blocks. A clock that went
/// backwards (t < t0) does not raise the probability.
pub fn current_probability(record: &Record, now: UnixTime) -> u32 {
    if record.decay == 0 {
        return 0;
    }
    let elapsed = now.saturating_sub(record.last_update);
    if elapsed <= 0 {
        return record.probability;
    }
    let factor = (-(elapsed as f64) / f64::from(record.decay)).exp2();
    (f64::from(record.probability) * factor) as u32
}

/// The verdict: guilty iff a uniform draw in `0..P_MAX` is below the current probability, so 100 % is
/// always guilty and 0 never is.
pub fn is_guilty(current: u32, draw: u32) -> bool {
    draw < current
}

/// A uniform draw in `0..P_MAX` for [`is_guilty`].
pub fn draw<R: rand::Rng + ?Sized>(rng: &mut R) -> u32 {
    rng.random_range(0..P_MAX)
}

/// What a ban asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanRequest {
    pub initial_count: u8,
    /// The rule's or command's decay; `None` takes the default.
    pub decay: Option<u32>,
    pub reason: ReasonId,
}

/// What a ban did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanKind {
    /// A new record was inserted.
    New,
    /// An existing record was raised (or kept at 100 %).
    Raised,
    /// The whitelist gives this address a decay of 0: nothing was written.
    Whitelisted,
}

/// The result of [`apply_ban`]: the record to write (if any) and the events it caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanOutcome {
    pub kind: BanKind,
    /// Current probability just before the ban (0 for a new record).
    pub before: u32,
    /// The record as written; `None` when whitelisted.
    pub record: Option<Record>,
    /// The ban took the address to 100 %: the connection-kill event.
    pub reached_max: bool,
    /// The threshold was crossed upward and the decay grew.
    pub decay_grew: bool,
    /// The rule's initial probability won, so the record now carries the new reason.
    pub reason_replaced: bool,
}

/// Applies one ban to the current state of an address.
///
/// `white_decay` is the decay of the narrowest whitelist range containing the address, if any. It
/// overrides the request's decay for a new record, and a value of 0 means "never insert". The threshold
/// rule applies to existing records only: a new record takes exactly the decay its whitelist entry,
/// rule or command gives, as an administrator who set that decay expects to read it back.
pub fn apply_ban(
    existing: Option<&Record>,
    white_decay: Option<u32>,
    req: &BanRequest,
    now: UnixTime,
    params: &ModelParams,
) -> BanOutcome {
    if white_decay == Some(0) {
        return BanOutcome {
            kind: BanKind::Whitelisted,
            before: existing.map_or(0, |r| current_probability(r, now)),
            record: existing.copied(),
            reached_max: false,
            decay_grew: false,
            reason_replaced: false,
        };
    }
    let p0 = initial_probability(req.initial_count);
    match existing {
        None => {
            let decay = white_decay.or(req.decay).unwrap_or(params.default_decay);
            let record = Record {
                probability: p0,
                decay,
                last_update: now,
                caught: 1,
                blocked: 0,
                reason: req.reason,
            };
            BanOutcome {
                kind: BanKind::New,
                before: 0,
                record: Some(record),
                reached_max: p0 == P_MAX,
                decay_grew: false,
                reason_replaced: false,
            }
        }
        Some(old) => {
            let before = current_probability(old, now);
            let doubled = (u64::from(before) * 2).min(u64::from(P_MAX)) as u32;
            let p_new = doubled.max(p0);
            let reason_replaced = p0 > doubled;
            let decay_grew = before < params.threshold && params.threshold <= p_new;
            let mut decay = old.decay;
            if decay_grew {
                let grown = decay
                    .saturating_add(params.decay_addend)
                    .min(params.decay_max);
                decay = decay.max(grown);
            }
            let record = Record {
                probability: p_new,
                decay,
                last_update: now,
                caught: old.caught.saturating_add(1),
                blocked: old.blocked,
                reason: if reason_replaced {
                    req.reason
                } else {
                    old.reason
                },
            };
            BanOutcome {
                kind: BanKind::Raised,
                before,
                record: Some(record),
                reached_max: p_new == P_MAX && before < P_MAX,
                decay_grew,
                reason_replaced,
            }
        }
    }
}

/// Whether the judge may skip the draw: no record, or a whitelist decay of 0, is innocent.
pub fn verdict_probability(
    record: Option<&Record>,
    white_decay: Option<u32>,
    now: UnixTime,
) -> u32 {
    match (record, white_decay) {
        (_, Some(0)) | (None, _) => 0,
        (Some(r), _) => current_probability(r, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: UnixTime = 1_700_000_000;

    fn req(count: u8, reason: ReasonId) -> BanRequest {
        BanRequest {
            initial_count: count,
            decay: None,
            reason,
        }
    }

    fn params() -> ModelParams {
        ModelParams::default()
    }

    #[test]
    fn initial_probabilities() {
        assert_eq!(initial_probability(0), P_MAX, "c = 0 is 100 %");
        assert_eq!(initial_probability(1), 1 << 30);
        assert_eq!(initial_probability(5), 1 << 26, "c = 5 is 1/32");
        assert_eq!(initial_probability(31), 1);
        assert_eq!(initial_count(31), Ok(31));
        assert_eq!(initial_count(32), Err(ParseError::InitialCount(32)));
    }

    #[test]
    fn new_record_takes_request_or_default() {
        let out = apply_ban(None, None, &req(5, 7), T0, &params());
        assert_eq!(out.kind, BanKind::New);
        let r = out.record.unwrap();
        assert_eq!(r.probability, 1 << 26);
        assert_eq!(r.decay, DEFAULT_DECAY);
        assert_eq!(
            (r.caught, r.blocked, r.reason, r.last_update),
            (1, 0, 7, T0)
        );
        assert!(!out.reached_max);
        let with_decay = BanRequest {
            decay: Some(600),
            ..req(5, 7)
        };
        assert_eq!(
            apply_ban(None, None, &with_decay, T0, &params())
                .record
                .unwrap()
                .decay,
            600
        );
    }

    #[test]
    fn whitelist_decay_overrides_and_zero_skips() {
        let with_decay = BanRequest {
            decay: Some(600),
            ..req(5, 7)
        };
        let out = apply_ban(None, Some(60), &with_decay, T0, &params());
        assert_eq!(out.record.unwrap().decay, 60);
        let out = apply_ban(None, Some(0), &with_decay, T0, &params());
        assert_eq!(out.kind, BanKind::Whitelisted);
        assert_eq!(out.record, None);
        assert!(!out.reached_max);
    }

    #[test]
    fn five_doublings_reach_max_once() {
        let mut rec = apply_ban(None, None, &req(5, 1), T0, &params())
            .record
            .unwrap();
        let mut reached = 0;
        for i in 1..=5 {
            let out = apply_ban(Some(&rec), None, &req(5, 1), T0, &params());
            rec = out.record.unwrap();
            reached += u32::from(out.reached_max);
            if i < 5 {
                assert_eq!(rec.probability, 1 << (26 + i), "doubling {i}");
            }
        }
        assert_eq!(rec.probability, P_MAX);
        assert_eq!(reached, 1);
        assert_eq!(rec.caught, 6);
        // Already at 100 %: no second event.
        let out = apply_ban(Some(&rec), None, &req(5, 1), T0, &params());
        assert_eq!(out.record.unwrap().probability, P_MAX);
        assert!(!out.reached_max);
    }

    #[test]
    fn c0_new_record_is_an_event() {
        let out = apply_ban(None, None, &req(0, 1), T0, &params());
        assert_eq!(out.record.unwrap().probability, P_MAX);
        assert!(out.reached_max);
    }

    #[test]
    fn decay_halves() {
        let rec = Record {
            probability: 1 << 26,
            decay: 3600,
            last_update: T0,
            caught: 1,
            blocked: 0,
            reason: 1,
        };
        assert_eq!(current_probability(&rec, T0), 1 << 26);
        assert_eq!(current_probability(&rec, T0 + 3600), 1 << 25);
        assert_eq!(
            current_probability(&rec, T0 + 7200),
            1 << 24,
            "two decays give a quarter"
        );
        assert_eq!(
            current_probability(&rec, T0 - 100),
            1 << 26,
            "clock going back never raises"
        );
        assert_eq!(current_probability(&rec, T0 + 3600 * 40), 0);
        let never = Record { decay: 0, ..rec };
        assert_eq!(current_probability(&never, T0), 0);
    }

    #[test]
    fn p0_wins_and_replaces_reason_only_below_half() {
        // Old record decayed to exactly P0/2: doubling gives P0, which ties, so the old reason stays.
        let old = Record {
            probability: 1 << 26,
            decay: 3600,
            last_update: T0,
            caught: 3,
            blocked: 9,
            reason: 1,
        };
        let at_half = apply_ban(Some(&old), None, &req(4, 2), T0, &params());
        assert_eq!(at_half.record.unwrap().probability, 1 << 27);
        assert!(!at_half.reason_replaced);
        assert_eq!(at_half.record.unwrap().reason, 1);
        // One second later P(t) < P0/2: P0 wins and brings its reason.
        let below = apply_ban(Some(&old), None, &req(4, 2), T0 + 1, &params());
        let r = below.record.unwrap();
        assert_eq!(r.probability, 1 << 27);
        assert!(below.reason_replaced);
        assert_eq!(
            (r.reason, r.caught, r.blocked, r.last_update),
            (2, 4, 9, T0 + 1)
        );
    }

    #[test]
    fn decay_grows_once_when_crossing_threshold_upward() {
        let p = params();
        let mut rec = apply_ban(None, None, &req(3, 1), T0, &p).record.unwrap(); // 2^28
        let mut grown = Vec::new();
        for _ in 0..4 {
            let out = apply_ban(Some(&rec), None, &req(3, 1), T0, &p);
            grown.push(out.decay_grew);
            rec = out.record.unwrap();
        }
        // 2^29, 2^30 (crosses P_MAX/2), P_MAX, P_MAX.
        assert_eq!(grown, [false, true, false, false]);
        assert_eq!(rec.decay, DEFAULT_DECAY + DEFAULT_DECAY_ADDEND);
    }

    #[test]
    fn decay_growth_is_capped() {
        let p = params();
        let old = Record {
            probability: 1 << 29,
            decay: DEFAULT_DECAY_MAX - 10,
            last_update: T0,
            caught: 1,
            blocked: 0,
            reason: 1,
        };
        let out = apply_ban(Some(&old), None, &req(5, 1), T0, &p);
        assert!(out.decay_grew);
        assert_eq!(out.record.unwrap().decay, DEFAULT_DECAY_MAX);
        // A whitelist-given decay above the cap is never shortened by growth.
        let long = Record {
            decay: DEFAULT_DECAY_MAX + 100,
            ..old
        };
        let out = apply_ban(Some(&long), None, &req(5, 1), T0, &p);
        assert_eq!(out.record.unwrap().decay, DEFAULT_DECAY_MAX + 100);
    }

    #[test]
    fn verdicts() {
        assert!(is_guilty(P_MAX, P_MAX - 1), "100 % is always guilty");
        assert!(!is_guilty(0, 0), "0 is never guilty");
        assert!(is_guilty(10, 9));
        assert!(!is_guilty(10, 10));
        let rec = Record {
            probability: P_MAX,
            decay: 3600,
            last_update: T0,
            caught: 1,
            blocked: 0,
            reason: 1,
        };
        assert_eq!(verdict_probability(None, None, T0), 0);
        assert_eq!(verdict_probability(Some(&rec), Some(0), T0), 0);
        assert_eq!(verdict_probability(Some(&rec), Some(60), T0), P_MAX);
        let mut rng = rand::rng();
        for _ in 0..1000 {
            assert!(draw(&mut rng) < P_MAX);
        }
    }

    proptest! {
        #[test]
        fn ban_never_lowers_and_stays_in_range(
            prob in 0..=P_MAX, decay in 0u32..10_000_000, age in 0i64..100_000_000,
            count in 0u8..=31, white in proptest::option::of(1u32..1_000_000),
        ) {
            let old = Record { probability: prob, decay, last_update: T0, caught: 1, blocked: 0, reason: 1 };
            let now = T0 + age;
            let out = apply_ban(Some(&old), white, &req(count, 2), now, &params());
            let r = out.record.unwrap();
            prop_assert!(r.probability <= P_MAX);
            prop_assert!(r.probability >= out.before);
            prop_assert!(r.probability >= initial_probability(count));
            prop_assert!(r.decay >= decay);
            prop_assert_eq!(r.caught, 2);
            prop_assert_eq!(r.reason == 2, out.reason_replaced);
        }

        #[test]
        fn probability_decays_monotonically(prob in 0..=P_MAX, decay in 1u32..10_000_000, a in 0i64..10_000_000, b in 0i64..10_000_000) {
            let rec = Record { probability: prob, decay, last_update: T0, caught: 1, blocked: 0, reason: 1 };
            let (early, late) = (a.min(b), a.max(b));
            prop_assert!(current_probability(&rec, T0 + late) <= current_probability(&rec, T0 + early));
            prop_assert!(current_probability(&rec, T0 + early) <= prob);
        }
    }
}
