//! Address ranges as written in whitelists and selections: a single address, `a-b`, or CIDR.
//!
//! Ranges are kept as two keys rather than expanded, so whitelisting 10.0.0.0/8 costs one record.

use std::fmt;
use std::str::FromStr;

use crate::addr::{parse_ip, AddrKey};
use crate::error::ParseError;

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrRange {
    start: AddrKey,
    end: AddrKey,
}

impl AddrRange {
    /// Length of the byte encoding used as a database key: start then end.
    pub const LEN: usize = 32;

    pub fn new(start: AddrKey, end: AddrKey) -> Result<Self, ParseError> {
        let err = |why| ParseError::Range {
            input: format!("{start}-{end}"),
            why,
        };
        if start.is_v4() != end.is_v4() {
            return Err(err("the two ends are of different address families"));
        }
        if start > end {
            return Err(err("the first address is greater than the last"));
        }
        Ok(AddrRange { start, end })
    }

    pub fn single(addr: AddrKey) -> Self {
        AddrRange {
            start: addr,
            end: addr,
        }
    }

    pub fn start(&self) -> AddrKey {
        self.start
    }

    pub fn end(&self) -> AddrKey {
        self.end
    }

    pub fn contains(&self, addr: AddrKey) -> bool {
        self.start <= addr && addr <= self.end
    }

    /// Number of addresses minus one: what "narrowest" compares.
    pub fn span(&self) -> u128 {
        self.end.raw() - self.start.raw()
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&self.start.to_bytes());
        out[16..].copy_from_slice(&self.end.to_bytes());
        out
    }

    /// Decodes a stored range. Only the order of the ends is checked: an IPv6 CIDR block such as
    /// `::/0` or `::/80` contains the IPv4-mapped block, so its ends differ in family (the family
    /// check of [`AddrRange::new`] is for ranges people write as `a-b`). Found by fuzzing.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::LEN {
            return None;
        }
        let start = AddrKey::from_bytes(&bytes[..16])?;
        let end = AddrKey::from_bytes(&bytes[16..])?;
        (start <= end).then_some(AddrRange { start, end })
    }

    /// The CIDR prefix length if this range is exactly one CIDR block.
    fn cidr_len(&self) -> Option<u32> {
        let span = self.span();
        if span == u128::MAX {
            return Some(0);
        }
        let size = span + 1;
        if !size.is_power_of_two() || self.start.raw() & span != 0 {
            return None;
        }
        let host_bits = size.trailing_zeros();
        let family_bits = if self.start.is_v4() { 32 } else { 128 };
        (host_bits <= family_bits).then(|| family_bits - host_bits)
    }
}

impl fmt::Display for AddrRange {
    /// Prints the shortest faithful form: one address, CIDR, or `a-b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            return write!(f, "{}", self.start);
        }
        match self.cidr_len() {
            Some(len) => write!(f, "{}/{}", self.start, len),
            None => write!(f, "{}-{}", self.start, self.end),
        }
    }
}

impl FromStr for AddrRange {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = |why| ParseError::Range {
            input: s.to_string(),
            why,
        };
        if let Some((addr, len)) = s.split_once('/') {
            let base = AddrKey::exact(parse_ip(addr).map_err(|_| err("not an IP address"))?);
            let family_bits: u32 = if base.is_v4() { 32 } else { 128 };
            let len: u32 = len
                .trim()
                .parse()
                .map_err(|_| err("the prefix length is not a number"))?;
            if len > family_bits {
                return Err(err("the prefix length is too long for the address family"));
            }
            let host_bits = family_bits - len;
            let host_mask = if host_bits == 128 {
                u128::MAX
            } else {
                (1u128 << host_bits) - 1
            };
            let start = AddrKey::from_raw(base.raw() & !host_mask);
            let end = AddrKey::from_raw(start.raw() | host_mask);
            return Ok(AddrRange { start, end });
        }
        // An IPv6 address never contains '-', so the first dash splits a range.
        if let Some((a, b)) = s.split_once('-') {
            let start = parse_ip(a).map_err(|_| err("the first address is not an IP address"))?;
            let end = parse_ip(b).map_err(|_| err("the last address is not an IP address"))?;
            return AddrRange::new(AddrKey::exact(start), AddrKey::exact(end)).map_err(
                |e| match e {
                    ParseError::Range { why, .. } => err(why),
                    other => other,
                },
            );
        }
        let addr = parse_ip(s).map_err(|_| err("not an IP address, a-b range or CIDR block"))?;
        Ok(AddrRange::single(AddrKey::exact(addr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> AddrRange {
        s.parse().unwrap()
    }

    #[test]
    fn forms() {
        let cidr = r("10.0.0.0/8");
        assert_eq!(cidr.start().to_string(), "10.0.0.0");
        assert_eq!(cidr.end().to_string(), "10.255.255.255");
        assert_eq!(cidr.span(), (1 << 24) - 1);
        assert_eq!(cidr.to_string(), "10.0.0.0/8");
        assert_eq!(r("10.1.2.3/8"), cidr, "host bits are masked off");
        assert_eq!(r("192.0.2.1-192.0.2.9").to_string(), "192.0.2.1-192.0.2.9");
        assert_eq!(r("192.0.2.0-192.0.2.255").to_string(), "192.0.2.0/24");
        assert_eq!(
            r("2001:db8::/32").end().to_string(),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(r("::ffff:1.2.3.4").to_string(), "1.2.3.4");
        assert_eq!(r("0.0.0.0/0").span(), u32::MAX as u128);
        assert_eq!(r("::/0").span(), u128::MAX);
        assert_eq!(r("::/0").to_string(), "::/0");
    }

    #[test]
    fn contains() {
        let c = r("198.51.100.0/24");
        assert!(c.contains("198.51.100.0".parse().unwrap()));
        assert!(c.contains("198.51.100.255".parse().unwrap()));
        assert!(!c.contains("198.51.101.0".parse().unwrap()));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn errors() {
        for bad in [
            "10.0.0.9-10.0.0.1",
            "10.0.0.1-2001:db8::1",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/x",
            "10.0.0.0/-1",
            "nonsense",
            "",
            "1.2.3.4-",
        ] {
            let e = bad.parse::<AddrRange>().unwrap_err();
            assert!(matches!(e, ParseError::Range { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn bytes_round_trip() {
        let c = r("2001:db8::5-2001:db8::9");
        assert_eq!(AddrRange::from_bytes(&c.to_bytes()), Some(c));
        assert_eq!(AddrRange::from_bytes(&[0; 31]), None);
        let mut backwards = c.to_bytes();
        backwards.swap(15, 31);
        assert_eq!(AddrRange::from_bytes(&backwards), None);
    }

    #[test]
    fn v6_blocks_that_contain_the_v4_mapped_block_round_trip() {
        // Regression (fuzzing): these were stored but then refused as corrupt when read back.
        for s in ["::/80", "::/0"] {
            let range = r(s);
            assert_eq!(AddrRange::from_bytes(&range.to_bytes()), Some(range), "{s}");
            assert_eq!(range.to_string(), s);
            assert!(
                range.contains("192.0.2.1".parse().unwrap()),
                "{s} holds the IPv4-mapped block"
            );
        }
    }
}
