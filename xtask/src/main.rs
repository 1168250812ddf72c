//! `cargo run -p ipqbdb-xtask -- docs DIR`: writes man pages (section 8) for every program and link
//! name to DIR/man, and bash, zsh and fish completions to DIR/completions.

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
        _ => {
            eprintln!("usage: ipqbdb-xtask docs DIR");
            ExitCode::from(2)
        }
    }
}
