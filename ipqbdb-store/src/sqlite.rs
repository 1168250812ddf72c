//! SQLite backend (rusqlite, bundled).
//!
//! Multi-process rules (every program is a process of its own on one database): `busy_timeout` is set before switching to WAL, because the
//! switch itself may meet a lock; every write runs in `BEGIN IMMEDIATE`, because a deferred transaction
//! that upgrades to a writer fails with SQLITE_BUSY_SNAPSHOT instead of waiting; `synchronous=FULL`
//! makes an acknowledged ban survive power loss, not just a crash.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::engines::Engine;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, Visit, WriteTx};
use crate::store::{ensure_format, Location, OpenOptions, StorageEngine};

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);
/// Marks the file as ipqbdb's (`PRAGMA application_id`), so a foreign SQLite file is refused.
const APPLICATION_ID: i32 = 0x6970_6462;

pub struct SqliteStore {
    conn: Mutex<Connection>,
    loc: Location,
}

fn err(path: &Path, e: rusqlite::Error) -> StoreError {
    let corrupt = matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    );
    if corrupt {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            what: e.to_string(),
        }
    } else {
        StoreError::engine(path, Engine::Sqlite, e)
    }
}

impl StorageEngine for SqliteStore {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        crate::dir::prepare(dir, Engine::Sqlite, opts.create)?;
        let path = crate::dir::engine_path(dir, Engine::Sqlite);
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if opts.create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| err(&path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| err(&path, e))?;
        let setup = |conn: &Connection| -> rusqlite::Result<i32> {
            let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
            conn.execute_batch("PRAGMA synchronous=FULL")?;
            conn.query_row("PRAGMA application_id", [], |r| r.get(0))
        };
        let app_id = setup(&conn).map_err(|e| err(&path, e))?;
        if app_id != 0 && app_id != APPLICATION_ID {
            return Err(StoreError::Foreign {
                dir: dir.to_path_buf(),
                why: format!(
                    "{} is an SQLite file of another application (id {app_id:#x})",
                    path.display()
                ),
            });
        }
        let create_tables = |conn: &mut Connection| -> rusqlite::Result<()> {
            let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ddl = format!("PRAGMA application_id={APPLICATION_ID};");
            for t in Table::ALL {
                ddl.push_str(&format!(
                    "CREATE TABLE IF NOT EXISTS {} (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
                    t.name()
                ));
            }
            txn.execute_batch(&ddl)?;
            txn.commit()
        };
        let mut conn = conn;
        // The DDL is a write transaction: only for a database that lacks a table.
        // A database of an older version lacks the tables added since (e.g. `report`).
        let names: Vec<String> = Table::ALL
            .iter()
            .map(|t| format!("'{}'", t.name()))
            .collect();
        let present: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ({})",
                    names.join(", ")
                ),
                [],
                |r| r.get(0),
            )
            .map_err(|e| err(&path, e))?;
        if present < Table::ALL.len() as i64 {
            create_tables(&mut conn).map_err(|e| err(&path, e))?;
        }
        let store = SqliteStore {
            conn: Mutex::new(conn),
            loc: Location::new(dir, &path, opts),
        };
        let mut store = store;
        store.loc.v6_prefix = ensure_format(&store)?;
        crate::dir::share_with_group(dir, Engine::Sqlite);
        Ok(store)
    }

    fn engine(&self) -> Engine {
        Engine::Sqlite
    }

    fn location(&self) -> &Location {
        &self.loc
    }

    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        let mut conn = self.lock();
        let txn = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(|e| err(&self.loc.path, e))?;
        let out = f(&SqliteTx {
            conn: &txn,
            path: &self.loc.path,
        })?;
        txn.finish().map_err(|e| err(&self.loc.path, e))?;
        Ok(out)
    }

    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        let mut conn = self.lock();
        let txn = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| err(&self.loc.path, e))?;
        let out = f(&mut SqliteTx {
            conn: &txn,
            path: &self.loc.path,
        })?;
        txn.commit().map_err(|e| err(&self.loc.path, e))?;
        Ok(out)
    }

    fn maintenance(&self) -> Result<()> {
        let conn = self.lock();
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| err(&self.loc.path, e))
    }

    fn disk_size(&self) -> Result<u64> {
        let mut total = 0;
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", self.loc.path.display()));
            if let Ok(m) = std::fs::metadata(&p) {
                total += m.len();
            }
        }
        Ok(total)
    }
}

impl SqliteStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable: SQLite rolls back the open
        // transaction when the guard's Transaction drops.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct SqliteTx<'a> {
    conn: &'a Connection,
    path: &'a Path,
}

/// The SQL of each operation on each table, built once: the statement cache is keyed by text.
struct Sql {
    get: String,
    scan_forward: String,
    scan_backward: String,
    count: String,
    put: String,
    delete: String,
}

fn sql(table: Table) -> &'static Sql {
    static SQL: std::sync::OnceLock<Vec<Sql>> = std::sync::OnceLock::new();
    &SQL.get_or_init(|| {
        Table::ALL
            .iter()
            .map(|t| {
                let n = t.name();
                Sql {
                    get: format!("SELECT v FROM {n} WHERE k = ?1"),
                    scan_forward: format!("SELECT k, v FROM {n} WHERE k >= ?1 ORDER BY k"),
                    scan_backward: format!("SELECT k, v FROM {n} WHERE k <= ?1 ORDER BY k DESC"),
                    count: format!("SELECT count(*) FROM {n}"),
                    put: format!("INSERT OR REPLACE INTO {n} (k, v) VALUES (?1, ?2)"),
                    delete: format!("DELETE FROM {n} WHERE k = ?1"),
                }
            })
            .collect()
    })[table.index()]
}

impl ReadTx for SqliteTx<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut stmt = self
            .conn
            .prepare_cached(&sql(table).get)
            .map_err(|e| err(self.path, e))?;
        stmt.query_row([key], |r| r.get(0))
            .optional()
            .map_err(|e| err(self.path, e))
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        let text = match dir {
            Direction::Forward => &sql(table).scan_forward,
            Direction::Backward => &sql(table).scan_backward,
        };
        let mut stmt = self
            .conn
            .prepare_cached(text)
            .map_err(|e| err(self.path, e))?;
        let mut rows = stmt.query([from]).map_err(|e| err(self.path, e))?;
        while let Some(row) = rows.next().map_err(|e| err(self.path, e))? {
            let k = row
                .get_ref(0)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(|e| err(self.path, e))?;
            let v = row
                .get_ref(1)
                .and_then(|v| Ok(v.as_blob()?))
                .map_err(|e| err(self.path, e))?;
            if !visit(k, v)? {
                break;
            }
        }
        Ok(())
    }

    fn len(&self, table: Table) -> Result<u64> {
        self.conn
            .query_row(&sql(table).count, [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| err(self.path, e))
    }
}

impl WriteTx for SqliteTx<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&sql(table).put)
            .map_err(|e| err(self.path, e))?;
        stmt.execute([key, value]).map_err(|e| err(self.path, e))?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare_cached(&sql(table).delete)
            .map_err(|e| err(self.path, e))?;
        Ok(stmt.execute([key]).map_err(|e| err(self.path, e))? > 0)
    }
}
