//! The `Store` trait: what judge, parse and admin need from a database, whatever the engine.
//!
//! An engine implements [`StorageEngine`] (open, transactions, maintenance, size). Every operation with
//! meaning is a provided method of the sealed [`Store`] over the key-value traits, so it is written,
//! and tested, once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipqbdb_core::model::merge_records;
use ipqbdb_core::report::{utc_day, ReportState};
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
/// Version 2 keys whitelist ranges by span class (see [`white_key`]).
const FORMAT_VERSION: &[u8] = b"ipqbdb-2";
/// Version 1 keyed whitelist ranges by start and end alone; [`ensure_format`] migrates it.
const FORMAT_V1: &[u8] = b"ipqbdb-1";
/// Meta key of the IPv6 prefix every program must ban and look up by (ASCII decimal).
const PREFIX_KEY: &[u8] = b"setting:ipv6-prefix";
/// Meta key of the reports started on one UTC day: the day (i64 BE) then the count (u32 BE).
const REPORT_DAY_KEY: &[u8] = b"report:day";

/// How a store is opened and how it applies the model.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the directory and database when missing. Read-only tools turn this off so that a typo in
    /// a path is an error rather than a new empty database.
    pub create: bool,
    /// With several backends compiled in: the engine for a new directory (an existing one says its own).
    pub backend: Option<Backend>,
    /// The IPv6 prefix this program was configured with, if it was. A new database stores it (or the
    /// default); an existing one keeps its own, and a different value here is
    /// [`StoreError::PrefixMismatch`]. `None` takes whatever the database says.
    pub v6_prefix: Option<V6Prefix>,
    pub model: ModelParams,
    /// The server of the `postgres` engine; the other engines ignore it.
    pub server: Option<crate::server::ServerOptions>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: true,
            backend: None,
            v6_prefix: None,
            model: ModelParams::default(),
            server: None,
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
pub struct BanEffect {
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

impl ReasonStats {
    /// Bans of live and deleted records, saturating: counters are read from a database, where any value
    /// may be stored, and a total must never wrap or panic.
    pub fn total_caught(&self) -> u64 {
        self.reason.caught.saturating_add(self.live_caught)
    }

    /// Blocked packets of live and deleted records, saturating like [`ReasonStats::total_caught`].
    pub fn total_blocked(&self) -> u64 {
        self.reason.blocked.saturating_add(self.live_blocked)
    }
}

/// What [`Store::set_v6_prefix`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixChange {
    pub old: V6Prefix,
    pub new: V6Prefix,
    /// IPv6 records that moved to a new key.
    pub moved: u64,
    /// IPv6 records merged into another one that took the same key.
    pub merged: u64,
}

/// A banned address whose reason has a report category, with what a reporter needs to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportCandidate {
    pub key: AddrKey,
    pub record: Record,
    pub reason: Reason,
    /// The latest report attempt for this key, if any.
    pub state: Option<ReportState>,
    /// Whether a whitelist range holds the address (whatever its decay).
    pub whitelisted: bool,
}

/// What [`Store::report_begin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportBegin {
    /// The attempt is recorded as [`ipqbdb_core::report::ReportKind::Sent`] and counted in the
    /// day's quota: send it now.
    Started,
    /// What the caller selected the key by no longer holds: another reporter took it or recorded
    /// something meanwhile, or the address was whitelisted, deleted or banned again (a new ban
    /// time) since the candidates were read. Do not send.
    Changed,
    /// The day's quota is used up: nothing was recorded.
    QuotaExhausted { used: u32 },
}

/// Where a store lives and how it was opened: the same for every engine.
#[derive(Debug, Clone)]
pub struct Location {
    /// The database directory.
    pub dir: PathBuf,
    /// The engine's main file or directory inside it, named in error messages.
    pub path: PathBuf,
    pub opts: OpenOptions,
    /// The IPv6 prefix found (or stored) at open. Operations read the stored one inside their own
    /// transaction, so a change by `ibd config --set-ipv6-prefix` takes effect in running programs
    /// at once; this value stands in only where the database has none (an old database opened by a
    /// program that does not write).
    pub v6_prefix: V6Prefix,
}

impl Location {
    pub(crate) fn new(dir: &Path, path: &Path, opts: &OpenOptions) -> Self {
        Location {
            dir: dir.to_path_buf(),
            path: path.to_path_buf(),
            opts: opts.clone(),
            v6_prefix: opts.v6_prefix.unwrap_or_default(),
        }
    }
}

/// What differs from one engine to the next, and nothing else: an engine implements this, and
/// every [`Store`] operation comes with it, written once over the key-value transactions.
/// Batched reads and writes are the transactions' `get_many`/`put_many`, which an engine
/// overrides when one round trip can serve many keys.
pub trait StorageEngine: Send + Sync + Sized {
    /// Opens (and with `opts.create`, creates) the database in `dir`.
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self>;
    /// Its name: the engine of the database directory.
    fn backend(&self) -> Backend;
    fn location(&self) -> &Location;
    /// Runs `f` on a consistent snapshot.
    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R>;
    /// Runs `f` in one write transaction, committed durably when `f` succeeds and rolled back when it
    /// fails. `f` may run more than once if the engine must retry.
    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R>;
    /// Housekeeping that long-running daemons call now and then: stale LMDB readers, SQLite WAL
    /// checkpoints.
    fn maintenance(&self) -> Result<()>;
    /// Bytes the database occupies on disk.
    fn disk_size(&self) -> Result<u64>;
}

/// Keeps [`Store`] implemented only by the blanket impl over [`StorageEngine`], so no engine can
/// override the semantics.
mod sealed {
    pub trait Sealed {}
    impl<E: super::StorageEngine> Sealed for E {}
}

/// What judge, parse and admin need from a database, whatever the engine. Every engine has it
/// through [`StorageEngine`]; the first seven methods are the engine's own.
pub trait Store: sealed::Sealed + Send + Sync + Sized {
    /// Opens (and with `opts.create`, creates) the database in `dir`.
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self>;
    fn backend(&self) -> Backend;
    fn location(&self) -> &Location;
    /// Runs `f` on a consistent snapshot.
    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R>;
    /// Runs `f` in one write transaction, committed durably when `f` succeeds and rolled back when it
    /// fails. `f` may run more than once if the backend must retry.
    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R>;
    /// See [`StorageEngine::maintenance`].
    fn maintenance(&self) -> Result<()>;
    /// Bytes the database occupies on disk.
    fn disk_size(&self) -> Result<u64>;

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

    /// Bans one address, atomically (read, model, write in one transaction).
    fn ban(&self, ban: &Ban<'_>, now: UnixTime) -> Result<BanEffect> {
        let mut reports = self.ban_batch(std::slice::from_ref(ban), now)?;
        Ok(reports.remove(0))
    }

    /// Bans several addresses in one durable transaction: how the parser keeps up with a log burst.
    fn ban_batch(&self, bans: &[Ban<'_>], now: UnixTime) -> Result<Vec<BanEffect>> {
        self.ban_batch_noting(bans, now, &[])
    }

    /// [`Store::ban_batch`] that also records `notes` (see [`Store::note`]) in the same transaction.
    /// The parser notes how far it read each log there, so a crash can neither lose nor repeat a ban.
    fn ban_batch_noting(
        &self,
        bans: &[Ban<'_>],
        now: UnixTime,
        notes: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Vec<BanEffect>> {
        let path = self.engine_path();
        let model = self.options().model;
        let fallback = self.location().v6_prefix;
        self.write(&mut |tx| {
            let prefix = prefix_in(tx, path, fallback)?;
            let reports = ban_many_in(tx, path, prefix, &model, bans, now)?;
            let notes: Vec<(Vec<u8>, &[u8])> =
                notes.iter().map(|(k, v)| (note_key(k), &v[..])).collect();
            let notes: Vec<(&[u8], &[u8])> = notes.iter().map(|(k, v)| (&k[..], *v)).collect();
            tx.put_many(Table::Meta, &notes)?;
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
        let fallback = self.location().v6_prefix;
        self.read(&mut |tx| {
            let prefix = prefix_in(tx, path, fallback)?;
            f(&Snapshot { tx, path, prefix })
        })
    }

    /// The IPv6 prefix bans and lookups use: the database's own.
    fn v6_prefix(&self) -> Result<V6Prefix> {
        let path = self.engine_path();
        let fallback = self.location().v6_prefix;
        self.read(&mut |tx| prefix_in(tx, path, fallback))
    }

    /// Changes the database's IPv6 prefix, rewriting every IPv6 record under its new key, in one
    /// transaction. Records that fall under one key are merged ([`merge_records`]: the higher
    /// current probability at `now` wins, counters add up). A longer prefix keeps each record at its
    /// old network address, which is the first of the narrower networks it covered.
    fn set_v6_prefix(&self, new: V6Prefix, now: UnixTime) -> Result<PrefixChange> {
        let path = self.engine_path();
        let fallback = self.location().v6_prefix;
        self.write(&mut |tx| {
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

    /// Adds the judge's block counters in one transaction. Records deleted meanwhile are skipped.
    fn add_blocked(&self, counts: &[(AddrKey, u64)]) -> Result<()> {
        let path = self.engine_path();
        self.write(&mut |tx| {
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
        self.delete_selected(&[range], None, 0)
    }

    /// Deletes the records within any of `ranges` that were not updated for `min_age` seconds (every
    /// one without it), crediting their counters to their reasons, and returns them. Choosing and
    /// deleting are one write transaction, so a record banned meanwhile is never deleted: the rule of
    /// `ibd del --min-time` holds under concurrent bans.
    fn delete_selected(
        &self,
        ranges: &[AddrRange],
        min_age: Option<u32>,
        now: UnixTime,
    ) -> Result<Vec<(AddrKey, Record)>> {
        let path = self.engine_path();
        self.write(&mut |tx| {
            let mut keys = BTreeSet::new();
            for &range in ranges {
                scan_records(tx, path, Some(range), &mut |k, r| {
                    if min_age
                        .is_none_or(|t| ipqbdb_core::retention::is_stale(r.last_update, now, t))
                    {
                        keys.insert(k);
                    }
                    Ok(true)
                })?;
            }
            delete_in(tx, path, keys.iter().copied())
        })
    }

    /// The retention rule (`ipqbdb_core::retention`): delete records not updated for `min_age` seconds,
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
                tx.put(Table::White, &white_key(e.range), &e.decay.to_be_bytes())?;
            }
            Ok(())
        })
    }

    fn white_remove(&self, range: AddrRange) -> Result<bool> {
        self.write(&mut |tx| tx.delete(Table::White, &white_key(range)))
    }

    /// The whitelist in range order.
    fn white_list(&self) -> Result<Vec<WhiteEntry>> {
        let path = self.engine_path();
        let mut out = self.read(&mut |tx| {
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
                    s.live_caught = s.live_caught.saturating_add(r.caught);
                    s.live_blocked = s.live_blocked.saturating_add(r.blocked);
                }
                Ok(true)
            })?;
            Ok(stats)
        })
    }

    /// The records last banned at or after `since` whose reason has a category, with their report
    /// state and whitelist status, from one snapshot.
    fn report_candidates(&self, since: UnixTime) -> Result<Vec<ReportCandidate>> {
        let path = self.engine_path();
        self.read(&mut |tx| {
            let mut reasons: HashMap<ReasonId, Option<Reason>> = HashMap::new();
            let mut found = Vec::new();
            scan_records(tx, path, None, &mut |key, rec| {
                if rec.last_update < since {
                    return Ok(true);
                }
                let reason = match reasons.get(&rec.reason) {
                    Some(r) => r.clone(),
                    None => {
                        let r = get_reason(tx, path, rec.reason)?.filter(|r| r.category != 0);
                        reasons.insert(rec.reason, r.clone());
                        r
                    }
                };
                if let Some(reason) = reason {
                    found.push((key, *rec, reason));
                }
                Ok(true)
            })?;
            let mut out = Vec::with_capacity(found.len());
            for (key, record, reason) in found {
                out.push(ReportCandidate {
                    key,
                    record,
                    reason,
                    state: get_report_state(tx, path, key)?,
                    whitelisted: white_lookup_in(tx, path, key)?.is_some(),
                });
            }
            Ok(out)
        })
    }

    /// Starts a report attempt for `key` in one transaction, if its state is still `expected` (what
    /// the caller selected it by), its record still holds the ban of `started.ban_time`, no
    /// whitelist range holds it, and the day's quota (`None`: no limit) allows: records
    /// `started` (a [`ipqbdb_core::report::ReportKind::Sent`] state) and counts it for the UTC day
    /// of `started.at`. The caller sends the request only after this committed, so a crash leaves
    /// the attempt visible as sent, never sent twice.
    fn report_begin(
        &self,
        key: AddrKey,
        expected: Option<ReportState>,
        started: ReportState,
        quota: Option<u32>,
    ) -> Result<ReportBegin> {
        let path = self.engine_path();
        self.write(&mut |tx| {
            // A pass reads its candidates once and reports them one by one: what an operator did
            // meanwhile (`ibd white`, `ibd del`) must still stop the report, so it is read again
            // in the transaction that decides.
            let same_ban =
                get_record(tx, path, key)?.is_some_and(|r| r.last_update == started.ban_time);
            if get_report_state(tx, path, key)? != expected
                || !same_ban
                || white_lookup_in(tx, path, key)?.is_some()
            {
                return Ok(ReportBegin::Changed);
            }
            let day = utc_day(started.at);
            let used = report_day_count(tx, path, day)?;
            if quota.is_some_and(|q| used >= q) {
                return Ok(ReportBegin::QuotaExhausted { used });
            }
            let mut count = [0u8; 12];
            count[..8].copy_from_slice(&day.to_be_bytes());
            count[8..].copy_from_slice(&used.saturating_add(1).to_be_bytes());
            tx.put(Table::Meta, REPORT_DAY_KEY, &count)?;
            tx.put(Table::Report, &key.to_bytes(), &started.encode())?;
            Ok(ReportBegin::Started)
        })
    }

    /// Records the outcome of an attempt (or forgets it, with `None`: a request that never left,
    /// so the address stays due).
    fn report_finish(&self, key: AddrKey, state: Option<ReportState>) -> Result<()> {
        self.write(&mut |tx| {
            match state {
                Some(s) => tx.put(Table::Report, &key.to_bytes(), &s.encode())?,
                None => {
                    tx.delete(Table::Report, &key.to_bytes())?;
                }
            }
            Ok(())
        })
    }

    /// Every key's latest report attempt, in address order.
    fn report_states(&self) -> Result<Vec<(AddrKey, ReportState)>> {
        let path = self.engine_path();
        self.read(&mut |tx| {
            let mut out = Vec::new();
            tx.scan(Table::Report, &[], Direction::Forward, &mut |k, v| {
                out.push(decode_report_state(path, k, v)?);
                Ok(true)
            })?;
            Ok(out)
        })
    }

    /// Reports started on the UTC day of `now`.
    fn report_quota_used(&self, now: UnixTime) -> Result<u32> {
        let path = self.engine_path();
        self.read(&mut |tx| report_day_count(tx, path, utc_day(now)))
    }

    /// Forgets the attempts started before `before`, in one transaction; returns how many. A reporter
    /// calls it with a time before both its cooldown and the oldest ban it would still report, so a
    /// forgotten attempt can be neither repeated nor shorten a cooldown.
    ///
    /// It writes only when there is something to forget: a reporter calls it at every pass, and an
    /// empty commit would still take the writer from the parser.
    fn report_prune(&self, before: UnixTime) -> Result<u64> {
        let path = self.engine_path();
        let old = |tx: &dyn ReadTx| -> Result<Vec<AddrKey>> {
            let mut old = Vec::new();
            tx.scan(Table::Report, &[], Direction::Forward, &mut |k, v| {
                let (key, state) = decode_report_state(path, k, v)?;
                if state.at < before {
                    old.push(key);
                }
                Ok(true)
            })?;
            Ok(old)
        };
        if self.read(&mut |tx| old(tx))?.is_empty() {
            return Ok(0);
        }
        self.write(&mut |tx| {
            let old = old(&*tx)?;
            for key in &old {
                tx.delete(Table::Report, &key.to_bytes())?;
            }
            Ok(old.len() as u64)
        })
    }
}

impl<E: StorageEngine> Store for E {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        <E as StorageEngine>::open(dir, opts)
    }
    fn backend(&self) -> Backend {
        StorageEngine::backend(self)
    }
    fn location(&self) -> &Location {
        StorageEngine::location(self)
    }
    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        StorageEngine::read(self, f)
    }
    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        StorageEngine::write(self, f)
    }
    fn maintenance(&self) -> Result<()> {
        StorageEngine::maintenance(self)
    }
    fn disk_size(&self) -> Result<u64> {
        StorageEngine::disk_size(self)
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

/// Refuses a database of another format, writes the format marker and the IPv6 prefix into a new
/// one, migrates a version-1 database, and returns the database's IPv6 prefix. Backends call it at
/// the end of `open` and keep the result in [`Location::v6_prefix`]. It only reads when all is in
/// place, so a short-lived program such as `ibd ban` pays no extra commit for opening.
///
/// A database without a stored prefix (made before the prefix was stored) adopts the configured or
/// default one when a writer (`opts.create`) opens it; until then readers use their own.
pub(crate) fn ensure_format<S: Store>(store: &S) -> Result<V6Prefix> {
    let path = store.engine_path();
    let opts = store.options();
    let given = opts.v6_prefix.unwrap_or_default();
    let (format, stored) =
        store.read(&mut |tx| Ok((check_format(tx, path)?, stored_prefix(tx, path)?)))?;
    let prefix = match (format, stored) {
        (Format::Current, Some(p)) => p,
        (Format::Current, None) if !opts.create => given,
        _ => store.write(&mut |tx| {
            let format = check_format(tx, path)?;
            if format == Format::V1 {
                migrate_white_v1(tx, path)?;
            }
            if format != Format::Current {
                tx.put(Table::Meta, FORMAT_KEY, FORMAT_VERSION)?;
            }
            match stored_prefix(tx, path)? {
                Some(p) => Ok(p),
                None => {
                    if opts.create || format == Format::Missing {
                        tx.put(Table::Meta, PREFIX_KEY, given.bits().to_string().as_bytes())?;
                    }
                    Ok(given)
                }
            }
        })?,
    };
    match opts.v6_prefix {
        Some(g) if g != prefix => Err(StoreError::PrefixMismatch {
            dir: store.dir().to_path_buf(),
            stored: prefix.bits(),
            given: g.bits(),
        }),
        _ => Ok(prefix),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Missing,
    V1,
    Current,
}

/// The format of the database; an error for a format this program does not know.
fn check_format(tx: &dyn ReadTx, path: &Path) -> Result<Format> {
    match tx.get(Table::Meta, FORMAT_KEY)? {
        None => Ok(Format::Missing),
        Some(v) if v == FORMAT_VERSION => Ok(Format::Current),
        Some(v) if v == FORMAT_V1 => Ok(Format::V1),
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

/// Rewrites version-1 whitelist keys (start ++ end) as [`white_key`]s.
fn migrate_white_v1(tx: &mut dyn WriteTx, path: &Path) -> Result<()> {
    let mut old = Vec::new();
    tx.scan(Table::White, &[], Direction::Forward, &mut |k, v| {
        if k.len() == AddrRange::LEN {
            old.push((k.to_vec(), v.to_vec()));
        }
        Ok(true)
    })?;
    for (k, v) in old {
        let range =
            AddrRange::from_bytes(&k).ok_or_else(|| corrupt(path, "a bad whitelist key"))?;
        tx.delete(Table::White, &k)?;
        tx.put(Table::White, &white_key(range), &v)?;
    }
    Ok(())
}

/// The stored IPv6 prefix, if the database has one.
fn stored_prefix(tx: &dyn ReadTx, path: &Path) -> Result<Option<V6Prefix>> {
    let Some(v) = tx.get(Table::Meta, PREFIX_KEY)? else {
        return Ok(None);
    };
    std::str::from_utf8(&v)
        .ok()
        .and_then(|t| t.parse().ok())
        .and_then(|bits| V6Prefix::new(bits).ok())
        .map(Some)
        .ok_or_else(|| {
            corrupt(
                path,
                format!("ipv6-prefix {:?}", String::from_utf8_lossy(&v)),
            )
        })
}

/// The prefix an operation uses, read in its own transaction; `fallback` where none is stored.
fn prefix_in(tx: &dyn ReadTx, path: &Path, fallback: V6Prefix) -> Result<V6Prefix> {
    Ok(stored_prefix(tx, path)?.unwrap_or(fallback))
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
fn white_key(range: AddrRange) -> [u8; 1 + AddrRange::LEN] {
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

fn decode_report_state(path: &Path, k: &[u8], v: &[u8]) -> Result<(AddrKey, ReportState)> {
    let key = AddrKey::from_bytes(k).ok_or_else(|| corrupt(path, "a report key of bad length"))?;
    let state = ReportState::decode(v)
        .ok_or_else(|| corrupt(path, format!("an unreadable report state for {key}")))?;
    Ok((key, state))
}

fn get_report_state(tx: &dyn ReadTx, path: &Path, key: AddrKey) -> Result<Option<ReportState>> {
    let bytes = key.to_bytes();
    match tx.get(Table::Report, &bytes)? {
        Some(v) => Ok(Some(decode_report_state(path, &bytes, &v)?.1)),
        None => Ok(None),
    }
}

/// Reports started on UTC day `day` (0 when the stored count is of another day).
fn report_day_count(tx: &dyn ReadTx, path: &Path, day: i64) -> Result<u32> {
    let Some(v) = tx.get(Table::Meta, REPORT_DAY_KEY)? else {
        return Ok(0);
    };
    if v.len() != 12 {
        return Err(corrupt(path, "a report day count of bad length"));
    }
    let stored = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
    Ok(if stored == day {
        u32::from_be_bytes(v[8..].try_into().expect("4 bytes"))
    } else {
        0
    })
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

/// The narrowest whitelist range containing `addr`.
///
/// Keys are span class, start, end ([`white_key`]). Classes are visited narrowest first, and only
/// those holding a range (a forward seek finds the next one), so the first class with a containing
/// range holds the answer. Within class `c` a containing range starts in `[addr - (2^c - 1), addr]`,
/// so one backward seek from `addr` reads only the ranges starting in that window: for ranges of one
/// class that do not overlap, at most two. A lookup costs two seeks per occupied class, whatever the
/// size of the whitelist; before, an address in no range read every range starting below it.
/// Among containing ranges of equal span, the one starting last wins.
fn white_lookup_in(tx: &dyn ReadTx, path: &Path, addr: AddrKey) -> Result<Option<WhiteEntry>> {
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

/// The records of `keys` (16-byte block keys) that exist, read at once ([`ReadTx::get_many`]).
fn get_records(
    tx: &dyn ReadTx,
    path: &Path,
    keys: &[[u8; 16]],
) -> Result<HashMap<AddrKey, Record>> {
    let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
    let mut out = HashMap::with_capacity(keys.len());
    for (k, v) in keys.iter().zip(tx.get_many(Table::Block, &refs)?) {
        if let Some(v) = v {
            let (key, rec) = decode_record(path, k, &v)?;
            out.insert(key, rec);
        }
    }
    Ok(out)
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
/// records are read with one [`ReadTx::get_many`], the whitelist once when small, and the results
/// written with one [`WriteTx::put_many`]. An address banned twice in the batch sees its first
/// ban's result, as it would one by one.
fn ban_many_in(
    tx: &mut dyn WriteTx,
    path: &Path,
    prefix: V6Prefix,
    model: &ModelParams,
    bans: &[Ban<'_>],
    now: UnixTime,
) -> Result<Vec<BanEffect>> {
    let mut reasons: HashMap<&str, ReasonId> = HashMap::new();
    for ban in bans {
        if !reasons.contains_key(ban.reason) {
            reasons.insert(ban.reason, reason_id_in(tx, path, ban.reason)?);
        }
    }
    let keys: Vec<AddrKey> = bans.iter().map(|b| AddrKey::banned(b.ip, prefix)).collect();
    let bytes: Vec<[u8; 16]> = keys.iter().map(|k| k.to_bytes()).collect();
    let mut records = get_records(tx, path, &bytes)?;
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

/// Writes the records of `keys` (each a key of `records`) in one [`WriteTx::put_many`].
fn put_records(
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
