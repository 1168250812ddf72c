//! Address keys: the one form in which every address is stored and looked up.
//!
//! IPv4 and IPv6 share a single 128-bit key space so that ranges, ordering and storage need one code
//! path. IPv4 lives in the IPv4-mapped block `::ffff:0:0/96`, so `::ffff:1.2.3.4` and `1.2.3.4` are the
//! same key: an attacker must not escape a ban by writing its address the other way. IPv6 bans are masked to a prefix because an attacker owning a /64
//! can otherwise rotate through 2^64 addresses and never be blocked.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::error::ParseError;

/// Default IPv6 prefix a ban applies to.
pub const DEFAULT_V6_PREFIX: u8 = 64;

const V4_MAPPED_BASE: u128 = 0xffff_0000_0000;
const V4_MAPPED_MASK: u128 = !0xffff_ffffu128;

/// A stored address: IPv4 (as IPv4-mapped) or IPv6, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddrKey(u128);

/// The IPv6 prefix length bans apply to (1..=128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Prefix(u8);

impl V6Prefix {
    pub fn new(len: u32) -> Result<Self, ParseError> {
        if (1..=128).contains(&len) {
            Ok(V6Prefix(len as u8))
        } else {
            Err(ParseError::Prefix(len))
        }
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    fn mask(self) -> u128 {
        u128::MAX << (128 - u32::from(self.0))
    }
}

impl Default for V6Prefix {
    fn default() -> Self {
        V6Prefix(DEFAULT_V6_PREFIX)
    }
}

impl AddrKey {
    /// Length of the byte encoding used as a database key.
    pub const LEN: usize = 16;

    /// The exact address, IPv4-mapped IPv6 folded to IPv4. Used for whitelist lookups, which must see
    /// the address itself rather than its banned prefix.
    pub fn exact(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::from_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::from_v4(v4),
                None => AddrKey(u128::from(v6)),
            },
        }
    }

    /// The key a ban or a verdict uses: IPv4 as is, IPv6 masked to `prefix`.
    pub fn banned(ip: IpAddr, prefix: V6Prefix) -> Self {
        let key = Self::exact(ip);
        if key.is_v4() {
            key
        } else {
            AddrKey(key.0 & prefix.mask())
        }
    }

    fn from_v4(v4: Ipv4Addr) -> Self {
        AddrKey(V4_MAPPED_BASE | u128::from(u32::from(v4)))
    }

    pub fn is_v4(self) -> bool {
        self.0 & V4_MAPPED_MASK == V4_MAPPED_BASE
    }

    pub fn ip(self) -> IpAddr {
        if self.is_v4() {
            IpAddr::V4(Ipv4Addr::from(self.0 as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(self.0))
        }
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Decodes a key written by [`AddrKey::to_bytes`]; `None` for anything of the wrong length, which
    /// callers treat as a corrupt database rather than a panic.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 16] = bytes.try_into().ok()?;
        Some(AddrKey(u128::from_be_bytes(arr)))
    }

    /// The key as a number, for range arithmetic.
    pub fn to_u128(self) -> u128 {
        self.0
    }

    pub(crate) fn raw(self) -> u128 {
        self.0
    }

    pub(crate) fn from_raw(raw: u128) -> Self {
        AddrKey(raw)
    }
}

impl fmt::Display for AddrKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip().fmt(f)
    }
}

impl FromStr for AddrKey {
    type Err = ParseError;

    /// Parses an address exactly (no prefix masking).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_ip(s).map(AddrKey::exact)
    }
}

/// Parses an IPv4 or IPv6 address as found in logs and on command lines: surrounding whitespace, IPv6
/// brackets and an IPv6 zone index (`%eth0`, as sshd logs link-local peers) are tolerated.
pub fn parse_ip(s: &str) -> Result<IpAddr, ParseError> {
    let t = s.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(t);
    let t = match t.split_once('%') {
        Some((addr, zone)) if addr.contains(':') && !zone.is_empty() => addr,
        _ => t,
    };
    IpAddr::from_str(t).map_err(|_| ParseError::Address(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_mapped_is_folded_to_v4() {
        let a: AddrKey = "::ffff:192.0.2.7".parse().unwrap();
        let b: AddrKey = "192.0.2.7".parse().unwrap();
        assert_eq!(a, b);
        assert!(a.is_v4());
        assert_eq!(a.to_string(), "192.0.2.7");
    }

    #[test]
    fn v6_is_masked_to_prefix_for_bans_only() {
        let ip = parse_ip("2001:db8:1:2:3:4:5:6").unwrap();
        let p = V6Prefix::default();
        assert_eq!(AddrKey::banned(ip, p).to_string(), "2001:db8:1:2::");
        assert_eq!(AddrKey::exact(ip).to_string(), "2001:db8:1:2:3:4:5:6");
        let p48 = V6Prefix::new(48).unwrap();
        assert_eq!(AddrKey::banned(ip, p48).to_string(), "2001:db8:1::");
        let p128 = V6Prefix::new(128).unwrap();
        assert_eq!(AddrKey::banned(ip, p128), AddrKey::exact(ip));
        // IPv4 is never masked.
        let v4 = parse_ip("198.51.100.9").unwrap();
        assert_eq!(AddrKey::banned(v4, p).to_string(), "198.51.100.9");
    }

    #[test]
    fn bad_prefixes_are_refused() {
        assert_eq!(V6Prefix::new(0), Err(ParseError::Prefix(0)));
        assert_eq!(V6Prefix::new(129), Err(ParseError::Prefix(129)));
    }

    #[test]
    fn log_forms_parse() {
        assert_eq!(
            parse_ip(" [2001:db8::1] ").unwrap().to_string(),
            "2001:db8::1"
        );
        assert_eq!(parse_ip("fe80::1%enp3s0").unwrap().to_string(), "fe80::1");
        assert!(parse_ip("1.2.3.4%eth0").is_err());
        assert!(parse_ip("1.2.3.256").is_err());
        assert!(parse_ip("").is_err());
        assert!(parse_ip("example.org").is_err());
    }

    #[test]
    fn keys_round_trip_and_order() {
        let a: AddrKey = "10.0.0.1".parse().unwrap();
        let b: AddrKey = "10.0.0.2".parse().unwrap();
        assert!(a < b);
        assert_eq!(AddrKey::from_bytes(&a.to_bytes()), Some(a));
        assert_eq!(AddrKey::from_bytes(&[1, 2, 3]), None);
    }
}
