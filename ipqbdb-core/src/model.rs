//! The probability model (docs/ARCHITECTURE.md, "The model"), as pure functions of a
//! record and a time.
//!
//! Nothing here touches storage or the clock: the store runs [`apply_ban`] inside its transaction and
//! the judge runs [`current_probability`] and [`is_guilty`] per packet, so both agree by construction.

use crate::error::ParseError;
pub use crate::record::P_MAX;
use crate::record::{ReasonId, Record, UnixTime};

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
    exact_probability(record, now) as u32
}

/// [`current_probability`] before truncation. A re-ban doubles this value, not the truncated one: a
/// record at 100 % banned again one half-life later is at exactly `P_MAX / 2`, whose double is
/// `P_MAX`, so it reaches 100 % (and the connection kill runs) when the formula says it does.
fn exact_probability(record: &Record, now: UnixTime) -> f64 {
    if record.decay == 0 {
        return 0.0;
    }
    let elapsed = now.saturating_sub(record.last_update);
    if elapsed <= 0 {
        return f64::from(record.probability);
    }
    let factor = (-(elapsed as f64) / f64::from(record.decay)).exp2();
    f64::from(record.probability) * factor
}

/// Checks the decay a rule, a command or the configuration gives a ban. 0 is refused: `P(t)` of such
/// a record is always 0, so its next ban crosses the threshold from 0 and leaves a 50 % record with a
/// grown decay, the opposite of what was meant. Never blocking an address is the whitelist's job.
pub fn ban_decay(secs: u32) -> Result<u32, ParseError> {
    if secs == 0 {
        Err(ParseError::ZeroBanDecay)
    } else {
        Ok(secs)
    }
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
///
/// A request with a decay of 0 is refused ([`ban_decay`]), whether or not the address has a record.
pub fn apply_ban(
    existing: Option<&Record>,
    white_decay: Option<u32>,
    req: &BanRequest,
    now: UnixTime,
    params: &ModelParams,
) -> Result<BanOutcome, ParseError> {
    if let Some(d) = req.decay {
        ban_decay(d)?;
    }
    Ok(apply_checked(existing, white_decay, req, now, params))
}

fn apply_checked(
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
            let exact = exact_probability(old, now);
            let before = exact as u32;
            let doubled = (2.0 * exact).min(f64::from(P_MAX)) as u32;
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

/// One record out of two that fall under one key (an IPv6 prefix change): the one with the higher
/// current probability at `now` keeps its probability, decay, update time and reason, since it is
/// the one that blocks more; ties go to the longer decay. Counters add up, saturating, so no ban or
/// blocked packet is lost from the statistics.
pub fn merge_records(a: &Record, b: &Record, now: UnixTime) -> Record {
    let rank = |r: &Record| (current_probability(r, now), r.decay, r.last_update);
    let (win, other) = if rank(b) > rank(a) { (b, a) } else { (a, b) };
    Record {
        caught: win.caught.saturating_add(other.caught),
        blocked: win.blocked.saturating_add(other.blocked),
        ..*win
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

    fn apply(
        existing: Option<&Record>,
        white: Option<u32>,
        req: &BanRequest,
        now: UnixTime,
        params: &ModelParams,
    ) -> BanOutcome {
        apply_ban(existing, white, req, now, params).expect("a valid request")
    }

    fn record(probability: u32, decay: u32) -> Record {
        Record {
            probability,
            decay,
            last_update: T0,
            caught: 1,
            blocked: 0,
            reason: 1,
        }
    }

    #[test]
    fn reaching_max_follows_the_exact_formula() {
        // 100 % banned again one half-life later: exactly 2 * P_MAX / 2 = P_MAX, reached again.
        let full = record(P_MAX, 3600);
        let out = apply(Some(&full), None, &req(5, 1), T0 + 3600, &params());
        assert_eq!(
            out.before,
            P_MAX / 2,
            "P(t) itself is still shown truncated"
        );
        assert_eq!(out.record.unwrap().probability, P_MAX);
        assert!(out.reached_max);
        // A second earlier the double is above 100 %: capped, and reached too.
        let out = apply(Some(&full), None, &req(5, 1), T0 + 3599, &params());
        assert_eq!(out.record.unwrap().probability, P_MAX);
        assert!(out.reached_max);
        // A second later the exact double is just below: 2 * P_MAX * 2^(-3601/3600), truncated.
        let out = apply(Some(&full), None, &req(5, 1), T0 + 3601, &params());
        let exact = 2.0 * (f64::from(P_MAX) * (-3601.0f64 / 3600.0).exp2());
        assert_eq!(out.record.unwrap().probability, exact as u32);
        assert_eq!(out.record.unwrap().probability, 2_147_070_208);
        assert!(!out.reached_max);
        // An odd probability at t0: its exact double exceeds P_MAX - 1 only by being P_MAX's double.
        let half = record(P_MAX / 2, 3600);
        let out = apply(Some(&half), None, &req(5, 1), T0, &params());
        assert_eq!(out.record.unwrap().probability, P_MAX - 1, "2 * (2^30 - 1)");
        assert!(!out.reached_max);
        // Two half-lives of 100 %, then two bans at that instant: P_MAX/4 -> P_MAX/2 -> P_MAX.
        let out = apply(Some(&full), None, &req(5, 1), T0 + 7200, &params());
        let r = out.record.unwrap();
        assert_eq!(r.probability, P_MAX / 2);
        let out = apply(Some(&r), None, &req(5, 1), T0 + 7200, &params());
        assert_eq!(out.record.unwrap().probability, P_MAX - 1);
        assert!(!out.reached_max);
    }

    #[test]
    fn merging_keeps_the_higher_probability_and_sums_counters() {
        let high = Record {
            caught: u64::MAX - 1,
            blocked: 5,
            reason: 2,
            ..record(1 << 30, 600)
        };
        // Stored higher, but decayed below `high` by now (two half-lives of 3600 s later it is 2^28).
        let old = Record {
            probability: P_MAX,
            decay: 3600,
            last_update: T0 - 7200,
            caught: 3,
            blocked: u64::MAX,
            reason: 3,
        };
        for (a, b) in [(&high, &old), (&old, &high)] {
            let m = merge_records(a, b, T0);
            assert_eq!(
                (m.probability, m.decay, m.last_update, m.reason),
                (1 << 30, 600, T0, 2),
                "the higher current probability wins, whatever the order"
            );
            assert_eq!((m.caught, m.blocked), (u64::MAX, u64::MAX), "saturating");
        }
    }

    #[test]
    fn zero_ban_decay_is_refused() {
        let zero = BanRequest {
            decay: Some(0),
            ..req(5, 7)
        };
        assert_eq!(
            apply_ban(None, None, &zero, T0, &params()),
            Err(ParseError::ZeroBanDecay)
        );
        let old = record(1 << 26, 3600);
        assert_eq!(
            apply_ban(Some(&old), None, &zero, T0, &params()),
            Err(ParseError::ZeroBanDecay),
            "refused for an existing record too: the request is wrong"
        );
        assert_eq!(ban_decay(0), Err(ParseError::ZeroBanDecay));
        assert_eq!(ban_decay(1), Ok(1));
        let msg = ParseError::ZeroBanDecay.to_string();
        assert!(msg.contains("whitelist"), "{msg}");
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
        let out = apply(None, None, &req(5, 7), T0, &params());
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
            apply(None, None, &with_decay, T0, &params())
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
        let out = apply(None, Some(60), &with_decay, T0, &params());
        assert_eq!(out.record.unwrap().decay, 60);
        let out = apply(None, Some(0), &with_decay, T0, &params());
        assert_eq!(out.kind, BanKind::Whitelisted);
        assert_eq!(out.record, None);
        assert!(!out.reached_max);
    }

    #[test]
    fn five_doublings_reach_max_once() {
        let mut rec = apply(None, None, &req(5, 1), T0, &params()).record.unwrap();
        let mut reached = 0;
        for i in 1..=5 {
            let out = apply(Some(&rec), None, &req(5, 1), T0, &params());
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
        let out = apply(Some(&rec), None, &req(5, 1), T0, &params());
        assert_eq!(out.record.unwrap().probability, P_MAX);
        assert!(!out.reached_max);
    }

    #[test]
    fn c0_new_record_is_an_event() {
        let out = apply(None, None, &req(0, 1), T0, &params());
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
        let at_half = apply(Some(&old), None, &req(4, 2), T0, &params());
        assert_eq!(at_half.record.unwrap().probability, 1 << 27);
        assert!(!at_half.reason_replaced);
        assert_eq!(at_half.record.unwrap().reason, 1);
        // One second later P(t) < P0/2: P0 wins and brings its reason.
        let below = apply(Some(&old), None, &req(4, 2), T0 + 1, &params());
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
        let mut rec = apply(None, None, &req(3, 1), T0, &p).record.unwrap(); // 2^28
        let mut grown = Vec::new();
        for _ in 0..4 {
            let out = apply(Some(&rec), None, &req(3, 1), T0, &p);
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
        let out = apply(Some(&old), None, &req(5, 1), T0, &p);
        assert!(out.decay_grew);
        assert_eq!(out.record.unwrap().decay, DEFAULT_DECAY_MAX);
        // A whitelist-given decay above the cap is never shortened by growth.
        let long = Record {
            decay: DEFAULT_DECAY_MAX + 100,
            ..old
        };
        let out = apply(Some(&long), None, &req(5, 1), T0, &p);
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
            let out = apply(Some(&old), white, &req(count, 2), now, &params());
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
