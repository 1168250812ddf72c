//! What the end-to-end tests of this crate share: the backends, `ibd ban`, iptables rules and
//! counters, and the two namespaces of a judge and its client.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipqbdb_store::Engine;
use ipqbdb_tests::netns::{pair, Netns};
use ipqbdb_tests::{daemon_options, Proc};

pub fn every_backend(f: impl Fn(Engine)) {
    for b in Engine::compiled_local() {
        f(b);
    }
}

/// `ibd ban ARGS` against the database in `db` of `backend` (the admin program's own entry point).
pub fn ibd_ban(db: &Path, backend: Engine, args: &[&str]) {
    let mut argv: Vec<std::ffi::OsString> =
        ["ibd", "ban", "--quiet", "--config", "/dev/null", "--db-dir"]
            .map(Into::into)
            .to_vec();
    argv.push(db.into());
    argv.extend(["--backend", backend.name()].map(Into::into));
    argv.extend(args.iter().map(Into::into));
    assert_eq!(ipqbdb_admin::run(argv), 0, "ibd ban {args:?}");
}

/// A judge's namespace `j` joined by a veth pair to a client namespace `c`, a temporary directory
/// for the database and the judge's log, and the judge once started. Fields drop in order: the
/// judge (printing its log on failure) before its directory.
pub struct JudgeLab {
    pub judge: Option<Proc>,
    pub j: Netns,
    pub c: Netns,
    pub tmp: tempfile::TempDir,
    pub backend: Engine,
}

impl JudgeLab {
    /// Namespaces named after `tag`: `j` with the addresses `j_addrs`, `c` with `c_addrs` (CIDR
    /// notation).
    pub fn pair(tag: &str, backend: Engine, j_addrs: &[&str], c_addrs: &[&str]) -> JudgeLab {
        let j = Netns::new(&format!("{tag}j"));
        let c = Netns::new(&format!("{tag}c"));
        pair(&j, j_addrs, &c, c_addrs);
        JudgeLab {
            judge: None,
            j,
            c,
            tmp: tempfile::tempdir().unwrap(),
            backend,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.tmp.path().join("db")
    }

    /// Where the judge's output goes.
    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("judge.log")
    }

    /// Starts the judge in `j` with `args` (queue specs and options) and waits until it logs
    /// `ready`.
    pub fn start_judge(&mut self, args: &[&str], ready: &str) {
        let mut cmd = self.j.command(env!("CARGO_BIN_EXE_ibd-judge"));
        daemon_options(&mut cmd, self.backend, &self.db()).args(args);
        let mut judge = Proc::spawn_logged("ibd-judge", &mut cmd, &self.log_path());
        judge.wait_log(ready, Duration::from_secs(20));
        self.judge = Some(judge);
    }

    /// `ibd ban --quiet ARGS` against the lab's database.
    pub fn ban(&self, args: &[&str]) {
        ibd_ban(&self.db(), self.backend, args);
    }

    /// Packets the REJECT rule of the judge's namespace met.
    pub fn reject_count(&self) -> u64 {
        self.j.reject_count()
    }
}
