//! Transactions retried: serialisation failures and deadlocks rerun the callback, and a connection lost
//! during COMMIT is settled by looking its commit token up.

use std::path::Path;

use postgres::{Client, IsolationLevel, Statement, Transaction};

use super::state::{PostgresStore, Stmts};
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

/// What [`PostgresStore::with_read`] runs in its transaction.
type InTxn<'a, R> =
    dyn FnMut(&mut Transaction<'_>, &[Stmts]) -> std::result::Result<R, PgFail> + 'a;

/// One try of a write: the transaction, token inserted and callback run, ready to commit.
pub(super) fn attempt<'c, R>(
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
