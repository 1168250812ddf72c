//! Upgrading from ipqbdb 2.x: the command lines of the original's INSTALL, README, READMEcrash,
//! READMEphp and READMEreportcategory, run verbatim by a shell against a temporary database, each
//! with its effect checked (a record banned, listed, whitelisted; a queue judged with real packets).
//!
//! The commands stay verbatim because the database, rule file and connection-kill file come from a
//! configuration file named by `$IPQBDB_CONFIG`, and the option file from `$IPQBDB_OPTION_FILE`,
//! both in the test's directory; the programs are found by their old names through `PATH`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ipqbdb_store::{ReadStore, Store};
use ipqbdb_tests::root_test;
use ipqbdb_tests::{open_existing, wait_until, workspace_bin, Proc};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// INSTALL's whitelist example, with its spacing.
const INSTALL_WHITELIST: &str = "   192.0.2.1                0.0\n   \
192.0.2.10-192.0.2.20  194.5\n   192.0.2.8/25            32\n";

/// INSTALL's rule, with a decimal decay in the sixth field and `-` for the fifth.
const INSTALL_RULE: &str =
    "/LOGIN FAILED, user=\\S* ip=\\[<HOST>]/ * \"dictionary attack\" 5 - 86400.5\n";

/// A directory with the old program names on `PATH`, a configuration naming the database, rule
/// file and connection-kill command inside it, and an option file path.
struct Old {
    tmp: tempfile::TempDir,
}

impl Old {
    fn new() -> Old {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let bin = dir.join("bin");
        std::fs::create_dir(&bin).unwrap();
        let ibd = workspace_bin("ipqbdb-admin", "ibd");
        // The original's program names, written out rather than taken from `ipqbdb_admin::cli::LINKS`:
        // they are the contract, so a link dropped from that list fails here.
        for name in [
            "ibd-ban",
            "ibd-del",
            "ibd-white",
            "ibd-config",
            "ibd-category",
            "ibd-descr",
            "ibd-report",
        ] {
            std::os::unix::fs::symlink(&ibd, bin.join(name)).unwrap();
        }
        std::os::unix::fs::symlink(&ibd, bin.join("ibd")).unwrap();
        for (package, name) in [("ipqbdb-judge", "ibd-judge"), ("ipqbdb-parse", "ibd-parse")] {
            std::os::unix::fs::symlink(workspace_bin(package, name), bin.join(name)).unwrap();
        }
        // The connection-kill command leaves a file named after the address in the directory.
        std::fs::write(dir.join("connkill.cmd"), "touch ADDRESS\n").unwrap();
        std::fs::write(dir.join("pcre.conf"), INSTALL_RULE).unwrap();
        let old = Old { tmp };
        old.write_config("config.toml", "");
        // Empty, as `make install` left it; tests that need aliases write their own.
        std::fs::write(old.popt(), "").unwrap();
        old
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    fn db(&self) -> PathBuf {
        self.dir().join("db")
    }

    fn popt(&self) -> PathBuf {
        self.dir().join("ipqbdb.popt")
    }

    /// A configuration file `name` with the test's paths and `extra` lines.
    fn write_config(&self, name: &str, extra: &str) -> PathBuf {
        let d = self.dir().display();
        let path = self.dir().join(name);
        std::fs::write(
            &path,
            format!(
                "db-dir = \"{d}/db\"\nrule-file = \"{d}/pcre.conf\"\n\
                 connkill-file = \"{d}/connkill.cmd\"\n{extra}"
            ),
        )
        .unwrap();
        path
    }

    /// A command running `program` as the old programs were run: found on `PATH`, with the
    /// test's configuration and option file, in the test's directory.
    fn command(&self, program: &str) -> Command {
        let path = format!(
            "{}:{}",
            self.dir().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new(program);
        cmd.env("PATH", path)
            .env("HOME", self.dir())
            .env("IPQBDB_CONFIG", self.dir().join("config.toml"))
            .env("IPQBDB_OPTION_FILE", self.popt())
            .current_dir(self.dir())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `script` with `sh -c`.
    fn sh(&self, script: &str) -> Output {
        self.command("sh")
            .args(["-c", script])
            .output()
            .expect("sh")
    }

    /// Runs `script`, which must succeed, and returns its standard output.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "{script}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The record listing line of `addr`, if any.
    fn listed(&self, addr: &str) -> Option<String> {
        self.ok("ibd-del -L")
            .lines()
            .find(|l| l.split_whitespace().next() == Some(addr))
            .map(str::to_string)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn web_application_and_install_ban_lines() {
    let old = Old::new();
    // READMEphp, exactly as PHP runs it.
    old.ok(r#"addr=192.0.2.5; ibd-ban -e -i $addr --reason="Apache login" --log-syslog"#);
    let line = old.listed("192.0.2.5").expect("192.0.2.5 banned");
    assert!(line.ends_with("Apache login"), "{line}");
    // -e ran the connection-kill command for an address that reached 100 %.
    let count0 = old.write_config("count0.toml", "initial-count = 0\n");
    old.ok(&format!(
        r#"addr=192.0.2.50; IPQBDB_CONFIG={} ibd-ban -e -i $addr --reason="Apache login" --log-syslog"#,
        count0.display()
    ));
    assert!(
        old.dir().join("192.0.2.50").exists(),
        "connection kill not run"
    );

    old.ok("ibd-ban --initial-decay=86400 --initial-count=1 192.0.2.6");
    let line = old.listed("192.0.2.6").unwrap();
    assert!(line.contains("50.000%") && line.contains(" 1d "), "{line}");
    // -l was --log-syslog: accepted, and the second ban doubles the probability.
    old.ok("ibd-ban -l 192.0.2.6");
    // Doubled from what 50 % decayed to since the first ban: below 100 % by the time between the two
    // commands (a second of a 1-day decay is 0.0008 %), so a loaded machine cannot fail it.
    let line = old.listed("192.0.2.6").unwrap();
    let percent: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_suffix('%')?.parse().ok())
        .unwrap_or_else(|| panic!("no probability in {line}"));
    assert!(percent > 99.0 && percent <= 100.0, "{line}");

    // Decays in floating-point seconds, rounded to whole ones; a ban's 0 is still refused.
    old.ok("ibd-ban --initial-decay=86400.5 192.0.2.9");
    assert!(old.listed("192.0.2.9").unwrap().contains("86401s"));
    old.ok("ibd-ban --initial-decay=0.25 192.0.2.11");
    assert!(old.listed("192.0.2.11").unwrap().contains(" 1s "));
    let zero = old.sh("ibd-ban --initial-decay=0.0 192.0.2.10");
    assert_eq!(zero.status.code(), Some(2));
    assert!(
        stderr(&zero).contains("decay cannot be 0"),
        "{}",
        stderr(&zero)
    );
    assert_eq!(old.listed("192.0.2.10"), None);

    // INSTALL's and READMEreportcategory's listings.
    let listing = old.ok("ibd-del -Lv");
    assert!(listing.starts_with("ADDRESS"), "{listing}");
    assert!(listing.contains("192.0.2.6"), "{listing}");
    let stats = old.ok("ibd-del -S");
    assert!(stats.contains("Apache login"), "{stats}");
    let stats = old.ok("ibd-del --stats -v");
    assert!(stats.lines().next().unwrap().ends_with("REASON"), "{stats}");
    assert!(stats.contains("Apache login"), "{stats}");
    // INSTALL's retention line: nothing is four days old, so everything stays.
    let before = old.ok("ibd-del -L").lines().count();
    old.ok("ibd-del --min-time=4d --max-records=4M --del");
    assert_eq!(old.ok("ibd-del -L").lines().count(), before);
    assert_eq!(before, 5);
}

#[test]
fn versions_usage_and_program_names() {
    let old = Old::new();
    for name in [
        "ibd-ban",
        "ibd-del",
        "ibd-white",
        "ibd-config",
        "ibd-category",
        "ibd-descr",
        "ibd-report",
        "ibd-judge",
        "ibd-parse",
    ] {
        let out = old.ok(&format!("{name} --version"));
        assert!(out.contains(VERSION), "{name} --version: {out}");
        for help in ["--usage", "-?"] {
            let out = old.ok(&format!("{name} {help}"));
            assert!(out.contains("Usage:"), "{name} {help}: {out}");
        }
    }
    // The 1.07 name of ibd-category sets a category, and install-links creates it.
    old.ok("ibd-ban --reason=spam 192.0.2.30");
    old.ok("ibd-descr spam 11");
    assert!(
        old.ok("ibd-del -S")
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("11") && l.ends_with("spam")),
        "category not set by ibd-descr"
    );
    old.ok("ibd install-links links");
    assert!(old
        .dir()
        .join("links/ibd-descr")
        .symlink_metadata()
        .unwrap()
        .is_symlink());
}

#[test]
fn database_file_options() {
    let old = Old::new();
    // A path: its directory is the database directory (there is one database now).
    old.ok("ibd-ban --db-descr=~/my-tests/descr 192.0.2.8");
    let moved = open_existing(&old.dir().join("my-tests"));
    assert!(moved
        .lookup("192.0.2.8".parse().unwrap())
        .unwrap()
        .is_some());
    assert!(!old.db().exists(), "the configured directory was used");
    // Bare names: accepted, with one warning that they have no effect.
    let out = old.sh("ibd-ban --db-block=block --db-descr descr 192.0.2.12");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--db-block=block, --db-descr=descr") && err.contains("ignored"),
        "{err}"
    );
    assert!(old.listed("192.0.2.12").is_some());
}

#[test]
fn install_whitelist_verbatim() {
    let old = Old::new();
    old.ok(&format!("printf '{INSTALL_WHITELIST}' | ibd-white"));
    // The /25 with host bits set is taken as the network it lies in, as the original did.
    assert_eq!(
        old.ok("ibd-white --ls"),
        "192.0.2.0/25 32s\n192.0.2.1 0s\n192.0.2.10-192.0.2.20 195s\n"
    );
    // Decay 0: never blocked.
    let out = old.ok("ibd-ban 192.0.2.1");
    assert!(out.contains("whitelisted"), "{out}");
    assert_eq!(old.listed("192.0.2.1"), None);
    // The whitelist's decay overrides the ban's.
    old.ok("ibd-ban --initial-decay=86400 192.0.2.100");
    assert!(old.listed("192.0.2.100").unwrap().contains(" 32s "));
}

#[test]
fn option_file_aliases() {
    let old = Old::new();
    std::fs::write(
        old.popt(),
        "# INSTALL's example\n\
         ibd-ban alias --my-opt --reason=\"client is ugly\" --initial-decay=86400\n\
         ibd-ban exec --run /bin/sh\n",
    )
    .unwrap();
    let out = old.sh("ibd-ban --my-opt 192.0.2.20");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{}:3: exec lines", old.popt().display())),
        "{}",
        stderr(&out)
    );
    let line = old.listed("192.0.2.20").unwrap();
    assert!(
        line.ends_with("client is ugly") && line.contains(" 1d "),
        "{line}"
    );
    assert!(old.ok("ibd-ban --my-opt --help").contains("Usage:"));
    // Another program's aliases are not applied to ibd-del.
    assert!(!old.sh("ibd-del --my-opt").status.success());

    // READMEreportcategory's recipe, verbatim: the option file's path comes from ibd-config.
    assert_eq!(
        old.ok("ibd-config | awk '/^IPQBDB_OPTION_FILE/ {print $2;}'"),
        format!("{}\n", old.popt().display())
    );
    old.ok(r"printf 'ibd-ban alias -l -l --log-category\n' >> $(ibd-config| awk '/^IPQBDB_OPTION_FILE/ {print $2;}')");
    old.ok(r"printf 'ibd-ban alias --log-syslog -l --log-category\n' >> $(ibd-config| awk '/^IPQBDB_OPTION_FILE/ {print $2;}')");
    let out = old.ok("ibd-ban -l 192.0.2.21");
    assert!(out.trim_end().ends_with(", category 0"), "{out}");
    let out = old.ok("ibd-ban --log-syslog 192.0.2.22");
    assert!(out.trim_end().ends_with(", category 0"), "{out}");
    // `ibd ban` reads the aliases of ibd-ban too.
    let out = old.ok("ibd ban -l 192.0.2.23");
    assert!(out.trim_end().ends_with(", category 0"), "{out}");
}

#[test]
fn old_names_in_ibd_config() {
    let old = Old::new();
    let out = old.ok("ibd-config");
    let value = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} missing:\n{out}"))
            .to_string()
    };
    assert_eq!(
        value("IPQBDB_DATABASE_PREFIX"),
        format!("{}/", old.db().display())
    );
    assert_eq!(
        value("IPQBDB_PCRE_FILE"),
        old.dir().join("pcre.conf").display().to_string()
    );
    assert_eq!(
        value("IPQBDB_OPTION_FILE"),
        old.popt().display().to_string()
    );
    // RAND_MAX units (glibc's 2^31-1) are the database's: half of it.
    assert_eq!(value("IPQBDB_PROBABILITY_THRESHOLD"), "1073741823");
    assert_eq!(
        value("IPQBDB_DECAY_ADDEND_ON_THRESHOLD"),
        value("decay-addend")
    );
}

#[test]
fn old_database_is_named_and_its_data_imported() {
    let old = Old::new();
    std::fs::create_dir(old.db()).unwrap();
    for f in ["block.db", "white.db", "descr.db", "__db.001", "__db.002"] {
        std::fs::write(old.db().join(f), b"").unwrap();
    }
    std::fs::write(old.dir().join("white.txt"), INSTALL_WHITELIST).unwrap();
    std::fs::write(
        old.dir().join("reasons.txt"),
        "ID CATEGORY REASON\n1 18 dictionary attack\n2 0 Apache login\n3 21 web, scan\n",
    )
    .unwrap();
    let out = old.sh("ibd import --old-white white.txt --old-reasons reasons.txt");
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let notice: Vec<&str> = err.lines().filter(|l| l.contains("ipqbdb 2.x")).collect();
    assert_eq!(notice.len(), 1, "{err}");
    assert!(
        notice[0].contains("block.db, white.db, descr.db, __db.001, __db.002")
            && notice[0].contains("UPGRADING.md"),
        "{err}"
    );
    assert!(
        err.contains("3 whitelist entries and 3 reasons imported (0 renumbered)"),
        "{err}"
    );
    assert!(err.contains("block records are not imported"), "{err}");
    assert_eq!(
        old.ok("ibd white --ls"),
        "192.0.2.0/25 32s\n192.0.2.1 0s\n192.0.2.10-192.0.2.20 195s\n"
    );
    let stats = old.ok("ibd del --stats -v");
    let rows: Vec<Vec<&str>> = stats
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let row = |id: &str| rows.iter().find(|r| r[0] == id).expect(id).clone();
    assert_eq!(row("1")[1], "18");
    assert_eq!(row("1")[5..].join(" "), "dictionary attack");
    assert_eq!(row("2")[1], "0");
    assert_eq!(row("3")[1], "21");
    assert_eq!(row("3")[5..].join(" "), "web, scan");
    // Every program says it at each start.
    let out = old.sh("ibd-del -L");
    assert!(stderr(&out).contains("__db.002"), "{}", stderr(&out));
}

#[root_test("network namespaces, iptables")]
fn judge_from_install() {
    #[cfg(feature = "root-tests")]
    judge::run();
}

/// The judge as INSTALL runs it, with real packets between two namespaces: the judge's
/// (`10.88.0.1` and `.9`) and a client's (`.2` the attacker, `.3` innocent). Queue 0 judges sources
/// of UDP to port 7000; queue 2, in the mangle table, destinations of UDP to port 7002, whose
/// marked packets the filter table rejects.
#[cfg(feature = "root-tests")]
mod judge {
    use std::net::{SocketAddr, UdpSocket};

    use ipqbdb_tests::netns::{pair, Netns};
    use ipqbdb_tests::traffic;

    use super::*;

    fn lab() -> (Netns, Netns) {
        let j = Netns::new("upj");
        let c = Netns::new("upc");
        pair(
            &j,
            &["10.88.0.1/24", "10.88.0.9/24"],
            &c,
            &["10.88.0.2/24", "10.88.0.3/24"],
        );
        j.queue_udp("iptables", 7000, 0);
        j.queue_and_reject_marked(7002, 2, 4);
        (j, c)
    }

    fn receiver(j: &Netns, addr: &str) -> UdpSocket {
        let s = j.udp(addr);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Starts `command` (a judge by its old name, from PATH) in `j` and waits for `ready`.
    fn start(old: &Old, j: &Netns, command: &str, ready: &str) -> Proc {
        let mut cmd = old.command("ip");
        let script = format!("exec {command}");
        cmd.args(["netns", "exec", &j.name, "sh", "-c", &script]);
        let mut judge = Proc::spawn_logged("ibd-judge", &mut cmd, &old.dir().join("judge.log"));
        judge.wait_log(ready, Duration::from_secs(20));
        judge
    }

    pub fn run() {
        let old = Old::new();
        let (j, c) = lab();
        // 100 % with a 30-day half-life: about one pass in three million per second elapsed.
        old.ok("ibd-ban --initial-count=0 --initial-decay=2592000 10.88.0.2 10.88.0.9");
        let rx0 = receiver(&j, "0.0.0.0:7000");
        let to0: SocketAddr = "10.88.0.1:7000".parse().unwrap();
        let burst0 = |src: &str| traffic::burst(&c, &rx0, src, to0, 50, "10.88.0.3", to0);

        // INSTALL: "run ibd-judge with -D and -v": no queue argument, queue 0 by source.
        let mut judge = start(&old, &j, "ibd-judge -D -v", "listening on Q0S ");
        assert!(burst0("10.88.0.2") <= 1, "the banned source passed queue 0");
        assert_eq!(burst0("10.88.0.3"), 50, "an innocent source was dropped");
        judge.stop(Duration::from_secs(20));

        // INSTALL: `ibd-judge [OPTIONS] Q0S Q2DM4` with --no-daemon and --verbose=4.
        let mut judge = start(
            &old,
            &j,
            "ibd-judge --no-daemon --verbose=4 Q0S Q2DM4",
            "listening on Q0S Q2DM4",
        );
        assert!(burst0("10.88.0.2") <= 1, "the banned source passed queue 0");
        let rx2 = receiver(&j, "0.0.0.0:7002");
        let to_banned: SocketAddr = "10.88.0.9:7002".parse().unwrap();
        let to_free: SocketAddr = "10.88.0.1:7002".parse().unwrap();
        let got = traffic::burst(&c, &rx2, "10.88.0.3", to_banned, 50, "10.88.0.3", to_free);
        assert!(
            got <= 1,
            "packets to the banned destination were not rejected"
        );
        let n = j.reject_count();
        assert!(n >= 49, "REJECT met {n} packets");
        judge.stop(Duration::from_secs(20));
        // --verbose=4 is the most detailed level: every packet, with its address.
        assert!(judge.log().contains("10.88.0.3"), "{}", judge.log());
    }
}

#[test]
fn parser_from_install() {
    let old = Old::new();
    let log = "Dec  7 10:00:00 mail imapd: LOGIN FAILED, user=admin ip=[198.51.100.7]\n";
    std::fs::write(old.dir().join("mail.log"), log).unwrap();
    // `-v 4` in test mode: the level is read as one, not as a file.
    let out = old.ok("ibd-parse -v 4 --test mail.log pcre.conf");
    assert!(out.contains("198.51.100.7"), "{out}");

    // INSTALL: "run ibd-parse with the -D and -v options", then feed its FIFO. The Berkeley DB
    // environment left in the directory is named at start, and the parser runs anyway.
    std::fs::create_dir(old.db()).unwrap();
    std::fs::write(old.db().join("__db.001"), b"").unwrap();
    let mut cmd = old.command("ibd-parse");
    cmd.args(["-D", "-v"]);
    let mut parser = Proc::spawn_logged("ibd-parse", &mut cmd, &old.dir().join("parse.log"));
    let fifo = old.db().join("ibd-parse.sock");
    wait_until(|| parser.log(), Duration::from_secs(20), || fifo.exists());
    let out = old.sh("cd db && cat ../mail.log > ibd-parse.sock");
    assert!(out.status.success(), "{}", stderr(&out));
    let addr = "198.51.100.7".parse().unwrap();
    let mut record = None;
    wait_until(
        || parser.log(),
        Duration::from_secs(20),
        || {
            record = ipqbdb_store::AnyStore::open(&old.db(), &ipqbdb_tests::options(&old.db()))
                .ok()
                .and_then(|s| s.lookup(addr).ok().flatten());
            record.is_some()
        },
    );
    // The rule's decimal decay, rounded.
    assert_eq!(record.unwrap().decay, 86_401);
    parser.stop(Duration::from_secs(20));
    let log = parser.log();
    assert!(
        log.lines()
            .any(|l| l.starts_with("ibd-parse: ") && l.contains("ipqbdb 2.x (__db.001)")),
        "{log}"
    );
}

#[root_test("setuid copy, mount namespace")]
fn setuid_ibd_ban_bans_and_nothing_else() {
    #[cfg(feature = "root-tests")]
    setuid::run();
}

/// INSTALL's `chmod u+s .../ibd-ban`, for real: a setuid-root copy of `ibd` run as `nobody`. The
/// "system" configuration it must read is put in place the only way a caller cannot: in a private
/// mount namespace, an overlay on /etc adds /etc/ipqbdb/ipqbdb.toml (naming the test's database
/// directory, which only root can write); the program then runs as `nobody` through setpriv.
#[cfg(feature = "root-tests")]
mod setuid {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const NOBODY: &str = "65534";

    struct Lab {
        tmp: tempfile::TempDir,
    }

    impl Lab {
        fn new() -> Lab {
            let tmp = tempfile::tempdir().unwrap();
            let d = tmp.path();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::create_dir(d.join("bin")).unwrap();
            let ibd = d.join("bin/ibd");
            std::fs::copy(workspace_bin("ipqbdb-admin", "ibd"), &ibd).unwrap();
            std::fs::set_permissions(&ibd, std::fs::Permissions::from_mode(0o4755)).unwrap();
            for name in ["ibd-ban", "ibd-del", "ibd-white"] {
                std::os::unix::fs::symlink("ibd", d.join("bin").join(name)).unwrap();
            }
            // The system configuration, and a private database directory only root may enter.
            std::fs::create_dir(d.join("etc-ipqbdb")).unwrap();
            std::fs::write(
                d.join("etc-ipqbdb/ipqbdb.toml"),
                format!(
                    "db-dir = \"{}/db\"\n[ban]\nreason = \"system configuration\"\n",
                    d.display()
                ),
            )
            .unwrap();
            std::fs::create_dir(d.join("db")).unwrap();
            std::fs::set_permissions(d.join("db"), std::fs::Permissions::from_mode(0o700)).unwrap();
            // A file the caller must not see through the program.
            std::fs::write(d.join("secret.toml"), "root-only secret line\n").unwrap();
            std::fs::set_permissions(
                d.join("secret.toml"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            Lab { tmp }
        }

        /// Runs `bin/PROGRAM ARGS` as nobody, setuid root, with the system configuration in
        /// place; the caller's environment asks for another configuration, which must not count.
        fn run(&self, program: &str, args: &str) -> Output {
            let d = self.tmp.path().display();
            let script = format!(
                "set -e; mount -t tmpfs none {d}/ovl; mkdir {d}/ovl/u {d}/ovl/w; \
                 mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/ovl/u,workdir={d}/ovl/w /etc; \
                 mkdir /etc/ipqbdb; cp {d}/etc-ipqbdb/ipqbdb.toml /etc/ipqbdb/; \
                 exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups \
                 env IPQBDB_CONFIG={d}/secret.toml IPQBDB_OPTION_FILE={d}/secret.toml \
                 {d}/bin/{program} {args}"
            );
            let _ = std::fs::create_dir(self.tmp.path().join("ovl"));
            Command::new("unshare")
                .args(["--mount", "--propagation", "private", "sh", "-c", &script])
                .stdin(Stdio::null())
                .output()
                .expect("unshare (util-linux) must be installed")
        }
    }

    pub fn run() {
        let lab = Lab::new();
        let db = lab.tmp.path().join("db");
        // The ban works, into the system configuration's database, with its reason.
        let out = lab.run("ibd-ban", "192.0.2.77");
        assert!(out.status.success(), "{}", stderr(&out));
        let store = open_existing(&db);
        let rec = store
            .lookup("192.0.2.77".parse().unwrap())
            .unwrap()
            .expect("banned");
        assert_eq!(
            store.reason(rec.reason).unwrap().unwrap().text,
            "system configuration"
        );
        drop(store);
        // `ibd ban`, the same thing by another name, with the original's spellings.
        let out = lab.run("ibd", "ban -i 192.0.2.78 -l");
        assert!(out.status.success(), "{}", stderr(&out));

        // Everything else is refused, in one line, changing nothing.
        for (program, args) in [
            ("ibd-del", "--del 192.0.2.77"),
            ("ibd-white", "--ls"),
            ("ibd", "import -"),
            ("ibd", "export"),
            ("ibd-ban", "--config /etc/shadow 192.0.2.79"),
            ("ibd-ban", "--config=/etc/shadow 192.0.2.79"),
            ("ibd", "--config /etc/shadow ban 192.0.2.79"),
            ("ibd-ban", "--db-dir /tmp 192.0.2.79"),
            (
                "ibd-ban",
                &format!(
                    "--option-file {}",
                    lab.tmp.path().join("secret.toml").display()
                ),
            ),
            ("ibd-ban", "--db-descr=/tmp/descr 192.0.2.79"),
            ("ibd-ban", "-e --connkill-file /etc/shadow 192.0.2.79"),
        ] {
            let out = lab.run(program, args);
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(2), "{program} {args}: {err}");
            assert_eq!(err.lines().count(), 1, "{program} {args}: {err}");
            assert!(err.contains("setuid"), "{program} {args}: {err}");
            assert!(!err.contains("root:") && !err.contains("secret"), "{err}");
            assert!(out.stdout.is_empty(), "{program} {args}");
        }
        let store = open_existing(&db);
        assert!(store
            .lookup("192.0.2.77".parse().unwrap())
            .unwrap()
            .is_some());
        assert!(store
            .lookup("192.0.2.79".parse().unwrap())
            .unwrap()
            .is_none());
    }
}
