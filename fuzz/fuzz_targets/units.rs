//! Addresses, ranges, durations and counts as typed by users: errors, never panics, and what parses
//! prints back to the same value.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(r) = s.parse::<ipqbdb_core::AddrRange>() {
        assert_eq!(r.to_string().parse::<ipqbdb_core::AddrRange>().unwrap(), r);
        assert_eq!(ipqbdb_core::AddrRange::from_bytes(&r.to_bytes()), Some(r));
    }
    if let Ok(d) = ipqbdb_core::parse_duration(s) {
        assert_eq!(ipqbdb_core::parse_duration(&ipqbdb_core::format_duration(d)), Ok(d));
    }
    let _ = ipqbdb_core::parse_count(s);
    if let Ok(ip) = ipqbdb_core::parse_ip(s) {
        let key = ipqbdb_core::AddrKey::exact(ip);
        assert_eq!(ipqbdb_core::AddrKey::from_bytes(&key.to_bytes()), Some(key));
    }
});
