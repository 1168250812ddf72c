//! PostgreSQL backend (the synchronous `postgres` crate): one database shared by a fleet of hosts.
//!
//! Each logical table is one SQL table `ipqbdb_<name>` of `bytea` keys and values, made from
//! [`Table::ALL`], so a new logical table needs nothing here. Bytea compares as bytes, shorter
//! first, which is the order [`Direction`] defines. Notes (`note:` keys of the meta table: parser
//! read positions) are kept per host, in a `scope` column; everything else is shared.
//!
//! Writes run at SERIALIZABLE and are retried on a serialisation failure or deadlock (see
//! docs/ARCHITECTURE.md for why not row locks): the semantics in `store/` read-modify-write over
//! any keys, scans included, and only serialisable isolation makes that as safe as the single-writer
//! local engines without changing a line there. Each write also inserts a random commit token, so a
//! connection lost during COMMIT is settled by looking the token up rather than by guessing (a
//! retried batch would count its bans twice).
//!
//! Every plain table row carries the id (`x`, xid8) of the transaction that wrote it, and deletions
//! leave a tombstone in `ipqbdb_gone`: what a local view needs to follow the tables by transaction
//! id instead of reading them whole ([`PostgresStore::changes_since`]). `maintenance` removes
//! tombstones older than a day and raises the **tombstone horizon** (the row `('', '')` of
//! `ipqbdb_gone`, whose `x` is the newest removed tombstone's): a view whose position is at or below
//! it may have missed deletions, so `changes_since` gives it the tables whole instead of changes,
//! and the view replaces what it holds ([`ChangeSet::whole`]).
//!
//! A file per job: `schema` (tables and statements), `connect` (configuration, password file,
//! dialling), `retry` (retried transactions, commit tokens), `feed` (changes since a transaction,
//! commit notices), `tx` (the key-value transaction); the engine itself here.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};


use crate::engines::Engine;
use crate::error::{Result, StoreError};
use ipqbdb_core::log::{log, Level};
use crate::kv::{ReadTx, Table, WriteTx};
use crate::server::system_host_name;
use crate::store::{ensure_format, Location, OpenOptions, StorageEngine};

mod connect;
mod fail;
mod feed;
mod retry;
mod schema;
mod state;
mod tables;
mod tx;

use connect::*;
use fail::*;
pub use feed::{ChangeSet, Listener};
use retry::*;
pub use schema::SCHEMA_VERSION;
pub use tables::sql_table;
use schema::*;
pub use state::PostgresStore;
use state::Conn;
use tx::*;

/// The running program's name, for a log line written from inside the store.
fn process_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| Some(Path::new(&a).file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "ipqbdb".into())
}

impl StorageEngine for PostgresStore {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        crate::dir::prepare(dir, Engine::Postgres, opts.create)?;
        let server = opts.server.as_ref().ok_or_else(|| {
            Self::config_error(
                dir,
                "this directory's database is on a PostgreSQL server, but no postgres-url is \
                 configured",
            )
        })?;
        let (config, tls) = Self::client_config(dir, server)?;
        let host = server.host_name.clone().unwrap_or_else(system_host_name);
        if host.is_empty() {
            return Err(Self::config_error(dir, "host-name is empty"));
        }
        let path = PathBuf::from(describe(&config));
        let mut store = PostgresStore {
            config: Box::new(config),
            tls,
            conn: Mutex::new(None),
            host,
            loc: Location::new(dir, &path, opts),
            schema_pending: AtomicBool::new(false),
        };
        let mut client = match store.dial() {
            Ok(client) => client,
            // A judge rebooted during a database outage judges from the view it saved here
            // (see crate::saved); so that it can start, the store opens unconnected and checks
            // the schema when the server first answers. Its own operations fail until then, as
            // they would on a connection lost later. Without a saved view it is an error, as
            // before: nothing could use such a store.
            Err(e) if is_connection_error(&e) && crate::saved::exists(dir) => {
                store.schema_pending = AtomicBool::new(true);
                return Ok(store);
            }
            Err(e) => return Err(store.backend_error(e)),
        };
        store.ensure_schema(&mut client, opts.create)?;
        // The schema exists now: the same connection serves the store.
        let conn = store.prepare(client)?;
        *store.conn.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(conn);
        store.loc.v6_prefix = ensure_format(&store)?;
        Ok(store)
    }

    fn engine(&self) -> Engine {
        Engine::Postgres
    }

    fn location(&self) -> &Location {
        &self.loc
    }

    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        self.with_read(&mut |txn, stmts| {
            let tx = PgTx::new(txn, stmts, &self.host, &self.loc.path);
            let out = f(&tx);
            tx.settle(out)
        })
    }

    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        let mut reconnected = false;
        loop {
            let mut guard = self.conn()?;
            let conn = guard.as_mut().expect("connected");
            let token = token();
            let Conn { client, stmts } = conn;
            let tried = attempt(client, stmts, &token, &self.host, &self.loc.path, f)
                .map(|(txn, out)| (txn.commit(), out));
            let (e, out) = match tried {
                Ok((Ok(()), out)) => return Ok(out),
                Ok((Err(e), out)) => (e, Some(out)),
                Err(PgFail::Store(e)) => return Err(e),
                Err(PgFail::Db(e)) => (e, None),
            };
            if is_serialisation_failure(&e) && started.elapsed() < RETRY_FOR {
                drop(guard);
                // Jittered backoff, so writers that collided do not collide again in step.
                let jitter = u64::from(token[0]) * pause.as_micros() as u64 / 256;
                std::thread::sleep(pause + Duration::from_micros(jitter));
                pause = (pause * 2).min(Duration::from_millis(100));
                continue;
            }
            if !is_connection_error(&e) {
                drop(guard);
                // An error after COMMIT was sent is COMMIT's, or the commit notice's after the
                // write committed: the token says which.
                if let Some(out) = out {
                    if matches!(self.landed(&token), Ok(true)) {
                        return Ok(out);
                    }
                }
                return Err(self.backend_error(e));
            }
            *guard = None;
            drop(guard);
            if let Some(out) = out {
                // The connection broke during COMMIT, which may or may not have happened: the
                // token says which, once the server answers again (see SETTLE_FOR).
                let asked = Instant::now();
                let mut wait = Duration::from_millis(50);
                let mut said = false;
                let committed = loop {
                    match self.landed(&token) {
                        Ok(landed) => break landed,
                        Err(_) if asked.elapsed() < SETTLE_FOR => {
                            if !said && asked.elapsed() >= SETTLE_QUIET {
                                // An outage can last minutes: the program says why it waits.
                                said = true;
                                log(
                                    &process_name(),
                                    Level::Error,
                                    &format!(
                                        "{}; the last commit's outcome is unknown until the \
                                         server answers (waiting up to {} s)",
                                        StoreError::engine(&self.loc.path, Engine::Postgres, Explained::from(&e)),
                                        SETTLE_FOR.as_secs()
                                    ),
                                );
                            }
                            std::thread::sleep(wait);
                            wait = (wait * 2).min(Duration::from_secs(1));
                        }
                        Err(_) => return Err(self.backend_error(e)),
                    }
                };
                if committed {
                    return Ok(out);
                }
                // It did not land: nothing was written, so the write is done again.
                reconnected = false;
                continue;
            }
            if reconnected {
                return Err(self.backend_error(e));
            }
            // Nothing was committed: one more try on a new connection (a server restarted since
            // our last operation breaks the old one without anyone being at fault).
            reconnected = true;
        }
    }

    fn maintenance(&self) -> Result<()> {
        let mut guard = self.conn()?;
        let conn = guard.as_mut().expect("connected");
        // The horizon is raised in the statement that removes the tombstones, so no view can
        // see them gone without seeing the horizon that covers them.
        let res = conn.client.batch_execute(&format!(
            "DELETE FROM ipqbdb_commit WHERE at < now() - interval '{TOKEN_KEEP_SECS} seconds';\n\
             WITH d AS (DELETE FROM ipqbdb_gone WHERE tbl <> '' \
             AND at < now() - interval '{TOKEN_KEEP_SECS} seconds' RETURNING x) \
             INSERT INTO ipqbdb_gone (tbl, k, x) \
             SELECT '', ''::bytea, x FROM d ORDER BY x DESC LIMIT 1 \
             ON CONFLICT (tbl, k) DO UPDATE SET x = greatest(ipqbdb_gone.x, EXCLUDED.x), at = now();"
        ));
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                if is_connection_error(&e) {
                    *guard = None;
                }
                Err(self.backend_error(e))
            }
        }
    }

    fn disk_size(&self) -> Result<u64> {
        self.with_read(&mut |txn, _| {
            let names: Vec<String> = Table::ALL.iter().map(|&t| sql_table(t)).collect();
            let n: i64 = txn
                .query_one(
                    "SELECT coalesce(sum(pg_total_relation_size(to_regclass(n))), 0)::int8 \
                     FROM unnest($1::text[]) n",
                    &[&names],
                )
                .map_err(PgFail::Db)?
                .get(0);
            Ok(n.max(0) as u64)
        })
    }
}
