//! redb backend (>= 4.5).
//!
//! Multi-process rules (every program is a process of its own on one database): every process opens the file in
//! `ConcurrencyMode::MultiWriter` (the default mode locks every other process out), and commits with
//! the default, durable, `Durability::Immediate`.
//!
//! After an I/O error (a full disk, say) a redb `Database` fails every later call with `PreviousIo`
//! until it is reopened; the daemons run for months, so this backend reopens the file itself and
//! runs the operation once more (found by the full-disk test).

use std::cell::OnceCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::RwLock;

use redb::{
    ConcurrencyMode, Database, ReadOnlyTable, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, TableDefinition,
};

use crate::engines::Engine;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, Visit, WriteTx};
use crate::store::{ensure_format, Location, OpenOptions, StorageEngine};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

/// One definition per [`Table`], in [`Table::ALL`]'s order, named [`Table::name`].
const DEFS: [Def; Table::COUNT] = {
    let mut defs = [TableDefinition::new("block"); Table::COUNT];
    let mut i = 0;
    while i < Table::COUNT {
        defs[i] = TableDefinition::new(Table::ALL[i].name());
        i += 1;
    }
    defs
};

pub struct RedbStore {
    /// `None` between a failed reopen and the next attempt.
    db: RwLock<Option<Database>>,
    loc: Location,
}

fn err(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(what) => StoreError::Corrupt {
            path: path.to_path_buf(),
            what,
        },
        redb::Error::Io(io) => StoreError::io(path, io),
        other => StoreError::engine(path, Engine::Redb, other),
    }
}

impl StorageEngine for RedbStore {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        crate::dir::prepare(dir, Engine::Redb, opts.create)?;
        let path = crate::dir::engine_path(dir, Engine::Redb);
        if !opts.create && !path.exists() {
            return Err(StoreError::Missing {
                dir: dir.to_path_buf(),
            });
        }
        let db = open_db(&path)?;
        // A write transaction (which opens, and so creates, every table) only for a new file.
        let tables = db
            .begin_read()
            .and_then(|t| Ok(t.list_tables()?.count()))
            .map_err(|e| err(&path, e))?;
        let store = RedbStore {
            db: RwLock::new(Some(db)),
            loc: Location::new(dir, &path, opts),
        };
        if tables < DEFS.len() {
            store.write(&mut |_| Ok(()))?;
        }
        let mut store = store;
        store.loc.v6_prefix = ensure_format(&store)?;
        crate::dir::share_with_group(dir, Engine::Redb);
        Ok(store)
    }

    fn engine(&self) -> Engine {
        Engine::Redb
    }

    fn location(&self) -> &Location {
        &self.loc
    }

    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        let p = &self.loc.path;
        self.with_db(&mut |db| {
            let txn = db.begin_read().map_err(|e| err(p, e))?;
            f(&RedbRead {
                txn: &txn,
                tables: Default::default(),
                path: p,
            })
        })
    }

    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        let p = &self.loc.path;
        self.with_db(&mut |db| {
            let txn = db.begin_write().map_err(|e| err(p, e))?;
            let out = {
                let mut tables = Vec::with_capacity(DEFS.len());
                for def in DEFS {
                    tables.push(txn.open_table(def).map_err(|e| err(p, e))?);
                }
                f(&mut RedbWrite { tables, path: p })
            };
            match out {
                Ok(v) => {
                    txn.commit().map_err(|e| err(p, e))?;
                    Ok(v)
                }
                Err(e) => {
                    let _ = txn.abort();
                    Err(e)
                }
            }
        })
    }

    fn maintenance(&self) -> Result<()> {
        Ok(())
    }

    fn disk_size(&self) -> Result<u64> {
        std::fs::metadata(&self.loc.path)
            .map(|m| m.len())
            .map_err(|e| StoreError::io(&self.loc.path, e))
    }
}

type RoTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// Opens tables on first use: opening every table costs more than a lookup.
/// Opens the file in multi-writer mode. redb documents that a damaged file may make a plain open
/// panic; a damaged file must be an error naming it, never a crash of the daemon.
fn open_db(path: &Path) -> Result<Database> {
    let mut builder = Database::builder();
    builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
    catch_unwind(AssertUnwindSafe(|| builder.create(path)))
        .map_err(|_| StoreError::Corrupt {
            path: path.to_path_buf(),
            what: "redb could not read the file".into(),
        })?
        .map_err(|e| err(path, e))
}

/// Whether redb refuses because of an earlier I/O error, which only a reopen clears.
fn failed_earlier(e: &StoreError) -> bool {
    matches!(e, StoreError::Engine { source, .. }
        if matches!(source.downcast_ref::<redb::Error>(), Some(redb::Error::PreviousIo)))
}

impl RedbStore {
    /// Runs `op` on the database; after `PreviousIo` (or a failed reopen) reopens it and runs `op`
    /// once more.
    fn with_db<R>(&self, op: &mut dyn FnMut(&Database) -> Result<R>) -> Result<R> {
        {
            let guard = self.db.read().unwrap_or_else(|p| p.into_inner());
            if let Some(db) = guard.as_ref() {
                match op(db) {
                    Err(e) if failed_earlier(&e) => {}
                    other => return other,
                }
            }
        }
        let mut guard = self.db.write().unwrap_or_else(|p| p.into_inner());
        // Close the failed handle first: it holds the file's locks.
        drop(guard.take());
        *guard = Some(open_db(&self.loc.path)?);
        op(guard.as_ref().expect("just opened"))
    }
}

struct RedbRead<'a> {
    txn: &'a redb::ReadTransaction,
    tables: [OnceCell<RoTable>; Table::COUNT],
    path: &'a Path,
}

impl RedbRead<'_> {
    fn table(&self, table: Table) -> Result<&RoTable> {
        let cell = &self.tables[table.index()];
        if let Some(t) = cell.get() {
            return Ok(t);
        }
        let opened = self
            .txn
            .open_table(DEFS[table.index()])
            .map_err(|e| err(self.path, e))?;
        Ok(cell.get_or_init(|| opened))
    }
}

struct RedbWrite<'a, 't> {
    tables: Vec<redb::Table<'t, &'static [u8], &'static [u8]>>,
    path: &'a Path,
}

fn get_in<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    path: &Path,
    key: &[u8],
) -> Result<Option<Vec<u8>>> {
    Ok(t.get(key)
        .map_err(|e| err(path, e))?
        .map(|g| g.value().to_vec()))
}

fn scan_in<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    path: &Path,
    from: &[u8],
    dir: Direction,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let mut step = |item: std::result::Result<_, redb::StorageError>| -> Result<bool> {
        let (k, v): (redb::AccessGuard<&[u8]>, redb::AccessGuard<&[u8]>) =
            item.map_err(|e| err(path, e))?;
        visit(k.value(), v.value())
    };
    match dir {
        Direction::Forward => {
            for item in t.range::<&[u8]>(from..).map_err(|e| err(path, e))? {
                if !step(item)? {
                    break;
                }
            }
        }
        Direction::Backward => {
            for item in t.range::<&[u8]>(..=from).map_err(|e| err(path, e))?.rev() {
                if !step(item)? {
                    break;
                }
            }
        }
    }
    Ok(())
}

impl ReadTx for RedbRead<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        get_in(self.table(table)?, self.path, key)
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        scan_in(self.table(table)?, self.path, from, dir, visit)
    }

    fn len(&self, table: Table) -> Result<u64> {
        self.table(table)?.len().map_err(|e| err(self.path, e))
    }
}

impl ReadTx for RedbWrite<'_, '_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        get_in(&self.tables[table.index()], self.path, key)
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        scan_in(&self.tables[table.index()], self.path, from, dir, visit)
    }

    fn len(&self, table: Table) -> Result<u64> {
        self.tables[table.index()]
            .len()
            .map_err(|e| err(self.path, e))
    }
}

impl WriteTx for RedbWrite<'_, '_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.tables[table.index()]
            .insert(key, value)
            .map(drop)
            .map_err(|e| err(self.path, e))
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        Ok(self.tables[table.index()]
            .remove(key)
            .map_err(|e| err(self.path, e))?
            .is_some())
    }
}
