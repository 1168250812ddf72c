//! The addresses of a queued packet. Only the IP header is needed, which is why the queue copies
//! just the first bytes of each packet.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::qspec::Side;

/// Bytes to copy from each packet: an IPv6 header is 40 bytes.
pub const COPY_RANGE: u16 = 64;

/// The source or destination address of an IPv4 or IPv6 packet; `None` for anything else (a
/// truncated or non-IP payload), which the judge accepts and counts as an error.
pub fn address(payload: &[u8], side: Side) -> Option<IpAddr> {
    match payload.first()? >> 4 {
        4 if payload.len() >= 20 => {
            let at = if side == Side::Source { 12 } else { 16 };
            let b: [u8; 4] = payload[at..at + 4].try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 if payload.len() >= 40 => {
            let at = if side == Side::Source { 8 } else { 24 };
            let b: [u8; 16] = payload[at..at + 16].try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[192, 0, 2, 1]);
        v4[16..20].copy_from_slice(&[198, 51, 100, 2]);
        assert_eq!(
            address(&v4, Side::Source),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            address(&v4, Side::Destination),
            Some("198.51.100.2".parse().unwrap())
        );
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            address(&v6, Side::Source),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            address(&v6, Side::Destination),
            Some("2001:db8::2".parse().unwrap())
        );
        assert_eq!(address(&v4[..19], Side::Source), None);
        assert_eq!(address(&v6[..39], Side::Source), None);
        assert_eq!(address(&[], Side::Source), None);
        assert_eq!(address(&[0x10; 60], Side::Source), None);
    }
}
