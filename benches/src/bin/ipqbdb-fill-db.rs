//! Fills a database with N records (10.0.0.0 onwards) for the judge benchmark.
//! Usage: ipqbdb-fill-db DIR BACKEND N

use ipqbdb_benches::fill;
use ipqbdb_store::{AnyStore, Backend, OpenOptions, Store};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, backend, n) = match args.as_slice() {
        [_, d, b, n] => (
            d,
            b.parse::<Backend>().expect("backend"),
            n.parse::<u32>().expect("count"),
        ),
        _ => panic!("usage: ipqbdb-fill-db DIR BACKEND N"),
    };
    let opts = OpenOptions {
        backend: Some(backend),
        ..OpenOptions::default()
    };
    let store = AnyStore::open(dir.as_ref(), &opts).expect("open");
    fill(&store, 0, n, 10_000, ipqbdb_core::now());
    println!("{} records", store.record_count().expect("count"));
}
