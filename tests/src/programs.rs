//! The workspace's programs as tests run them: where the built binary is, and the options every
//! test gives it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipqbdb_store::Engine;

/// The path of program `name` of workspace package `package`, for tests that drive programs of
/// other packages (a crate's own are `env!("CARGO_BIN_EXE_name")`). It is looked for beside the
/// running test executable, where cargo puts every binary of a build (a test is
/// `<target>/<profile>/deps/<test>-<hash>`, a program `<target>/<profile>/<name>`), so any target
/// directory and profile work without a nested cargo. `cargo test --workspace` builds them all;
/// a run of one package's tests that did not fails here with the command that builds it.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("{}: not in <target>/<profile>/deps", exe.display()));
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build -p {package} --bin {name} --all-features` first, or the \
         whole suite with `cargo test --workspace --all-features`",
        path.display()
    );
    path
}

/// Adds to `cmd` the options a test runs a program of ours with (`ibd`, `ibd-judge`, `ibd-xdp`,
/// `ibd-parse`): no configuration file, the database in `db` of `backend`. The program's own
/// options and arguments follow.
pub fn db_options<'c>(cmd: &'c mut Command, backend: Engine, db: &Path) -> &'c mut Command {
    cmd.args([
        "--config",
        "/dev/null",
        "--backend",
        backend.name(),
        "--db-dir",
    ])
    .arg(db)
}

/// [`db_options`] for a daemon: in the foreground, standard input from nowhere.
pub fn daemon_options<'c>(cmd: &'c mut Command, backend: Engine, db: &Path) -> &'c mut Command {
    db_options(cmd.arg("-D"), backend, db).stdin(Stdio::null())
}

/// `ibd-parse` (the program at `parse`) following `log` from its start with the rules in `rules`,
/// on the database in `db`, in the foreground, with no FIFO and no configuration file: how the
/// tests that feed a growing log run it. More options may be added before it starts.
pub fn parser_following(parse: &Path, db: &Path, rules: &Path, log: &Path) -> Command {
    let mut cmd = Command::new(parse);
    cmd.args([
        "-D",
        "--no-fifo",
        "--from-start",
        "--config",
        "/dev/null",
        "--db-dir",
    ])
    .arg(db)
    .arg("--rule-file")
    .arg(rules)
    .arg(log)
    .stdin(Stdio::null());
    cmd
}
