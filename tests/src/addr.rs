//! Test addresses: one parsed, the n-th of a /8, the n-th of an endless stream of distinct ones.

use std::net::IpAddr;

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// The `i`-th address of a /8, for tests that need many distinct addresses.
pub fn nth_v4(first_octet: u8, i: u32) -> IpAddr {
    let [_, b, c, d] = i.to_be_bytes();
    IpAddr::from([first_octet, b, c, d])
}

/// The `n`-th address of a stream of distinct test addresses, for logs of any length: 198.18.0.0/15
/// (benchmarking addresses, 131,072 of them) first, then one IPv6 /64 each in 2001:db8::/32 (so no
/// two share the default IPv6 ban prefix).
pub fn stream_addr(n: u32) -> String {
    if n < 1 << 17 {
        let [_, b, c, d] = n.to_be_bytes();
        format!("198.{}.{c}.{d}", 18 + b)
    } else {
        let m = n - (1 << 17);
        format!("2001:db8:{:x}:{:x}::1", m >> 16, m & 0xffff)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_addresses_are_distinct_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..300_000).chain([u32::MAX - 1, u32::MAX]) {
            let a = super::stream_addr(n);
            let key: ipqbdb_core::AddrKey = a.parse().unwrap_or_else(|e| panic!("{n}: {a}: {e:?}"));
            assert!(seen.insert(key), "{n}: {a} repeats");
        }
        assert_eq!(super::stream_addr(0), "198.18.0.0");
        assert_eq!(super::stream_addr(131_071), "198.19.255.255");
        assert_eq!(super::stream_addr(131_072), "2001:db8:0:0::1");
    }
}
