//! `ibd ban`'s exit status when the ban applied but killing the address's connections failed: a
//! status of its own (3), so that a caller (a PHP page that only sees the status) does not take a
//! ban that stands for one that did not happen; refused input still wins (1).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use ipqbdb_store::ReadStore;
use ipqbdb_tests::{open_existing, Proc};

const IBD: &str = env!("CARGO_BIN_EXE_ibd");

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("ipqbdb.toml"), "backend = \"lmdb\"\n").unwrap();
        Env { tmp }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `ibd ban -e --connkill-file CMD ARGS...` with the connection-kill command `command`.
    fn ban(&self, command: &str, args: &[&str]) -> Output {
        let ck = self.path("connkill.cmd");
        std::fs::write(&ck, command).unwrap();
        let mut cmd = Command::new(IBD);
        cmd.arg("--config")
            .arg(self.path("ipqbdb.toml"))
            .arg("--db-dir")
            .arg(self.path("db"))
            .args(["ban", "-e", "--connkill-file"])
            .arg(&ck)
            .args(args)
            .env_remove("IPQBDB_CONFIG");
        Proc::run_with_input("ibd ban", &mut cmd, b"", Duration::from_secs(60))
    }

    fn banned(&self, addr: &str) -> bool {
        open_existing(&self.path("db"))
            .lookup(addr.parse().unwrap())
            .unwrap()
            .is_some()
    }
}

fn report(o: &Output) -> (i32, String) {
    (
        o.status.code().expect("exited"),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_failed_kill_has_its_own_status_and_the_ban_stands() {
    let env = Env::new();
    // `-c 0`: straight to 100 %, the connection-kill event.
    let (code, err) = report(&env.ban("false\n", &["-c", "0", "203.0.113.5", "203.0.113.6"]));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("connection kills failed for 2 banned addresses (their bans stand)"),
        "{err}"
    );
    assert!(!err.contains("refused"), "{err}");
    assert!(env.banned("203.0.113.5") && env.banned("203.0.113.6"));

    // Refused input is the graver news: status 1, and the message still names the kills.
    let (code, err) = report(&env.ban("false\n", &["-c", "0", "203.0.113.7", "not-an-ip"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("addresses refused: 1 of 2; connection kills failed for 1 banned addresses"),
        "{err}"
    );
    assert!(env.banned("203.0.113.7"));

    // A kill that works: status 0.
    let ran = env.path("ran");
    let (code, err) = report(&env.ban(
        &format!("sh -c 'echo \"$1\" >> {}' sh ADDRESS\n", ran.display()),
        &["-c", "0", "203.0.113.8"],
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read_to_string(&ran).unwrap(), "203.0.113.8\n");
    assert!(env.banned("203.0.113.8"));
}
