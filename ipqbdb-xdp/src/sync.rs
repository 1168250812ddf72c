//! Keeps the maps in step with the database. Each pass reads every record and the whitelist,
//! computes what the maps should hold, and writes only the difference against a mirror of what they
//! hold (read back from the maps when a running program is adopted). Records deleted from the
//! database leave the map; records whose probability has decayed to 0 are left out.
//!
//! **When the map is full** (more live records than `max_entries`), the map keeps the records of
//! highest current probability; the others get no kernel verdict (NFQUEUE, if it also runs, judges
//! them), and `SyncPass::left_out` says how many.

use std::collections::{HashMap, HashSet};

use foldhash::fast::RandomState;

use aya::maps::lpm_trie::Key as LpmKey;
use aya::maps::IterableMap;
use ipqbdb_core::model::current_probability;
use ipqbdb_core::{AddrKey, UnixTime};
use ipqbdb_store::{Store, WhiteEntry};

use crate::clock;
use crate::error::{chain, XdpError};
use crate::loader::Maps;
use crate::maps::{self, Conf, Counts, Entry, Key};
use crate::white::{self, Block};

/// What one pass changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPass {
    pub written: usize,
    pub removed: usize,
    pub in_map: usize,
    /// Live records that did not fit.
    pub left_out: usize,
    pub white_blocks: usize,
}

pub struct Syncer {
    /// Seeded per process (foldhash's `RandomState`): the keys are addresses attackers choose.
    block: HashMap<Key, Entry, RandomState>,
    white: HashSet<Block>,
    white_source: Option<Vec<WhiteEntry>>,
    conf: Conf,
    max_entries: usize,
    max_white: usize,
}

fn merr(map: &'static str) -> impl Fn(aya::maps::MapError) -> XdpError {
    move |e| XdpError::Map {
        map,
        reason: chain(&e),
    }
}

impl Syncer {
    /// Starts from what the maps hold now (empty after a fresh load, an earlier run's after adoption).
    pub fn new(maps: &Maps, max_entries: u32, max_white: u32) -> Result<Syncer, XdpError> {
        let mut block = HashMap::default();
        for item in maps.block.iter() {
            let (k, v) = item.map_err(merr(maps::BLOCK))?;
            block.insert(k, v);
        }
        let mut white = HashSet::new();
        for item in maps.white.iter() {
            let (k, _) = item.map_err(merr(maps::WHITE))?;
            white.insert(Block {
                prefix_len: k.prefix_len(),
                start: u128::from_be_bytes(k.data()),
            });
        }
        let conf = maps.conf.get(&0, 0).map_err(merr(maps::CONF))?;
        Ok(Syncer {
            block,
            white,
            white_source: None,
            conf,
            max_entries: max_entries as usize,
            max_white: max_white as usize,
        })
    }

    /// One pass at wall-clock time `now`.
    pub fn sync<S: Store>(
        &mut self,
        maps: &mut Maps,
        store: &S,
        now: UnixTime,
    ) -> Result<SyncPass, XdpError> {
        let mut pass = SyncPass::default();
        // The whitelist first: an address must never be dropped for a moment because its record
        // reached the map before its whitelist entry.
        let list = store.white_list()?;
        if self.white_source.as_ref() != Some(&list) {
            let want: HashSet<Block> = white::never_dropped(store, &list)?.into_iter().collect();
            if want.len() > self.max_white {
                return Err(XdpError::Map {
                    map: maps::WHITE,
                    reason: format!(
                        "the whitelist needs {} CIDR blocks, more than --max-white {}",
                        want.len(),
                        self.max_white
                    ),
                });
            }
            for b in want.difference(&self.white) {
                let k = LpmKey::new(b.prefix_len, b.start.to_be_bytes());
                maps.white.insert(&k, 1, 0).map_err(merr(maps::WHITE))?;
            }
            for b in self.white.difference(&want) {
                let k = LpmKey::new(b.prefix_len, b.start.to_be_bytes());
                match maps.white.remove(&k) {
                    Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                    Err(e) => return Err(merr(maps::WHITE)(e)),
                }
            }
            self.white = want;
            self.white_source = Some(list);
        }
        pass.white_blocks = self.white.len();

        let prefix = store.v6_prefix()?;
        let previous = (self.conf.v6_prefix != 0).then_some(self.conf.boot_offset);
        let conf = Conf {
            v6_prefix: u32::from(prefix.bits()),
            pad: 0,
            boot_offset: clock::settle(previous, clock::measure_offset()),
        };

        let mut live: Vec<(Key, Entry, u32)> = Vec::new();
        store.for_each_record(None, &mut |k, r| {
            let p = current_probability(r, now);
            if p > 0 {
                let e = Entry {
                    prob: r.probability,
                    decay: r.decay,
                    t0: clock::to_boot_ns(r.last_update, conf.boot_offset),
                };
                live.push((k.into(), e, p));
            }
            true
        })?;
        if live.len() > self.max_entries {
            pass.left_out = live.len() - self.max_entries;
            // Ties broken by key, so equal probabilities do not trade places from pass to pass.
            live.select_nth_unstable_by(self.max_entries, |a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
            live.truncate(self.max_entries);
        }
        if conf != self.conf {
            maps.conf.set(0, conf, 0).map_err(merr(maps::CONF))?;
            self.conf = conf;
        }
        // Removals first, so the room they free is there for the insertions. Most passes remove
        // nothing: when every key the map holds is among the live ones, no set of them is built.
        let kept = live
            .iter()
            .filter(|(k, _, _)| self.block.contains_key(k))
            .count();
        if kept < self.block.len() {
            let live_keys: HashSet<Key, RandomState> = live.iter().map(|(k, _, _)| *k).collect();
            let gone: Vec<Key> = self
                .block
                .keys()
                .filter(|k| !live_keys.contains(k))
                .copied()
                .collect();
            for k in gone {
                match maps.block.remove(&k) {
                    Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                    Err(e) => return Err(merr(maps::BLOCK)(e)),
                }
                self.block.remove(&k);
                pass.removed += 1;
            }
        }
        for (k, e, _) in &live {
            if self.block.get(k) != Some(e) {
                maps.block.insert(k, e, 0).map_err(merr(maps::BLOCK))?;
                self.block.insert(*k, *e);
                pass.written += 1;
            }
        }
        pass.in_map = self.block.len();
        Ok(pass)
    }

    /// Takes the kernel's per-CPU drop counts (summed over CPUs) and clears them, as
    /// `(key, dropped)` for `Store::add_blocked`. Each key is read and removed in one step
    /// (`BPF_MAP_LOOKUP_AND_DELETE_ELEM`, kernel 5.14), so no packet counted meanwhile is lost.
    pub fn take_dropped(&mut self, maps: &mut Maps) -> Result<Vec<(AddrKey, u64)>, XdpError> {
        let keys: Vec<Key> = maps
            .counts
            .keys()
            .collect::<Result<_, _>>()
            .map_err(merr(maps::COUNTS))?;
        let cpus = aya::util::nr_cpus().map_err(|(path, e)| XdpError::Map {
            map: maps::COUNTS,
            reason: format!("{path}: {e}"),
        })?;
        let fd = std::os::fd::AsFd::as_fd(maps.counts.map().fd());
        let mut values = vec![Counts::default(); cpus];
        let mut out = Vec::new();
        for k in keys {
            match lookup_and_delete(fd, &k, &mut values) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    return Err(XdpError::Map {
                        map: maps::COUNTS,
                        reason: format!("reading and clearing a count: {e}"),
                    })
                }
            }
            let dropped = values.iter().fold(0u64, |a, c| a.saturating_add(c.dropped));
            if let (Some(addr), true) = (k.addr(), dropped > 0) {
                out.push((addr, dropped));
            }
        }
        Ok(out)
    }
}

/// `bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM)` on a per-CPU map: `values` gets one `Counts` per possible
/// CPU (16 bytes, already a multiple of 8 as the kernel lays them out). False if the key is gone.
fn lookup_and_delete(
    fd: std::os::fd::BorrowedFd<'_>,
    key: &Key,
    values: &mut [Counts],
) -> std::io::Result<bool> {
    const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
    /// The map-element part of `union bpf_attr`, zero beyond it.
    #[repr(C, align(8))]
    struct Attr {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
        rest: [u64; 12],
    }
    let attr = Attr {
        map_fd: std::os::fd::AsRawFd::as_raw_fd(&fd) as u32,
        pad: 0,
        key: std::ptr::from_ref(key) as u64,
        value: values.as_mut_ptr() as u64,
        flags: 0,
        rest: [0; 12],
    };
    // SAFETY: the kernel reads the key and writes one value per possible CPU into `values`, which
    // holds exactly that many; both outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_LOOKUP_AND_DELETE_ELEM,
            std::ptr::addr_of!(attr),
            std::mem::size_of::<Attr>(),
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl Syncer {
    pub fn in_map(&self) -> usize {
        self.block.len()
    }

    pub fn white_blocks(&self) -> usize {
        self.white.len()
    }
}
