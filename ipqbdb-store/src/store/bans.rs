//! Bans: one or a batch in one transaction, with the read positions (notes) a program keeps
//! beside them so a crash neither loses nor repeats a ban.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use ipqbdb_core::{
    apply_ban, AddrKey, BanKind, BanRequest, ModelParams, ReasonId, UnixTime, V6Prefix,
};

use super::engine::Writes;
use super::prefix::{decode_prefix, PREFIX_KEY};
use super::reasons::{check_reason_len, decode_id, new_reason_in};
use super::records::{decode_records, get_records, put_records};
use super::values::{Ban, BanEffect};
use super::white::white_lookup_in;
use crate::error::Result;
use crate::kv::{Direction, ReadTx, Table, WriteTx};

pub(super) fn ban_batch_noting<S: Writes>(
    s: &S,
    bans: &[Ban<'_>],
    now: UnixTime,
    notes: &[(Vec<u8>, Vec<u8>)],
) -> Result<Vec<BanEffect>> {
    let path = s.place_path();
    let model = s.place().opts.model;
    let fallback = s.place().v6_prefix;
    s.write_tx(&mut |tx| {
        let reports = ban_many_in(tx, path, fallback, &model, bans, now)?;
        let notes: Vec<(Vec<u8>, &[u8])> =
            notes.iter().map(|(k, v)| (note_key(k), &v[..])).collect();
        let notes: Vec<(&[u8], &[u8])> = notes.iter().map(|(k, v)| (&k[..], *v)).collect();
        tx.put_many(Table::Meta, &notes)?;
        Ok(reports)
    })
}

pub(super) fn note<S: Writes>(s: &S, key: &[u8]) -> Result<Option<Vec<u8>>> {
    s.read_tx(&mut |tx| tx.get(Table::Meta, &note_key(key)))
}

/// Notes live in the meta table under their own prefix, apart from the format marker.
fn note_key(key: &[u8]) -> Vec<u8> {
    [&b"note:"[..], key].concat()
}

/// A whitelist small enough to read whole, in memory: a batch of bans then looks every address up
/// without a round trip each (on a server engine), through the same [`white_lookup_in`].
struct WhiteCopy(BTreeMap<Vec<u8>, Vec<u8>>);

impl WhiteCopy {
    /// The whitelist, if it has at most `max` ranges (one scan; stops early beyond that).
    fn read(tx: &dyn ReadTx, max: usize) -> Result<Option<WhiteCopy>> {
        let mut map = BTreeMap::new();
        let mut fits = true;
        tx.scan(Table::White, &[], Direction::Forward, &mut |k, v| {
            if map.len() == max {
                fits = false;
                return Ok(false);
            }
            map.insert(k.to_vec(), v.to_vec());
            Ok(true)
        })?;
        Ok(fits.then_some(WhiteCopy(map)))
    }
}

impl ReadTx for WhiteCopy {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        debug_assert_eq!(table, Table::White);
        Ok(self.0.get(key).cloned())
    }

    fn scan(
        &self,
        table: Table,
        from: &[u8],
        dir: Direction,
        visit: &mut crate::kv::Visit<'_>,
    ) -> Result<()> {
        use std::ops::Bound::{Included, Unbounded};
        debug_assert_eq!(table, Table::White);
        let range: Box<dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>> = match dir {
            Direction::Forward => Box::new(self.0.range::<[u8], _>((Included(from), Unbounded))),
            Direction::Backward => {
                Box::new(self.0.range::<[u8], _>((Unbounded, Included(from))).rev())
            }
        };
        for (k, v) in range {
            if !visit(k, v)? {
                break;
            }
        }
        Ok(())
    }

    fn len(&self, _table: Table) -> Result<u64> {
        Ok(self.0.len() as u64)
    }
}

/// Bans `bans` in order in one transaction, as banning them one by one would, in a number of
/// key-value calls that does not grow with the batch (bar new reasons and a large whitelist): the
/// IPv6 prefix, the reasons and the records are read with one [`ReadTx::get_each`], the whitelist
/// once when small, and the results written with one [`WriteTx::put_many`]: three calls for a
/// single ban. An address banned twice in the batch sees its first ban's result, as it would one
/// by one.
fn ban_many_in(
    tx: &mut dyn WriteTx,
    path: &Path,
    fallback: V6Prefix,
    model: &ModelParams,
    bans: &[Ban<'_>],
    now: UnixTime,
) -> Result<Vec<BanEffect>> {
    let mut texts: Vec<&str> = Vec::new();
    for ban in bans {
        if !texts.contains(&ban.reason) {
            check_reason_len(ban.reason)?;
            texts.push(ban.reason);
        }
    }
    // The records are asked under the prefix this program opened the database with: the stored
    // one, read in the same call, unless `ibd config --set-ipv6-prefix` changed it since (then
    // they are read again under it).
    let guessed: Vec<[u8; 16]> = bans
        .iter()
        .map(|b| AddrKey::banned(b.ip, fallback).to_bytes())
        .collect();
    let mut wanted: Vec<(Table, &[u8])> = Vec::with_capacity(1 + texts.len() + bans.len());
    wanted.push((Table::Meta, PREFIX_KEY));
    wanted.extend(texts.iter().map(|t| (Table::ReasonText, t.as_bytes())));
    wanted.extend(guessed.iter().map(|k| (Table::Block, &k[..])));
    let mut got = tx.get_each(&wanted)?.into_iter();
    let prefix = match got.next().flatten() {
        Some(v) => decode_prefix(path, &v)?,
        None => fallback,
    };
    let mut reasons: HashMap<&str, ReasonId> = HashMap::new();
    for &text in &texts {
        let id = match got.next().flatten() {
            Some(v) => decode_id(path, &v)?,
            // Read in the same call above: absent, so it is given the next id.
            None => new_reason_in(tx, path, text)?,
        };
        reasons.insert(text, id);
    }
    let keys: Vec<AddrKey> = bans.iter().map(|b| AddrKey::banned(b.ip, prefix)).collect();
    let mut records = if prefix == fallback {
        decode_records(path, &guessed, got)?
    } else {
        let bytes: Vec<[u8; 16]> = keys.iter().map(|k| k.to_bytes()).collect();
        get_records(tx, path, &bytes)?
    };
    // Read whole when no larger than a few ranges per ban: a single ban then costs no more than
    // its own lookup would.
    let white = WhiteCopy::read(tx, 64.max(bans.len() * 8))?;
    // Each key written once, with its last record, in the order first written.
    let mut written: Vec<AddrKey> = Vec::new();
    let mut seen: HashSet<AddrKey> = HashSet::new();
    let mut reports = Vec::with_capacity(bans.len());
    for (ban, &key) in bans.iter().zip(&keys) {
        let exact = AddrKey::exact(ban.ip);
        let white = match &white {
            Some(copy) => white_lookup_in(copy, path, exact)?,
            None => white_lookup_in(tx, path, exact)?,
        }
        .map(|w| w.decay);
        let req = BanRequest {
            initial_count: ban.initial_count,
            decay: ban.decay,
            reason: reasons[ban.reason],
        };
        let outcome = apply_ban(records.get(&key), white, &req, now, model)?;
        if outcome.kind != BanKind::Whitelisted {
            if let Some(rec) = outcome.record {
                records.insert(key, rec);
                if seen.insert(key) {
                    written.push(key);
                }
            }
        }
        reports.push(BanEffect {
            key,
            reason: req.reason,
            outcome,
        });
    }
    put_records(tx, &records, &written)?;
    Ok(reports)
}
