//! Durations (`30s 15m 4h 4d 2w`) and counts (`4k 4M`) as administrators type them.

use serde::Deserialize;

use crate::error::ParseError;
use crate::model::ban_decay;

/// Parses a duration into whole seconds. A bare number is seconds.
///
/// The number may have a fraction (`86400.5`, `1.5h`): ipqbdb 2.x read decays as floating-point
/// seconds, and its whitelists and scripts hold such values. Databases store whole seconds, so the
/// value is rounded to the nearest second (halves up), except that a positive value never rounds to
/// 0: 0 means "never block" in a whitelist and is refused as a ban's decay, neither of which a
/// written `0.3` meant.
pub fn parse_duration(input: &str) -> Result<u32, ParseError> {
    let err = |why| ParseError::Duration {
        input: input.to_string(),
        why,
    };
    let (num, unit) = split_suffix(input.trim()).ok_or_else(|| err("no number"))?;
    let mult: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err("unknown unit")),
    };
    let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| err("too large"))?
    };
    let secs = whole.checked_mul(mult).ok_or_else(|| err("too large"))?;
    let secs = match frac.trim_end_matches('0') {
        "" => secs,
        frac => {
            // The fraction in units of `mult`, computed exactly in integers: `frac` has at most
            // a few dozen digits worth keeping, and floating point would round `0.5` units oddly.
            let digits = &frac[..frac.len().min(18)];
            let scale = 10u128.pow(digits.len() as u32);
            let part = digits.parse::<u128>().map_err(|_| err("not a number"))?;
            let numer = part * u128::from(mult);
            let rounded = (numer + scale / 2) / scale;
            let rounded = u64::try_from(rounded).map_err(|_| err("too large"))?;
            secs.checked_add(rounded)
                .ok_or_else(|| err("too large"))?
                .max(1)
        }
    };
    u32::try_from(secs).map_err(|_| err("too large"))
}

/// A ban's decay as typed (`4h`, `600`): [`parse_duration`], then [`ban_decay`].
pub fn parse_ban_decay(text: &str) -> Result<u32, ParseError> {
    parse_duration(text).and_then(ban_decay)
}

/// Parses a count; `k`, `M` and `G` are powers of 1000.
pub fn parse_count(input: &str) -> Result<u64, ParseError> {
    let err = |why| ParseError::Count {
        input: input.to_string(),
        why,
    };
    let (num, unit) = split_suffix(input.trim()).ok_or_else(|| err("no number"))?;
    let mult: u64 = match unit {
        "" => 1,
        "k" | "K" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        _ => return Err(err("unknown unit")),
    };
    let n: u64 = num.parse().map_err(|_| err("not a whole number"))?;
    n.checked_mul(mult).ok_or_else(|| err("too large"))
}

/// Formats seconds in the largest unit that divides them, so output can be pasted back as input.
pub fn format_duration(secs: u32) -> String {
    for (unit, size) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs != 0 && secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

fn split_suffix(s: &str) -> Option<(&str, &str)> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && !s[digits..].starts_with('.') {
        return Some(s.split_at(digits));
    }
    // A fraction needs at least one digit on one side of the point, and only one point.
    let rest = s[digits..].strip_prefix('.')?;
    let frac = rest.bytes().take_while(u8::is_ascii_digit).count();
    (digits + frac > 0).then(|| s.split_at(digits + 1 + frac))
}

/// A duration written as seconds, as seconds with a fraction (`86400.5`: ipqbdb 2.x's decays were
/// floating-point), or as text (`"4h"`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u32),
    Fraction(FractionalSeconds),
    Text(String),
}

/// Seconds with a fraction as TOML wrote them; compared bit for bit, so a setting equals itself.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(transparent)]
pub struct FractionalSeconds(pub f64);

impl PartialEq for FractionalSeconds {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for FractionalSeconds {}

impl DurationValue {
    pub fn seconds(&self) -> Result<u32, ParseError> {
        match self {
            DurationValue::Seconds(s) => Ok(*s),
            // Display writes the shortest text that reads back as the same value, never an
            // exponent, so the rounding is `parse_duration`'s, the same as on a command line.
            DurationValue::Fraction(f) => parse_duration(&f.0.to_string()),
            DurationValue::Text(t) => parse_duration(t),
        }
    }

    /// The value as a ban's decay, which cannot be 0 ([`crate::model::ban_decay`]): `decay` is only
    /// ever a ban's.
    pub fn ban_seconds(&self) -> Result<u32, ParseError> {
        self.seconds().and_then(ban_decay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ban_decays_as_typed() {
        assert_eq!(parse_ban_decay("4h"), Ok(14_400));
        assert_eq!(parse_ban_decay("0"), Err(ParseError::ZeroBanDecay));
        assert_eq!(parse_ban_decay("0s"), Err(ParseError::ZeroBanDecay));
        assert!(matches!(
            parse_ban_decay("4y"),
            Err(ParseError::Duration { .. })
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("4h"), Ok(14_400));
        assert_eq!(parse_duration("4d"), Ok(345_600));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration(" 0 "), Ok(0));
        for bad in [
            "",
            "s",
            "-1",
            ".",
            "1..5",
            "1.5.h",
            "4y",
            "4 h",
            "99999999999w",
            "4hh",
            "1e3",
        ] {
            assert!(
                matches!(parse_duration(bad), Err(ParseError::Duration { .. })),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn fractions_round_to_whole_seconds() {
        assert_eq!(parse_duration("86400.5"), Ok(86_401));
        assert_eq!(parse_duration("194.5"), Ok(195));
        assert_eq!(parse_duration("194.49"), Ok(194));
        assert_eq!(parse_duration("32.0"), Ok(32));
        assert_eq!(parse_duration("0.0"), Ok(0));
        assert_eq!(
            parse_duration("0.3"),
            Ok(1),
            "a positive decay never becomes 0"
        );
        assert_eq!(parse_duration(".5"), Ok(1));
        assert_eq!(parse_duration("7."), Ok(7));
        assert_eq!(parse_duration("1.5h"), Ok(5400));
        assert_eq!(parse_duration("0.25m"), Ok(15));
        assert_eq!(parse_duration("4294967295.4"), Ok(u32::MAX));
        assert!(parse_duration("4294967295.5").is_err());
        assert_eq!(
            parse_duration("1.0000000000000000000000000000001"),
            Ok(1),
            "digits past what can matter are ignored, not an overflow"
        );
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("4k"), Ok(4_000));
        assert_eq!(parse_count("4M"), Ok(4_000_000));
        assert_eq!(parse_count("12"), Ok(12));
        assert_eq!(parse_count("2G"), Ok(2_000_000_000));
        for bad in ["", "k", "4m", "-4", "4.5k", "99999999999999999999"] {
            assert!(parse_count(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for s in [0, 1, 59, 60, 3600, 5400, 86_400, 1_209_600, 1_209_601] {
            assert_eq!(parse_duration(&format_duration(s)), Ok(s));
        }
        assert_eq!(format_duration(3600), "1h");
        assert_eq!(format_duration(5400), "90m");
    }
}
