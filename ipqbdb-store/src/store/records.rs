//! The block records: lookups, the judge's snapshot and counters, listing, deletion and retention.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ipqbdb_core::{AddrKey, AddrRange, ReasonId, Record, UnixTime};

use super::engine::{Reads, Writes};
use super::reasons::{all_reasons, get_reason};
use super::values::{corrupt, ReasonStats};
use crate::error::Result;
use crate::kv::{Direction, ReadTx, Table, WriteTx};

pub(super) fn lookup<S: Reads>(s: &S, key: AddrKey) -> Result<Option<Record>> {
    let path = &s.place().path;
    s.read_tx(&mut |tx| get_record(tx, path, key))
}

pub(super) fn add_blocked<S: Writes>(s: &S, counts: &[(AddrKey, u64)]) -> Result<()> {
    let path = s.place_path();
    s.write_tx(&mut |tx| {
        let keys: Vec<[u8; 16]> = counts.iter().map(|(k, _)| k.to_bytes()).collect();
        let mut records = get_records(tx, path, &keys)?;
        let mut updated = Vec::new();
        for &(key, n) in counts {
            if let Some(rec) = records.get_mut(&key) {
                rec.blocked = rec.blocked.saturating_add(n);
                updated.push(key);
            }
        }
        put_records(tx, &records, &updated)
    })
}

pub(super) fn list_records<S: Reads>(
    s: &S,
    range: Option<AddrRange>,
) -> Result<Vec<(AddrKey, Record)>> {
    let mut out = Vec::new();
    for_each_record(s, range, &mut |k, r| {
        out.push((k, *r));
        true
    })?;
    Ok(out)
}

pub(super) fn record_count<S: Reads>(s: &S) -> Result<u64> {
    s.read_tx(&mut |tx| tx.len(Table::Block))
}

pub(super) fn for_each_record<S: Reads>(
    s: &S,
    range: Option<AddrRange>,
    visit: &mut dyn FnMut(AddrKey, &Record) -> bool,
) -> Result<()> {
    let path = &s.place().path;
    s.read_tx(&mut |tx| scan_records(tx, path, range, &mut |k, r| Ok(visit(k, r))))
}

pub(super) fn delete_records<S: Writes>(s: &S, keys: &[AddrKey]) -> Result<Vec<(AddrKey, Record)>> {
    let path = s.place_path();
    s.write_tx(&mut |tx| delete_in(tx, path, keys.iter().copied()))
}

pub(super) fn delete_selected<S: Writes>(
    s: &S,
    ranges: &[AddrRange],
    min_age: Option<u32>,
    now: UnixTime,
) -> Result<Vec<(AddrKey, Record)>> {
    let path = s.place_path();
    s.write_tx(&mut |tx| {
        let mut keys = BTreeSet::new();
        for &range in ranges {
            scan_records(tx, path, Some(range), &mut |k, r| {
                if min_age.is_none_or(|t| ipqbdb_core::retention::is_stale(r.last_update, now, t)) {
                    keys.insert(k);
                }
                Ok(true)
            })?;
        }
        delete_in(tx, path, keys.iter().copied())
    })
}

pub(super) fn retain<S: Writes>(
    s: &S,
    min_age: u32,
    max_records: Option<u64>,
    now: UnixTime,
) -> Result<Vec<(AddrKey, Record)>> {
    let path = s.place_path();
    s.write_tx(&mut |tx| {
        let mut total = 0u64;
        let mut stale = Vec::new();
        scan_records(tx, path, None, &mut |k, r| {
            total += 1;
            if ipqbdb_core::retention::is_stale(r.last_update, now, min_age) {
                stale.push((r.last_update, k));
            }
            Ok(true)
        })?;
        let quota = ipqbdb_core::retention::retention_quota(total, stale.len() as u64, max_records);
        stale.sort_unstable();
        let doomed = stale.iter().take(quota as usize).map(|&(_, k)| k);
        delete_in(tx, path, doomed)
    })
}

/// The reasons with the counters of their live records: one scan of the records, credited to
/// each reason by id.
pub(super) fn reason_stats<S: Writes>(s: &S) -> Result<Vec<ReasonStats>> {
    let path = s.place_path();
    s.read_tx(&mut |tx| {
        let mut stats: Vec<ReasonStats> = all_reasons(tx, path)?
            .into_iter()
            .map(|reason| ReasonStats {
                reason,
                live_records: 0,
                live_caught: 0,
                live_blocked: 0,
            })
            .collect();
        let index: HashMap<ReasonId, usize> = stats
            .iter()
            .enumerate()
            .map(|(i, s)| (s.reason.id, i))
            .collect();
        scan_records(tx, path, None, &mut |_, r| {
            if let Some(&i) = index.get(&r.reason) {
                let s = &mut stats[i];
                s.live_records += 1;
                s.live_caught = s.live_caught.saturating_add(r.caught);
                s.live_blocked = s.live_blocked.saturating_add(r.blocked);
            }
            Ok(true)
        })?;
        Ok(stats)
    })
}

fn decode_record(path: &Path, key: &[u8], value: &[u8]) -> Result<(AddrKey, Record)> {
    let k = AddrKey::from_bytes(key).ok_or_else(|| corrupt(path, "a block key of bad length"))?;
    let r = Record::decode(value)
        .ok_or_else(|| corrupt(path, format!("an unreadable block record for {k}")))?;
    Ok((k, r))
}

pub(super) fn get_record(tx: &dyn ReadTx, path: &Path, key: AddrKey) -> Result<Option<Record>> {
    let bytes = key.to_bytes();
    match tx.get(Table::Block, &bytes)? {
        Some(v) => Ok(Some(decode_record(path, &bytes, &v)?.1)),
        None => Ok(None),
    }
}

pub(super) fn scan_records(
    tx: &dyn ReadTx,
    path: &Path,
    range: Option<AddrRange>,
    visit: &mut dyn FnMut(AddrKey, &Record) -> Result<bool>,
) -> Result<()> {
    let from = range.map(|r| r.start().to_bytes()).unwrap_or_default();
    tx.scan(Table::Block, &from, Direction::Forward, &mut |k, v| {
        let (key, rec) = decode_record(path, k, v)?;
        if range.is_some_and(|r| key > r.end()) {
            return Ok(false);
        }
        visit(key, &rec)
    })
}

/// The records of `keys` (16-byte block keys) that exist, read at once ([`ReadTx::get_many`]).
pub(super) fn get_records(
    tx: &dyn ReadTx,
    path: &Path,
    keys: &[[u8; 16]],
) -> Result<HashMap<AddrKey, Record>> {
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    decode_records(path, keys, tx.get_many(Table::Block, &refs)?)
}

/// The records of `keys` from their values as read (`None`: no record), by address.
pub(super) fn decode_records(
    path: &Path,
    keys: &[[u8; 16]],
    values: impl IntoIterator<Item = Option<Vec<u8>>>,
) -> Result<HashMap<AddrKey, Record>> {
    let mut out = HashMap::with_capacity(keys.len());
    for (k, v) in keys.iter().zip(values) {
        if let Some(v) = v {
            let (key, rec) = decode_record(path, k, &v)?;
            out.insert(key, rec);
        }
    }
    Ok(out)
}

/// Writes the records of `keys` (each a key of `records`) in one [`WriteTx::put_many`].
pub(super) fn put_records(
    tx: &mut dyn WriteTx,
    records: &HashMap<AddrKey, Record>,
    keys: &[AddrKey],
) -> Result<()> {
    let rows: Vec<([u8; 16], [u8; Record::ENCODED_LEN])> = keys
        .iter()
        .map(|k| (k.to_bytes(), records[k].encode()))
        .collect();
    let entries: Vec<(&[u8], &[u8])> = rows.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    tx.put_many(Table::Block, &entries)
}

fn delete_in(
    tx: &mut dyn WriteTx,
    path: &Path,
    keys: impl Iterator<Item = AddrKey>,
) -> Result<Vec<(AddrKey, Record)>> {
    let mut credit: HashMap<ReasonId, (u64, u64)> = HashMap::new();
    let mut deleted = Vec::new();
    for key in keys {
        if let Some(rec) = get_record(tx, path, key)? {
            tx.delete(Table::Block, &key.to_bytes())?;
            let c = credit.entry(rec.reason).or_default();
            c.0 = c.0.saturating_add(rec.caught);
            c.1 = c.1.saturating_add(rec.blocked);
            deleted.push((key, rec));
        }
    }
    for (id, (caught, blocked)) in credit {
        if let Some(mut reason) = get_reason(tx, path, id)? {
            reason.caught = reason.caught.saturating_add(caught);
            reason.blocked = reason.blocked.saturating_add(blocked);
            tx.put(Table::Reason, &id.to_be_bytes(), &reason.encode_value())?;
        }
    }
    Ok(deleted)
}
