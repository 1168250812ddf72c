//! Transactions retried: serialisation failures and deadlocks rerun the callback, and a connection lost
//! during COMMIT is settled by looking its commit token up.

use std::path::Path;

use postgres::{Client, IsolationLevel, Transaction};

use super::schema::CHANNEL;
use super::state::{PostgresStore, Prepared};
use super::fail::*;
use crate::error::Result;
use crate::kv::WriteTx;
use super::tx::*;

/// A random 16-byte token (no RNG crate needed: the kernel's).
pub(super) fn token() -> [u8; 16] {
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

impl PostgresStore {
    /// Runs `f` in one read-only transaction on the connection, with one reconnection if the
    /// connection turns out to be broken (a read is safe to run again).
    pub(super) fn with_read<R>(&self, f: &mut InTxn<'_, R>) -> Result<R> {
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
}

impl PostgresStore {
    /// Whether the write of commit token `token` committed.
    pub(super) fn landed(&self, token: &[u8]) -> Result<bool> {
        self.with_read(&mut |txn, _| {
            txn.query_opt("SELECT 1 FROM ipqbdb_commit WHERE token = $1", &[&token])
                .map(|r| r.is_some())
                .map_err(PgFail::Db)
        })
    }
}

/// What [`PostgresStore::with_read`] runs in its transaction.
type InTxn<'a, R> =
    dyn FnMut(&mut Transaction<'_>, &Prepared) -> std::result::Result<R, PgFail> + 'a;

/// A write transaction begun on the connection itself rather than through `postgres::Transaction`,
/// so that its first and last messages each carry a second statement: `BEGIN` the commit token,
/// `COMMIT` the commit notice (one round trip each instead of two). Rolled back when dropped
/// unsettled, so that a connection never goes back to the store inside a transaction.
pub(super) struct Open<'c> {
    client: &'c mut Client,
    open: bool,
}

impl<'c> Open<'c> {
    /// Begins a SERIALIZABLE transaction that inserts `token` (random bytes made by [`token`],
    /// spelled in hex: nothing from outside reaches the statement's text).
    fn begin(client: &'c mut Client, token: &[u8; 16]) -> std::result::Result<Self, postgres::Error> {
        let hex: String = token.iter().map(|b| format!("{b:02x}")).collect();
        let open = Open { client, open: true };
        open.client.batch_execute(&format!(
            "BEGIN ISOLATION LEVEL SERIALIZABLE; \
             INSERT INTO ipqbdb_commit (token) VALUES (decode('{hex}', 'hex'))"
        ))?;
        Ok(open)
    }

    /// Commits, and tells listening views in the same message. After `COMMIT` the `NOTIFY` runs
    /// in an implicit transaction of its own: a transaction that notifies holds the server's
    /// notify lock until its commit is on disk, so writes notifying themselves committed one
    /// after the other, each waiting for its own WAL flush (1.00 flush per ban with 16 writers at
    /// once); this one writes nothing, so it commits without a flush and concurrent writes share
    /// theirs (group commit). An error is the COMMIT's (nothing after it ran) or, rarely, the
    /// notice's after the write committed: the caller tells them apart by the commit token.
    pub(super) fn commit(mut self) -> std::result::Result<(), postgres::Error> {
        self.open = false;
        self.client
            .batch_execute(&format!("COMMIT; NOTIFY {CHANNEL}"))
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        if self.open {
            // On a broken connection this fails at once, and the connection is not used again.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

/// One try of a write: the transaction begun with its token, and the callback run, ready to
/// commit.
pub(super) fn attempt<'c, R>(
    client: &'c mut Client,
    stmts: &Prepared,
    token: &[u8; 16],
    host: &str,
    path: &Path,
    f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>,
) -> std::result::Result<(Open<'c>, R), PgFail> {
    let open = Open::begin(client, token).map_err(PgFail::Db)?;
    let out = {
        let mut tx = PgTx::new(&mut *open.client, stmts, host, path);
        let out = f(&mut tx);
        tx.settle(out)?
    };
    Ok((open, out))
}
