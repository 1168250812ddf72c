//! LMDB backend (heed, without TLS read transactions so they may move between threads).
//!
//! Multi-process rules (DESIGN.md section 3): every process maps the file with the same fixed, generous
//! size, so no process ever has to grow the map under another; stale reader slots left by a process
//! killed with -9 are cleared at open and at every maintenance, since LMDB otherwise keeps the pages
//! those readers pinned and the file grows without bound; `MapResized` (a file grown by a program
//! built with a larger map) is handled by adopting the new size.
//!
//! Monotonic reads. LMDB (as bundled by heed 0.23) lets a reader take the id `T` of the last commit
//! from the lock file and then copy the meta page of slot `T & 1` without checking it still holds
//! `T`. A reader preempted between the two for two commits copies the meta page of `T + 2`, written
//! but not yet published; the next reader then gets the published `T + 1`, a snapshot older than
//! the one before it. Every write here therefore bumps a generation counter, and a read that finds a
//! generation older than one this process has seen begins again, until the writer publishes (or a
//! bounded wait passes). The concurrency conformance test caught this under load.

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, Env, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, Visit, WriteTx};
use crate::store::{ensure_format, Location, OpenOptions, Store};

/// The map size every process uses: address space, not disk (the file grows only as pages are used).
/// At about 100 bytes per record including B-tree overhead, this holds tens of millions of records.
pub const MAP_SIZE: usize = 16 << 30;
const MAX_READERS: u32 = 1022;
/// Meta-table key of the generation counter every write bumps.
const GENERATION: &[u8] = b"generation";
/// How long a read waits for a writer to publish a commit it has already seen the data of.
const STALE_WAIT: Duration = Duration::from_secs(1);

type Db = Database<'static, Bytes, Bytes>;

pub struct LmdbStore {
    env: Env<WithoutTls>,
    dbs: [Db; 5],
    /// Transactions hold it shared; adopting a resized map needs it exclusive, because LMDB allows
    /// that only while this process has no transaction open.
    resize: RwLock<()>,
    /// The newest generation a read transaction of this process has seen.
    seen: AtomicU64,
    loc: Location,
}

fn err(path: &Path, e: heed::Error) -> StoreError {
    match e {
        heed::Error::Mdb(
            m @ (MdbError::Corrupted
            | MdbError::Invalid
            | MdbError::VersionMismatch
            | MdbError::PageNotFound),
        ) => StoreError::Corrupt {
            path: path.to_path_buf(),
            what: m.to_string(),
        },
        heed::Error::Io(io) => StoreError::io(path, io),
        other => StoreError::backend(path, Backend::Lmdb, other),
    }
}

/// Refuses a data file shorter than the pages its meta page claims: LMDB maps the file, and reading a
/// page past its end raises SIGBUS, a crash instead of an error.
fn check_length(env: &Env<WithoutTls>, path: &Path) -> Result<()> {
    let data = path.join("data.mdb");
    let len = std::fs::metadata(&data)
        .map_err(|e| StoreError::io(&data, e))?
        .len();
    let page = u64::from(env.unnamed_database_stat().page_size);
    let needed = (env.info().last_page_number as u64 + 1) * page;
    if len < needed {
        return Err(StoreError::Corrupt {
            path: data,
            what: format!("truncated: {len} bytes, its pages need {needed}"),
        });
    }
    Ok(())
}

/// heed refuses to open one environment twice in a process; every store of a directory in this process
/// shares one `Env` instead.
fn shared_env(path: &Path) -> Result<Env<WithoutTls>> {
    static ENVS: OnceLock<Mutex<HashMap<PathBuf, Env<WithoutTls>>>> = OnceLock::new();
    let canonical = path.canonicalize().map_err(|e| StoreError::io(path, e))?;
    let mut envs = ENVS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(env) = envs.get(&canonical) {
        return Ok(env.clone());
    }
    // SAFETY: the map is only ever modified through LMDB by ipqbdb processes, which all use the same
    // map size; nothing truncates or rewrites data.mdb behind LMDB's back.
    let env = unsafe {
        EnvOpenOptions::new()
            .read_txn_without_tls()
            .map_size(MAP_SIZE)
            .max_dbs(Table::ALL.len() as u32)
            .max_readers(MAX_READERS)
            .open(&canonical)
    }
    .map_err(|e| err(path, e))?;
    envs.insert(canonical, env.clone());
    Ok(env)
}

impl Store for LmdbStore {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        crate::dir::prepare(dir, Backend::Lmdb, opts.create)?;
        let path = crate::dir::engine_path(dir, Backend::Lmdb);
        if !path.join("data.mdb").exists() && !opts.create {
            return Err(StoreError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        crate::dir::create_dir(&path)?;
        let env = shared_env(&path)?;
        check_length(&env, &path)?;
        env.clear_stale_readers().map_err(|e| err(&path, e))?;
        // Open the tables in a read transaction; create them (a write) only when one is missing.
        let rtxn = env.read_txn().map_err(|e| err(&path, e))?;
        let opened = env
            .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
                let mut dbs = Vec::with_capacity(Table::ALL.len());
                for t in Table::ALL {
                    match opener.open_database::<Bytes, Bytes>(rtxn, Some(t.name()))? {
                        Some(db) => dbs.push(db),
                        None => return Ok(CommitOrAbort::Abort(())),
                    }
                }
                let dbs: [_; 5] = dbs.try_into().map_err(|_| MdbError::Incompatible)?;
                Ok(CommitOrAbort::Commit(dbs))
            })
            .map_err(|e| err(&path, e))?;
        let dbs = match opened {
            CommitOrAbort::Commit(dbs) => dbs,
            CommitOrAbort::Abort(()) => Self::create_tables(&env, &path)?,
        };
        let store = LmdbStore {
            env,
            dbs,
            resize: RwLock::new(()),
            seen: AtomicU64::new(0),
            loc: Location {
                dir: dir.to_path_buf(),
                path: path.clone(),
                opts: opts.clone(),
            },
        };
        ensure_format(&store)?;
        Ok(store)
    }

    fn backend(&self) -> Backend {
        Backend::Lmdb
    }

    fn location(&self) -> &Location {
        &self.loc
    }

    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        // Begins read transactions until one is at least as new as every snapshot this process has
        // seen (the race described at the top of this file), or a bounded wait passes: a writer killed
        // between writing and publishing its commit leaves it unpublished until the next write.
        let mut deadline = None;
        let mut pause = Duration::from_micros(20);
        loop {
            let shared = self.resize.read().unwrap_or_else(|p| p.into_inner());
            let txn = match self.env.read_txn() {
                Err(heed::Error::Mdb(MdbError::MapResized)) => {
                    drop(shared);
                    self.adopt_new_map_size()?;
                    continue;
                }
                other => other.map_err(|e| err(&self.loc.path, e))?,
            };
            let reader = LmdbRead {
                txn: &txn,
                dbs: &self.dbs,
                path: &self.loc.path,
            };
            let generation = reader.generation()?;
            let waited = deadline.is_some_and(|d| Instant::now() >= d);
            if generation >= self.seen.load(Ordering::Acquire) || waited {
                self.seen.fetch_max(generation, Ordering::AcqRel);
                return f(&reader);
            }
            deadline.get_or_insert_with(|| Instant::now() + STALE_WAIT);
            drop(txn);
            drop(shared);
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        let _shared = self.resize.read().unwrap_or_else(|p| p.into_inner());
        let txn = match self.env.write_txn() {
            Err(heed::Error::Mdb(MdbError::MapResized)) => {
                drop(_shared);
                self.adopt_new_map_size()?;
                return self.write(f);
            }
            other => other.map_err(|e| err(&self.loc.path, e))?,
        };
        let mut w = LmdbWrite {
            txn,
            dbs: &self.dbs,
            path: &self.loc.path,
        };
        let out = f(&mut w)?;
        let generation = w.reader().generation()? + 1;
        w.put(Table::Meta, GENERATION, &generation.to_be_bytes())?;
        w.txn.commit().map_err(|e| err(&self.loc.path, e))?;
        self.seen.fetch_max(generation, Ordering::AcqRel);
        Ok(out)
    }

    fn maintenance(&self) -> Result<()> {
        self.env
            .clear_stale_readers()
            .map(drop)
            .map_err(|e| err(&self.loc.path, e))
    }

    fn disk_size(&self) -> Result<u64> {
        let data = self.loc.path.join("data.mdb");
        std::fs::metadata(&data)
            .map(|m| m.len())
            .map_err(|e| StoreError::io(&data, e))
    }
}

impl LmdbStore {
    /// Creates the named databases (a write transaction), for a new environment.
    fn create_tables(env: &Env<WithoutTls>, path: &Path) -> Result<[Db; 5]> {
        let wtxn = env.write_txn().map_err(|e| err(path, e))?;
        Ok(env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let mut dbs = Vec::with_capacity(Table::ALL.len());
                for t in Table::ALL {
                    dbs.push(opener.create_database::<Bytes, Bytes>(wtxn, Some(t.name()))?);
                }
                let dbs: [_; 5] = dbs.try_into().map_err(|_| MdbError::Incompatible)?;
                Ok(CommitOrAbort::<_, ()>::Commit(dbs))
            })
            .map_err(|e| err(path, e))?
            .unwrap_commit())
    }

    fn adopt_new_map_size(&self) -> Result<()> {
        let _exclusive = self.resize.write().unwrap_or_else(|p| p.into_inner());
        // SAFETY: the exclusive lock guarantees this process has no transaction open.
        unsafe { self.env.resize(0) }.map_err(|e| err(&self.loc.path, e))
    }
}

struct LmdbRead<'a, 't> {
    txn: &'a RoTxn<'t>,
    dbs: &'a [Db; 5],
    path: &'a Path,
}

struct LmdbWrite<'a> {
    txn: RwTxn<'a>,
    dbs: &'a [Db; 5],
    path: &'a Path,
}

impl LmdbRead<'_, '_> {
    fn generation(&self) -> Result<u64> {
        Ok(self
            .get(Table::Meta, GENERATION)?
            .and_then(|v| v.try_into().ok())
            .map_or(0, u64::from_be_bytes))
    }
}

impl LmdbWrite<'_> {
    fn reader(&self) -> LmdbRead<'_, '_> {
        LmdbRead {
            txn: &self.txn,
            dbs: self.dbs,
            path: self.path,
        }
    }
}

impl ReadTx for LmdbRead<'_, '_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.dbs[table.index()]
            .get(self.txn, key)
            .map(|v| v.map(<[u8]>::to_vec))
            .map_err(|e| err(self.path, e))
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        // LMDB refuses empty keys, even as range bounds.
        let bound = if from.is_empty() {
            Bound::Unbounded
        } else {
            Bound::Included(from)
        };
        let db = &self.dbs[table.index()];
        let mut step = |item: heed::Result<(&[u8], &[u8])>| -> Result<bool> {
            let (k, v) = item.map_err(|e| err(self.path, e))?;
            visit(k, v)
        };
        match dir {
            Direction::Forward => {
                let range = (bound, Bound::Unbounded);
                for item in db.range(self.txn, &range).map_err(|e| err(self.path, e))? {
                    if !step(item)? {
                        break;
                    }
                }
            }
            Direction::Backward => {
                let range = (Bound::Unbounded, bound);
                for item in db
                    .rev_range(self.txn, &range)
                    .map_err(|e| err(self.path, e))?
                {
                    if !step(item)? {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn len(&self, table: Table) -> Result<u64> {
        self.dbs[table.index()]
            .len(self.txn)
            .map_err(|e| err(self.path, e))
    }
}

impl ReadTx for LmdbWrite<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.reader().get(table, key)
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        self.reader().scan(table, from, dir, visit)
    }

    fn len(&self, table: Table) -> Result<u64> {
        self.reader().len(table)
    }
}

impl WriteTx for LmdbWrite<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.dbs[table.index()]
            .put(&mut self.txn, key, value)
            .map_err(|e| err(self.path, e))
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        self.dbs[table.index()]
            .delete(&mut self.txn, key)
            .map_err(|e| err(self.path, e))
    }
}
