//! The engine's struct and the state it keeps per connection, shared by the engine (`mod.rs`) and
//! the files that each do one job for it.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use postgres::{Client, Config, Statement};

use super::tables::{scoped, sql_table};
use crate::kv::Table;
use crate::store::Location;

/// The prepared statements of one table.
pub(super) struct Stmts {
    pub(super) get: Statement,
    pub(super) forward: Statement,
    pub(super) backward: Statement,
    pub(super) count: Statement,
    pub(super) put: Statement,
    pub(super) delete: Statement,
    /// `get_many`: the rows of the keys in `$1` (bytea[]).
    pub(super) get_many: Statement,
    /// `put_many`: one multi-row upsert of the keys `$1` and values `$2` (and scopes `$3`).
    pub(super) put_many: Statement,
}

impl Stmts {
    pub(super) fn prepare(client: &mut Client, table: Table) -> std::result::Result<Stmts, postgres::Error> {
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
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) stmts: Vec<Stmts>,
    pub(super) token: Statement,
}

pub struct PostgresStore {
    /// Boxed: it is large, and stores are moved around in `AnyStore`.
    pub(super) config: Box<Config>,
    /// The TLS connector (`sslmode` other than `disable`: see [`crate::tls`]).
    pub(super) tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// `None` after the connection was found broken: the next operation connects again, so a
    /// server restart needs no restart of ours.
    pub(super) conn: Mutex<Option<Conn>>,
    pub(super) host: String,
    pub(super) loc: Location,
    /// Opened without its server (see [`PostgresStore::open`]): the schema is checked at the first
    /// connection instead.
    pub(super) schema_pending: AtomicBool,
}
