//! Durations (`30s 15m 4h 4d 2w`) and counts (`4k 4M`) as administrators type them.

use crate::error::ParseError;

/// Parses a duration into whole seconds. A bare number is seconds.
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
    let n: u64 = num.parse().map_err(|_| err("not a whole number"))?;
    n.checked_mul(mult)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| err("too large"))
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
    (digits > 0).then(|| s.split_at(digits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("4h"), Ok(14_400));
        assert_eq!(parse_duration("4d"), Ok(345_600));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration(" 0 "), Ok(0));
        for bad in ["", "s", "-1", "1.5h", "4y", "4 h", "99999999999w", "4hh"] {
            assert!(
                matches!(parse_duration(bad), Err(ParseError::Duration { .. })),
                "{bad:?} must be refused"
            );
        }
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
