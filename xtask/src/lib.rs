//! Man pages and shell completions, generated from the same clap definitions the programs parse with,
//! so the documentation cannot drift from the options.

pub mod bench;
pub mod bench_fleet;
pub mod bench_judge;
pub mod bench_parse;
pub mod doc_check;
pub mod file_cycles;

use std::path::{Path, PathBuf};

use clap::Command;
use clap_complete::Shell;

/// Every documented program: the three binaries, and each `ibd` subcommand under its link name.
pub fn programs() -> Vec<Command> {
    let mut ibd = ipqbdb_admin::cli::command();
    // Propagates the global options (--config, --db-dir, ...) into the subcommands.
    ibd.build();
    let mut out = vec![
        ibd.clone(),
        ipqbdb_parse::cli::command(),
        ipqbdb_judge::cli::command(),
        ipqbdb_xdp::cli::command(),
    ];
    for (link, sub) in ipqbdb_admin::cli::LINKS {
        let cmd = ibd
            .find_subcommand(sub)
            .unwrap_or_else(|| panic!("ibd has no subcommand {sub}"))
            .clone()
            .name(link)
            .bin_name(link)
            .version(env!("CARGO_PKG_VERSION"));
        out.push(cmd);
    }
    out
}

/// `ibd` subcommands that have no link name but options worth a page of their own: `ibd-SUB(8)`,
/// as git documents its subcommands. No completions: no program of that name exists.
pub const SUBCOMMAND_PAGES: [(&str, &str); 1] = [("ibd-stats", "stats")];

fn subcommand_pages() -> Vec<Command> {
    let mut ibd = ipqbdb_admin::cli::command();
    ibd.build();
    SUBCOMMAND_PAGES
        .iter()
        .map(|&(name, sub)| {
            ibd.find_subcommand(sub)
                .unwrap_or_else(|| panic!("ibd has no subcommand {sub}"))
                .clone()
                .name(name)
                .bin_name(format!("ibd {sub}"))
                .version(env!("CARGO_PKG_VERSION"))
        })
        .collect()
}

/// Writes `man/NAME.8` and `completions/{bash,zsh,fish}/...` under `dir`; returns the files.
pub fn write_docs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    for cmd in programs() {
        let name = cmd.get_name().to_string();
        let path = man.join(format!("{name}.8"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone())
            .section("8")
            .render(&mut buf)?;
        std::fs::write(&path, buf)?;
        files.push(path);
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let sub = dir.join("completions").join(shell.to_string());
            std::fs::create_dir_all(&sub)?;
            let mut c = cmd.clone();
            let mut file = clap_complete::generate_to(shell, &mut c, name.clone(), &sub)?;
            if shell == Shell::Bash {
                // bash-completion loads a command's completion from a file named after it.
                let plain = sub.join(&name);
                std::fs::rename(&file, &plain)?;
                file = plain;
            }
            files.push(file);
        }
    }
    for cmd in subcommand_pages() {
        let path = man.join(format!("{}.8", cmd.get_name()));
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd).section("8").render(&mut buf)?;
        std::fs::write(&path, buf)?;
        files.push(path);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn man_pages_and_completions_for_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_docs(dir.path()).unwrap();
        let names = [
            "ibd",
            "ibd-parse",
            "ibd-judge",
            "ibd-xdp",
            "ibd-ban",
            "ibd-del",
            "ibd-white",
            "ibd-config",
            "ibd-category",
            "ibd-descr",
            "ibd-report",
        ];
        for name in names {
            let page = std::fs::read_to_string(dir.path().join(format!("man/{name}.8"))).unwrap();
            assert!(page.contains(".TH"), "{name}: not a man page");
        }
        let del = std::fs::read_to_string(dir.path().join("man/ibd-del.8")).unwrap();
        assert!(
            del.contains("min\\-time") && del.contains("max\\-records"),
            "ibd-del options missing"
        );
        assert!(del.contains("db\\-dir"), "ibd-del lacks the global options");
        let report = std::fs::read_to_string(dir.path().join("man/ibd-report.8")).unwrap();
        assert!(
            report.contains("dry\\-run") && report.contains("Exactly once"),
            "ibd-report options or description missing"
        );
        let judge = std::fs::read_to_string(dir.path().join("man/ibd-judge.8")).unwrap();
        assert!(
            judge.contains("QSPEC") && judge.contains("fail\\-open"),
            "ibd-judge options missing"
        );
        let stats = std::fs::read_to_string(dir.path().join("man/ibd-stats.8")).unwrap();
        assert!(
            stats.contains("prometheus") && stats.contains("textfile"),
            "ibd-stats options missing"
        );
        assert_eq!(files.len(), names.len() * 4 + SUBCOMMAND_PAGES.len());
        assert!(dir.path().join("completions/bash/ibd-ban").exists());
        assert!(dir.path().join("completions/zsh/_ibd-parse").exists());
        assert!(dir.path().join("completions/fish/ibd-judge.fish").exists());
    }
}
