//! Addresses never reported: an abuse database is public, and an accusation against a private,
//! shared or made-up address either means nothing or hurts someone who did nothing.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` must never be reported, or `None` if it may be.
pub fn exclusion(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_exclusion(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_exclusion(v4),
            None => v6_exclusion(v6),
        },
    }
}

fn v4_exclusion(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared address space, carrier-grade NAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved or broadcast (240.0.0.0/4)",
        _ => return None,
    })
}

fn v6_exclusion(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(if ip.is_unspecified() {
        "unspecified (::)"
    } else if ip.is_loopback() {
        "loopback (::1)"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local (fe80::/10)"
    } else if s[0] & 0xffc0 == 0xfec0 {
        "site-local (fec0::/10)"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique local (fc00::/7)"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation (2001:db8::/32)"
    } else if s[0] & 0xfff0 == 0x3ff0 {
        "documentation (3fff::/20)"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast (ff00::/8)"
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        "discard-only (100::/64)"
    } else if s[0] == 0 {
        "reserved (::/16)"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Option<&'static str> {
        exclusion(s.parse().unwrap())
    }

    #[test]
    fn every_special_range_is_excluded() {
        for (addr, what) in [
            ("0.0.0.0", "unspecified"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("127.0.0.1", "loopback"),
            ("169.254.3.4", "link-local"),
            ("192.0.2.1", "documentation"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.9", "documentation"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("100.127.255.255", "carrier-grade NAT"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("198.18.0.1", "benchmarking"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique local"),
            ("fc00::1", "unique local"),
            ("2001:db8::1", "documentation"),
            ("2001:0db8:ffff::1", "documentation"),
            ("ff02::1", "multicast"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:192.0.2.1", "documentation"),
        ] {
            let why = ex(addr).unwrap_or_else(|| panic!("{addr} is reportable"));
            assert!(why.contains(what), "{addr}: {why}");
        }
    }

    #[test]
    fn public_addresses_are_reportable() {
        for addr in [
            "1.1.1.1",
            "45.33.32.156",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.3.1",
            "198.51.101.1",
            "203.0.114.1",
            "223.255.255.255",
            "2a01:4f8::1",
            "2001:db9::1",
            "2606:4700::1111",
            "::ffff:45.33.32.156",
        ] {
            assert_eq!(ex(addr), None, "{addr}");
        }
    }
}
