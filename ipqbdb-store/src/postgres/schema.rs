//! The schema: one SQL table per logical table, its own bookkeeping tables, created once under an
//! advisory lock, and the statements each connection prepares.

use std::time::{Duration, Instant};

use postgres::Client;

use super::state::PostgresStore;
use super::fail::*;
use super::tables::*;
use crate::error::{Result, StoreError};
use crate::kv::Table;

/// The schema this program creates and understands. A database of a higher version is refused.
pub const SCHEMA_VERSION: i32 = 1;
/// Written beside the version, so a table of that name from another application is recognised.
const SCHEMA_APP: &str = "ipqbdb";
/// Serialises schema creation between hosts opening a new database at once.
const SCHEMA_LOCK: i64 = 0x6970_6462_0001;
/// How long a write keeps retrying serialisation failures before giving up.
pub(super) const RETRY_FOR: Duration = Duration::from_secs(60);
/// How long a write whose COMMIT lost its connection keeps asking whether it landed. Only the
/// server knows, and both guesses are wrong half the time: "no" repeats bans when the write is done
/// again, "yes" loses them. So the write waits (the parser holds its lines meanwhile) for the
/// server to come back and say, longer than any restart should take.
pub(super) const SETTLE_FOR: Duration = Duration::from_secs(600);
/// How long a commit's outcome may stay unknown before the program says why it waits (a server
/// restart is over within it).
pub(super) const SETTLE_QUIET: Duration = Duration::from_secs(2);
/// How long a connection attempt may take: an unreachable server is an error, never a hang.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long sent data may stay unacknowledged by a TCP server before the connection counts as lost.
pub(super) const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);
/// Commit tokens and tombstones older than this are deleted by `maintenance`: a view that has
/// not caught up for that long loads the tables again (see the tombstone horizon above).
pub(super) const TOKEN_KEEP_SECS: i64 = 86_400;
/// The channel every write notifies on commit, and views listen on.
pub(super) const CHANNEL: &str = "ipqbdb_commit";
/// Rows a scan fetches in its first round trip; each further one fetches eight times more, so a
/// seek (the whitelist lookup reads one or two rows) costs one small round trip, a full scan few.
pub(super) const FIRST_FETCH: i32 = 16;
pub(super) const MAX_FETCH: i32 = 16_384;

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

impl PostgresStore {
    /// Creates the schema in a new database, or checks an existing one's.
    pub(super) fn ensure_schema(&self, client: &mut Client, create: bool) -> Result<()> {
        let dir = &self.loc.dir;
        let names: Vec<String> = Table::ALL.iter().map(|&t| sql_table(t)).collect();
        let check = |client: &mut Client| -> Result<Option<i32>> {
            // Our tables are looked for before the schema table, each in a statement of its own:
            // they appear together, in the commit of the program making the schema, so a table
            // seen first means the schema table is seen next. The other order took a commit
            // falling between the two looks for a foreign database.
            let ours = self.count_tables(client, &names, true)?;
            let has_schema: bool = client
                .query_one("SELECT to_regclass('ipqbdb_schema') IS NOT NULL", &[])
                .map_err(|e| self.backend_error(e))?
                .get(0);
            if !has_schema {
                if ours > 0 {
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
}
