//! The maps' layouts, as `bpf/verdict.bpf.c` declares them (same field order, `repr(C)`), and the
//! names they are pinned under.

use aya::Pod;
use ipqbdb_core::AddrKey;

pub const BLOCK: &str = "ipqbdb_block";
pub const COUNTS: &str = "ipqbdb_counts";
pub const WHITE: &str = "ipqbdb_white";
pub const CONF: &str = "ipqbdb_conf";
/// Every map the program declares, all pinned by name in the pin directory.
pub const ALL: [&str; 4] = [BLOCK, COUNTS, WHITE, CONF];
/// The program's attachment to the interface (a BPF link), pinned beside the maps.
pub const LINK: &str = "link";
/// The program's name (its ELF section function).
pub const BPF_PROGRAM: &str = "ipqbdb_verdict";

/// The store's 16-byte key (`AddrKey::to_bytes`): IPv4-mapped or masked IPv6, network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(pub [u8; 16]);

impl From<AddrKey> for Key {
    fn from(k: AddrKey) -> Key {
        Key(k.to_bytes())
    }
}

impl Key {
    pub fn addr(&self) -> Option<AddrKey> {
        AddrKey::from_bytes(&self.0)
    }
}

/// What the draw needs: the record's probability at `t0`, its half-life, and `t0` on the boot clock.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub prob: u32,
    pub decay: u32,
    pub t0: i64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub seen: u64,
    pub dropped: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conf {
    /// The database's IPv6 prefix; 0 (never written) makes the program pass everything.
    pub v6_prefix: u32,
    pub pad: u32,
    /// `CLOCK_REALTIME - CLOCK_BOOTTIME` in ns, as used for every `Entry::t0` in the map.
    pub boot_offset: i64,
}

// SAFETY: plain `repr(C)` integers without padding, valid for any bit pattern.
unsafe impl Pod for Key {}
unsafe impl Pod for Entry {}
unsafe impl Pod for Counts {}
unsafe impl Pod for Conf {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<Key>(), 16);
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        assert_eq!(std::mem::size_of::<Counts>(), 16);
        assert_eq!(std::mem::size_of::<Conf>(), 16);
    }
}
