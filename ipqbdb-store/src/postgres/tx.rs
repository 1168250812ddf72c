//! A key-value transaction over the SQL tables: the `ReadTx` and `WriteTx` of the engine.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;

use postgres::types::ToSql;
use postgres::GenericClient;

use super::state::{each_sql, Prepared, EACH_GROUPS};
use super::fail::*;
use super::tables::*;
use crate::engines::Engine;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, Visit, WriteTx};
use super::schema::*;

/// A transaction as the key-value interface sees it. The first server error is kept, so the
/// caller can tell a serialisation failure (retry) from the callback's own error. `C` is a
/// `postgres::Transaction` for reads, and for writes the client itself, in the transaction
/// [`super::retry::Open`] began on it.
pub(super) struct PgTx<'t, C> {
    txn: RefCell<&'t mut C>,
    stmts: &'t Prepared,
    host: &'t str,
    path: &'t Path,
    failed: Cell<Option<postgres::Error>>,
}

impl<'t, C: GenericClient> PgTx<'t, C> {
    pub(super) fn new(
        txn: &'t mut C,
        stmts: &'t Prepared,
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
    pub(super) fn settle<R>(self, out: Result<R>) -> std::result::Result<R, PgFail> {
        match (out, self.failed.into_inner()) {
            (Ok(v), None) => Ok(v),
            (_, Some(e)) => Err(PgFail::Db(e)),
            (Err(e), None) => Err(PgFail::Store(e)),
        }
    }

    pub(super) fn fail(&self, e: postgres::Error) -> StoreError {
        let shown = StoreError::engine(self.path, Engine::Postgres, Explained::from(&e));
        let first = self.failed.take();
        self.failed.set(Some(first.unwrap_or(e)));
        shown
    }

    /// The scope a key of the meta table lives in: this host's for notes, else shared.
    pub(super) fn scope(&self, key: &[u8]) -> &str {
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
        call: impl FnOnce(&mut C, &[&(dyn ToSql + Sync)]) -> std::result::Result<R, postgres::Error>,
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

impl<C: GenericClient> ReadTx for PgTx<'_, C> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let st = &self.stmts.tables[table.index()];
        let row = self.with_params(table, &[&key], self.scope(key), |txn, p| {
            txn.query_opt(&st.get, p)
        })?;
        Ok(row.map(|r| r.get(0)))
    }

    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()> {
        let st = &self.stmts.tables[table.index()];
        let stmt = match dir {
            Direction::Forward => &st.forward,
            Direction::Backward => &st.backward,
        };
        let mut from = from.to_vec();
        // After the first page, each starts at the last key seen, visited already. The pages see
        // one state: the transaction's snapshot, and no write in between (a visit cannot write).
        let mut seen = false;
        let mut want = FIRST_FETCH;
        loop {
            let limit = i64::from(want) + i64::from(seen);
            // The borrow ends before the visits: a visit may use this transaction again.
            let rows = self.with_params(table, &[&&from[..], &limit], self.host, |txn, p| {
                txn.query(stmt, p)
            })?;
            let done = (rows.len() as i64) < limit;
            for (i, r) in rows.iter().enumerate() {
                let k: &[u8] = r.get(0);
                if seen && i == 0 && k == from.as_slice() {
                    continue;
                }
                let v: &[u8] = r.get(1);
                if !visit(k, v)? {
                    return Ok(());
                }
            }
            match rows.last() {
                Some(last) if !done => from = last.get(0),
                _ => return Ok(()),
            }
            seen = true;
            want = (want * 8).min(MAX_FETCH);
        }
    }

    fn len(&self, table: Table) -> Result<u64> {
        let st = &self.stmts.tables[table.index()];
        let row = self.with_params(table, &[], self.host, |txn, p| txn.query_one(&st.count, p))?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// One round trip (per scope, for the meta table's notes and shared rows).
    fn get_many(&self, table: Table, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        let st = &self.stmts.tables[table.index()];
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

    /// One round trip, one statement (see [`each_sql`]).
    fn get_each(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Vec<u8>>>> {
        let group = |&(table, key): &(Table, &[u8])| {
            if scoped(table) && !self.scope(key).is_empty() {
                Table::COUNT
            } else {
                table.index()
            }
        };
        let mut groups: Vec<Vec<&[u8]>> = vec![Vec::new(); EACH_GROUPS];
        for k in keys {
            groups[group(k)].push(k.1);
        }
        let mask = (0..EACH_GROUPS)
            .filter(|&g| !groups[g].is_empty())
            .fold(0u8, |m, g| m | 1 << g);
        if mask == 0 {
            return Ok(Vec::new());
        }
        let single = (0..EACH_GROUPS)
            .filter(|&g| groups[g].len() == 1)
            .fold(0u8, |m, g| m | 1 << g);
        let mut params: Vec<&(dyn ToSql + Sync)> = groups
            .iter()
            .filter(|g| !g.is_empty())
            .map(|g| match &g[..] {
                [one] => one as &(dyn ToSql + Sync),
                _ => g as &(dyn ToSql + Sync),
            })
            .collect();
        if !groups[Table::COUNT].is_empty() {
            params.push(&self.host);
        }
        let mut txn = self.txn.borrow_mut();
        let cached = self.stmts.each.borrow().get(&(mask, single)).cloned();
        let stmt = match cached {
            Some(stmt) => stmt,
            None => {
                let sql = each_sql(mask, single);
                let stmt = txn.prepare(&sql).map_err(|e| self.fail(e))?;
                self.stmts.each.borrow_mut().insert((mask, single), stmt.clone());
                stmt
            }
        };
        let rows = txn.query(&stmt, &params).map_err(|e| self.fail(e))?;
        drop(txn);
        let found: HashMap<(usize, Vec<u8>), Vec<u8>> = rows
            .into_iter()
            .map(|r| ((r.get::<_, i32>(0) as usize, r.get(1)), r.get(2)))
            .collect();
        Ok(keys
            .iter()
            .map(|k| found.get(&(group(k), k.1.to_vec())).cloned())
            .collect())
    }
}

impl<C: GenericClient> WriteTx for PgTx<'_, C> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        let st = &self.stmts.tables[table.index()];
        self.with_params(table, &[&key, &value], self.scope(key), |txn, p| {
            txn.execute(&st.put, p)
        })?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool> {
        let st = &self.stmts.tables[table.index()];
        let n = self.with_params(table, &[&key], self.scope(key), |txn, p| {
            txn.execute(&st.delete, p)
        })?;
        Ok(n > 0)
    }

    /// One statement (per scope), each key once with its last value: an upsert may not touch a
    /// row twice.
    fn put_many(&mut self, table: Table, entries: &[(&[u8], &[u8])]) -> Result<()> {
        let st = &self.stmts.tables[table.index()];
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
