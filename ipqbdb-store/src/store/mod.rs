//! The `Store` trait: what judge, parse and admin need from a database, whatever the engine.
//!
//! An engine implements [`StorageEngine`] (open, transactions, maintenance, size). Every operation with
//! meaning is a provided method of the sealed [`Store`] over the key-value traits, so it is written,
//! and tested, once. The trait is declared here; its methods' bodies live in a file per domain
//! (`bans`, `records`, `white`, `reasons`, `reports`, `prefix`, `format`).
//! The shared pieces have files of their own (`engine`: the seam an engine implements; `values`:
//! what the operations take and give; `snapshot`), which the domain files import, so that no
//! domain file needs this one.

use std::net::IpAddr;
use std::path::Path;

use ipqbdb_core::report::ReportState;
use ipqbdb_core::{AddrKey, AddrRange, Reason, ReasonId, Record, UnixTime, V6Prefix};

use crate::engines::Engine;
use crate::error::Result;
use crate::kv::{ReadTx, WriteTx};

mod bans;
mod engine;
mod format;
mod prefix;
mod reasons;
mod records;
mod reports;
mod snapshot;
mod values;
mod white;

pub use engine::{Location, OpenOptions, StorageEngine};
pub(crate) use engine::{Reads, Writes};
pub(crate) use format::ensure_format;
pub use snapshot::Snapshot;
pub use values::{
    Ban, BanEffect, PrefixChange, ReasonStats, ReportBegin, ReportCandidate, WhiteEntry,
    MAX_REASON_LEN,
};

/// The reading half of [`Store`] (its supertrait), and all of it a reader that cannot write has:
/// the postgres view ([`crate::ViewStore`]) and what the judge's packet threads hold
/// ([`crate::LocalReader`]). A write on them does not compile.
pub trait ReadStore: Reads + Sized {
    fn engine(&self) -> Engine;

    fn location(&self) -> &Location {
        self.place()
    }

    fn lookup(&self, key: AddrKey) -> Result<Option<Record>> {
        records::lookup(self, key)
    }

    /// Looks up what a verdict needs for `ip`: its record and its whitelist decay.
    fn verdict_state(&self, ip: IpAddr) -> Result<(Option<Record>, Option<u32>)> {
        self.with_snapshot(&mut |snap| snap.verdict_state(ip).map(|(_, rec, white)| (rec, white)))
    }

    /// Runs `f` with one consistent snapshot for many verdict lookups: the judge holds one for a
    /// bounded time instead of paying a transaction per packet.
    fn with_snapshot<R>(&self, f: &mut dyn FnMut(&Snapshot<'_>) -> Result<R>) -> Result<R> {
        snapshot::with_snapshot(self, f)
    }

    /// The IPv6 prefix bans and lookups use: the database's own.
    fn v6_prefix(&self) -> Result<V6Prefix> {
        prefix::v6_prefix(self)
    }

    fn record_count(&self) -> Result<u64> {
        records::record_count(self)
    }

    /// Visits records in address order, within `range` if given, until `visit` returns false.
    fn for_each_record(
        &self,
        range: Option<AddrRange>,
        visit: &mut dyn FnMut(AddrKey, &Record) -> bool,
    ) -> Result<()> {
        records::for_each_record(self, range, visit)
    }

    fn list_records(&self, range: Option<AddrRange>) -> Result<Vec<(AddrKey, Record)>> {
        records::list_records(self, range)
    }

    /// The whitelist in range order.
    fn white_list(&self) -> Result<Vec<WhiteEntry>> {
        white::white_list(self)
    }

    /// The narrowest whitelist range containing `addr` (an exact, unmasked key).
    fn white_lookup(&self, addr: AddrKey) -> Result<Option<WhiteEntry>> {
        white::white_lookup(self, addr)
    }
}

/// What judge, parse and admin need from a database, whatever the engine: the reads of
/// [`ReadStore`] and the writes. Every engine has it through [`StorageEngine`]; the first five
/// methods are the engine's own.
pub trait Store: ReadStore + Writes {
    /// Opens (and with `opts.create`, creates) the database in `dir`.
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self>;
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
        bans::ban_batch_noting(self, bans, now, notes)
    }

    /// A program's own small state kept in the database (e.g. log read positions).
    fn note(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        bans::note(self, key)
    }

    /// Changes the database's IPv6 prefix, rewriting every IPv6 record under its new key, in one
    /// transaction. Records that fall under one key are merged ([`merge_records`]: the higher
    /// current probability at `now` wins, counters add up). A longer prefix keeps each record at its
    /// old network address, which is the first of the narrower networks it covered.
    fn set_v6_prefix(&self, new: V6Prefix, now: UnixTime) -> Result<PrefixChange> {
        prefix::set_v6_prefix(self, new, now)
    }

    /// Adds the judge's block counters in one transaction. Records deleted meanwhile are skipped.
    fn add_blocked(&self, counts: &[(AddrKey, u64)]) -> Result<()> {
        records::add_blocked(self, counts)
    }

    /// Deletes the records of `keys`, crediting their counters to their reasons. Returns the records
    /// that existed, as they were when deleted.
    fn delete_records(&self, keys: &[AddrKey]) -> Result<Vec<(AddrKey, Record)>> {
        records::delete_records(self, keys)
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
        records::delete_selected(self, ranges, min_age, now)
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
        records::retain(self, min_age, max_records, now)
    }

    /// Adds or replaces whitelist ranges, in one transaction.
    fn white_set(&self, entries: &[WhiteEntry]) -> Result<()> {
        white::white_set(self, entries)
    }

    fn white_remove(&self, range: AddrRange) -> Result<bool> {
        white::white_remove(self, range)
    }

    /// The id of the reason with this text, inserting it if new.
    fn reason_id(&self, text: &str) -> Result<ReasonId> {
        reasons::reason_id(self, text)
    }

    /// Finds a reason by text without creating it.
    fn find_reason(&self, text: &str) -> Result<Option<Reason>> {
        reasons::find_reason(self, text)
    }

    fn reason(&self, id: ReasonId) -> Result<Option<Reason>> {
        reasons::reason(self, id)
    }

    /// Sets (1..=255) or clears (0) a reason's report category.
    fn set_category(&self, id: ReasonId, category: u8) -> Result<Reason> {
        reasons::set_category(self, id, category)
    }

    fn reasons(&self) -> Result<Vec<Reason>> {
        reasons::reasons(self)
    }

    /// Every reason with its credited counters and those of its live records, from one snapshot.
    fn reason_stats(&self) -> Result<Vec<ReasonStats>> {
        records::reason_stats(self)
    }

    /// The records last banned at or after `since` whose reason has a category, with their report
    /// state and whitelist status, from one snapshot.
    fn report_candidates(&self, since: UnixTime) -> Result<Vec<ReportCandidate>> {
        reports::report_candidates(self, since)
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
        reports::report_begin(self, key, expected, started, quota)
    }

    /// Records the outcome of an attempt (or forgets it, with `None`: a request that never left,
    /// so the address stays due).
    fn report_finish(&self, key: AddrKey, state: Option<ReportState>) -> Result<()> {
        reports::report_finish(self, key, state)
    }

    /// Every key's latest report attempt, in address order.
    fn report_states(&self) -> Result<Vec<(AddrKey, ReportState)>> {
        reports::report_states(self)
    }

    /// Reports started on the UTC day of `now`.
    fn report_quota_used(&self, now: UnixTime) -> Result<u32> {
        reports::report_quota_used(self, now)
    }

    /// Forgets the attempts started before `before`, in one transaction; returns how many. A reporter
    /// calls it with a time before both its cooldown and the oldest ban it would still report, so a
    /// forgotten attempt can be neither repeated nor shorten a cooldown.
    ///
    /// It writes only when there is something to forget: a reporter calls it at every pass, and an
    /// empty commit would still take the writer from the parser.
    fn report_prune(&self, before: UnixTime) -> Result<u64> {
        reports::report_prune(self, before)
    }
}

impl<E: StorageEngine> ReadStore for E {
    fn engine(&self) -> Engine {
        StorageEngine::engine(self)
    }
    fn location(&self) -> &Location {
        StorageEngine::location(self)
    }
}

impl<E: StorageEngine> Store for E {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        <E as StorageEngine>::open(dir, opts)
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
