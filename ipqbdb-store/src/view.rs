//! The judge's local view of a shared (postgres) database: the block, whitelist and meta tables
//! in memory, so a verdict never waits on a round trip to the server.
//!
//! [`ViewStore`] is a [`Store`] whose reads run over the in-memory tables, so the judge's lookups
//! (`Snapshot::verdict_state`, the whitelist precedence) are the very code every engine runs. It
//! is loaded whole at open; then a thread of its own asks the server every `refresh` interval
//! for what changed since (by transaction id, [`PostgresStore::changes_since`]) and hands the
//! changes over a channel. The reading thread applies them at its next read: in memory, never
//! waiting for the network. When the server cannot be reached the view stays as it was, the
//! thread says so once in the log (and once when it reaches the server again), and verdicts go
//! on from the last view. A view out of touch for longer than the server keeps its tombstones
//! gets the tables whole on its next refresh and replaces its own (`ChangeSet::whole`).
//!
//! Memory: one map entry per record and whitelist range, key and value each a boxed byte slice;
//! about 215 bytes per record (resident growth at load measured by `scripts/bench-postgres.sh`),
//! so 1,000,000 records take about 215 MB. The view holds what the database holds: retention
//! (`ibd del --del --min-time T --max-records N`) bounds both.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipqbdb_core::log::{log, Level};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, Visit, WriteTx};
use crate::postgres::{ChangeSet, PostgresStore};
use crate::store::{Location, OpenOptions, Store};

/// The tables a verdict reads.
const TABLES: [Table; 3] = [Table::Block, Table::White, Table::Meta];
/// Change sets waiting for the reader: beyond this the refresher waits (the reader is stuck or
/// gone), it never buffers without bound.
const PENDING: usize = 64;

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

    /// Applies a change set; a whole one (a view that fell behind the server's tombstone horizon)
    /// replaces the tables, since deletions it missed are no longer listed anywhere.
    fn apply(&mut self, set: ChangeSet) {
        if set.whole {
            *self = Tables::new();
        }
        for (table, key, value) in set.changes {
            match (table, value) {
                (Table::Block, Some(v)) => {
                    self.block
                        .insert(key.into_boxed_slice(), v.into_boxed_slice());
                }
                (Table::Block, None) => {
                    self.block.remove(&key[..]);
                }
                (_, Some(v)) => {
                    self.maps[table.index()].insert(key.into_boxed_slice(), v.into_boxed_slice());
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
        let sorted: Map;
        let map = match table {
            Table::Block => {
                sorted = self
                    .block
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                &sorted
            }
            _ => &self.maps[table.index()],
        };
        match dir {
            Direction::Forward => {
                for (k, v) in map
                    .range::<[u8], _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
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

    fn len(&self, table: Table) -> Result<u64> {
        Ok(match table {
            Table::Block => self.block.len(),
            _ => self.maps[table.index()].len(),
        } as u64)
    }
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
}

/// A read-only store over the local view of a postgres database.
pub struct ViewStore {
    tables: Mutex<Tables>,
    changes: Mutex<Receiver<ChangeSet>>,
    stats: Arc<Mutex<ViewStats>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    loc: Location,
}

impl ViewStore {
    /// Loads the view from `source` and starts its refresher, which asks every `refresh` and logs
    /// as `program`.
    pub fn start(source: PostgresStore, refresh: Duration, program: &'static str) -> Result<Self> {
        let started = Instant::now();
        let first = source.changes_since(&TABLES, 0)?;
        let mut tables = Tables::new();
        let mut after = first.next;
        tables.apply(first);
        let stats = Arc::new(Mutex::new(ViewStats {
            load: started.elapsed(),
            ..ViewStats::default()
        }));
        let (tx, rx) = mpsc::sync_channel(PENDING);
        let stop = Arc::new(AtomicBool::new(false));
        let loc = source.location().clone();
        let thread = {
            let (stats, stop) = (stats.clone(), stop.clone());
            std::thread::Builder::new()
                .name("view".into())
                .spawn(move || refresher(source, tx, &mut after, refresh, program, &stats, &stop))
                .map_err(|e| StoreError::io(&loc.dir, e))?
        };
        Ok(ViewStore {
            tables: Mutex::new(tables),
            changes: Mutex::new(rx),
            stats,
            stop,
            thread: Some(thread),
            loc,
        })
    }

    pub fn stats(&self) -> ViewStats {
        self.stats.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies what the refresher delivered so far; never waits for it.
    fn catch_up(&self, tables: &mut Tables) {
        let rx = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        while let Ok(set) = rx.try_recv() {
            tables.apply(set);
        }
    }
}

fn refresher(
    source: PostgresStore,
    tx: SyncSender<ChangeSet>,
    after: &mut u64,
    every: Duration,
    program: &str,
    stats: &Mutex<ViewStats>,
    stop: &AtomicBool,
) {
    let mut failing: Option<String> = None;
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next = now + every;
        let res = source.changes_since(&TABLES, *after);
        let took = now.elapsed();
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        match res {
            Ok(set) => {
                s.refreshes += 1;
                s.rows += set.changes.len() as u64;
                s.refresh_time += took;
                drop(s);
                if failing.take().is_some() {
                    log(
                        program,
                        Level::Notice,
                        "the database server answers again; the view is current",
                    );
                }
                if set.whole {
                    log(
                        program,
                        Level::Notice,
                        "the view was behind the server's oldest deletion record (out of touch \
                         longer than its maintenance keeps them): loaded the tables again",
                    );
                }
                let bound = set.next;
                let mut set = Some(set);
                // A full channel: the reader is behind; wait for room rather than lose changes.
                while let Some(pending) = set.take() {
                    match tx.try_send(pending) {
                        Ok(()) => *after = bound,
                        Err(TrySendError::Full(back)) => {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            set = Some(back);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
            }
            Err(e) => {
                s.failures += 1;
                drop(s);
                if failing.is_none() {
                    log(
                        program,
                        Level::Error,
                        &format!(
                            "{e}; judging by the last view of the database until the server answers \
                             (trying every {} ms)",
                            every.as_millis()
                        ),
                    );
                    failing = Some(e.to_string());
                }
            }
        }
    }
}

impl Drop for ViewStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Unblocks a refresher waiting for room.
        if let Ok(rx) = self.changes.lock() {
            while rx.try_recv().is_ok() {}
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store for ViewStore {
    /// A view is made from an open postgres store ([`ViewStore::start`]), not opened by itself.
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        let source = PostgresStore::open(dir, opts)?;
        ViewStore::start(source, Duration::from_millis(100), "ipqbdb")
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn location(&self) -> &Location {
        &self.loc
    }

    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        let mut tables = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        self.catch_up(&mut tables);
        f(&*tables)
    }

    fn write<R>(&self, _f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        Err(StoreError::ServerConfig {
            dir: self.loc.dir.clone(),
            why: "the local view is read-only (a program bug: writes go to the server)".into(),
        })
    }

    fn maintenance(&self) -> Result<()> {
        Ok(())
    }

    fn disk_size(&self) -> Result<u64> {
        Ok(0)
    }
}
