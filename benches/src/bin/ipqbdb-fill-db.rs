//! Fills a database with N records (10.0.0.0 onwards) for the judge benchmark.
//! Usage: ipqbdb-fill-db DIR BACKEND N [CONNINFO]   (CONNINFO: the server of the postgres backend)

use ipqbdb_benches::fill;
use ipqbdb_store::{AnyStore, Engine, OpenOptions, ReadStore, ServerOptions, Store};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, backend, n, server) = match args.as_slice() {
        [_, d, b, n, rest @ ..] if rest.len() <= 1 => (
            d,
            b.parse::<Engine>().expect("backend"),
            n.parse::<u32>().expect("count"),
            rest.first().map(|url| ServerOptions {
                url: url.clone(),
                password_file: None,
                host_name: None,
            }),
        ),
        _ => panic!("usage: ipqbdb-fill-db DIR BACKEND N [CONNINFO]"),
    };
    let opts = OpenOptions {
        backend: Some(backend),
        server,
        ..OpenOptions::default()
    };
    let store = AnyStore::open(dir.as_ref(), &opts).expect("open");
    fill(&store, 0, n, 10_000, ipqbdb_core::now());
    println!("{} records", store.record_count().expect("count"));
}
