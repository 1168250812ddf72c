//! Queue specifications: `Q<num>[S|D][M<mark>]`, as in the original ibd-judge.
//!
//! `Q0` judges queue 0 by source address and drops guilty packets; `Q1D` judges by destination;
//! `Q0DM4` accepts guilty packets with mark 4 instead of dropping them, so that a rule in a later
//! table (e.g. filter after mangle) can REJECT them.

use std::fmt;
use std::str::FromStr;

/// Which address of the packet is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Source,
    Destination,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QSpec {
    pub queue: u16,
    pub side: Side,
    /// Accept guilty packets with this mark instead of dropping them.
    pub mark: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid queue spec {spec:?}: {why} (expected Q<num>[S|D][M<mark>], e.g. Q0, Q1D, Q0DM4)")]
pub struct QSpecError {
    pub spec: String,
    pub why: &'static str,
}

impl FromStr for QSpec {
    type Err = QSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| QSpecError {
            spec: s.to_string(),
            why,
        };
        let rest = s
            .strip_prefix('Q')
            .or_else(|| s.strip_prefix('q'))
            .ok_or_else(|| err("it must start with Q"))?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("no queue number after Q"));
        }
        let queue: u16 = rest[..digits]
            .parse()
            .map_err(|_| err("the queue number must be 0 to 65535"))?;
        let mut rest = &rest[digits..];
        let side = match rest.chars().next() {
            Some('S' | 's') => {
                rest = &rest[1..];
                Side::Source
            }
            Some('D' | 'd') => {
                rest = &rest[1..];
                Side::Destination
            }
            _ => Side::Source,
        };
        let mark = match rest.chars().next() {
            None => None,
            Some('M' | 'm') => {
                let m = &rest[1..];
                let parsed = match m.strip_prefix("0x").or_else(|| m.strip_prefix("0X")) {
                    Some(hex) => u32::from_str_radix(hex, 16),
                    None => m.parse(),
                };
                Some(parsed.map_err(|_| err("the mark must be a number (decimal or 0x hex)"))?)
            }
            Some(_) => return Err(err("unexpected characters after the queue number")),
        };
        Ok(QSpec { queue, side, mark })
    }
}

impl fmt::Display for QSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Source => "S",
            Side::Destination => "D",
        };
        write!(f, "Q{}{side}", self.queue)?;
        if let Some(m) = self.mark {
            write!(f, "M{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> QSpec {
        s.parse().unwrap()
    }

    #[test]
    fn specs() {
        assert_eq!(
            q("Q0"),
            QSpec {
                queue: 0,
                side: Side::Source,
                mark: None
            }
        );
        assert_eq!(
            q("Q12D"),
            QSpec {
                queue: 12,
                side: Side::Destination,
                mark: None
            }
        );
        assert_eq!(
            q("Q0DM4"),
            QSpec {
                queue: 0,
                side: Side::Destination,
                mark: Some(4)
            }
        );
        assert_eq!(
            q("Q3SM0x10"),
            QSpec {
                queue: 3,
                side: Side::Source,
                mark: Some(16)
            }
        );
        assert_eq!(q("Q7M9").to_string(), "Q7SM9");
        for bad in [
            "", "0", "Q", "QD", "Q70000", "Q1X", "Q1DM", "Q1DMx", "Q1D4", "Q1SD",
        ] {
            assert!(bad.parse::<QSpec>().is_err(), "{bad:?}");
        }
    }
}
