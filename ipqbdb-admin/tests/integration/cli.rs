//! Drives the real `ibd` binary, through its own name and through every link name.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ipqbdb_store::ReadStore;
use ipqbdb_tests::netns::Netns;
use ipqbdb_tests::root_test;
use ipqbdb_tests::{output_ok, Proc};

const IBD: &str = env!("CARGO_BIN_EXE_ibd");

struct Env {
    tmp: tempfile::TempDir,
    bin: PathBuf,
}

impl Env {
    /// A database directory, an empty configuration file and the links, all in a temporary directory.
    fn new(backend: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("bin");
        output_ok(Command::new(IBD).arg("install-links").arg(&bin));
        std::fs::write(
            tmp.path().join("ipqbdb.toml"),
            format!("backend = \"{backend}\"\n"),
        )
        .unwrap();
        Env { tmp, bin }
    }

    fn db(&self) -> PathBuf {
        self.tmp.path().join("db")
    }

    fn config(&self) -> PathBuf {
        self.tmp.path().join("ipqbdb.toml")
    }

    /// Runs `prog` (`ibd` or a link name) with the test's config and database.
    fn run(&self, prog: &str, args: &[&str]) -> Output {
        self.run_stdin(prog, args, "")
    }

    fn run_stdin(&self, prog: &str, args: &[&str], stdin: &str) -> Output {
        let exe = if prog == "ibd" {
            PathBuf::from(IBD)
        } else {
            self.bin.join(prog)
        };
        let mut cmd = Command::new(exe);
        cmd.arg("--config")
            .arg(self.config())
            .arg("--db-dir")
            .arg(self.db())
            .args(args)
            .env_remove("IPQBDB_CONFIG");
        Proc::run_with_input(prog, &mut cmd, stdin.as_bytes(), Duration::from_secs(60))
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn records(env: &Env) -> Vec<serde_json::Value> {
    let o = env.run("ibd-del", &["--ls", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    serde_json::from_str::<serde_json::Value>(&stdout(&o))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn find<'a>(recs: &'a [serde_json::Value], addr: &str) -> Option<&'a serde_json::Value> {
    recs.iter().find(|r| r["address"] == addr)
}

fn each_backend(f: impl Fn(&str)) {
    for b in ["lmdb", "sqlite", "redb"] {
        f(b);
    }
}

#[test]
fn links_dispatch_and_ban_reports() {
    each_backend(|b| {
        let env = Env::new(b);
        for (link, _) in ipqbdb_admin::cli::LINKS {
            assert!(env
                .bin
                .join(link)
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink());
        }
        let o = env.run(
            "ibd-ban",
            &[
                "192.0.2.7",
                "2001:db8::5",
                "::ffff:198.51.100.1",
                "-r",
                "ssh",
            ],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("192.0.2.7: new, 3.125%"), "{out}");
        assert!(out.contains("2001:db8::5 (as 2001:db8::): new"), "{out}");
        assert!(out.contains("(as 198.51.100.1)"), "{out}");
        let o = env.run("ibd", &["ban", "192.0.2.7", "-c", "0"]);
        assert!(stdout(&o).contains("reached 100%"), "{}", stdout(&o));
        let recs = records(&env);
        assert_eq!(recs.len(), 3);
        let r = find(&recs, "192.0.2.7").unwrap();
        assert_eq!(r["caught"], 2);
        assert_eq!(r["stored_probability"], ipqbdb_core::P_MAX);
        assert_eq!(find(&recs, "2001:db8::").unwrap()["reason"], "ssh");
        // The directory keeps the backend the config asked for.
        let o = env.run("ibd-config", &[]);
        assert!(
            stdout(&o).lines().any(|l| l == format!("db-backend {b}")),
            "{}",
            stdout(&o)
        );
    });
}

#[test]
fn exit_codes_and_one_line_errors() {
    let env = Env::new("lmdb");
    let o = env.run("ibd-ban", &["192.0.2.1", "999.1.1.1", "not-an-ip"]);
    assert_eq!(code(&o), 1, "partial failure");
    let err = stderr(&o);
    assert!(
        err.contains("ibd-ban: invalid IP address \"999.1.1.1\""),
        "{err}"
    );
    assert!(err.contains("addresses refused: 2 of 3"), "{err}");
    assert_eq!(records(&env).len(), 1, "the good address is banned");
    for bad in [
        &["ban", "-c", "32", "192.0.2.1"][..],
        &["ban", "-t", "4y", "192.0.2.1"],
        &["ban", "--bogus"],
        &["del", "--del"],
        &["del", "--max-records", "5"],
        &["del", "--ls", "300.0.0.0/8"],
        &["category", "x", "256"],
        &["nosuchcommand"],
    ] {
        let o = env.run("ibd", bad);
        assert_eq!(code(&o), 2, "{bad:?}: {}", stderr(&o));
        assert!(!stderr(&o).trim().is_empty());
    }
    // A typo in the database path is an error for listing, not a new database.
    let o = Command::new(IBD)
        .args(["del", "--ls", "--config", "/dev/null", "--db-dir"])
        .arg(env.tmp.path().join("typo"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.starts_with("ibd del: ") && err.contains("typo") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!env.tmp.path().join("typo").exists());
    // Another backend's directory is refused by name.
    let o = env.run("ibd", &["--backend", "redb", "ban", "192.0.2.2"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("belongs to the lmdb backend, not redb"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn del_lists_deletes_and_expires() {
    each_backend(|b| {
        let env = Env::new(b);
        let addrs: Vec<String> = (1..=6).map(|i| format!("192.0.2.{i}")).collect();
        let args: Vec<&str> = addrs.iter().map(String::as_str).collect();
        assert_eq!(code(&env.run("ibd-ban", &args)), 0);
        let o = env.run("ibd-del", &["--ls", "-v", "192.0.2.0/30"]);
        let out = stdout(&o);
        assert!(out.starts_with("ADDRESS"), "{out}");
        assert_eq!(out.lines().count(), 1 + 3, "header and 192.0.2.1-3: {out}");
        let o = env.run(
            "ibd-del",
            &["--del", "--ls", "192.0.2.1", "192.0.2.2-192.0.2.3"],
        );
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), 3, "--ls --del lists what went");
        assert_eq!(records(&env).len(), 3);
        // Nothing is old enough yet.
        let o = env.run("ibd-del", &["--del", "--min-time", "1h"]);
        assert_eq!(stdout(&o).trim(), "0 records deleted");
        let o = env.run(
            "ibd-del",
            &["--del", "--min-time", "0", "--max-records", "1"],
        );
        assert_eq!(stdout(&o).trim(), "2 records deleted");
        assert_eq!(records(&env).len(), 1);
        // Statistics credit deleted records to their reason.
        let o = env.run("ibd-del", &["--stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(stats[0]["caught"], 6);
        assert_eq!(stats[0]["records"], 1);
        assert_eq!(stats[0]["caught_deleted"], 5);
        // A selection with --min-time deletes only what is old enough.
        let left = records(&env)[0]["address"].as_str().unwrap().to_string();
        let o = env.run("ibd-del", &["--del", "--min-time", "1h", &left]);
        assert_eq!(stdout(&o).trim(), "0 records deleted", "{}", stderr(&o));
        let o = env.run(
            "ibd-del",
            &["--del", "--min-time", "0", &left, "192.0.2.0/24"],
        );
        assert_eq!(stdout(&o).trim(), "1 records deleted", "{}", stderr(&o));
        assert!(records(&env).is_empty());
    });
}

#[test]
fn statistics_saturate_near_the_counter_maximum() {
    use ipqbdb_store::kv::Table;
    use ipqbdb_store::Store;
    each_backend(|b| {
        let env = Env::new(b);
        assert_eq!(code(&env.run("ibd-ban", &["-r", "big", "192.0.2.1"])), 0);
        let store = ipqbdb_tests::open_any(&env.db(), b.parse().unwrap()).unwrap();
        let mut rec = store.lookup("192.0.2.1".parse().unwrap()).unwrap().unwrap();
        (rec.caught, rec.blocked) = (u64::MAX - 1, u64::MAX);
        for addr in ["192.0.2.1", "192.0.2.2"] {
            let key: ipqbdb_core::AddrKey = addr.parse().unwrap();
            store
                .write(&mut |tx| tx.put(Table::Block, &key.to_bytes(), &rec.encode()))
                .unwrap();
        }
        drop(store);
        for args in [&["--stats", "--json"][..], &["--stats"]] {
            let o = env.run("ibd-del", args);
            assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        }
        let o = env.run("ibd-del", &["--stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(stats[0]["caught"], u64::MAX);
        assert_eq!(stats[0]["blocked"], u64::MAX);
        // Credited by a deletion, and again with the live record.
        let o = env.run("ibd-del", &["--del", "192.0.2.1"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let o = env.run("ibd-del", &["--stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(stats[0]["caught_deleted"], u64::MAX - 1);
        assert_eq!(stats[0]["caught"], u64::MAX);
    });
}

#[test]
fn ban_decay_zero_is_refused() {
    let env = Env::new("sqlite");
    for decay in ["0", "0s", "0h"] {
        let o = env.run("ibd-ban", &["--decay", decay, "192.0.2.1"]);
        assert_eq!(code(&o), 2, "{decay}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("ibd-ban: a ban's decay cannot be 0") && err.lines().count() == 1,
            "{err}"
        );
    }
    std::fs::write(env.config(), "backend = \"sqlite\"\n[ban]\ndecay = 0\n").unwrap();
    let o = env.run("ibd-ban", &["192.0.2.1"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("ipqbdb.toml: decay: a ban's decay cannot be 0") && err.lines().count() == 1,
        "{err}"
    );
    assert!(!env.db().exists(), "nothing was banned");
    std::fs::write(env.config(), "backend = \"sqlite\"\n[ban]\ndecay = 1\n").unwrap();
    let o = env.run("ibd-ban", &["192.0.2.1"]);
    assert!(stdout(&o).contains("decay 1s"), "{}", stdout(&o));
}

#[test]
fn ipv6_prefix_lives_in_the_database() {
    each_backend(|b| {
        let env = Env::new(b);
        let o = env.run("ibd", &["--ipv6-prefix", "56", "ban", "2001:db8:1:100::1"]);
        assert!(
            stdout(&o).contains("(as 2001:db8:1:100::): new"),
            "{}",
            stdout(&o)
        );
        // Without a prefix of its own, a program bans by the database's.
        let o = env.run("ibd-ban", &["2001:db8:1:1ff::2", "2001:db8:1:200::1"]);
        let out = stdout(&o);
        assert!(out.contains("(as 2001:db8:1:100::): raised"), "{out}");
        assert!(out.contains("(as 2001:db8:1:200::): new"), "{out}");
        // One that disagrees, on the command line or in its configuration, is refused.
        let o = env.run("ibd", &["--ipv6-prefix", "64", "ban", "2001:db8::1"]);
        assert_eq!(code(&o), 1);
        let err = stderr(&o);
        assert!(
            err.starts_with("ibd ban: ")
                && err.contains("/56")
                && err.contains("ipv6-prefix is set to 64")
                && err.lines().count() == 1,
            "{err}"
        );
        let config = format!("backend = \"{b}\"\n[ban]\nipv6-prefix = 48\n");
        std::fs::write(env.config(), &config).unwrap();
        let o = env.run("ibd-ban", &["2001:db8::1"]);
        assert_eq!(code(&o), 1);
        assert!(stderr(&o).contains("set to 48"), "{}", stderr(&o));
        // `ibd config` shows the database's, and changes it, merging what falls together.
        let o = env.run("ibd-config", &[]);
        assert!(stdout(&o).contains("\nipv6-prefix 56\n"), "{}", stdout(&o));
        let o = env.run("ibd-config", &["--set-ipv6-prefix", "48"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(
            stdout(&o).trim(),
            "ipv6-prefix 56 -> 48: 2 records moved, 1 merged"
        );
        // The [ban] section now agrees; `ibd config` reads the [config] one, which says nothing.
        let recs = records(&env);
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0]["address"], "2001:db8:1::");
        assert_eq!(recs[0]["caught"], 3);
        let o = env.run("ibd-ban", &["2001:db8:1:ffff::1"]);
        assert!(
            stdout(&o).contains("(as 2001:db8:1::): raised"),
            "{}",
            stdout(&o)
        );
        let o = env.run("ibd-config", &["--set-ipv6-prefix", "0"]);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(stderr(&o).contains("prefix length 0"), "{}", stderr(&o));
    });
}

#[test]
fn white_reads_lists_and_deletes() {
    each_backend(|b| {
        let env = Env::new(b);
        let file = env.tmp.path().join("white.txt");
        std::fs::write(&file, "# office\n10.0.0.0/8 1h\n192.0.2.0-192.0.2.9 0\n").unwrap();
        let o = env.run_stdin(
            "ibd-white",
            &[file.to_str().unwrap(), "-"],
            "2001:db8::/32 2h\n10.0.0.1 4y\nnot-an-address 1h\n",
        );
        assert_eq!(code(&o), 1);
        let err = stderr(&o);
        assert!(
            err.contains("ibd-white: <stdin>:2: invalid duration \"4y\""),
            "{err}"
        );
        assert!(err.contains("<stdin>:3: "), "{err}");
        let o = env.run("ibd-white", &["--ls"]);
        let listed = stdout(&o);
        assert_eq!(
            listed,
            "10.0.0.0/8 1h\n192.0.2.0-192.0.2.9 0s\n2001:db8::/32 2h\n"
        );
        // Whitelist decays apply to bans: 0 never inserts, otherwise it sets the decay.
        let o = env.run("ibd-ban", &["192.0.2.5", "10.1.2.3", "-t", "4d"]);
        assert!(
            stdout(&o).contains("192.0.2.5: whitelisted"),
            "{}",
            stdout(&o)
        );
        let recs = records(&env);
        assert_eq!(recs.len(), 1);
        assert_eq!(find(&recs, "10.1.2.3").unwrap()["decay"], 3600);
        // The listing reads back as input.
        let o = env.run("ibd-white", &["--del", "192.0.2.0-192.0.2.9", "10.0.0.0/8"]);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let o = env.run_stdin("ibd-white", &[], &listed);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stdout(&env.run("ibd-white", &["--ls"])), listed);
        let o = env.run("ibd-white", &["--del", "203.0.113.0/24"]);
        assert_eq!(code(&o), 1);
    });
}

#[test]
fn category_and_reason_insertion() {
    let env = Env::new("sqlite");
    let o = env.run("ibd-ban", &["-r", "postfix: sasl"]);
    assert_eq!(stdout(&o).trim(), "reason 1: postfix: sasl");
    let o = env.run("ibd-category", &["postfix: sasl", "11"]);
    assert_eq!(stdout(&o).trim(), "1 11 postfix: sasl");
    let o = env.run("ibd-category", &["--id", "1"]);
    assert_eq!(stdout(&o).trim(), "1 11 postfix: sasl");
    let o = env.run("ibd-category", &["--id", "1", "--clear"]);
    assert_eq!(stdout(&o).trim(), "1 0 postfix: sasl");
    let o = env.run("ibd-category", &["no such reason", "3"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no reason with text"), "{}", stderr(&o));
}

#[test]
fn config_file_sections_and_config_output() {
    let env = Env::new("redb");
    std::fs::write(
        env.config(),
        "backend = \"redb\"\ndecay = \"2h\"\n[ban]\nreason = \"web login\"\ninitial-count = 2\n[del]\nreason = \"ignored here\"\n",
    )
    .unwrap();
    let o = env.run("ibd-ban", &["192.0.2.9"]);
    assert!(
        stdout(&o).contains("new, 25.000%, decay 2h"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        find(&records(&env), "192.0.2.9").unwrap()["reason"],
        "web login"
    );
    let o = env.run("ibd-config", &[]);
    let cfg: std::collections::HashMap<String, String> = stdout(&o)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(' ').expect("NAME value");
            (k.to_string(), v.to_string())
        })
        .collect();
    assert_eq!(cfg["db-dir"], env.db().display().to_string());
    assert_eq!(cfg["db-backend"], "redb");
    assert_eq!(cfg["decay"], "7200");
    // The three local engines, and postgres in a build with it (--all-features).
    let engines = 3 + usize::from(cfg!(feature = "postgres"));
    assert_eq!(cfg["backends-compiled"].split(',').count(), engines);
    for key in [
        "rule-file",
        "connkill-file",
        "parse-socket",
        "ipv6-prefix",
        "version",
    ] {
        assert!(cfg.contains_key(key), "{key}");
    }
    std::fs::write(env.config(), "[ban]\nreason = 5\n").unwrap();
    let o = env.run("ibd-ban", &["192.0.2.9"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("ipqbdb.toml"), "{}", stderr(&o));
}

/// A command that records its arguments, to see exactly what the connection kill ran.
fn recording_connkill(dir: &Path) -> (PathBuf, PathBuf) {
    let log = dir.join("ck.log");
    let cmd = dir.join("connkill.cmd");
    std::fs::write(
        &cmd,
        format!(
            "# test\nsh -c 'printf \"%s|\" \"$@\" >> {}; echo >> {}' sh FAMILY ADDRESS\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    (cmd, log)
}

#[test]
fn connkill_runs_once_with_the_address_only() {
    let env = Env::new("lmdb");
    let (cmd, log) = recording_connkill(env.tmp.path());
    let ck = cmd.to_str().unwrap();
    let evil = "$(touch /tmp/ipqbdb-pwned); `id`";
    let o = env.run(
        "ibd-ban",
        &["-e", "--connkill-file", ck, "-r", evil, "192.0.2.1"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!log.exists(), "3.125% is no reason to kill connections");
    let o = env.run(
        "ibd-ban",
        &[
            "-e",
            "--connkill-file",
            ck,
            "-c",
            "0",
            "192.0.2.1",
            "2001:db8::7",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = env.run(
        "ibd-ban",
        &["-e", "--connkill-file", ck, "-c", "0", "192.0.2.1"],
    );
    assert_eq!(code(&o), 0, "already at 100 %: {}", stderr(&o));
    let ran = std::fs::read_to_string(&log).unwrap();
    assert_eq!(ran, "ipv4|192.0.2.1|\nipv6|2001:db8::7|\n");
    assert!(!Path::new("/tmp/ipqbdb-pwned").exists());
    // A kill command that fails: the ban stands, the exit code and the message say the kill failed.
    std::fs::write(&cmd, "false\n").unwrap();
    let o = env.run(
        "ibd-ban",
        &["-e", "--connkill-file", ck, "-c", "0", "203.0.113.5"],
    );
    assert_eq!(code(&o), 3);
    let err = stderr(&o);
    assert!(
        err.contains("connection kills failed for 1 banned addresses") && !err.contains("refused"),
        "{err}"
    );
    assert!(find(&records(&env), "203.0.113.5").is_some());
    // A broken command file stops the ban before anything happens.
    std::fs::write(&cmd, "conntrack -D -s ADDRESS; rm -rf /\n").unwrap();
    let o = env.run(
        "ibd-ban",
        &["-e", "--connkill-file", ck, "-c", "0", "198.51.100.1"],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("connkill.cmd:1: shell syntax"),
        "{}",
        stderr(&o)
    );
    assert!(find(&records(&env), "198.51.100.1").is_none());
}

#[root_test("network namespaces, iptables, mounts")]
fn connkill_removes_a_real_conntrack_entry() {
    let env = Env::new("lmdb");
    let ns = Netns::new("ck");
    let cmd = env.tmp.path().join("connkill.cmd");
    std::fs::write(&cmd, "conntrack -D -f FAMILY -s ADDRESS\n").unwrap();
    let flows = |src: &str, family: &str| {
        let o = ns.exec(&["conntrack", "-L", "-f", family, "-s", src]);
        stdout(&o).lines().filter(|l| l.contains(src)).count()
    };
    // An established TCP flow from `src`, port `sport`, to `dst`, port 22.
    let insert_flow = |src: &str, sport: &str, dst: &str| {
        let o = ns.exec(&[
            "conntrack",
            "-I",
            "-s",
            src,
            "-d",
            dst,
            "-p",
            "tcp",
            "--sport",
            sport,
            "--dport",
            "22",
            "--state",
            "ESTABLISHED",
            "--timeout",
            "300",
        ]);
        assert!(o.status.success(), "conntrack -I: {}", stderr(&o));
    };
    let attackers = [
        ("192.0.2.50", "192.0.2.1", "ipv4"),
        ("2001:db8::50", "2001:db8::1", "ipv6"),
    ];
    for (src, dst, family) in attackers {
        insert_flow(src, "40000", dst);
        assert_eq!(flows(src, family), 1);
    }
    // A bystander's flow must survive.
    insert_flow("192.0.2.60", "40001", "192.0.2.1");
    let ibd = env.bin.join("ibd-ban");
    let (conf, db) = (env.config(), env.db());
    let o = ns.exec(&[
        ibd.to_str().unwrap(),
        "--config",
        conf.to_str().unwrap(),
        "--db-dir",
        db.to_str().unwrap(),
        "-e",
        "--connkill-file",
        cmd.to_str().unwrap(),
        "-c",
        "0",
        "192.0.2.50",
        "2001:db8::50",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        flows("192.0.2.50", "ipv4"),
        0,
        "the attacker's flow is gone"
    );
    assert_eq!(
        flows("2001:db8::50", "ipv6"),
        0,
        "the IPv6 attacker's flow is gone"
    );
    assert_eq!(flows("192.0.2.60", "ipv4"), 1, "the bystander's flow stays");
}

/// A database directory its group may write (systemd's `StateDirectoryMode=2770`) is shared with
/// that group: the engine's files end up group-writable whatever the creating program's umask, so a
/// web application in the group can ban. A private directory stays private.
#[test]
fn a_group_writable_directory_shares_its_files() {
    use std::os::unix::fs::PermissionsExt;
    for backend in ["lmdb", "sqlite", "redb"] {
        for shared in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let db = tmp.path().join("db");
            std::fs::create_dir(&db).unwrap();
            let mode = if shared { 0o2770 } else { 0o700 };
            std::fs::set_permissions(&db, std::fs::Permissions::from_mode(mode)).unwrap();
            output_ok(
                Command::new("sh")
                    .arg("-c")
                    .arg(r#"umask 077; exec "$0" --config /dev/null --db-dir "$1" --backend "$2" ban -q 192.0.2.1"#)
                    .arg(IBD)
                    .arg(&db)
                    .arg(backend),
            );
            let files: &[&str] = match backend {
                "lmdb" => &["lmdb/data.mdb", "lmdb/lock.mdb"],
                "sqlite" => &["ipqbdb.sqlite"],
                _ => &["ipqbdb.redb"],
            };
            for f in files {
                let m = std::fs::metadata(db.join(f)).unwrap().permissions().mode();
                assert_eq!(
                    m & 0o060 == 0o060,
                    shared,
                    "{backend}, directory {mode:o}: {f} has mode {m:o}"
                );
            }
        }
    }
}
