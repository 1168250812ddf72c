//! The change feed: what changed since a transaction id (for local views), and commit notices
//! (`LISTEN`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::state::PostgresStore;
use super::fail::*;
use super::tables::*;
use crate::engines::Engine;
use crate::error::{Result, StoreError};
use crate::kv::Table;
use super::schema::*;

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
            StoreError::engine(path, Engine::Postgres, Explained::from(&e))
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
            return Err(StoreError::engine(
                &self.path,
                Engine::Postgres,
                Explained("the listening connection was closed".into()),
            ));
        }
        Ok(got)
    }
}

impl PostgresStore {
    /// A new connection listening for commit notices (each write notifies once committed, so a
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
