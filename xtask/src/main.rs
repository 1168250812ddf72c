//! The project's build and check tasks, run as `cargo xtask TASK` (an alias in .cargo/config.toml):
//! - `docs DIR`: man pages (section 8) for every program and link name in DIR/man, and bash, zsh and
//!   fish completions in DIR/completions;
//! - `check-docs`: every repository path and Rust symbol named between backticks in docs/*.md still
//!   exists (run by CI);
//! - `check-cycles`: no library source file imports from a file that imports it back (run by CI);
//! - `bench-judge [RECORDS] [PACKETS]`, `bench-parse [LINES]`, `bench-fleet [HOSTS] [STORM_LINES]
//!   [RECORDS]`: the benchmarks of the README's Benchmarks section (`bench-judge` and `bench-fleet`
//!   as root), each building the programs in release mode first.

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [cmd, dir] if cmd == "docs" => match ipqbdb_xtask::write_docs(Path::new(dir)) {
            Ok(files) => {
                println!("wrote {} files under {dir}", files.len());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ipqbdb-xtask: {e}");
                ExitCode::FAILURE
            }
        },
        [cmd] if cmd == "check-docs" => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            match ipqbdb_xtask::doc_check::check_repo(&root) {
                Ok(broken) if broken.is_empty() => {
                    println!("check-docs: every path and symbol named in docs/ exists");
                    ExitCode::SUCCESS
                }
                Ok(broken) => {
                    for b in &broken {
                        eprintln!("{b}");
                    }
                    eprintln!("check-docs: {} stale references in docs/", broken.len());
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("ipqbdb-xtask: check-docs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        [cmd] if cmd == "check-cycles" => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            match ipqbdb_xtask::file_cycles::check_repo(&root) {
                Ok(cycles) if cycles.is_empty() => {
                    println!(
                        "check-cycles: no source file imports from a file that imports it back"
                    );
                    ExitCode::SUCCESS
                }
                Ok(cycles) => {
                    for c in &cycles {
                        eprintln!("{c}");
                    }
                    eprintln!("check-cycles: {} file cycles", cycles.len());
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("ipqbdb-xtask: check-cycles: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        [cmd, rest @ ..] if cmd.starts_with("bench-") => {
            let result = match cmd.as_str() {
                "bench-judge" => ipqbdb_xtask::bench_judge::run(rest),
                "bench-parse" => ipqbdb_xtask::bench_parse::run(rest),
                "bench-fleet" => ipqbdb_xtask::bench_fleet::run(rest),
                _ => return usage(),
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipqbdb-xtask: {cmd}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask docs DIR | check-docs | check-cycles | bench-judge [RECORDS] [PACKETS] \
         | bench-parse [LINES] | bench-fleet [HOSTS] [STORM_LINES] [RECORDS]"
    );
    ExitCode::from(2)
}
