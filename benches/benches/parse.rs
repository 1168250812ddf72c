//! Parser benchmark: the shipped rule set over a generated mixed log (the same generator as
//! `cargo xtask bench-parse`), in lines per second. Parts: the whole check per line, and the
//! RegexSet pre-check alone.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipqbdb_parse::matcher::{LineMatch, RuleSet};

const LINES: u64 = 100_000;

fn log_lines() -> Vec<Vec<u8>> {
    let gen = env!("CARGO_BIN_EXE_ipqbdb-gen-log");
    let out = Command::new(gen)
        .arg(LINES.to_string())
        .output()
        .expect("generator");
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn bench(c: &mut Criterion) {
    let rules_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../ipqbdb-parse/rules/ipqbdb-pcre.conf");
    let rules = RuleSet::new(ipqbdb_parse::rules::load(&rules_path).expect("rules")).expect("set");
    let lines = log_lines();
    let hits = lines
        .iter()
        .filter(|l| matches!(rules.check(l, None), LineMatch::Hit { .. }))
        .count();
    eprintln!("{} lines, {hits} attacks", lines.len());
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(lines.len() as u64));
    g.sample_size(20);
    g.bench_function("check_mixed_log", |b| {
        b.iter(|| {
            for l in &lines {
                black_box(rules.check(l, None));
            }
        })
    });
    let (attacks, benign): (Vec<_>, Vec<_>) = lines
        .iter()
        .partition(|l| matches!(rules.check(l, None), LineMatch::Hit { .. }));
    for (name, set) in [
        ("check_attack_lines", attacks),
        ("check_benign_lines", benign),
    ] {
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                for l in &set {
                    black_box(rules.check(l, None));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(parse_benches, bench);
criterion_main!(parse_benches);
