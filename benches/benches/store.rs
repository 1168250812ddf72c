//! Store benchmarks for every compiled backend at 1,000,000 records (the engines' figures in the
//! README): lookup latency, durable single bans per second, bulk insert in records per second, and size on disk.
//!
//! `IPQBDB_BENCH_RECORDS` overrides the record count (e.g. 10000 for a quick run). Sizes are printed to
//! stderr and written to `target/criterion/ipqbdb-store-sizes.txt`.

use std::hint::black_box;
use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ipqbdb_benches::{addr, fill, Indices};
use ipqbdb_core::AddrKey;
use ipqbdb_store::{AnyStore, Ban, Engine, OpenOptions, ReadStore, Store};

const NOW: i64 = 1_700_000_000;

fn records() -> u32 {
    std::env::var("IPQBDB_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn report(line: &str) {
    eprintln!("{line}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("ipqbdb-store-sizes.txt"))
    {
        let _ = writeln!(f, "{line}");
    }
}

fn bench_backend(c: &mut Criterion, backend: Engine) {
    let n = records();
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = OpenOptions {
        backend: Some(backend),
        ..OpenOptions::default()
    };
    let store = AnyStore::open(tmp.path(), &opts).expect("open");
    let started = Instant::now();
    fill(&store, 0, n, 10_000, NOW);
    let took = started.elapsed();
    store.maintenance().expect("maintenance");
    let size = store.disk_size().expect("size");
    report(&format!(
        "{backend}: {n} records filled in {:.1} s ({:.0} records/s); {} bytes on disk, {:.1} bytes/record",
        took.as_secs_f64(),
        f64::from(n) / took.as_secs_f64(),
        size,
        size as f64 / f64::from(n)
    ));

    let mut g = c.benchmark_group(format!("store/{backend}"));
    g.measurement_time(Duration::from_secs(5));
    g.sample_size(20);

    let mut idx = Indices::new(7);
    g.throughput(Throughput::Elements(1));
    g.bench_function("lookup", |b| {
        b.iter(|| {
            let key = AddrKey::exact(addr(idx.next_below(n)));
            black_box(store.lookup(key).expect("lookup"))
        })
    });
    g.bench_function("verdict_state", |b| {
        b.iter(|| {
            black_box(
                store
                    .verdict_state(addr(idx.next_below(n)))
                    .expect("verdict"),
            )
        })
    });
    g.bench_function("durable_ban", |b| {
        b.iter(|| {
            let ban = Ban {
                ip: addr(idx.next_below(n)),
                reason: "benchmark",
                initial_count: 5,
                decay: None,
            };
            black_box(store.ban(&ban, NOW).expect("ban"))
        })
    });
    const BULK: u32 = 10_000;
    let mut next = n;
    g.throughput(Throughput::Elements(u64::from(BULK)));
    g.sample_size(10);
    g.bench_function("bulk_insert_10k", |b| {
        b.iter_batched(
            || {
                let from = next;
                next += BULK;
                from
            },
            |from| fill(&store, from, from + BULK, BULK, NOW),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    for backend in Engine::compiled_local() {
        bench_backend(c, backend);
    }
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
