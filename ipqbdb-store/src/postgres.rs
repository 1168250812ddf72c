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

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, Config, IsolationLevel, NoTls, Statement, Transaction};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, Visit, WriteTx};
use crate::server::{password_from_pgpass, read_password_file, system_host_name, ServerOptions};
use crate::store::{ensure_format, Location, OpenOptions, StorageEngine};

/// The schema this program creates and understands. A database of a higher version is refused.
pub const SCHEMA_VERSION: i32 = 1;
/// Written beside the version, so a table of that name from another application is recognised.
const SCHEMA_APP: &str = "ipqbdb";
/// Serialises schema creation between hosts opening a new database at once.
const SCHEMA_LOCK: i64 = 0x6970_6462_0001;
/// How long a write keeps retrying serialisation failures before giving up.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// How long a write whose COMMIT lost its connection keeps asking whether it landed. Only the
/// server knows, and both guesses are wrong half the time: "no" repeats bans when the write is done
/// again, "yes" loses them. So the write waits (the parser holds its lines meanwhile) for the
/// server to come back and say, longer than any restart should take.
const SETTLE_FOR: Duration = Duration::from_secs(600);
/// How long a connection attempt may take: an unreachable server is an error, never a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged by a TCP server before the connection counts as lost.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// Commit tokens and tombstones older than this are deleted by `maintenance`: a view that has
/// not caught up for that long loads the tables again (see the tombstone horizon above).
const TOKEN_KEEP_SECS: i64 = 86_400;
/// The channel every write notifies on commit, and views listen on.
const CHANNEL: &str = "ipqbdb_commit";
/// Rows a scan fetches in its first round trip; each further one fetches eight times more, so a
/// seek (the whitelist lookup reads one or two rows) costs one small round trip, a full scan few.
const FIRST_FETCH: i32 = 16;
const MAX_FETCH: i32 = 16_384;

/// The SQL table of a logical table.
pub fn sql_table(table: Table) -> String {
    format!("ipqbdb_{}", table.name())
}

/// Whether a table's rows are scoped per host (only the meta table, for the notes).
fn scoped(table: Table) -> bool {
    table == Table::Meta
}

/// The tables [`ddl`] makes beside one per logical table.
const OWN_TABLES: [&str; 3] = ["ipqbdb_schema", "ipqbdb_commit", "ipqbdb_gone"];
/// How many of the tables named in `$1` exist, or are missing.
const COUNT_EXISTING: &str =
    "SELECT count(*) FROM unnest($1::text[]) n WHERE to_regclass(n) IS NOT NULL";
const COUNT_MISSING: &str =
    "SELECT count(*) FROM unnest($1::text[]) n WHERE to_regclass(n) IS NULL";

fn ddl() -> String {
    let mut ddl = String::from(
        "CREATE TABLE IF NOT EXISTS ipqbdb_schema (app text NOT NULL, version integer NOT NULL);\n\
         CREATE TABLE IF NOT EXISTS ipqbdb_commit (token bytea PRIMARY KEY, \
         at timestamptz NOT NULL DEFAULT now());\n\
         CREATE TABLE IF NOT EXISTS ipqbdb_gone (tbl text NOT NULL, k bytea NOT NULL, \
         x xid8 NOT NULL DEFAULT pg_current_xact_id(), \
         at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (tbl, k));\n\
         CREATE INDEX IF NOT EXISTS ipqbdb_gone_x ON ipqbdb_gone (x);\n",
    );
    for t in Table::ALL {
        let n = sql_table(t);
        if scoped(t) {
            ddl.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {n} (scope text NOT NULL, k bytea NOT NULL, \
                 v bytea NOT NULL, PRIMARY KEY (scope, k));\n"
            ));
        } else {
            ddl.push_str(&format!(
                "CREATE TABLE IF NOT EXISTS {n} (k bytea PRIMARY KEY, v bytea NOT NULL, \
                 x xid8 NOT NULL DEFAULT pg_current_xact_id());\n\
                 CREATE INDEX IF NOT EXISTS {n}_x ON {n} (x);\n"
            ));
        }
    }
    ddl
}

/// The prepared statements of one table.
struct Stmts {
    get: Statement,
    forward: Statement,
    backward: Statement,
    count: Statement,
    put: Statement,
    delete: Statement,
    /// `get_many`: the rows of the keys in `$1` (bytea[]).
    get_many: Statement,
    /// `put_many`: one multi-row upsert of the keys `$1` and values `$2` (and scopes `$3`).
    put_many: Statement,
}

impl Stmts {
    fn prepare(client: &mut Client, table: Table) -> std::result::Result<Stmts, postgres::Error> {
        let n = sql_table(table);
        let t = table.name();
        let mut p = |sql: String| client.prepare(&sql);
        if scoped(table) {
            Ok(Stmts {
                get: p(format!("SELECT v FROM {n} WHERE scope = $2 AND k = $1"))?,
                forward: p(format!(
                    "SELECT k, v FROM {n} WHERE scope IN ('', $2) AND k >= $1 ORDER BY k"
                ))?,
                backward: p(format!(
                    "SELECT k, v FROM {n} WHERE scope IN ('', $2) AND k <= $1 ORDER BY k DESC"
                ))?,
                count: p(format!("SELECT count(*) FROM {n} WHERE scope IN ('', $1)"))?,
                put: p(format!(
                    "INSERT INTO {n} (k, v, scope) VALUES ($1, $2, $3) \
                     ON CONFLICT (scope, k) DO UPDATE SET v = EXCLUDED.v"
                ))?,
                delete: p(format!("DELETE FROM {n} WHERE scope = $2 AND k = $1"))?,
                get_many: p(format!(
                    "SELECT k, v FROM {n} WHERE scope = $2 AND k = ANY($1::bytea[])"
                ))?,
                put_many: p(format!(
                    "INSERT INTO {n} (k, v, scope) \
                     SELECT u.k, u.v, $3 FROM unnest($1::bytea[], $2::bytea[]) AS u(k, v) \
                     ON CONFLICT (scope, k) DO UPDATE SET v = EXCLUDED.v"
                ))?,
            })
        } else {
            Ok(Stmts {
                get: p(format!("SELECT v FROM {n} WHERE k = $1"))?,
                forward: p(format!("SELECT k, v FROM {n} WHERE k >= $1 ORDER BY k"))?,
                backward: p(format!(
                    "SELECT k, v FROM {n} WHERE k <= $1 ORDER BY k DESC"
                ))?,
                count: p(format!("SELECT count(*) FROM {n}"))?,
                put: p(format!(
                    "INSERT INTO {n} (k, v) VALUES ($1, $2) \
                     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, x = pg_current_xact_id()"
                ))?,
                delete: p(format!(
                    "WITH d AS (DELETE FROM {n} WHERE k = $1 RETURNING k) \
                     INSERT INTO ipqbdb_gone (tbl, k) SELECT '{t}', k FROM d \
                     ON CONFLICT (tbl, k) DO UPDATE SET x = pg_current_xact_id(), at = now()"
                ))?,
                get_many: p(format!("SELECT k, v FROM {n} WHERE k = ANY($1::bytea[])"))?,
                put_many: p(format!(
                    "INSERT INTO {n} (k, v) SELECT * FROM unnest($1::bytea[], $2::bytea[]) \
                     ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v, x = pg_current_xact_id()"
                ))?,
            })
        }
    }
}

/// A connection with its statements, prepared once per connection.
struct Conn {
    client: Client,
    stmts: Vec<Stmts>,
    token: Statement,
}

pub struct PostgresStore {
    /// Boxed: it is large, and stores are moved around in `AnyStore`.
    config: Box<Config>,
    /// The TLS connector (`sslmode` other than `disable`: see [`crate::tls`]).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// `None` after the connection was found broken: the next operation connects again, so a
    /// server restart needs no restart of ours.
    conn: Mutex<Option<Conn>>,
    host: String,
    loc: Location,
    /// Opened without its server (see [`PostgresStore::open`]): the schema is checked at the first
    /// connection instead.
    schema_pending: AtomicBool,
}

/// Whether `e` says the connection is gone (rather than the statement failing): the next
/// operation must connect again.
fn is_connection_error(e: &postgres::Error) -> bool {
    const LOST: [&str; 6] = [
        "error communicating",
        "error connecting",
        "timeout waiting",
        "unexpected message",
        "error parsing response",
        "error encoding",
    ];
    let text = e.to_string();
    e.is_closed()
        || LOST.iter().any(|p| text.starts_with(p))
        || matches!(
            e.code(),
            Some(c) if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        )
}

fn is_serialisation_failure(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// A client error with its causes on one line: the crate shows `db error` alone, and the server's
/// message (`FATAL: terminating connection due to administrator command`) is in the source.
#[derive(Debug)]
struct Explained(String);

impl From<&postgres::Error> for Explained {
    fn from(e: &postgres::Error) -> Self {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            let more = c.to_string();
            if !text.ends_with(&more) {
                text.push_str(": ");
                text.push_str(&more);
            }
            cause = c.source();
        }
        Explained(text.replace('\n', " "))
    }
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Explained {}

/// A random 16-byte token (no RNG crate needed: the kernel's).
fn token() -> [u8; 16] {
    let mut t = [0u8; 16];
    // SAFETY: the buffer is valid for its length.
    let n = unsafe { libc::getrandom(t.as_mut_ptr().cast(), t.len(), 0) };
    if n != t.len() as isize {
        // Unique enough as a fallback: time, pid and address of the stack.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        t = (now ^ (u128::from(std::process::id()) << 96) ^ (&t as *const _ as u128)).to_be_bytes();
    }
    t
}

/// A connection of its own that waits for writers' commit notices ([`PostgresStore::listen`]).
pub struct Listener {
    client: Client,
    path: PathBuf,
}

impl Listener {
    /// Waits up to `timeout` for a commit notice: `Ok(true)` when one or more came (all taken),
    /// `Ok(false)` when none did, an error when the connection is gone (listen again).
    pub fn wait(&mut self, timeout: Duration) -> Result<bool> {
        let lost = |e: postgres::Error, path: &Path| {
            StoreError::backend(path, Backend::Postgres, Explained::from(&e))
        };
        let mut got = false;
        {
            let mut notes = self.client.notifications();
            let mut it = notes.timeout_iter(timeout);
            if it.next().map_err(|e| lost(e, &self.path))?.is_some() {
                got = true;
            }
        }
        // Notices that came together count once.
        {
            let mut notes = self.client.notifications();
            while notes
                .iter()
                .next()
                .map_err(|e| lost(e, &self.path))?
                .is_some()
            {}
        }
        if self.client.is_closed() {
            return Err(StoreError::backend(
                &self.path,
                Backend::Postgres,
                Explained("the listening connection was closed".into()),
            ));
        }
        Ok(got)
    }
}

/// The server named for error messages: never the password.
fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgresql://{user}@{host}:{port}/{db}")
}

impl PostgresStore {
    fn config_error(dir: &Path, why: impl Into<String>) -> StoreError {
        StoreError::ServerConfig {
            dir: dir.to_path_buf(),
            why: why.into(),
        }
    }

    /// The client configuration: the connection string, a password from the password file or
    /// the libpq password file, and our defaults.
    fn client_config(
        dir: &Path,
        server: &ServerOptions,
    ) -> Result<(Config, Option<tokio_postgres_rustls::MakeRustlsConnect>)> {
        let (url, tls) = crate::tls::split(&server.url)
            .map_err(|e| Self::config_error(dir, format!("postgres-url: {e}")))?;
        let mut config = Config::from_str(&url).map_err(|e| {
            Self::config_error(dir, format!("postgres-url is not a connection string: {e}"))
        })?;
        config.ssl_mode(crate::tls::ssl_mode(tls.mode));
        let connector = crate::tls::connector(&tls)
            .map_err(|e| Self::config_error(dir, format!("postgres-url: {e}")))?;
        if config.get_password().is_some() {
            return Err(Self::config_error(
                dir,
                "postgres-url holds a password, which would show in `ps` and error messages: \
                 put it in postgres-password-file or the PGPASSFILE file",
            ));
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER").unwrap_or_else(|_| current_user());
            config.user(&user);
        }
        if let Some(file) = &server.password_file {
            let pw = read_password_file(file).map_err(|e| {
                Self::config_error(
                    dir,
                    format!("postgres-password-file {}: {e}", file.display()),
                )
            })?;
            config.password(pw);
        } else if let Some(pw) = Self::pgpass_password(&config) {
            config.password(pw);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A server that vanishes from the network (no reset) fails the statement within this,
        // instead of after the kernel's quarter of an hour of retransmissions.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
            config.keepalives_idle(TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ipqbdb");
        }
        Ok((config, connector))
    }

    /// A new connection, with TLS as configured.
    fn dial(&self) -> std::result::Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
    }

    /// The password the libpq password file gives for `config`, if any (an unreadable file gives
    /// none, as in libpq).
    fn pgpass_password(config: &Config) -> Option<String> {
        let file = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
        let text = std::fs::read_to_string(file).ok()?;
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            // libpq matches a Unix socket as "localhost".
            _ => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("");
        let db = config.get_dbname().unwrap_or(user);
        password_from_pgpass(&text, &host, port, db, user)
    }

    fn backend_error(&self, e: postgres::Error) -> StoreError {
        StoreError::backend(&self.loc.path, Backend::Postgres, Explained::from(&e))
    }

    fn connect(&self) -> Result<Conn> {
        let mut client = self.dial().map_err(|e| self.backend_error(e))?;
        if self.schema_pending.load(Ordering::Relaxed) {
            self.ensure_schema(&mut client, self.loc.opts.create)?;
            self.schema_pending.store(false, Ordering::Relaxed);
        }
        self.prepare(client)
    }

    /// The server and database, as named in errors and in the judge's saved view (never the
    /// password): a view saved from one database is not used for another.
    pub fn source_name(&self) -> String {
        self.loc.path.display().to_string()
    }

    /// A connection with its statements prepared.
    fn prepare(&self, mut client: Client) -> Result<Conn> {
        let prepared = (|| -> std::result::Result<Conn, postgres::Error> {
            let stmts = Table::ALL
                .iter()
                .map(|&t| Stmts::prepare(&mut client, t))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            // The notice rides on the token's statement (no round trip of its own) and is
            // delivered only if the transaction commits.
            let token = client.prepare(&format!(
                "WITH t AS (INSERT INTO ipqbdb_commit (token) VALUES ($1)) \
                 SELECT pg_notify('{CHANNEL}', '')"
            ))?;
            Ok(Conn {
                client,
                stmts,
                token,
            })
        })();
        prepared.map_err(|e| self.backend_error(e))
    }

    /// The connection, made anew if the last one broke.
    fn conn(&self) -> Result<MutexGuard<'_, Option<Conn>>> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = None;
            *guard = Some(self.connect()?);
        }
        Ok(guard)
    }

    /// Creates the schema in a new database, or checks an existing one's.
    fn ensure_schema(&self, client: &mut Client, create: bool) -> Result<()> {
        let dir = &self.loc.dir;
        let names: Vec<String> = Table::ALL.iter().map(|&t| sql_table(t)).collect();
        let check = |client: &mut Client| -> Result<Option<i32>> {
            let has_schema: bool = client
                .query_one("SELECT to_regclass('ipqbdb_schema') IS NOT NULL", &[])
                .map_err(|e| self.backend_error(e))?
                .get(0);
            if !has_schema {
                if self.count_tables(client, &names, true)? > 0 {
                    return Err(StoreError::Foreign {
                        dir: dir.clone(),
                        why: format!(
                            "{} has tables named like ipqbdb's but no ipqbdb_schema table",
                            self.loc.path.display()
                        ),
                    });
                }
                return Ok(None);
            }
            let not_ours = |e: postgres::Error| StoreError::Foreign {
                dir: dir.clone(),
                why: format!(
                    "{}: ipqbdb_schema is not ipqbdb's: {e}",
                    self.loc.path.display()
                ),
            };
            let rows = client
                .query("SELECT app, version FROM ipqbdb_schema", &[])
                .map_err(not_ours)?;
            let found: Vec<(String, i32)> = rows
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<std::result::Result<_, postgres::Error>>()
                .map_err(not_ours)?;
            match found.as_slice() {
                [(app, v)] if app == SCHEMA_APP => Ok(Some(*v)),
                // An empty table: another host is creating the schema (or died doing it); the
                // advisory lock below sorts it out.
                [] => Ok(Some(0)),
                _ => Err(StoreError::Foreign {
                    dir: dir.clone(),
                    why: format!(
                        "{}: ipqbdb_schema holds {found:?}, not one ipqbdb version",
                        self.loc.path.display()
                    ),
                }),
            }
        };
        let version = check(client)?;
        match version {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::Foreign {
                    dir: dir.clone(),
                    why: format!(
                        "{} has ipqbdb schema version {v}, newer than this program's \
                         {SCHEMA_VERSION}: upgrade ipqbdb on this host",
                        self.loc.path.display()
                    ),
                })
            }
            Some(v) if v == SCHEMA_VERSION && self.count_tables(client, &names, false)? == 0 => {
                return Ok(())
            }
            None if !create => {
                return Err(StoreError::Missing {
                    dir: self.loc.dir.clone(),
                })
            }
            _ => {}
        }
        // Create (or complete: a table added since) under a lock, checking again inside it: hosts
        // starting together all find no schema, and all but the first find it made once they
        // hold the lock. They run no DDL then, because `CREATE INDEX IF NOT EXISTS` locks its
        // table before it sees the index, and the first host's programs are writing by then: a
        // deadlock, which the server breaks by failing one side.
        let all: Vec<String> = OWN_TABLES
            .into_iter()
            .map(String::from)
            .chain(names.iter().cloned())
            .collect();
        // The lock is the session's, taken before the transaction: a transaction that waited for
        // it inside itself still read the catalog as it was before the wait (the tables the
        // first host made looked missing), and ran the DDL again beside that host's writes.
        let run = |client: &mut Client| -> std::result::Result<(), postgres::Error> {
            client.execute("SELECT pg_advisory_lock($1)", &[&SCHEMA_LOCK])?;
            let made = (|| {
                let mut txn = client.transaction()?;
                let missing: i64 = txn.query_one(COUNT_MISSING, &[&all])?.get(0);
                if missing > 0 {
                    txn.batch_execute(&ddl())?;
                }
                let n: i64 = txn
                    .query_one("SELECT count(*) FROM ipqbdb_schema", &[])?
                    .get(0);
                if n == 0 {
                    txn.execute(
                        "INSERT INTO ipqbdb_schema (app, version) VALUES ($1, $2)",
                        &[&SCHEMA_APP, &SCHEMA_VERSION],
                    )?;
                }
                txn.commit()
            })();
            // Released whatever happened (the connection's end would release it too).
            let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&SCHEMA_LOCK]);
            made.and(unlocked.map(drop))
        };
        // Completing a schema (a table added by a newer version) runs DDL beside writers: the
        // server may still fail it to break a deadlock, and it is simply run again.
        let started = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            match run(client) {
                Ok(()) => break,
                Err(e) if is_serialisation_failure(&e) && started.elapsed() < RETRY_FOR => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) => return Err(self.backend_error(e)),
            }
        }
        match check(client)? {
            Some(SCHEMA_VERSION) => Ok(()),
            other => Err(StoreError::Foreign {
                dir: dir.clone(),
                why: format!(
                    "{}: schema version {other:?} after creation",
                    self.loc.path.display()
                ),
            }),
        }
    }

    /// How many of the tables `names` exist (`exist`), or are missing.
    fn count_tables(&self, client: &mut Client, names: &[String], exist: bool) -> Result<i64> {
        let sql = if exist { COUNT_EXISTING } else { COUNT_MISSING };
        let row = client
            .query_one(sql, &[&names])
            .map_err(|e| self.backend_error(e))?;
        Ok(row.get(0))
    }

    /// A new connection listening for commit notices (each write's transaction notifies, so a
    /// view can refresh at once instead of at its next poll).
    pub fn listen(&self) -> Result<Listener> {
        let mut client = self.dial().map_err(|e| self.backend_error(e))?;
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .map_err(|e| self.backend_error(e))?;
        Ok(Listener {
            client,
            path: self.loc.path.clone(),
        })
    }

    /// This host's name in the shared database (the scope of its notes).
    pub fn host_name(&self) -> &str {
        &self.host
    }

    /// Runs `f` in one read-only transaction on the connection, with one reconnection if the
    /// connection turns out to be broken (a read is safe to run again).
    fn with_read<R>(&self, f: &mut InTxn<'_, R>) -> Result<R> {
        let mut last = None;
        for _ in 0..2 {
            let mut guard = self.conn()?;
            let conn = guard.as_mut().expect("connected");
            let out = (|| {
                let mut txn = conn
                    .client
                    .build_transaction()
                    .isolation_level(IsolationLevel::RepeatableRead)
                    .read_only(true)
                    .start()
                    .map_err(PgFail::Db)?;
                let out = f(&mut txn, &conn.stmts)?;
                txn.commit().map_err(PgFail::Db)?;
                Ok(out)
            })();
            match out {
                Ok(v) => return Ok(v),
                Err(PgFail::Db(e)) if is_connection_error(&e) => {
                    *guard = None;
                    last = Some(self.backend_error(e));
                }
                Err(PgFail::Db(e)) => return Err(self.backend_error(e)),
                Err(PgFail::Store(e)) => return Err(e),
            }
        }
        Err(last.expect("an error"))
    }

    /// What changed in `tables` since `after` (a transaction id snapshot bound returned by
    /// an earlier call; 0 for everything): each changed key with its value (`None` when deleted),
    /// and the bound to pass next time. Rows of transactions that had not committed when the
    /// earlier call ran have ids at or above its bound, so none is missed.
    ///
    /// A caller whose `after` is at or below the tombstone horizon gets, like `after` 0, the tables
    /// whole ([`ChangeSet::whole`]): deletions it has not seen may be gone from `ipqbdb_gone`. So
    /// does one whose `after` is beyond the server's position (a view saved from an earlier life
    /// of the database).
    pub fn changes_since(&self, tables: &[Table], after: u64) -> Result<ChangeSet> {
        self.with_read(&mut |txn, _| {
            let xmin: String = txn
                .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])
                .map_err(PgFail::Db)?
                .get(0);
            let next: u64 = xmin.parse().unwrap_or(after);
            let horizon: Option<String> = txn
                .query_opt(
                    "SELECT x::text FROM ipqbdb_gone WHERE tbl = '' AND k = ''::bytea",
                    &[],
                )
                .map_err(PgFail::Db)?
                .map(|r| r.get(0));
            let horizon: u64 = horizon.and_then(|h| h.parse().ok()).unwrap_or(0);
            // A position ahead of the server's is not one of this database's (restored from a
            // backup, or made anew): only the whole tables are right then.
            let whole = after == 0 || after <= horizon || after > next;
            let after = if whole { 0 } else { after };
            let bound = after.to_string();
            let mut changes = Vec::new();
            for &t in tables {
                if scoped(t) {
                    // Small, and only its shared rows matter to a view (format, settings): whole.
                    let rows = txn
                        .query(
                            &format!("SELECT k, v FROM {} WHERE scope = ''", sql_table(t)),
                            &[],
                        )
                        .map_err(PgFail::Db)?;
                    for r in rows {
                        changes.push((t, r.get::<_, Vec<u8>>(0), Some(r.get::<_, Vec<u8>>(1))));
                    }
                    continue;
                }
                if after > 0 {
                    let rows = txn
                        .query(
                            "SELECT k FROM ipqbdb_gone WHERE tbl = $1 AND x >= $2::text::xid8",
                            &[&t.name(), &bound],
                        )
                        .map_err(PgFail::Db)?;
                    for r in rows {
                        changes.push((t, r.get::<_, Vec<u8>>(0), None));
                    }
                }
                let rows = txn
                    .query(
                        &format!(
                            "SELECT k, v FROM {} WHERE x >= $1::text::xid8",
                            sql_table(t)
                        ),
                        &[&bound],
                    )
                    .map_err(PgFail::Db)?;
                for r in rows {
                    changes.push((t, r.get::<_, Vec<u8>>(0), Some(r.get::<_, Vec<u8>>(1))));
                }
            }
            Ok(ChangeSet {
                changes,
                next,
                whole,
            })
        })
    }
}

/// What [`PostgresStore::changes_since`] found.
#[derive(Debug, Default)]
pub struct ChangeSet {
    /// (table, key, new value or `None` for deleted), each table's deletions before its values: a
    /// key deleted and written again since the bound appears twice, and applied in order, the value
    /// wins.
    pub changes: Vec<(Table, Vec<u8>, Option<Vec<u8>>)>,
    /// The bound to ask from next time.
    pub next: u64,
    /// `changes` is everything the tables hold, with no deletions (a first load, or a caller
    /// behind the tombstone horizon): the receiver replaces what it holds of them.
    pub whole: bool,
}

fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer to static storage or null; it is read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return "postgres".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// What [`PostgresStore::with_read`] runs in its transaction.
type InTxn<'a, R> =
    dyn FnMut(&mut Transaction<'_>, &[Stmts]) -> std::result::Result<R, PgFail> + 'a;

/// A failure inside a transaction: the server's (maybe retryable) or the callback's own.
enum PgFail {
    Db(postgres::Error),
    Store(StoreError),
}

impl From<StoreError> for PgFail {
    fn from(e: StoreError) -> Self {
        PgFail::Store(e)
    }
}

impl StorageEngine for PostgresStore {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        crate::dir::prepare(dir, Backend::Postgres, opts.create)?;
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

    fn backend(&self) -> Backend {
        Backend::Postgres
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
            let Conn {
                client,
                stmts,
                token: token_stmt,
                ..
            } = conn;
            let (e, out) = match attempt(
                client,
                stmts,
                token_stmt,
                &token,
                &self.host,
                &self.loc.path,
                f,
            ) {
                Ok((txn, out)) => match txn.commit() {
                    Ok(()) => return Ok(out),
                    Err(e) => (e, Some(out)),
                },
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
                return Err(self.backend_error(e));
            }
            *guard = None;
            drop(guard);
            if let Some(out) = out {
                // The connection broke during COMMIT, which may or may not have happened: the
                // token says which, once the server answers again (see SETTLE_FOR).
                let asked = Instant::now();
                let mut wait = Duration::from_millis(50);
                let committed = loop {
                    let answer = self.with_read(&mut |txn, _| {
                        txn.query_opt(
                            "SELECT 1 FROM ipqbdb_commit WHERE token = $1",
                            &[&&token[..]],
                        )
                        .map(|r| r.is_some())
                        .map_err(PgFail::Db)
                    });
                    match answer {
                        Ok(landed) => break landed,
                        Err(_) if asked.elapsed() < SETTLE_FOR => {
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

/// One try of a write: the transaction, token inserted and callback run, ready to commit.
fn attempt<'c, R>(
    client: &'c mut Client,
    stmts: &[Stmts],
    token_stmt: &Statement,
    token: &[u8],
    host: &str,
    path: &Path,
    f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>,
) -> std::result::Result<(Transaction<'c>, R), PgFail> {
    let mut txn = client
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .map_err(PgFail::Db)?;
    txn.execute(token_stmt, &[&token]).map_err(PgFail::Db)?;
    let out = {
        let mut tx = PgTx::new(&mut txn, stmts, host, path);
        let out = f(&mut tx);
        tx.settle(out)?
    };
    Ok((txn, out))
}

/// A transaction as the key-value interface sees it. The first server error is kept, so the
/// caller can tell a serialisation failure (retry) from the callback's own error.
struct PgTx<'t, 'c> {
    txn: RefCell<&'t mut Transaction<'c>>,
    stmts: &'t [Stmts],
    host: &'t str,
    path: &'t Path,
    failed: Cell<Option<postgres::Error>>,
}

impl<'t, 'c> PgTx<'t, 'c> {
    fn new(
        txn: &'t mut Transaction<'c>,
        stmts: &'t [Stmts],
        host: &'t str,
        path: &'t Path,
    ) -> Self {
        PgTx {
            txn: RefCell::new(txn),
            stmts,
            host,
            path,
            failed: Cell::new(None),
        }
    }

    /// The callback's result, with a server error that caused it put first.
    fn settle<R>(self, out: Result<R>) -> std::result::Result<R, PgFail> {
        match (out, self.failed.into_inner()) {
            (Ok(v), None) => Ok(v),
            (_, Some(e)) => Err(PgFail::Db(e)),
            (Err(e), None) => Err(PgFail::Store(e)),
        }
    }

    fn fail(&self, e: postgres::Error) -> StoreError {
        let shown = StoreError::backend(self.path, Backend::Postgres, Explained::from(&e));
        let first = self.failed.take();
        self.failed.set(Some(first.unwrap_or(e)));
        shown
    }

    /// The scope a key of the meta table lives in: this host's for notes, else shared.
    fn scope(&self, key: &[u8]) -> &str {
        if key.starts_with(b"note:") {
            self.host
        } else {
            ""
        }
    }

    /// `keys` grouped by the scope they live in (one group, `""`, for a table not scoped).
    fn by_scope<'k>(
        &self,
        table: Table,
        keys: impl Iterator<Item = &'k [u8]>,
    ) -> Vec<(&str, Vec<&'k [u8]>)> {
        let mut groups: Vec<(&str, Vec<&[u8]>)> = Vec::new();
        for k in keys {
            let scope = if scoped(table) { self.scope(k) } else { "" };
            match groups.iter_mut().find(|g| g.0 == scope) {
                Some(g) => g.1.push(k),
                None => groups.push((scope, vec![k])),
            }
        }
        groups
    }

    /// Runs `call` on the transaction with `params`, and `scope` after them for a table scoped per
    /// host (its statements take the scope last). The borrow of the transaction ends on return, so
    /// a scan's visits may use it again.
    fn with_params<R>(
        &self,
        table: Table,
        params: &[&(dyn ToSql + Sync)],
        scope: &str,
        call: impl FnOnce(
            &mut Transaction<'c>,
            &[&(dyn ToSql + Sync)],
        ) -> std::result::Result<R, postgres::Error>,
    ) -> Result<R> {
        let mut txn = self.txn.borrow_mut();
        let out = if scoped(table) {
            let mut all = params.to_vec();
            all.push(&scope);
            call(&mut txn, &all)
        } else {
            call(&mut txn, params)
        };
        out.map_err(|e| self.fail(e))
    }
}

impl ReadTx for PgTx<'_, '_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let st = &self.stmts[table.index()];
        let row = self.with_params(table, &[&key], self.scope(key), |txn, p| {
            txn.query_opt(&st.get, p)
        })?;
        Ok(row.map(|r| r.get(0)))
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        let st = &self.stmts[table.index()];
        let stmt = match dir {
            Direction::Forward => &st.forward,
            Direction::Backward => &st.backward,
        };
        let portal = self.with_params(table, &[&from], self.host, |txn, p| txn.bind(stmt, p))?;
        let mut want = FIRST_FETCH;
        loop {
            // The borrow ends before the visits: a visit may use this transaction again.
            let rows = self
                .txn
                .borrow_mut()
                .query_portal(&portal, want)
                .map_err(|e| self.fail(e))?;
            let done = (rows.len() as i32) < want;
            for r in &rows {
                let k: &[u8] = r.get(0);
                let v: &[u8] = r.get(1);
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            if done {
                return Ok(());
            }
            want = (want * 8).min(MAX_FETCH);
        }
    }

    fn len(&self, table: Table) -> Result<u64> {
        let st = &self.stmts[table.index()];
        let row = self.with_params(table, &[], self.host, |txn, p| txn.query_one(&st.count, p))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// One round trip (per scope, for the meta table's notes and shared rows).
    fn get_many(&self, table: Table, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let st = &self.stmts[table.index()];
        let mut found: HashMap<Vec<u8>, Vec<u8>> = HashMap::with_capacity(keys.len());
        for (scope, keys) in self.by_scope(table, keys.iter().copied()) {
            if keys.is_empty() {
                continue;
            }
            let rows =
                self.with_params(table, &[&keys], scope, |txn, p| txn.query(&st.get_many, p))?;
            found.extend(rows.into_iter().map(|r| (r.get(0), r.get(1))));
        }
        Ok(keys.iter().map(|k| found.get(*k).cloned()).collect())
    }
}

impl WriteTx for PgTx<'_, '_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        let st = &self.stmts[table.index()];
        self.with_params(table, &[&key, &value], self.scope(key), |txn, p| {
            txn.execute(&st.put, p)
        })?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        let st = &self.stmts[table.index()];
        let n = self.with_params(table, &[&key], self.scope(key), |txn, p| {
            txn.execute(&st.delete, p)
        })?;
        Ok(n > 0)
    }

    /// One statement (per scope), each key once with its last value: an upsert may not touch a
    /// row twice.
    fn put_many(&mut self, table: Table, entries: &[(&[u8], &[u8])]) -> Result<()> {
        let st = &self.stmts[table.index()];
        let mut last: HashMap<&[u8], &[u8]> = HashMap::with_capacity(entries.len());
        let mut order = Vec::with_capacity(entries.len());
        for &(k, v) in entries {
            if last.insert(k, v).is_none() {
                order.push(k);
            }
        }
        for (scope, keys) in self.by_scope(table, order.into_iter()) {
            if keys.is_empty() {
                continue;
            }
            let values: Vec<&[u8]> = keys.iter().map(|k| last[k]).collect();
            self.with_params(table, &[&keys, &values], scope, |txn, p| {
                txn.execute(&st.put_many, p)
            })?;
        }
        Ok(())
    }
}
