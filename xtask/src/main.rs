//! The project's build and check tasks, run as `cargo xtask TASK` (an alias in .cargo/config.toml):
//! - `docs DIR`: man pages (section 8) for every program and link name in DIR/man, and bash, zsh and
//!   fish completions in DIR/completions;
//! - `check-docs`: every repository path and Rust symbol named between backticks in docs/*.md still
//!   exists (run by CI).

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
        _ => {
            eprintln!("usage: cargo xtask docs DIR | cargo xtask check-docs");
            ExitCode::from(2)
        }
    }
}
