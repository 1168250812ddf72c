//! The `Store` trait: what judge, parse and admin need from a database, whatever the engine.
//!
//! A backend implements the required methods (open, transactions, maintenance). Every operation with
//! meaning is a provided method over the key-value traits, so it is written, and tested, once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipqbdb_core::{
    apply_ban, AddrKey, AddrRange, BanKind, BanOutcome, BanRequest, ModelParams, Reason, ReasonId,
    Record, UnixTime, V6Prefix,
};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, WriteTx};

/// Longest reason text: LMDB keys are limited to 511 bytes and the text is a key of the reason index.
pub const MAX_REASON_LEN: usize = 400;

const FORMAT_KEY: &[u8] = b"format";
const FORMAT_VERSION: &[u8] = b"ipqbdb-1";

/// How a store is opened and how it applies the model.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the directory and database when missing. Read-only tools turn this off so that a typo in
    /// a path is an error rather than a new empty database.
    pub create: bool,
    /// With several backends compiled in: the engine for a new directory (an existing one says its own).
    pub backend: Option<Backend>,
    pub v6_prefix: V6Prefix,
    pub model: ModelParams,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: true,
            backend: None,
            v6_prefix: V6Prefix::default(),
            model: ModelParams::default(),
        }
    }
}

/// One ban to apply.
#[derive(Debug, Clone, Copy)]
pub struct Ban<'a> {
    pub ip: IpAddr,
    pub reason: &'a str,
    pub initial_count: u8,
    /// The rule's or command's decay; `None` for the default.
    pub decay: Option<u32>,
}

/// What one ban did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanReport {
    /// The key the ban applied to (an IPv6 address masked to its prefix).
    pub key: AddrKey,
    pub reason: ReasonId,
    pub outcome: BanOutcome,
}

/// A whitelist entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhiteEntry {
    pub range: AddrRange,
    pub decay: u32,
}

/// A reason with the counters of its live records beside those credited by deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonStats {
    pub reason: Reason,
    pub live_records: u64,
    pub live_caught: u64,
    pub live_blocked: u64,
}

/// Where a store lives and how it was opened: the same for every engine.
#[derive(Debug, Clone)]
pub struct Location {
    /// The database directory.
    pub dir: PathBuf,
    /// The engine's main file or directory inside it, named in error messages.
    pub path: PathBuf,
    pub opts: OpenOptions,
}

pub trait Store: Send + Sync + Sized {
    /// Opens (and with `opts.create`, creates) the database in `dir`.
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self>;
    fn backend(&self) -> Backend;
    fn location(&self) -> &Location;

    fn dir(&self) -> &Path {
        &self.location().dir
    }

    fn options(&self) -> &OpenOptions {
        &self.location().opts
    }

    /// The engine's main file or directory, named in error messages.
    fn engine_path(&self) -> &Path {
        &self.location().path
    }

    /// Runs `f` on a consistent snapshot.
    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R>;
    /// Runs `f` in one write transaction, committed durably when `f` succeeds and rolled back when it
    /// fails. `f` may run more than once if the backend must retry.
    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R>;
    /// Housekeeping that long-running daemons call now and then: stale LMDB readers, SQLite WAL
    /// checkpoints.
    fn maintenance(&self) -> Result<()>;
    /// Bytes the database occupies on disk.
    fn disk_size(&self) -> Result<u64>;

    /// Bans one address, atomically (read, model, write in one transaction).
    fn ban(&self, ban: &Ban<'_>, now: UnixTime) -> Result<BanReport> {
        let mut reports = self.ban_batch(std::slice::from_ref(ban), now)?;
        Ok(reports.remove(0))
    }

    /// Bans several addresses in one durable transaction: how the parser keeps up with a log burst.
    fn ban_batch(&self, bans: &[Ban<'_>], now: UnixTime) -> Result<Vec<BanReport>> {
        self.ban_batch_noting(bans, now, &[])
    }

    /// [`Store::ban_batch`] that also records `notes` (see [`Store::note`]) in the same transaction.
    /// The parser notes how far it read each log there, so a crash can neither lose nor repeat a ban.
    fn ban_batch_noting(
        &self,
        bans: &[Ban<'_>],
        now: UnixTime,
        notes: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<BanReport>> {
        let path = self.engine_path();
        let opts = self.options().clone();
        self.write(&mut |tx| {
            let mut reports = Vec::with_capacity(bans.len());
            for ban in bans {
                reports.push(ban_in(tx, path, &opts, ban, now)?);
            }
            for (key, value) in notes {
                tx.put(Table::Meta, &note_key(key), value)?;
            }
            Ok(reports)
        })
    }

    /// A program's own small state kept in the database (e.g. log read positions).
    fn note(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.read(&mut |tx| tx.get(Table::Meta, &note_key(key)))
    }

    fn lookup(&self, key: AddrKey) -> Result<Option<Record>> {
        let path = self.engine_path();
        self.read(&mut |tx| get_record(tx, path, key))
    }

    /// Looks up what a verdict needs for `ip`: its record and its whitelist decay.
    fn verdict_state(&self, ip: IpAddr) -> Result<(Option<Record>, Option<u32>)> {
        self.with_snapshot(&mut |snap| snap.verdict_state(ip).map(|(_, rec, white)| (rec, white)))
    }

    /// Runs `f` with one consistent snapshot for many verdict lookups: the judge holds one for a
    /// bounded time instead of paying a transaction per packet.
    fn with_snapshot<R>(&self, f: &mut dyn FnMut(&Snapshot<'_>) -> Result<R>) -> Result<R> {
        let path = self.engine_path();
        let prefix = self.options().v6_prefix;
        self.read(&mut |tx| f(&Snapshot { tx, path, prefix }))
    }

    /// Adds the judge's block counters in one transaction. Records deleted meanwhile are skipped.
    fn add_blocked(&self, counts: &[(AddrKey, u64)]) -> Result<()> {
        let path = self.engine_path();
        self.write(&mut |tx| {
            for &(key, n) in counts {
                if let Some(mut rec) = get_record(tx, path, key)? {
                    rec.blocked = rec.blocked.saturating_add(n);
                    tx.put(Table::Block, &key.to_bytes(), &rec.encode())?;
                }
            }
            Ok(())
        })
    }

    fn record_count(&self) -> Result<u64> {
        self.read(&mut |tx| tx.len(Table::Block))
    }

    /// Visits records in address order, within `range` if given, until `visit` returns false.
    fn for_each_record(
        &self,
        range: Option<AddrRange>,
        visit: &mut dyn FnMut(AddrKey, &Record) -> bool,
    ) -> Result<()> {
        let path = self.engine_path();
        self.read(&mut |tx| scan_records(tx, path, range, &mut |k, r| Ok(visit(k, r))))
    }

    fn list_records(&self, range: Option<AddrRange>) -> Result<Vec<(AddrKey, Record)>> {
        let mut out = Vec::new();
        self.for_each_record(range, &mut |k, r| {
            out.push((k, *r));
            true
        })?;
        Ok(out)
    }

    /// Deletes the records of `keys`, crediting their counters to their reasons. Returns the records
    /// that existed, as they were when deleted.
    fn delete_records(&self, keys: &[AddrKey]) -> Result<Vec<(AddrKey, Record)>> {
        let path = self.engine_path();
        self.write(&mut |tx| delete_in(tx, path, keys.iter().copied()))
    }

    /// Deletes every record within `range`, returning them.
    fn delete_range(&self, range: AddrRange) -> Result<Vec<(AddrKey, Record)>> {
        let path = self.engine_path();
        self.write(&mut |tx| {
            let mut keys = Vec::new();
            scan_records(tx, path, Some(range), &mut |k, _| {
                keys.push(k);
                Ok(true)
            })?;
            delete_in(tx, path, keys.into_iter())
        })
    }

    /// The retention rule (DESIGN.md section 4): delete records not updated for `min_age` seconds,
    /// and with `max_records` only the oldest of them, just enough to leave that many. Returns the
    /// deleted records.
    fn retain(
        &self,
        min_age: u32,
        max_records: Option<u64>,
        now: UnixTime,
    ) -> Result<Vec<(AddrKey, Record)>> {
        let path = self.engine_path();
        self.write(&mut |tx| {
            let mut total = 0u64;
            let mut stale = Vec::new();
            scan_records(tx, path, None, &mut |k, r| {
                total += 1;
                if ipqbdb_core::retention::is_stale(r.last_update, now, min_age) {
                    stale.push((r.last_update, k));
                }
                Ok(true)
            })?;
            let quota =
                ipqbdb_core::retention::retention_quota(total, stale.len() as u64, max_records);
            stale.sort_unstable();
            let doomed = stale.iter().take(quota as usize).map(|&(_, k)| k);
            delete_in(tx, path, doomed)
        })
    }

    /// Adds or replaces whitelist ranges, in one transaction.
    fn white_set(&self, entries: &[WhiteEntry]) -> Result<()> {
        self.write(&mut |tx| {
            for e in entries {
                tx.put(Table::White, &e.range.to_bytes(), &e.decay.to_be_bytes())?;
            }
            Ok(())
        })
    }

    fn white_remove(&self, range: AddrRange) -> Result<bool> {
        self.write(&mut |tx| tx.delete(Table::White, &range.to_bytes()))
    }

    fn white_list(&self) -> Result<Vec<WhiteEntry>> {
        let path = self.engine_path();
        self.read(&mut |tx| {
            let mut out = Vec::new();
            tx.scan(Table::White, &[], Direction::Forward, &mut |k, v| {
                out.push(decode_white(path, k, v)?);
                Ok(true)
            })?;
            Ok(out)
        })
    }

    /// The narrowest whitelist range containing `addr` (an exact, unmasked key).
    fn white_lookup(&self, addr: AddrKey) -> Result<Option<WhiteEntry>> {
        let path = self.engine_path();
        self.read(&mut |tx| white_lookup_in(tx, path, addr))
    }

    /// The id of the reason with this text, inserting it if new.
    fn reason_id(&self, text: &str) -> Result<ReasonId> {
        let path = self.engine_path();
        self.write(&mut |tx| reason_id_in(tx, path, text))
    }

    /// Finds a reason by text without creating it.
    fn find_reason(&self, text: &str) -> Result<Option<Reason>> {
        let path = self.engine_path();
        self.read(
            &mut |tx| match tx.get(Table::ReasonText, text.as_bytes())? {
                Some(v) => get_reason(tx, path, decode_id(path, &v)?),
                None => Ok(None),
            },
        )
    }

    fn reason(&self, id: ReasonId) -> Result<Option<Reason>> {
        let path = self.engine_path();
        self.read(&mut |tx| get_reason(tx, path, id))
    }

    /// Sets (1..=255) or clears (0) a reason's report category.
    fn set_category(&self, id: ReasonId, category: u8) -> Result<Reason> {
        let path = self.engine_path();
        self.write(&mut |tx| {
            let mut reason = get_reason(tx, path, id)?.ok_or(StoreError::NoSuchReason(id))?;
            reason.category = category;
            tx.put(Table::Reason, &id.to_be_bytes(), &reason.encode_value())?;
            Ok(reason)
        })
    }

    fn reasons(&self) -> Result<Vec<Reason>> {
        let path = self.engine_path();
        self.read(&mut |tx| all_reasons(tx, path))
    }

    /// Every reason with its credited counters and those of its live records, from one snapshot.
    fn reason_stats(&self) -> Result<Vec<ReasonStats>> {
        let path = self.engine_path();
        self.read(&mut |tx| {
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
                    s.live_caught += r.caught;
                    s.live_blocked += r.blocked;
                }
                Ok(true)
            })?;
            Ok(stats)
        })
    }
}

/// A read snapshot answering the judge's questions.
pub struct Snapshot<'a> {
    tx: &'a dyn ReadTx,
    path: &'a Path,
    prefix: V6Prefix,
}

impl Snapshot<'_> {
    /// The key `ip` is banned under, its record, and (when it has a record) its whitelist decay.
    pub fn verdict_state(&self, ip: IpAddr) -> Result<(AddrKey, Option<Record>, Option<u32>)> {
        let key = AddrKey::banned(ip, self.prefix);
        let rec = get_record(self.tx, self.path, key)?;
        let white = match rec {
            Some(_) => white_lookup_in(self.tx, self.path, AddrKey::exact(ip))?.map(|w| w.decay),
            None => None,
        };
        Ok((key, rec, white))
    }
}

/// Refuses a database of another format, and writes the format marker into a new one. Backends call
/// it at the end of `open`. It only reads when the marker is there, so a short-lived program such as
/// `ibd ban` pays no extra commit for opening.
pub(crate) fn ensure_format<S: Store>(store: &S) -> Result<()> {
    let path = store.engine_path();
    if store.read(&mut |tx| check_format(tx, path))? {
        return Ok(());
    }
    store.write(&mut |tx| {
        if !check_format(tx, path)? {
            tx.put(Table::Meta, FORMAT_KEY, FORMAT_VERSION)?;
        }
        Ok(())
    })
}

/// Whether the marker is present (and right); an error for another format.
fn check_format(tx: &dyn ReadTx, path: &Path) -> Result<bool> {
    match tx.get(Table::Meta, FORMAT_KEY)? {
        None => Ok(false),
        Some(v) if v == FORMAT_VERSION => Ok(true),
        Some(v) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "format {:?}, expected {:?}",
                String::from_utf8_lossy(&v),
                String::from_utf8_lossy(FORMAT_VERSION)
            ),
        }),
    }
}

/// Notes live in the meta table under their own prefix, apart from the format marker.
fn note_key(key: &[u8]) -> Vec<u8> {
    [&b"note:"[..], key].concat()
}

fn corrupt(path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn decode_record(path: &Path, key: &[u8], value: &[u8]) -> Result<(AddrKey, Record)> {
    let k = AddrKey::from_bytes(key).ok_or_else(|| corrupt(path, "a block key of bad length"))?;
    let r = Record::decode(value)
        .ok_or_else(|| corrupt(path, format!("an unreadable block record for {k}")))?;
    Ok((k, r))
}

fn decode_id(path: &Path, v: &[u8]) -> Result<ReasonId> {
    let arr: [u8; 4] = v
        .try_into()
        .map_err(|_| corrupt(path, "a reason id of bad length"))?;
    Ok(u32::from_be_bytes(arr))
}

fn decode_white(path: &Path, k: &[u8], v: &[u8]) -> Result<WhiteEntry> {
    let range = AddrRange::from_bytes(k).ok_or_else(|| corrupt(path, "a bad whitelist key"))?;
    let decay = decode_id(path, v).map_err(|_| corrupt(path, "a bad whitelist decay"))?;
    Ok(WhiteEntry { range, decay })
}

fn get_record(tx: &dyn ReadTx, path: &Path, key: AddrKey) -> Result<Option<Record>> {
    let bytes = key.to_bytes();
    match tx.get(Table::Block, &bytes)? {
        Some(v) => Ok(Some(decode_record(path, &bytes, &v)?.1)),
        None => Ok(None),
    }
}

fn get_reason(tx: &dyn ReadTx, path: &Path, id: ReasonId) -> Result<Option<Reason>> {
    match tx.get(Table::Reason, &id.to_be_bytes())? {
        Some(v) => Reason::decode_value(id, &v)
            .map(Some)
            .ok_or_else(|| corrupt(path, format!("an unreadable reason {id}"))),
        None => Ok(None),
    }
}

fn all_reasons(tx: &dyn ReadTx, path: &Path) -> Result<Vec<Reason>> {
    let mut out = Vec::new();
    tx.scan(Table::Reason, &[], Direction::Forward, &mut |k, v| {
        let id = decode_id(path, k)?;
        out.push(
            Reason::decode_value(id, v)
                .ok_or_else(|| corrupt(path, format!("an unreadable reason {id}")))?,
        );
        Ok(true)
    })?;
    Ok(out)
}

fn scan_records(
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

fn white_lookup_in(tx: &dyn ReadTx, path: &Path, addr: AddrKey) -> Result<Option<WhiteEntry>> {
    // Ranges are keyed by start, so every range that may contain `addr` starts at or before it. Walking
    // those backwards, a range starting further than the best span found so far cannot be narrower.
    let mut from = [0xffu8; AddrRange::LEN];
    from[..16].copy_from_slice(&addr.to_bytes());
    let mut best: Option<WhiteEntry> = None;
    tx.scan(Table::White, &from, Direction::Backward, &mut |k, v| {
        let entry = decode_white(path, k, v)?;
        let distance = addr.to_u128() - entry.range.start().to_u128();
        if best.is_some_and(|b| distance > b.range.span()) {
            return Ok(false);
        }
        if entry.range.contains(addr) && best.is_none_or(|b| entry.range.span() < b.range.span()) {
            best = Some(entry);
        }
        Ok(true)
    })?;
    Ok(best)
}

fn reason_id_in(tx: &mut dyn WriteTx, path: &Path, text: &str) -> Result<ReasonId> {
    if text.len() > MAX_REASON_LEN {
        return Err(StoreError::ReasonTooLong {
            len: text.len(),
            max: MAX_REASON_LEN,
        });
    }
    if let Some(v) = tx.get(Table::ReasonText, text.as_bytes())? {
        return decode_id(path, &v);
    }
    let mut last = 0;
    tx.scan(
        Table::Reason,
        &[0xff; 4],
        Direction::Backward,
        &mut |k, _| {
            last = decode_id(path, k)?;
            Ok(false)
        },
    )?;
    let id = last
        .checked_add(1)
        .ok_or_else(|| corrupt(path, "reason ids exhausted"))?;
    let reason = Reason {
        id,
        text: text.to_string(),
        category: 0,
        caught: 0,
        blocked: 0,
    };
    tx.put(Table::Reason, &id.to_be_bytes(), &reason.encode_value())?;
    tx.put(Table::ReasonText, text.as_bytes(), &id.to_be_bytes())?;
    Ok(id)
}

fn ban_in(
    tx: &mut dyn WriteTx,
    path: &Path,
    opts: &OpenOptions,
    ban: &Ban<'_>,
    now: UnixTime,
) -> Result<BanReport> {
    let key = AddrKey::banned(ban.ip, opts.v6_prefix);
    let reason = reason_id_in(tx, path, ban.reason)?;
    let existing = get_record(tx, path, key)?;
    let white = white_lookup_in(tx, path, AddrKey::exact(ban.ip))?.map(|w| w.decay);
    let req = BanRequest {
        initial_count: ban.initial_count,
        decay: ban.decay,
        reason,
    };
    let outcome = apply_ban(existing.as_ref(), white, &req, now, &opts.model);
    if outcome.kind != BanKind::Whitelisted {
        if let Some(rec) = &outcome.record {
            tx.put(Table::Block, &key.to_bytes(), &rec.encode())?;
        }
    }
    Ok(BanReport {
        key,
        reason,
        outcome,
    })
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
