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
        [cmd] if cmd == "check-docs" => checked(
            cmd,
            ipqbdb_xtask::doc_check::check_repo(&ipqbdb_xtask::bench::workspace_root()),
            "every path and symbol named in docs/ exists",
            "stale references in docs/",
        ),
        [cmd] if cmd == "check-cycles" => checked(
            cmd,
            ipqbdb_xtask::file_cycles::check_repo(&ipqbdb_xtask::bench::workspace_root()),
            "no source file imports from a file that imports it back",
            "file cycles",
        ),
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

/// A check's outcome as one line on success, or each finding and their count on failure.
fn checked<F: std::fmt::Display, E: std::fmt::Display>(
    name: &str,
    found: Result<Vec<F>, E>,
    clean: &str,
    what: &str,
) -> ExitCode {
    match found {
        Ok(found) if found.is_empty() => {
            println!("{name}: {clean}");
            ExitCode::SUCCESS
        }
        Ok(found) => {
            for f in &found {
                eprintln!("{f}");
            }
            eprintln!("{name}: {} {what}", found.len());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("ipqbdb-xtask: {name}: {e}");
            ExitCode::FAILURE
        }
    }
}
