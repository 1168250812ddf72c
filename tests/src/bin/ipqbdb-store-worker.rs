//! A child process for the multi-process store tests. Each mode prints one line per acknowledged
//! operation, so the parent knows exactly what was committed before it killed or stopped the child.
//!
//! Usage: ipqbdb-store-worker BACKEND DIR MODE [ARGS]
//!   ban-loop SECS OCTET  for SECS seconds, ban the shared counter address and a new address
//!                        OCTET.x.y.z per round; prints ACK per round and DONE with the count
//!   read-loop SECS       read for SECS seconds, checking that no read goes back in time
//!   big-txn ACKS       ACKS single durable bans, then one huge transaction (to be killed in)
//!   ban-same N BATCH     ban the shared counter address N times, BATCH bans per transaction;
//!                        prints DONE with the count
//!   delete-loop SECS     for SECS seconds, delete the counter address's record whenever it
//!                        exists (crediting its counters to its reason); prints DONE with the count
//!   hold-write SECS      open a write transaction, print HOLDING, keep it SECS seconds, commit it
//!                        empty and print RELEASED: the writer lock another process must wait for
//!   drop-table NAME      remove table NAME with the engine's own API, without opening a store
//!                        (in a process of its own: LMDB allows one environment per file and
//!                        process), to make a database as an older version left it

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ipqbdb_core::{now, AddrKey, Record, P_MAX};
use ipqbdb_store::kv::Table;
use ipqbdb_store::{Ban, Engine, Store};
use ipqbdb_tests::{ip, nth_v4, open_any};

pub const COUNTER: &str = "192.0.2.1";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipqbdb-store-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().ok_or("missing argument");
    let backend: Engine = arg(0)?.parse().map_err(|e| format!("{e}"))?;
    if arg(2)? == "drop-table" {
        return drop_table(backend, arg(1)?.as_ref(), &arg(3)?);
    }
    let store = open_any(arg(1)?.as_ref(), backend).map_err(|e| e.to_string())?;
    let num =
        |i: usize| -> Result<u32, String> { arg(i)?.parse().map_err(|_| "bad number".into()) };
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        writeln!(out, "{line}")
            .and_then(|_| out.flush())
            .map_err(|e| e.to_string())
    };
    match arg(2)?.as_str() {
        "ban-loop" => {
            let (secs, octet) = (num(3)?, num(4)? as u8);
            let deadline = Instant::now() + Duration::from_secs(secs.into());
            let mut i = 0;
            while Instant::now() < deadline {
                for addr in [ip(COUNTER), nth_v4(octet, i)] {
                    let ban = Ban {
                        ip: addr,
                        reason: "worker",
                        initial_count: 31,
                        decay: Some(86_400),
                    };
                    store.ban(&ban, now()).map_err(|e| e.to_string())?;
                }
                say(format!("ACK {i}"))?;
                i += 1;
            }
            say(format!("DONE {i}"))?;
        }
        "read-loop" => {
            let secs = num(3)?;
            let key = AddrKey::exact(ip(COUNTER));
            let deadline = Instant::now() + Duration::from_secs(secs.into());
            let (mut caught, mut count, mut reads, mut retries) = (0u64, 0u64, 0u64, 0u64);
            while Instant::now() < deadline {
                let read = store.read(&mut |tx| {
                    let rec = tx.get(Table::Block, &key.to_bytes())?;
                    let c = rec.and_then(|v| Record::decode(&v)).map_or(0, |r| r.caught);
                    Ok((c, tx.len(Table::Block)?))
                });
                let (c, k) = match read {
                    // A bounded wait for a writer to publish ran out (LMDB): what a caller does is
                    // read again.
                    Err(e) if e.is_retryable() => {
                        retries += 1;
                        continue;
                    }
                    other => other.map_err(|e| e.to_string())?,
                };
                if c < caught || k < count {
                    return Err(format!(
                        "went back: caught {caught}->{c}, records {count}->{k}"
                    ));
                }
                (caught, count, reads) = (c, k, reads + 1);
            }
            say(format!("READS {reads} {count} RETRIES {retries}"))?;
        }
        "big-txn" => {
            let acks = num(3)?;
            for i in 0..acks {
                let addr = nth_v4(10, i);
                let ban = Ban {
                    ip: addr,
                    reason: "acked",
                    initial_count: 0,
                    decay: None,
                };
                store.ban(&ban, now()).map_err(|e| e.to_string())?;
                say(format!("ACK {addr}"))?;
            }
            let rec = Record {
                probability: P_MAX,
                decay: 3600,
                last_update: now(),
                caught: 1,
                blocked: 0,
                reason: 1,
            }
            .encode();
            store
                .write(&mut |tx| {
                    for j in 0..20_000_000u32 {
                        let key = AddrKey::exact(nth_v4(172, j));
                        tx.put(Table::Block, &key.to_bytes(), &rec)?;
                        if j == 20_000 {
                            say("INTXN".into()).map_err(|e| ipqbdb_store::StoreError::Io {
                                path: "stdout".into(),
                                source: std::io::Error::other(e),
                            })?;
                        }
                    }
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            say("COMMITTED".into())?;
        }
        "ban-same" => {
            let (n, batch) = (num(3)?, num(4)?.max(1));
            let one = Ban {
                ip: ip(COUNTER),
                reason: "same",
                initial_count: 5,
                decay: Some(86_400),
            };
            let mut done = 0;
            while done < n {
                let k = batch.min(n - done) as usize;
                store
                    .ban_batch(&vec![one; k], now())
                    .map_err(|e| e.to_string())?;
                done += k as u32;
            }
            say(format!("DONE {done}"))?;
        }
        "delete-loop" => {
            let secs = num(3)?;
            let key = AddrKey::exact(ip(COUNTER));
            let deadline = Instant::now() + Duration::from_secs(secs.into());
            let mut deleted = 0;
            while Instant::now() < deadline {
                deleted += store
                    .delete_records(&[key])
                    .map_err(|e| e.to_string())?
                    .len();
                std::thread::sleep(Duration::from_millis(5));
            }
            say(format!("DONE {deleted}"))?;
        }
        "hold-write" => {
            let secs = num(3)?;
            let mut said = false;
            store
                .write(&mut |_tx| {
                    if !said {
                        said = true;
                        say("HOLDING".into()).map_err(|e| ipqbdb_store::StoreError::Io {
                            path: "stdout".into(),
                            source: std::io::Error::other(e),
                        })?;
                    }
                    std::thread::sleep(Duration::from_secs(secs.into()));
                    Ok(())
                })
                .map_err(|e| e.to_string())?;
            say("RELEASED".into())?;
        }
        other => return Err(format!("unknown mode {other}")),
    }
    Ok(())
}

fn drop_table(backend: Engine, dir: &std::path::Path, name: &str) -> Result<(), String> {
    let path = ipqbdb_store::dir::engine_path(dir, backend);
    let e = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    match backend {
        Engine::Sqlite => {
            let conn = rusqlite::Connection::open(&path).map_err(|x| e(&x))?;
            conn.execute_batch(&format!("DROP TABLE {name}"))
                .map_err(|x| e(&x))
        }
        Engine::Lmdb => {
            use heed::types::Bytes;
            // SAFETY: no other process uses the environment while the test makes it old.
            let env = unsafe {
                heed::EnvOpenOptions::new()
                    .max_dbs(16)
                    .map_size(1 << 30)
                    .open(&path)
            }
            .map_err(|x| e(&x))?;
            let wtxn = env.write_txn().map_err(|x| e(&x))?;
            env.create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                match opener.open_database::<Bytes, Bytes>(wtxn, Some(name))? {
                    // SAFETY: the handle is not used after its removal.
                    Some(db) => unsafe { db.remove(wtxn)? },
                    None => return Ok(heed::CommitOrAbort::Abort(())),
                }
                Ok(heed::CommitOrAbort::Commit(()))
            })
            .map_err(|x| e(&x))?
            .commit()
            .ok_or_else(|| e(&"no such table"))
        }
        Engine::Postgres => Err(e(&"a server's tables are dropped with psql, not here")),
        Engine::Redb => {
            let mut builder = redb::Database::builder();
            builder.set_concurrency_mode(redb::ConcurrencyMode::MultiWriter);
            let db = builder.create(&path).map_err(|x| e(&x))?;
            let txn = db.begin_write().map_err(|x| e(&x))?;
            let def: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new(name);
            if !txn.delete_table(def).map_err(|x| e(&x))? {
                return Err(e(&"no such table"));
            }
            txn.commit().map_err(|x| e(&x))
        }
    }
}
