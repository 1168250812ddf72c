//! The engine's struct and the state it keeps per connection, shared by the engine (`mod.rs`) and
//! the files that each do one job for it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use postgres::{Client, Config, Statement};

use super::tables::{scoped, sql_table};
use crate::kv::Table;
use crate::store::Location;

/// The prepared statements of one table.
pub(super) struct Stmts {
    pub(super) get: Statement,
    /// A page of a scan: up to `$2` rows from `$1` on. A scan reads page after page from the last
    /// key it saw, one round trip each (a portal would take two for the first: bind, then fetch).
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
                    "SELECT k, v FROM {n} WHERE scope IN ('', $3) AND k >= $1 ORDER BY k LIMIT $2"
                ))?,
                backward: p(format!(
                    "SELECT k, v FROM {n} WHERE scope IN ('', $3) AND k <= $1 \
                     ORDER BY k DESC LIMIT $2"
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
                forward: p(format!("SELECT k, v FROM {n} WHERE k >= $1 ORDER BY k LIMIT $2"))?,
                backward: p(format!(
                    "SELECT k, v FROM {n} WHERE k <= $1 ORDER BY k DESC LIMIT $2"
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

/// The statements of a connection, prepared once per connection.
pub(super) struct Prepared {
    /// Per table, in the order of [`Table::ALL`].
    pub(super) tables: Vec<Stmts>,
    /// `get_each`'s statements by the groups of keys they read and which of those have one key
    /// (see [`each_sql`]), prepared at their first use: a ban always asks the same.
    pub(super) each: RefCell<HashMap<(u8, u8), Statement>>,
}

impl Prepared {
    pub(super) fn prepare(client: &mut Client) -> std::result::Result<Prepared, postgres::Error> {
        let tables = Table::ALL
            .iter()
            .map(|&t| Stmts::prepare(client, t))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Prepared {
            tables,
            each: RefCell::new(HashMap::new()),
        })
    }
}

/// How many groups `get_each` reads keys in: one per table (the meta table's shared keys), and
/// this host's notes.
pub(super) const EACH_GROUPS: usize = Table::COUNT + 1;

/// The statement of `get_each` for the groups in `groups` (bit `g` for group `g`: a table's
/// index, or [`Table::COUNT`] for this host's notes): per group, in order, its keys, as one
/// `bytea` for a group in `single` (bits as in `groups`), else as one `bytea[]`; then this host's
/// scope if its notes are read. Answers the group, key and value of every key found. Only the
/// groups read are in it, and a single key is no array: a statement with arrays is planned again
/// at every execution (the server cannot price an array of unknown length), which cost a single
/// ban more than the round trips it saves, while one without is planned once.
pub(super) fn each_sql(groups: u8, single: u8) -> String {
    let mut parts = Vec::new();
    let mut param = 0;
    for g in 0..EACH_GROUPS {
        if groups & (1 << g) == 0 {
            continue;
        }
        param += 1;
        let (table, scope) = match Table::ALL.get(g) {
            Some(&t) if scoped(t) => (t, "scope = '' AND ".to_string()),
            Some(&t) => (t, String::new()),
            None => (Table::Meta, format!("scope = ${}::text AND ", groups.count_ones() + 1)),
        };
        let n = sql_table(table);
        let keys = if single & (1 << g) != 0 {
            format!("k = ${param}::bytea")
        } else {
            format!("k = ANY(${param}::bytea[])")
        };
        parts.push(format!("SELECT {g}, k, v FROM {n} WHERE {scope}{keys}"));
    }
    parts.join(" UNION ALL ")
}

/// A connection with its statements, prepared once per connection.
pub(super) struct Conn {
    pub(super) client: Client,
    pub(super) stmts: Prepared,
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
