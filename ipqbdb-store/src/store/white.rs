//! The whitelist: ranges keyed by span class so the narrowest containing range is two seeks a class.

use std::path::Path;

use ipqbdb_core::{AddrKey, AddrRange};

use super::engine::{Reads, Writes};
use super::reasons::decode_id;
use super::values::{corrupt, WhiteEntry};
use crate::error::Result;
use crate::kv::{Direction, ReadTx, Table};

pub(super) fn white_set<S: Writes>(s: &S, entries: &[WhiteEntry]) -> Result<()> {
    s.write_tx(&mut |tx| {
        for e in entries {
            tx.put(Table::White, &white_key(e.range), &e.decay.to_be_bytes())?;
        }
        Ok(())
    })
}

pub(super) fn white_remove<S: Writes>(s: &S, range: AddrRange) -> Result<bool> {
    s.write_tx(&mut |tx| tx.delete(Table::White, &white_key(range)))
}

pub(super) fn white_list<S: Reads>(s: &S) -> Result<Vec<WhiteEntry>> {
    let path = &s.place().path;
    let mut out = s.read_tx(&mut |tx| {
        let mut out = Vec::new();
        tx.scan(Table::White, &[], Direction::Forward, &mut |k, v| {
            out.push(decode_white(path, k, v)?);
            Ok(true)
        })?;
        Ok(out)
    })?;
    out.sort_unstable_by_key(|e| e.range);
    Ok(out)
}

pub(super) fn white_lookup<S: Reads>(s: &S, addr: AddrKey) -> Result<Option<WhiteEntry>> {
    let path = &s.place().path;
    s.read_tx(&mut |tx| white_lookup_in(tx, path, addr))
}

/// The span class of a range: the bit length of its span (0 for one address, 128 for a span of
/// 2^127 or more). A range of class `c` has a span below `2^c`, and at least `2^(c-1)` for `c > 0`,
/// so every range of a lower class is narrower than every range of a higher one.
fn span_class(range: AddrRange) -> u8 {
    (128 - range.span().leading_zeros()) as u8
}

/// The largest span of a class.
fn class_max_span(class: u8) -> u128 {
    if class >= 128 {
        u128::MAX
    } else {
        (1u128 << class) - 1
    }
}

/// A whitelist key: span class, then start, then end (33 bytes). See [`white_lookup_in`].
pub(super) fn white_key(range: AddrRange) -> [u8; 1 + AddrRange::LEN] {
    let mut key = [0u8; 1 + AddrRange::LEN];
    key[0] = span_class(range);
    key[1..].copy_from_slice(&range.to_bytes());
    key
}

fn decode_white(path: &Path, k: &[u8], v: &[u8]) -> Result<WhiteEntry> {
    let bad = || corrupt(path, "a bad whitelist key");
    let (&class, rest) = k.split_first().ok_or_else(bad)?;
    let range = AddrRange::from_bytes(rest).ok_or_else(bad)?;
    if span_class(range) != class {
        return Err(bad());
    }
    let decay = decode_id(path, v).map_err(|_| corrupt(path, "a bad whitelist decay"))?;
    Ok(WhiteEntry { range, decay })
}

/// The narrowest whitelist range containing `addr`.
///
/// Keys are span class, start, end ([`white_key`]). Classes are visited narrowest first, and only
/// those holding a range (a forward seek finds the next one), so the first class with a containing
/// range holds the answer. Within class `c` a containing range starts in `[addr - (2^c - 1), addr]`,
/// so one backward seek from `addr` reads only the ranges starting in that window: for ranges of one
/// class that do not overlap, at most two. A lookup costs two seeks per occupied class, whatever the
/// size of the whitelist; before, an address in no range read every range starting below it.
/// Among containing ranges of equal span, the one starting last wins.
pub(super) fn white_lookup_in(
    tx: &dyn ReadTx,
    path: &Path,
    addr: AddrKey,
) -> Result<Option<WhiteEntry>> {
    let a = addr.to_u128();
    let mut class = 0u8;
    loop {
        let mut next = None;
        tx.scan(Table::White, &[class], Direction::Forward, &mut |k, _| {
            next = k.first().copied();
            Ok(false)
        })?;
        let Some(c) = next else {
            return Ok(None);
        };
        let lowest = a.saturating_sub(class_max_span(c));
        let mut from = [0xffu8; 1 + AddrRange::LEN];
        from[0] = c;
        from[1..17].copy_from_slice(&addr.to_bytes());
        let mut best: Option<WhiteEntry> = None;
        tx.scan(Table::White, &from, Direction::Backward, &mut |k, v| {
            if k.first() != Some(&c) {
                return Ok(false);
            }
            let entry = decode_white(path, k, v)?;
            if entry.range.start().to_u128() < lowest {
                return Ok(false);
            }
            if entry.range.contains(addr)
                && best.is_none_or(|b| entry.range.span() < b.range.span())
            {
                best = Some(entry);
            }
            Ok(true)
        })?;
        if best.is_some() || c >= 128 {
            return Ok(best);
        }
        class = c + 1;
    }
}
