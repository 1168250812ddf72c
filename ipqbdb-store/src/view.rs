//! The judge's local view of a shared (postgres) database: the block, whitelist and meta tables
//! in memory, so a verdict never waits on a round trip to the server.
//!
//! [`ViewStore`] is a [`ReadStore`] (no write compiles) whose reads run over the in-memory tables, so the judge's lookups
//! (`Snapshot::verdict_state`, the whitelist precedence) are the very code every engine runs. It
//! is loaded whole at open; then a thread of its own asks the server every `refresh` interval
//! for what changed since (by transaction id, [`PostgresStore::changes_since`]) and applies it to
//! the tables under a write lock held only for the in-memory update, so a verdict never waits for
//! the network. When the server cannot be reached the view stays as it was, the thread says so
//! once in the log (and once when it reaches the server again), and verdicts go on from the last
//! view. A view out of touch for longer than the server keeps its tombstones gets the tables
//! whole on its next refresh and replaces its own (`ChangeSet::whole`).
//!
//! The thread also saves the view in the database directory ([`crate::saved`]) after its first
//! load, when it changed (at most every `SAVE_EVERY`) and at the end. A judge started while the
//! server does not answer judges from that file, says how old it is, and catches up from its
//! position once the server answers.
//!
//! Memory: one map entry per record and whitelist range, key and value each a boxed byte slice;
//! about 215 bytes per record (resident growth at load measured by `scripts/bench-postgres.sh`),
//! so 1,000,000 records take about 215 MB. The view holds what the database holds: retention
//! (`ibd del --del --min-time T --max-records N`) bounds both.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipqbdb_core::log::{log, Level};

use crate::engines::Engine;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, Visit};
use crate::postgres::{ChangeSet, Listener, PostgresStore};
use crate::saved;
use crate::store::{Location, ReadStore, StorageEngine};

/// The tables a verdict reads.
const TABLES: [Table; 3] = [Table::Block, Table::White, Table::Meta];
/// The shortest time between two refreshes made on commit notices: under a storm of commits a
/// view refreshes at most this often (each refresh takes whatever committed meanwhile), rather
/// than once per commit.
const NOTICE_GAP: Duration = Duration::from_millis(25);
/// How often at most a view without a listening connection tries to open one (or its poll
/// interval, if shorter).
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// How often at most a changed view is saved to the database directory (and at the end): a judge
/// started without its server judges from a view at most this much older than the one it had.
const SAVE_EVERY: Duration = Duration::from_secs(60);

type Map = BTreeMap<Box<[u8]>, Box<[u8]>>;

/// The tables in memory: ordered maps, but the block table in a hash map, because verdicts only
/// ever get its keys one by one and a hash lookup is what keeps up with LMDB's (a scan of it, which
/// no verdict makes, sorts its keys).
#[derive(Default)]
struct Tables {
    maps: Vec<Map>,
    block: HashMap<Box<[u8]>, Box<[u8]>>,
}

impl Tables {
    fn new() -> Self {
        Tables {
            maps: Table::ALL.iter().map(|_| Map::new()).collect(),
            block: HashMap::new(),
        }
    }

    fn put(&mut self, table: Table, key: Vec<u8>, value: Vec<u8>) {
        match table {
            Table::Block => self
                .block
                .insert(key.into_boxed_slice(), value.into_boxed_slice()),
            _ => self.maps[table.index()].insert(key.into_boxed_slice(), value.into_boxed_slice()),
        };
    }

    /// The block table sorted, for a scan of it (which no verdict makes).
    fn sorted_block(&self) -> Map {
        self.block
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every entry, for saving.
    fn entries(&self) -> impl Iterator<Item = (Table, &[u8], &[u8])> {
        let block = self
            .block
            .iter()
            .map(|(k, v)| (Table::Block, &k[..], &v[..]));
        let rest = Table::ALL.iter().flat_map(move |&t| {
            self.maps[t.index()]
                .iter()
                .map(move |(k, v)| (t, &k[..], &v[..]))
        });
        block.chain(rest)
    }

    /// Applies a change set; a whole one (a view that fell behind the server's tombstone horizon)
    /// replaces the tables, since deletions it missed are no longer listed anywhere.
    fn apply(&mut self, set: ChangeSet) {
        if set.whole {
            *self = Tables::new();
        }
        for (table, key, value) in set.changes {
            match (table, value) {
                (_, Some(v)) => self.put(table, key, v),
                (Table::Block, None) => {
                    self.block.remove(&key[..]);
                }
                (_, None) => {
                    self.maps[table.index()].remove(&key[..]);
                }
            }
        }
    }
}

impl ReadTx for Tables {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let v = match table {
            Table::Block => self.block.get(key),
            _ => self.maps[table.index()].get(key),
        };
        Ok(v.map(|v| v.to_vec()))
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        match table {
            Table::Block => scan_map(&self.sorted_block(), from, dir, visit),
            _ => scan_map(&self.maps[table.index()], from, dir, visit),
        }
    }

    fn len(&self, table: Table) -> Result<u64> {
        Ok(match table {
            Table::Block => self.block.len(),
            _ => self.maps[table.index()].len(),
        } as u64)
    }
}

/// A scan of one ordered map (see [`ReadTx::scan`]).
fn scan_map(map: &Map, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
    match dir {
        Direction::Forward => {
            for (k, v) in
                map.range::<[u8], _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
            {
                if !visit(k, v)? {
                    break;
                }
            }
        }
        Direction::Backward => {
            for (k, v) in map
                .range::<[u8], _>((std::ops::Bound::Unbounded, std::ops::Bound::Included(from)))
                .rev()
            {
                if !visit(k, v)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

/// What the refresher reports besides change sets.
#[derive(Debug, Default, Clone)]
pub struct ViewStats {
    /// Time the first, whole load took.
    pub load: Duration,
    pub refreshes: u64,
    pub failures: u64,
    /// Rows received by refreshes (deletions included).
    pub rows: u64,
    /// Time spent in refreshes, network and server included (on the refresher's thread).
    pub refresh_time: Duration,
    /// Whether the view started from the file saved in the database directory (the server did
    /// not answer at start).
    pub from_saved: bool,
    /// Times the view was saved to that file.
    pub saves: u64,
}

/// What the reading threads and the refresher share.
struct ViewState {
    /// Written only by the refresher, briefly (a change set is applied in memory; a whole load is
    /// built aside and swapped in), so readers practically never wait.
    tables: RwLock<Tables>,
    /// Changed after each change to `tables` (see [`ReadTx::version`]): a reader that caches what
    /// it read (the judge, per address) forgets it when this moves.
    version: AtomicU64,
    stats: Mutex<ViewStats>,
    stop: AtomicBool,
}

/// A read-only store over the local view of a postgres database.
pub struct ViewStore {
    shared: Arc<ViewState>,
    thread: Option<JoinHandle<()>>,
    loc: Location,
}

/// The refresher's own state.
struct Refresher {
    source: PostgresStore,
    shared: Arc<ViewState>,
    every: Duration,
    program: &'static str,
    /// The change position the tables reflect.
    after: u64,
    /// Why the server did not answer last, while it does not.
    failing: Option<String>,
    /// The tables changed since they were last saved.
    dirty: bool,
    last_save: Option<Instant>,
    save_failed: bool,
    /// Whether to listen for commit notices at all (else poll only).
    listen: bool,
    listener: Option<Listener>,
    last_listen_try: Option<Instant>,
    /// A notice came since the last refresh.
    noticed: bool,
    last_refresh: Option<Instant>,
}

impl ViewStore {
    /// Loads the view from `source` and starts its refresher, which asks every `refresh` and logs
    /// as `program`. When the server does not answer, the view saved in the database directory
    /// (see [`crate::saved`]) stands in until it does; without a usable one, the server's error
    /// is returned.
    pub fn start(source: PostgresStore, refresh: Duration, program: &'static str) -> Result<Self> {
        Self::start_with(source, refresh, true, program)
    }

    /// [`ViewStore::start`], listening for writers' commit notices when `listen` (refreshing at
    /// once on one, at most every `NOTICE_GAP`; the poll stays as the fallback), else polling
    /// only.
    pub fn start_with(
        source: PostgresStore,
        refresh: Duration,
        listen: bool,
        program: &'static str,
    ) -> Result<Self> {
        let started = Instant::now();
        let loc = StorageEngine::location(&source).clone();
        let mut tables = Tables::new();
        let (after, failing, from_saved) = match source.changes_since(&TABLES, 0) {
            Ok(first) => {
                let after = first.next;
                tables.apply(first);
                (after, None, false)
            }
            Err(e) => {
                let view = match saved::load(&loc.dir, &source.source_name()) {
                    Ok(v) => v,
                    Err(saved::SavedError::Io { source: io, .. })
                        if io.kind() == std::io::ErrorKind::NotFound =>
                    {
                        return Err(e)
                    }
                    Err(bad) => {
                        log(program, Level::Warning, &format!("{bad}; not used"));
                        return Err(e);
                    }
                };
                let age = (ipqbdb_core::now() as i64).saturating_sub(view.saved_at);
                log(
                    program,
                    Level::Warning,
                    &format!(
                        "{e}; judging from the view saved {} ago ({} records) until the server \
                         answers (trying every {} ms)",
                        show_age(age),
                        view.entries
                            .iter()
                            .filter(|(t, _, _)| *t == Table::Block)
                            .count(),
                        refresh.as_millis()
                    ),
                );
                let position = view.position;
                for (table, key, value) in view.entries {
                    tables.put(table, key, value);
                }
                (position, Some(e.to_string()), true)
            }
        };
        let shared = Arc::new(ViewState {
            tables: RwLock::new(tables),
            stats: Mutex::new(ViewStats {
                load: started.elapsed(),
                from_saved,
                ..ViewStats::default()
            }),
            version: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let mut refresher = Refresher {
            source,
            shared: shared.clone(),
            every: refresh,
            program,
            after,
            failing,
            // A view loaded from the server is saved at once: a judge that ran only briefly
            // before an outage still has one to start from.
            dirty: !from_saved,
            last_save: None,
            save_failed: false,
            listen,
            listener: None,
            last_listen_try: None,
            noticed: false,
            last_refresh: None,
        };
        let thread = std::thread::Builder::new()
            .name("view".into())
            .spawn(move || refresher.run())
            .map_err(|e| StoreError::io(&loc.dir, e))?;
        Ok(ViewStore {
            shared,
            thread: Some(thread),
            loc,
        })
    }

    pub fn stats(&self) -> ViewStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// An age for a log line: seconds, minutes, hours or days.
fn show_age(secs: i64) -> String {
    match secs.max(0) {
        s if s < 120 => format!("{s} s"),
        s if s < 7_200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3_600),
        s => format!("{} days", s / 86_400),
    }
}

impl Refresher {
    fn run(&mut self) {
        let mut next = Instant::now();
        if self.failing.is_none() {
            next += self.every;
        }
        while !self.shared.stop.load(Ordering::Relaxed) {
            self.save_if_due(false);
            self.listen_if_due();
            let now = Instant::now();
            let notice_due =
                self.noticed && self.last_refresh.is_none_or(|t| now >= t + NOTICE_GAP);
            if now >= next || notice_due {
                next = now + self.every;
                self.noticed = false;
                self.last_refresh = Some(now);
                self.refresh();
                continue;
            }
            let wake = match (self.noticed, self.last_refresh) {
                (true, Some(t)) => next.min(t + NOTICE_GAP),
                _ => next,
            };
            // Short waits, so a stop is seen soon.
            let wait = (wake - now).min(Duration::from_millis(50));
            match &mut self.listener {
                Some(l) => match l.wait(wait) {
                    Ok(got) => self.noticed |= got,
                    // The poll goes on; listening is tried again at the next poll interval.
                    Err(_) => self.listener = None,
                },
                None => std::thread::sleep(wait),
            }
        }
        self.save_if_due(true);
    }

    /// Opens the listening connection when there is none, at most once per `LISTEN_RETRY`. A
    /// new one is followed by a refresh at once: what committed before it listened sent its
    /// notice to no one.
    fn listen_if_due(&mut self) {
        if !self.listen
            || self.listener.is_some()
            || self
                .last_listen_try
                .is_some_and(|t| t.elapsed() < self.every.min(LISTEN_RETRY))
        {
            return;
        }
        self.last_listen_try = Some(Instant::now());
        if let Ok(l) = self.source.listen() {
            self.listener = Some(l);
            self.noticed = true;
        }
    }

    fn refresh(&mut self) {
        let now = Instant::now();
        let res = self.source.changes_since(&TABLES, self.after);
        let took = now.elapsed();
        let mut s = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        match res {
            Ok(set) => {
                s.refreshes += 1;
                s.rows += set.changes.len() as u64;
                s.refresh_time += took;
                drop(s);
                if self.failing.take().is_some() {
                    log(
                        self.program,
                        Level::Notice,
                        "the database server answers again; the view is current",
                    );
                }
                if set.whole && self.after != 0 {
                    log(
                        self.program,
                        Level::Notice,
                        "the view was behind the server's oldest deletion record (out of touch \
                         longer than its maintenance keeps them) or ahead of the server (a \
                         restored database): loaded the tables again",
                    );
                }
                self.after = set.next;
                if set.changes.is_empty() && !set.whole {
                    return;
                }
                self.dirty = true;
                if set.whole {
                    let mut fresh = Tables::new();
                    fresh.apply(set);
                    *self
                        .shared
                        .tables
                        .write()
                        .unwrap_or_else(|p| p.into_inner()) = fresh;
                } else {
                    self.shared
                        .tables
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .apply(set);
                }
                self.shared.version.fetch_add(1, Ordering::Release);
            }
            Err(e) => {
                s.failures += 1;
                drop(s);
                if self.failing.is_none() {
                    log(
                        self.program,
                        Level::Error,
                        &format!(
                            "{e}; judging by the last view of the database until the server answers \
                             (trying every {} ms)",
                            self.every.as_millis()
                        ),
                    );
                    self.failing = Some(e.to_string());
                }
            }
        }
    }

    /// Saves the tables when they changed and the last save is old enough (or `now`).
    fn save_if_due(&mut self, now: bool) {
        if !self.dirty || !(now || self.last_save.is_none_or(|t| t.elapsed() >= SAVE_EVERY)) {
            return;
        }
        self.last_save = Some(Instant::now());
        let tables = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
        let res = saved::save(
            &StorageEngine::location(&self.source).dir,
            &self.source.source_name(),
            self.after,
            ipqbdb_core::now() as i64,
            tables.entries(),
        );
        drop(tables);
        match res {
            Ok(()) => {
                self.dirty = false;
                self.save_failed = false;
                self.shared
                    .stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .saves += 1;
            }
            Err(e) => {
                if !self.save_failed {
                    log(
                        self.program,
                        Level::Warning,
                        &format!(
                            "saving the view for starts without the server: {e}; tried again \
                             every {} s",
                            SAVE_EVERY.as_secs()
                        ),
                    );
                }
                self.save_failed = true;
            }
        }
    }
}

impl Drop for ViewStore {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a reader of the view reads through: the tables' lock taken for each read, never for the
/// reader's whole transaction.
///
/// Why: the judge's packet threads keep a snapshot open for up to `--staleness-ms` while packets
/// flow, and a read guard held that long stops the refresher's write for as long. Worse, std's
/// `RwLock` does not hand the lock to a waiting writer: when the snapshot ends, the packet thread,
/// already running, takes its next read guard before the woken refresher does, so under steady
/// traffic the refresher lost nearly every time and a ban made elsewhere reached the verdicts
/// seconds late, or not at all (`cargo xtask bench-fleet`: 11 of 50 bans not within 10 s). Held
/// per read, the lock stops the refresher for one lookup at most. The price: the reads of one
/// "transaction" may straddle a refresh, which a verdict (a few independent lookups) does not
/// mind.
struct Live<'a>(&'a ViewState);

impl Live<'_> {
    fn tables(&self) -> std::sync::RwLockReadGuard<'_, Tables> {
        self.0.tables.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl ReadTx for Live<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tables().get(table, key)
    }

    /// One entry per lock, visited with the lock released (a visit may read again): a scan, like
    /// a lookup, never holds the refresher up for long. The block table, unordered in memory, is
    /// sorted once under the lock, as [`Tables`] scans it.
    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        use std::ops::Bound::{Excluded, Included, Unbounded};
        if table == Table::Block {
            let sorted = self.tables().sorted_block();
            return scan_map(&sorted, from, dir, visit);
        }
        let mut bound: std::ops::Bound<Box<[u8]>> = Included(from.into());
        loop {
            let next = {
                let tables = self.tables();
                let map = &tables.maps[table.index()];
                let b = bound.as_ref().map(|k| &**k);
                match dir {
                    Direction::Forward => map.range::<[u8], _>((b, Unbounded)).next(),
                    Direction::Backward => map.range::<[u8], _>((Unbounded, b)).next_back(),
                }
                .map(|(k, v)| (k.clone(), v.clone()))
            };
            let Some((k, v)) = next else {
                return Ok(());
            };
            if !visit(&k, &v)? {
                return Ok(());
            }
            bound = Excluded(k);
        }
    }

    fn len(&self, table: Table) -> Result<u64> {
        self.tables().len(table)
    }

    /// The reads follow the refreshes, so what a reader cached may be out of date once this moves.
    fn version(&self) -> Option<u64> {
        Some(self.0.version.load(Ordering::Acquire))
    }
}

impl crate::store::Reads for ViewStore {
    fn read_tx<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        f(&Live(&self.shared))
    }

    fn place(&self) -> &Location {
        &self.loc
    }
}

/// Reads only: the view has no write, so a program that holds one cannot write to it by mistake
/// (writes go to the server, through a [`PostgresStore`]).
impl ReadStore for ViewStore {
    fn engine(&self) -> Engine {
        Engine::Postgres
    }
}
