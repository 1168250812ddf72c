//! The postgres engine against lmdb and sqlite, in one run on one machine (`scripts/bench-postgres.sh`
//! starts the server and passes its connection string):
//!
//! - durable bans per second, batched (1,000 per transaction, as the parser commits) and single
//!   (one transaction each, as `ibd ban`), into an empty database; for postgres also through
//!   [`OneByOne`], every key-value call a statement of its own (as before
//!   `get_many`/`get_each`/`put_many`): the before and after of the same run; then postgres single
//!   bans from 1, 4 and 16 writers at once (a fleet's hosts), with the transactions and WAL
//!   flushes the server counted per ban, after what bounds one writer: the server's round-trip
//!   time and one-row durable commits/s;
//! - the judge's verdict path (snapshot renewed every 100 ms, `Judge::judge` per packet) over
//!   RECORDS records and 100,000 distinct sources, packets per second: postgres judges from its
//!   local view, lmdb from its file; and the ratio;
//! - the view's load time at start, its memory, and the cost of its refreshes (time per second on
//!   the refresher's thread) while another connection bans 1,000 addresses per second;
//! - ban propagation: from the start of a ban on one connection until a view (polling every
//!   second) shows it, p50 and p99, with commit notices and with polling only.
//!
//! Usage: ipqbdb-bench-fleet CONNINFO [RECORDS]   (RECORDS default 1,000,000)
//!        ipqbdb-bench-fleet --bans-only CONNINFO  (the bans part alone: e.g. over TCP)
//!        ipqbdb-bench-fleet --single-only CONNINFO [BANS]  (one writer's single bans beside the
//!        server's round trip and one-row commit rate; BANS default 2,000)

use std::time::{Duration, Instant};

use ipqbdb_benches::{addr, fill, Indices};
use ipqbdb_judge::judge::Judge;
use ipqbdb_store::kv::{Direction, ReadTx, Table, Visit, WriteTx};
use ipqbdb_store::{
    AnyStore, Ban, Engine, LocalReader, Location, OpenOptions, ReadStore, ServerOptions, Store,
};

const NOW: i64 = 1_700_000_000;
const SOURCES: u32 = 100_000;
const PACKETS: u32 = 2_000_000;
const STALENESS: Duration = Duration::from_millis(100);

fn open(dir: &std::path::Path, backend: Engine, conninfo: &str) -> AnyStore {
    AnyStore::open(
        dir,
        &OpenOptions {
            backend: Some(backend),
            server: (backend == Engine::Postgres).then(|| ServerOptions {
                url: conninfo.to_string(),
                password_file: None,
                host_name: None,
            }),
            ..OpenOptions::default()
        },
    )
    .expect("open")
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A store whose transactions make one call per key: `get_many`, `get_each` and `put_many` fall
/// back to the trait's loops, so postgres pays a round trip per key as it did before them.
struct OneByOne<'a>(&'a AnyStore);

/// A transaction (`&dyn ReadTx` or `&mut dyn WriteTx`) passing the single-key calls through, and
/// only them.
struct Loop<B>(B);

impl<B: std::ops::Deref<Target = T>, T: ReadTx + ?Sized> ReadTx for Loop<B> {
    fn get(&self, table: Table, key: &[u8]) -> ipqbdb_store::Result<Option<Vec<u8>>> {
        self.0.get(table, key)
    }
    fn scan(
        &self,
        table: Table,
        from: &[u8],
        dir: Direction,
        visit: &mut Visit<'_>,
    ) -> ipqbdb_store::Result<()> {
        self.0.scan(table, from, dir, visit)
    }
    fn len(&self, table: Table) -> ipqbdb_store::Result<u64> {
        self.0.len(table)
    }
}

impl<B: std::ops::DerefMut<Target = T>, T: WriteTx + ?Sized> WriteTx for Loop<B> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> ipqbdb_store::Result<()> {
        self.0.put(table, key, value)
    }
    fn delete(&mut self, table: Table, key: &[u8]) -> ipqbdb_store::Result<bool> {
        self.0.delete(table, key)
    }
}

impl ipqbdb_store::StorageEngine for OneByOne<'_> {
    fn open(_: &std::path::Path, _: &OpenOptions) -> ipqbdb_store::Result<Self> {
        unreachable!("wraps an open store")
    }
    fn engine(&self) -> Engine {
        ipqbdb_store::ReadStore::engine(self.0)
    }
    fn location(&self) -> &Location {
        ipqbdb_store::ReadStore::location(self.0)
    }
    fn read<R>(
        &self,
        f: &mut dyn FnMut(&dyn ReadTx) -> ipqbdb_store::Result<R>,
    ) -> ipqbdb_store::Result<R> {
        Store::read(self.0, &mut |tx| f(&Loop(tx)))
    }
    fn write<R>(
        &self,
        f: &mut dyn FnMut(&mut dyn WriteTx) -> ipqbdb_store::Result<R>,
    ) -> ipqbdb_store::Result<R> {
        Store::write(self.0, &mut |tx| f(&mut Loop(tx)))
    }
    fn maintenance(&self) -> ipqbdb_store::Result<()> {
        Store::maintenance(self.0)
    }
    fn disk_size(&self) -> ipqbdb_store::Result<u64> {
        Store::disk_size(self.0)
    }
}

/// Durable bans per second: `batches` transactions of `per` new addresses from `first` on.
fn bans_per_second<S: Store>(s: &S, first: u32, batches: u32, per: u32) -> f64 {
    let started = Instant::now();
    for b in 0..batches {
        let from = first + b * per;
        fill(s, from, from + per, per, NOW);
    }
    f64::from(batches * per) / started.elapsed().as_secs_f64()
}

/// Verdicts per second through the judge's path, renewing the snapshot at the staleness bound.
fn verdicts_per_second(s: &LocalReader, records: u32) -> f64 {
    let mut judge = Judge::default();
    let mut idx = Indices::new(7);
    // Half of the sources have a record, half not (the usual case for most packets).
    let sources: Vec<_> = (0..SOURCES)
        .map(|i| {
            if i % 2 == 0 {
                addr(idx.next_below(records))
            } else {
                addr(records + 1 + idx.next_below(1 << 20))
            }
        })
        .collect();
    let started = Instant::now();
    let mut done = 0u32;
    while done < PACKETS {
        let deadline = Instant::now() + STALENESS;
        s.with_snapshot(&mut |snap| {
            judge.new_snapshot();
            loop {
                for _ in 0..1024 {
                    let ip = sources[idx.next_below(SOURCES) as usize];
                    std::hint::black_box(judge.judge(snap, ip, NOW)?);
                    done += 1;
                    if done == PACKETS {
                        return Ok(());
                    }
                }
                if Instant::now() >= deadline {
                    return Ok(());
                }
            }
        })
        .expect("verdicts");
    }
    f64::from(PACKETS) / started.elapsed().as_secs_f64()
}

/// What the server counts that a durable write costs: transactions given an id (each write is
/// one, and so is its commit notice after it, which commits without a flush of its own; reads get
/// none; a retried write counts again) and WAL flushes to disk (the server's, all processes).
#[derive(Clone, Copy)]
struct Counters {
    xids: i64,
    wal_syncs: i64,
}

/// The server's [`Counters`] now, once no other client is connected to this database: a backend
/// adds its WAL flushes to the shared statistics when it exits at the latest, so the writers must
/// have closed their connections.
fn counters(conninfo: &str) -> Counters {
    let mut c =
        postgres::Client::connect(conninfo, postgres::NoTls).expect("a statistics connection");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let others: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[],
            )
            .expect("pg_stat_activity")
            .get(0);
        if others == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writers' connections did not end"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = c
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::int8, wal_sync FROM pg_stat_wal",
            &[],
        )
        .expect("pg_stat_wal");
    Counters {
        xids: r.get(0),
        wal_syncs: r.get(1),
    }
}

/// Single bans (one durable transaction each, as `ibd ban` and a fleet's hosts make them) from
/// `writers` connections at once for `secs`: bans per second in all, and per ban the write
/// transactions and WAL flushes the server counted. Concurrent commits share a WAL flush (group
/// commit), so bans/s can grow with the writers although one writer waits for a flush per ban.
fn concurrent_single_bans(conninfo: &str, writers: u32, secs: f64) -> (f64, f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    // Before the writers connect (opening a database only reads it).
    let before = counters(conninfo);
    let stores: Vec<AnyStore> = (0..writers)
        .map(|_| open(tmp.path(), Engine::Postgres, conninfo))
        .collect();
    let go = std::sync::Barrier::new(writers as usize + 1);
    let (done, elapsed) = std::thread::scope(|sc| {
        let threads: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(w, s)| {
                let go = &go;
                sc.spawn(move || {
                    go.wait();
                    let started = Instant::now();
                    let mut n = 0u32;
                    while started.elapsed().as_secs_f64() < secs {
                        let ban = Ban {
                            ip: addr((4 << 20) + ((w as u32) << 16) + n),
                            reason: "benchmark",
                            initial_count: 5,
                            decay: None,
                        };
                        s.ban(&ban, NOW).expect("ban");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        go.wait();
        let started = Instant::now();
        let done: u32 = threads.into_iter().map(|t| t.join().expect("writer")).sum();
        (done, started.elapsed().as_secs_f64())
    });
    drop(stores);
    let after = counters(conninfo);
    let per = |d: i64| d as f64 / f64::from(done.max(1));
    (
        f64::from(done) / elapsed,
        per(after.xids - before.xids),
        per(after.wal_syncs - before.wal_syncs),
    )
}

/// The bans part: each engine (only postgres with `pg_only`) batched and single, postgres also
/// one call per key (the path before batched calls), in the same run.
fn bans(conninfo: &str, pg_only: bool) {
    let engines: &[Engine] = if pg_only {
        &[Engine::Postgres]
    } else {
        &[Engine::Lmdb, Engine::Sqlite, Engine::Postgres]
    };
    println!("== durable bans per second (empty database)");
    println!("{:<22} {:>14} {:>14}", "engine", "batched/s", "single/s");
    for &b in engines {
        let tmp = tempfile::tempdir().unwrap();
        let s = open(tmp.path(), b, conninfo);
        if b == Engine::Postgres {
            let before = OneByOne(&s);
            let batched = bans_per_second(&before, 2 << 20, 5, 1000);
            let single = bans_per_second(&before, 3 << 20, 500, 1);
            println!(
                "{:<22} {batched:>14.0} {single:>14.0}",
                "postgres one-by-one"
            );
        }
        let batched = bans_per_second(&s, 0, 20, 1000);
        let single = bans_per_second(&s, 1 << 20, 500, 1);
        println!("{:<22} {batched:>14.0} {single:>14.0}", b.name());
        if b == Engine::Postgres {
            // The next part needs an empty server database, and the counters below no other
            // connection.
            s.delete_range("10.0.0.0/8".parse().unwrap()).unwrap();
            drop(s);
            let (rtt, commits) = server_floor(conninfo);
            println!(
                "== the server's floor for one writer: a round trip {:.0} us, one-row durable \
                 commits {commits:.0}/s",
                rtt * 1e6
            );
            println!(
                "== postgres single bans from concurrent writers (one durable transaction each, 3 s)"
            );
            println!(
                "{:<8} {:>10} {:>24} {:>20}",
                "writers", "bans/s", "transactions/ban", "WAL flushes/ban"
            );
            for writers in [1, 4, 16] {
                let (rate, xacts, syncs) = concurrent_single_bans(conninfo, writers, 3.0);
                println!("{writers:<8} {rate:>10.0} {xacts:>24.2} {syncs:>20.2}");
            }
            open(tmp.path(), b, conninfo)
                .delete_range("10.0.0.0/8".parse().unwrap())
                .unwrap();
        }
    }
}

/// Times from the start of a ban until a view polling every second shows it, and from its
/// commit's acknowledgement until then, each sorted: `samples` bans of new addresses from `first`
/// after a pause drawn below `jitter_ms` (polling only, a whole poll interval: each sample starts
/// right after the view saw the last, so a shorter pause would fall late in the interval), the
/// view listening for commit notices or not.
fn propagation(
    conninfo: &str,
    listen: bool,
    first: u32,
    samples: u32,
    jitter_ms: u32,
) -> (Vec<Duration>, Vec<Duration>) {
    let tmp = tempfile::tempdir().unwrap();
    let writer = open(tmp.path(), Engine::Postgres, conninfo);
    let AnyStore::Postgres(source) = open(tmp.path(), Engine::Postgres, conninfo) else {
        unreachable!("a postgres store")
    };
    let view =
        ipqbdb_store::ViewStore::start_with(*source, Duration::from_secs(1), listen, "bench")
            .expect("view");
    let mut idx = Indices::new(11);
    let (mut times, mut after_commit) = (Vec::new(), Vec::new());
    for i in 0..samples {
        // Not in step with the poll.
        std::thread::sleep(Duration::from_millis(u64::from(idx.next_below(jitter_ms))));
        let ip = addr(first + i);
        let started = Instant::now();
        writer
            .ban(
                &Ban {
                    ip,
                    reason: "benchmark",
                    initial_count: 5,
                    decay: None,
                },
                NOW,
            )
            .expect("ban");
        let committed = Instant::now();
        let key = ipqbdb_core::AddrKey::exact(ip);
        while view.lookup(key).expect("lookup").is_none() {
            assert!(started.elapsed() < Duration::from_secs(30), "never seen");
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(started.elapsed());
        after_commit.push(committed.elapsed());
    }
    times.sort();
    after_commit.sort();
    (times, after_commit)
}

/// What one writer's single bans are bound by, measured on the server itself: the time of one
/// round trip (a prepared `SELECT 1`; each key-value call of a ban is one at least), and durable
/// commits per second of a one-row INSERT from one connection (the disk's flush as the server
/// does it, which `pg_test_fsync`'s short burst overstates). A ban costs its round trips, the
/// server's work on them, and one such commit.
fn server_floor(conninfo: &str) -> (f64, f64) {
    let mut c = postgres::Client::connect(conninfo, postgres::NoTls).expect("a connection");
    let one = c.prepare("SELECT 1").expect("prepare");
    let trips = 2_000;
    let started = Instant::now();
    for _ in 0..trips {
        c.query_one(&one, &[]).expect("SELECT 1");
    }
    let rtt = started.elapsed().as_secs_f64() / f64::from(trips);
    c.batch_execute("CREATE TABLE bench_commit (n int)")
        .expect("a table");
    let insert = c
        .prepare("INSERT INTO bench_commit VALUES ($1)")
        .expect("prepare");
    let commits = 1_000;
    let started = Instant::now();
    for n in 0..commits {
        c.execute(&insert, &[&n]).expect("INSERT");
    }
    let rate = f64::from(commits) / started.elapsed().as_secs_f64();
    c.batch_execute("DROP TABLE bench_commit").expect("drop");
    (rtt, rate)
}

/// One writer's single bans per second (`bans` of new addresses), beside [`server_floor`].
fn single_report(conninfo: &str, bans: u32) {
    let (rtt, commits) = server_floor(conninfo);
    let tmp = tempfile::tempdir().unwrap();
    let s = open(tmp.path(), Engine::Postgres, conninfo);
    let rate = bans_per_second(&s, 5 << 20, bans, 1);
    println!(
        "round trip {:.0} us, one-row durable commits {commits:.0}/s; single bans, one writer: \
         {rate:.0}/s",
        rtt * 1e6
    );
    s.delete_range("10.0.0.0/8".parse().unwrap()).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--single-only") {
        let conninfo = args
            .get(1)
            .expect("usage: ipqbdb-bench-fleet --single-only CONNINFO [BANS]");
        let bans = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(2_000);
        single_report(conninfo, bans);
        return;
    }
    if args.first().map(String::as_str) == Some("--bans-only") {
        let conninfo = args
            .get(1)
            .expect("usage: ipqbdb-bench-fleet --bans-only CONNINFO");
        bans(conninfo, true);
        return;
    }
    if args.first().map(String::as_str) == Some("--propagation-only") {
        let conninfo = args
            .get(1)
            .expect("usage: ipqbdb-bench-fleet --propagation-only CONNINFO");
        propagation_report(conninfo);
        return;
    }
    let conninfo = args
        .first()
        .expect("usage: ipqbdb-bench-fleet CONNINFO [RECORDS]");
    let records: u32 = args
        .get(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    bans(conninfo, false);

    println!("== judge verdict path: {records} records, {SOURCES} sources, {PACKETS} packets");
    let lmdb_dir = tempfile::tempdir().unwrap();
    let lmdb = open(lmdb_dir.path(), Engine::Lmdb, conninfo);
    fill(&lmdb, 0, records, 10_000, NOW);
    let lmdb = LocalReader::Store(lmdb);
    let lmdb_rate = verdicts_per_second(&lmdb, records);
    println!("lmdb       {lmdb_rate:>14.0} packets/s");
    drop(lmdb);

    let pg_dir = tempfile::tempdir().unwrap();
    let pg = open(pg_dir.path(), Engine::Postgres, conninfo);
    let started = Instant::now();
    fill(&pg, 0, records, 10_000, NOW);
    println!(
        "(postgres filled with {records} records in {:.0} s)",
        started.elapsed().as_secs_f64()
    );
    drop(pg);
    let before = rss();
    let view = open(pg_dir.path(), Engine::Postgres, conninfo)
        .into_local_view(STALENESS, "bench")
        .expect("view");
    let after = rss();
    let LocalReader::View(v) = &view else {
        unreachable!("a postgres store becomes a view")
    };
    let load = v.stats().load;
    let pg_rate = verdicts_per_second(&view, records);
    println!("postgres   {pg_rate:>14.0} packets/s (local view)");
    println!("ratio postgres/lmdb: {:.2}", pg_rate / lmdb_rate);
    println!(
        "view: loaded in {:.2} s, {:.0} MB resident ({:.0} bytes per record)",
        load.as_secs_f64(),
        (after.saturating_sub(before)) as f64 / 1e6,
        (after.saturating_sub(before)) as f64 / f64::from(records.max(1))
    );

    println!("== view refresh cost while another host bans 1,000 addresses per second for 10 s");
    let writer = open(pg_dir.path(), Engine::Postgres, conninfo);
    let s0 = v.stats();
    let started = Instant::now();
    let mut i = 0u32;
    while started.elapsed() < Duration::from_secs(10) {
        let tick = Instant::now();
        let bans: Vec<Ban<'_>> = (0..100)
            .map(|k| Ban {
                ip: addr(records + 2_000_000 + i * 100 + k),
                reason: "benchmark",
                initial_count: 5,
                decay: None,
            })
            .collect();
        writer.ban_batch(&bans, NOW).expect("ban");
        i += 1;
        // Keep the reader side going, so the view applies what it receives.
        view.lookup(ipqbdb_core::AddrKey::exact(addr(0))).unwrap();
        std::thread::sleep(Duration::from_millis(100).saturating_sub(tick.elapsed()));
    }
    let secs = started.elapsed().as_secs_f64();
    let s1 = v.stats();
    println!(
        "{:.0} bans/s written; {} refreshes, {} rows, {:.1} ms of refresh per second ({:.2} % of one core's time on the refresher)",
        f64::from(i * 100) / secs,
        s1.refreshes - s0.refreshes,
        s1.rows - s0.rows,
        (s1.refresh_time - s0.refresh_time).as_secs_f64() * 1000.0 / secs,
        (s1.refresh_time - s0.refresh_time).as_secs_f64() * 100.0 / secs
    );
    propagation_report(conninfo);
}

fn propagation_report(conninfo: &str) {
    println!("== ban propagation to a view polling every 1 s: from the ban's start (its commit");
    println!("   included) and from its commit's acknowledgement, until the view shows it");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let runs = [
        (true, 12_000_000, 200, 300, "commit notices"),
        (false, 13_000_000, 40, 1000, "polling only"),
    ];
    for (listen, first, samples, jitter, what) in runs {
        let (t, c) = propagation(conninfo, listen, first, samples, jitter);
        let at = |t: &[Duration], q: f64| ms(t[((t.len() as f64 * q) as usize).min(t.len() - 1)]);
        println!(
            "{what:<15} from start p50 {:>6.1} p99 {:>6.1} ms; from commit p50 {:>6.1} p99 {:>6.1} \
             max {:>6.1} ms ({samples} bans)",
            at(&t, 0.5),
            at(&t, 0.99),
            at(&c, 0.5),
            at(&c, 0.99),
            ms(c[c.len() - 1])
        );
    }
}
