//! Helpers shared by the cross-crate tests: addresses, store opening, child processes, network
//! namespaces.

pub mod http_server;
pub mod netns;
pub mod postgres;
pub mod proc;
pub mod scrape;
pub mod traffic;

pub use ipqbdb_test_macros::root_test;
pub use proc::{output_ok, Proc};

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::ChildStdout;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ipqbdb_store::{AnyStore, Backend, OpenOptions, Store};

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// Opens (creating) a database of `backend` in `dir` (for postgres, on the server the directory
/// names: see [`TestDb`]).
pub fn open_any(dir: &Path, backend: Backend) -> ipqbdb_store::Result<AnyStore> {
    AnyStore::open(
        dir,
        &OpenOptions {
            backend: Some(backend),
            ..options(dir)
        },
    )
}

/// Opens the database in `dir` that a program of the test created, with the engine the directory
/// names; fails the test if there is none (it is not created).
pub fn open_existing(dir: &Path) -> AnyStore {
    AnyStore::open(
        dir,
        &OpenOptions {
            create: false,
            ..options(dir)
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// The default options, with the test server of `dir` if it has one.
pub fn options(dir: &Path) -> OpenOptions {
    OpenOptions {
        server: postgres::server_of(dir),
        ..OpenOptions::default()
    }
}

/// A database directory for a test of one engine; for postgres, with a private server and a
/// database of its own on it, named in the directory (see [`postgres::CONNINFO_FILE`]), so
/// [`open_any`] and child processes given the directory find it.
pub struct TestDb {
    // The directory goes first: it must not outlive the server it names.
    dir: tempfile::TempDir,
    pub server: Option<postgres::PgServer>,
}

impl TestDb {
    pub fn new(backend: Backend) -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let server = (backend == Backend::Postgres).then(|| {
            let server = postgres::PgServer::start();
            server.attach(dir.path());
            server
        });
        TestDb { dir, server }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database name on the server (postgres only).
    pub fn dbname(&self) -> Option<String> {
        let conninfo = std::fs::read_to_string(self.path().join(postgres::CONNINFO_FILE)).ok()?;
        conninfo
            .split_whitespace()
            .find_map(|w| w.strip_prefix("dbname="))
            .map(str::to_string)
    }
}

/// The `i`-th address of a /8, for tests that need many distinct addresses.
pub fn nth_v4(first_octet: u8, i: u32) -> IpAddr {
    let [_, b, c, d] = i.to_be_bytes();
    IpAddr::from([first_octet, b, c, d])
}

/// Runs `f` on another thread and fails the test if it does not finish within `limit`: a hang
/// detector for operations that must never block (opening a database after a crash), not a timing.
pub fn must_finish<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}: it hangs"))
}

/// The path of a workspace binary, built first if needed (`cargo build -p PACKAGE --bin NAME`), for
/// tests that drive programs of other packages. Cargo provides `$CARGO` to tests it runs.
/// With this crate's feature `postgres`, they are built with theirs.
pub fn workspace_bin(package: &str, name: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--quiet", "-p", package, "--bin", name]);
    // The same engines as this crate, so the postgres tests' programs can reach the server, and
    // every test of a run builds the programs alike (one binary, not two swapping places).
    if cfg!(feature = "postgres") {
        build.args(["--features", "postgres"]);
    }
    let status = build.current_dir(root).status().expect("cargo build");
    assert!(status.success(), "building {name} failed");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    target.join("debug").join(name)
}

/// Adds to `cmd` the options a test runs a program of ours with (`ibd`, `ibd-judge`, `ibd-xdp`,
/// `ibd-parse`): no configuration file, the database in `db` of `backend`. The program's own
/// options and arguments follow.
pub fn db_options<'c>(
    cmd: &'c mut std::process::Command,
    backend: Backend,
    db: &Path,
) -> &'c mut std::process::Command {
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
pub fn daemon_options<'c>(
    cmd: &'c mut std::process::Command,
    backend: Backend,
    db: &Path,
) -> &'c mut std::process::Command {
    db_options(cmd.arg("-D"), backend, db).stdin(std::process::Stdio::null())
}

/// `ibd-parse` (the program at `parse`) following `log` from its start with the rules in `rules`,
/// on the database in `db`, in the foreground, with no FIFO and no configuration file: how the
/// tests that feed a growing log run it. More options may be added before it starts.
pub fn parser_following(
    parse: &Path,
    db: &Path,
    rules: &Path,
    log: &Path,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(parse);
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
    .stdin(std::process::Stdio::null());
    cmd
}

/// Polls `cond` every 20 ms until it holds; fails the test, saying `what`, after `limit`. For
/// conditions another process brings about (a ban committed, a log line written), where there is no
/// event to block on.
pub fn wait_until(what: impl Fn() -> String, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {limit:?} in vain: {}",
            what()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Lines of a child's stdout, read on a thread so the test can wait for a given line with a deadline.
pub struct Lines {
    rx: mpsc::Receiver<String>,
}

impl Lines {
    pub fn new(out: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line, or `None` at end of output or after `limit`.
    pub fn next(&self, limit: Duration) -> Option<String> {
        self.rx.recv_timeout(limit).ok()
    }
}

/// The `n`-th address of a stream of distinct test addresses, for logs of any length: 198.18.0.0/15
/// (benchmarking addresses, 131,072 of them) first, then one IPv6 /64 each in 2001:db8::/32 (so no
/// two share the default IPv6 ban prefix).
pub fn stream_addr(n: u32) -> String {
    if n < 1 << 17 {
        let [_, b, c, d] = n.to_be_bytes();
        format!("198.{}.{c}.{d}", 18 + b)
    } else {
        let m = n - (1 << 17);
        format!("2001:db8:{:x}:{:x}::1", m >> 16, m & 0xffff)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn stream_addresses_are_distinct_and_valid() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..300_000).chain([u32::MAX - 1, u32::MAX]) {
            let a = super::stream_addr(n);
            let key: ipqbdb_core::AddrKey = a.parse().unwrap_or_else(|e| panic!("{n}: {a}: {e:?}"));
            assert!(seen.insert(key), "{n}: {a} repeats");
        }
        assert_eq!(super::stream_addr(0), "198.18.0.0");
        assert_eq!(super::stream_addr(131_071), "198.19.255.255");
        assert_eq!(super::stream_addr(131_072), "2001:db8:0:0::1");
    }
}
