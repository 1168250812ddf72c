//! The `Store` trait: what judge, parse and admin need from a database, whatever the engine.
//!
//! An engine implements [`StorageEngine`] (open, transactions, maintenance, size). Every operation with
//! meaning is a provided method of the sealed [`Store`] over the key-value traits, so it is written,
//! and tested, once. The trait is declared here; its methods' bodies live in a file per domain
//! (`bans`, `records`, `white`, `reasons`, `reports`, `prefix`, `format`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipqbdb_core::report::ReportState;
use ipqbdb_core::{
    AddrKey, AddrRange, BanOutcome, ModelParams, Reason, ReasonId, Record, UnixTime, V6Prefix,
};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::kv::{ReadTx, WriteTx};

mod bans;
mod format;
mod prefix;
mod reasons;
mod records;
mod reports;
mod white;

pub(crate) use format::ensure_format;
use records::get_record;
use white::white_lookup_in;

/// Longest reason text: LMDB keys are limited to 511 bytes and the text is a key of the reason index.
pub const MAX_REASON_LEN: usize = 400;

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

/// Keeps [`Store`] and [`ReadStore`] implemented only in this crate (every [`StorageEngine`], the
/// postgres view, [`crate::LocalReader`]), so no engine can override the semantics, and gives the
/// read semantics what they need from any of them: a snapshot and where the store lives. Its
/// methods are named apart from the public traits' so that a caller never sees two candidates.
mod sealed {
    use super::{Location, ReadTx, Result, StorageEngine};

    pub trait Reads: Send + Sync {
        fn read_tx<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R>;
        fn place(&self) -> &Location;
    }

    impl<E: StorageEngine> Reads for E {
        fn read_tx<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
            StorageEngine::read(self, f)
        }
        fn place(&self) -> &Location {
            StorageEngine::location(self)
        }
    }
}
pub(crate) use sealed::Reads;

/// The reading half of [`Store`], and all of it a reader that cannot write has: the postgres
/// view ([`crate::ViewStore`]) and what the judge's packet threads hold ([`crate::LocalReader`]).
/// A write on them does not compile. The methods are [`Store`]'s, the same code.
pub trait ReadStore: Reads + Sized {
    fn backend(&self) -> Backend;

    fn location(&self) -> &Location {
        self.place()
    }

    fn lookup(&self, key: AddrKey) -> Result<Option<Record>> {
        records::lookup(self, key)
    }

    /// See [`Store::verdict_state`].
    fn verdict_state(&self, ip: IpAddr) -> Result<(Option<Record>, Option<u32>)> {
        self.with_snapshot(&mut |snap| snap.verdict_state(ip).map(|(_, rec, white)| (rec, white)))
    }

    /// See [`Store::with_snapshot`].
    fn with_snapshot<R>(&self, f: &mut dyn FnMut(&Snapshot<'_>) -> Result<R>) -> Result<R> {
        records::with_snapshot(self, f)
    }

    fn v6_prefix(&self) -> Result<V6Prefix> {
        prefix::v6_prefix(self)
    }

    fn record_count(&self) -> Result<u64> {
        records::record_count(self)
    }

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

    fn white_list(&self) -> Result<Vec<WhiteEntry>> {
        white::white_list(self)
    }

    fn white_lookup(&self, addr: AddrKey) -> Result<Option<WhiteEntry>> {
        white::white_lookup(self, addr)
    }
}

/// What judge, parse and admin need from a database, whatever the engine. Every engine has it
/// through [`StorageEngine`]; the first seven methods are the engine's own.
pub trait Store: Reads + Sized {
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
        bans::ban_batch_noting(self, bans, now, notes)
    }

    /// A program's own small state kept in the database (e.g. log read positions).
    fn note(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        bans::note(self, key)
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
        records::with_snapshot(self, f)
    }

    /// The IPv6 prefix bans and lookups use: the database's own.
    fn v6_prefix(&self) -> Result<V6Prefix> {
        prefix::v6_prefix(self)
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

    /// The whitelist in range order.
    fn white_list(&self) -> Result<Vec<WhiteEntry>> {
        white::white_list(self)
    }

    /// The narrowest whitelist range containing `addr` (an exact, unmasked key).
    fn white_lookup(&self, addr: AddrKey) -> Result<Option<WhiteEntry>> {
        white::white_lookup(self, addr)
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
        reasons::reason_stats(self)
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

fn corrupt(path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}
