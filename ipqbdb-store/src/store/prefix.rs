//! The IPv6 prefix addresses are banned under, and its change (records rekeyed and merged).

use std::collections::BTreeMap;
use std::path::Path;

use ipqbdb_core::model::merge_records;
use ipqbdb_core::{AddrKey, Record, UnixTime, V6Prefix};

use super::engine::{Reads, Writes};
use super::records::scan_records;
use super::values::{corrupt, PrefixChange};
use crate::error::Result;
use crate::kv::{ReadTx, Table};

/// Meta key of the IPv6 prefix every program must ban and look up by (ASCII decimal).
pub(super) const PREFIX_KEY: &[u8] = b"setting:ipv6-prefix";

pub(super) fn v6_prefix<S: Reads>(s: &S) -> Result<V6Prefix> {
    let path = &s.place().path;
    let fallback = s.place().v6_prefix;
    s.read_tx(&mut |tx| prefix_in(tx, path, fallback))
}

pub(super) fn set_v6_prefix<S: Writes>(
    s: &S,
    new: V6Prefix,
    now: UnixTime,
) -> Result<PrefixChange> {
    let path = s.place_path();
    let fallback = s.place().v6_prefix;
    s.write_tx(&mut |tx| {
        let old = prefix_in(tx, path, fallback)?;
        let mut change = PrefixChange {
            old,
            new,
            moved: 0,
            merged: 0,
        };
        tx.put(Table::Meta, PREFIX_KEY, new.bits().to_string().as_bytes())?;
        if old == new {
            return Ok(change);
        }
        let mut v6 = Vec::new();
        scan_records(tx, path, None, &mut |k, r| {
            if !k.is_v4() {
                v6.push((k, *r));
            }
            Ok(true)
        })?;
        let mut groups: BTreeMap<AddrKey, (Record, bool)> = BTreeMap::new();
        for (key, rec) in v6 {
            let to = AddrKey::banned(key.ip(), new);
            if to != key {
                tx.delete(Table::Block, &key.to_bytes())?;
                change.moved += 1;
            }
            match groups.get_mut(&to) {
                Some((merged, dirty)) => {
                    *merged = merge_records(merged, &rec, now);
                    *dirty = true;
                    change.merged += 1;
                }
                None => {
                    groups.insert(to, (rec, to != key));
                }
            }
        }
        for (key, (rec, dirty)) in groups {
            if dirty {
                tx.put(Table::Block, &key.to_bytes(), &rec.encode())?;
            }
        }
        Ok(change)
    })
}

/// The stored IPv6 prefix, if the database has one.
pub(super) fn stored_prefix(tx: &dyn ReadTx, path: &Path) -> Result<Option<V6Prefix>> {
    match tx.get(Table::Meta, PREFIX_KEY)? {
        Some(v) => decode_prefix(path, &v).map(Some),
        None => Ok(None),
    }
}

/// The IPv6 prefix from the value of [`PREFIX_KEY`].
pub(super) fn decode_prefix(path: &Path, v: &[u8]) -> Result<V6Prefix> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|t| t.parse().ok())
        .and_then(|bits| V6Prefix::new(bits).ok())
        .ok_or_else(|| {
            corrupt(
                path,
                format!("ipv6-prefix {:?}", String::from_utf8_lossy(v)),
            )
        })
}

/// The prefix an operation uses, read in its own transaction; `fallback` where none is stored.
pub(super) fn prefix_in(tx: &dyn ReadTx, path: &Path, fallback: V6Prefix) -> Result<V6Prefix> {
    Ok(stored_prefix(tx, path)?.unwrap_or(fallback))
}
