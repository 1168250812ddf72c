//! A full disk and a read-only file system, for every backend: clear one-line errors, nothing lost or
//! corrupted, and recovery (for a running ibd-parse too) once the space or write access returns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ipqbdb_store::Engine;
use ipqbdb_tests::root_test;
use ipqbdb_tests::scrape::{logged_addr, scrape, value};
use ipqbdb_tests::{wait_until, workspace_bin, Proc};

/// A small tmpfs, unmounted on drop.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn new(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs");
        SmallFs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Takes all the space left.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0xa5u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path()).status();
    }
}

/// A read-only bind mount of `source` (the same files, no writes through it), unmounted on drop.
struct ReadOnlyView {
    dir: tempfile::TempDir,
}

impl ReadOnlyView {
    fn new(source: &Path) -> ReadOnlyView {
        let dir = tempfile::tempdir().unwrap();
        for args in [&["--bind"][..], &["-o", "remount,bind,ro"]] {
            let ok = Command::new("mount")
                .args(args)
                .arg(source)
                .arg(dir.path())
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount {args:?}");
        }
        ReadOnlyView { dir }
    }
}

impl Drop for ReadOnlyView {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn ibd(db: &Path, args: &[&str]) -> Output {
    Command::new(workspace_bin("ipqbdb-admin", "ibd"))
        .args(["--config", "/dev/null", "--db-dir"])
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

/// Read through `ibd`, not in this process: an LMDB environment opened here would stay open (and
/// the file system busy) until the test process ends.
fn caught(db: &Path, _backend: Engine, addr: &str) -> u64 {
    record(db, addr).map_or(0, |r| r["caught"].as_u64().unwrap())
}

/// `ibd ban` on a full or read-only file system: exit 1 and one line naming the database.
fn assert_refused(db: &Path, addr: &str, what: &str) {
    let out = ibd(db, &["ban", "-q", addr]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
    assert!(
        err.starts_with("ibd ban: ") && err.contains(db.to_str().unwrap()),
        "{what}: {err}"
    );
}

/// `ibd-parse` on a database in a small file system, fed through its FIFO. Its log lives outside
/// that file system, so it survives the disk filling up. Fields drop in order: the parser dies
/// before the file system is unmounted.
struct ParserOnSmallFs {
    daemon: Proc,
    /// Where its metrics are served.
    metrics: std::net::SocketAddr,
    err_log: PathBuf,
    db: PathBuf,
    rules: PathBuf,
    fs: SmallFs,
}

impl ParserOnSmallFs {
    /// A database of `backend` holding `bans`, and a parser on it with the rules `rules`.
    fn start(parse: &Path, backend: Engine, name: &str, bans: &[&str], rules: &str) -> Self {
        let fs = SmallFs::new("4m");
        let db = fs.path().join("db");
        let mut args = vec!["--backend", backend.name(), "ban", "-q"];
        args.extend_from_slice(bans);
        let out = ibd(&db, &args);
        assert!(
            out.status.success(),
            "{backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rules_path = fs.path().join("rules.conf");
        std::fs::write(&rules_path, rules).unwrap();
        let err_log = std::env::temp_dir().join(format!(
            "ipqbdb-{name}-{}-{backend}.err",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&err_log);
        let mut cmd = Command::new(parse);
        cmd.args(["-D", "--config", "/dev/null", "--db-dir"])
            .arg(&db)
            .arg("--rule-file")
            .arg(&rules_path)
            .args(["--metrics-listen", "127.0.0.1:0"]);
        let mut daemon = Proc::spawn_logged("ibd-parse", &mut cmd, &err_log);
        daemon.wait_log("started", Duration::from_secs(20));
        let metrics = logged_addr(&daemon.log()).expect("the metrics address");
        ParserOnSmallFs {
            daemon,
            metrics,
            err_log,
            db,
            rules: rules_path,
            fs,
        }
    }

    /// The value of `series` on the parser's metrics page, 0 when absent.
    fn metric(&self, series: &str) -> f64 {
        value(&scrape(self.metrics), series).unwrap_or(0.0)
    }

    fn feed(&self, line: &str) {
        let fifo = self.db.join("ibd-parse.sock");
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        writeln!(f, "{line}").unwrap();
    }

    /// A clean stop; the log goes only when all went well (a failing test prints it).
    fn finish(mut self) {
        self.daemon.stop(Duration::from_secs(20));
        let _ = std::fs::remove_file(&self.err_log);
    }
}

#[root_test("network namespaces, iptables, mounts")]
fn full_disk_and_read_only_file_system() {
    let parse = workspace_bin("ipqbdb-parse", "ibd-parse");
    for backend in Engine::compiled_local() {
        let p = ParserOnSmallFs::start(
            &parse,
            backend,
            "full",
            &["192.0.2.1", "192.0.2.2"],
            "/attack <HOST>/ * \"attack\" 31\n",
        );
        let (fs, db) = (&p.fs, &p.db);
        let log = || p.daemon.log();
        let feed = |line: &str| p.feed(line);

        // Full.
        let filler = fs.fill();
        // Grow the database until the disk refuses: every refusal must be one clear line, and every
        // acknowledged ban must stay. (Once full, an engine may still fit some small writes into
        // space it allocated before, so refusals and successes may alternate.)
        let mut acked: Vec<String> = vec!["192.0.2.1".into(), "192.0.2.2".into()];
        let mut refusals = 0;
        for round in 0..2000u32 {
            let batch = if refusals == 0 { 200 } else { 1 };
            let addrs: Vec<String> = (0..batch)
                .map(|i| format!("10.{}.{}.{}", round / 250, round % 250, i + 1))
                .collect();
            let mut args = vec!["ban", "-q"];
            args.extend(addrs.iter().map(String::as_str));
            let out = ibd(db, &args);
            if out.status.success() {
                acked.extend(addrs);
                continue;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{backend} full: {err}");
            assert_eq!(err.lines().count(), 1, "{backend} full, one line: {err}");
            assert!(
                err.contains(db.to_str().unwrap()),
                "{backend} full, names the database: {err}"
            );
            refusals += 1;
            if refusals == 5 {
                break;
            }
        }
        assert_eq!(refusals, 5, "{backend}: the disk never filled");
        let listed = ibd(db, &["del", "--ls", "--json"]);
        assert!(
            listed.status.success(),
            "{backend}: listing a full database"
        );
        let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
        let present: std::collections::HashSet<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["address"].as_str().unwrap())
            .collect();
        let lost: Vec<&String> = acked
            .iter()
            .filter(|a| !present.contains(a.as_str()))
            .collect();
        assert!(
            lost.is_empty(),
            "{backend}: {} acknowledged bans lost, e.g. {:?}",
            lost.len(),
            lost.first()
        );
        eprintln!(
            "{backend}: disk full after {} acknowledged bans, all present",
            acked.len()
        );
        // The parser meets the full disk too: it writes the ban, or holds it and retries.
        feed("attack 198.51.100.7");
        wait_until(
            || format!("{backend}: parser said {}", log()),
            Duration::from_secs(20),
            || log().contains("retrying") || caught(db, backend, "198.51.100.7") == 1,
        );
        // Space returns: everything works again, and the held ban arrives.
        std::fs::remove_file(&filler).unwrap();
        wait_until(
            || format!("{backend}: held ban not written: {}", log()),
            Duration::from_secs(20),
            || caught(db, backend, "198.51.100.7") == 1,
        );
        assert!(
            ibd(db, &["ban", "-q", "192.0.2.1"]).status.success(),
            "{backend}: bans after recovery"
        );
        assert_eq!(caught(db, backend, "192.0.2.1"), 2);

        // A read-only view of the same directory: writing through it is refused clearly, listing
        // either works or is refused clearly, and nothing changes for the writers.
        let view = ReadOnlyView::new(db);
        assert_refused(
            view.dir.path(),
            "192.0.2.4",
            &format!("{backend} read-only"),
        );
        let list = ibd(view.dir.path(), &["del", "--ls"]);
        let err = String::from_utf8_lossy(&list.stderr);
        assert!(
            list.status.success() || (list.status.code() == Some(1) && err.lines().count() == 1),
            "{backend}: listing a read-only directory: {err}"
        );
        drop(view);
        feed("attack 198.51.100.8");
        wait_until(
            || format!("{backend}: parser stalled: {}", log()),
            Duration::from_secs(20),
            || caught(db, backend, "198.51.100.8") == 1,
        );
        assert_eq!(
            caught(db, backend, "192.0.2.1"),
            2,
            "{backend}: nothing changed"
        );
        p.finish();
    }
}

/// The record of `addr`, through `ibd` (see [`caught`]).
fn record(db: &Path, addr: &str) -> Option<serde_json::Value> {
    let out = ibd(db, &["del", "--ls", "--json", addr]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array().unwrap().first().cloned()
}

/// Bans that wait for a refusing database keep the rule that matched them, even when a reload
/// replaces the rules meanwhile by a shorter file: the ban lands later with that rule's reason,
/// count and decay (it once took the index of the rule into the new set: a wrong reason, or a
/// panic past its end).
#[root_test("network namespaces, iptables, mounts")]
fn a_reload_while_the_database_refuses_keeps_the_waiting_bans() {
    let parse = workspace_bin("ipqbdb-parse", "ibd-parse");
    let beta = "/alpha <HOST>/ * \"alpha\" 1 - 2h\n/beta <HOST>/ * \"beta\" 2 - 3h\n";
    for backend in Engine::compiled_local() {
        let p = ParserOnSmallFs::start(&parse, backend, "reload", &["192.0.2.1"], beta);
        let (fs, db, rules, daemon) = (&p.fs, &p.db, &p.rules, &p.daemon);
        let feed = |line: &str| p.feed(line);
        let count = |what: &str| daemon.log().matches(what).count();
        let filler = fs.fill();
        // Until a ban of the second rule waits for the database across a reload: an engine may fit
        // a few small writes in space it holds already, or take a retry before the reload lands;
        // then the rules are restored and the next line tries again.
        let mut waiting = None;
        for n in 1..=200u32 {
            let addr = format!("10.0.{}.{}", n / 250, n % 250 + 1);
            let (retries, accepted, reloads) = (
                count("retrying"),
                count("accepts bans again"),
                count("reloaded "),
            );
            feed(&format!("beta {addr}"));
            wait_until(
                || {
                    format!(
                        "{backend}: neither a ban nor a retry for {addr}: {}",
                        daemon.log()
                    )
                },
                Duration::from_secs(20),
                || count("retrying") > retries || record(db, &addr).is_some(),
            );
            if count("retrying") == retries {
                continue;
            }
            // The rules shrink to one (a different one) while the ban waits.
            std::fs::write(rules, "/gamma <HOST>/ * \"gamma\" 7 - 1h\n").unwrap();
            daemon.signal(libc::SIGHUP);
            wait_until(
                || format!("{backend}: no reload: {}", daemon.log()),
                Duration::from_secs(20),
                || count("reloaded ") > reloads,
            );
            if count("accepts bans again") == accepted {
                waiting = Some(addr);
                break;
            }
            std::fs::write(rules, beta).unwrap();
            daemon.signal(libc::SIGHUP);
            wait_until(
                || format!("{backend}: no reload: {}", daemon.log()),
                Duration::from_secs(20),
                || count("reloaded ") > reloads + 1,
            );
        }
        let addr = waiting.unwrap_or_else(|| {
            panic!(
                "{backend}: no ban ever waited across a reload: {}",
                daemon.log()
            )
        });
        // The metrics show the ban held and the refusals.
        assert!(p.metric("ipqbdb_parse_bans_waiting") >= 1.0, "{backend}");
        assert!(
            p.metric("ipqbdb_parse_database_errors_total") >= 1.0,
            "{backend}"
        );
        let beta_bans = |p: &ParserOnSmallFs| {
            p.metric("ipqbdb_parse_bans_total{outcome=\"new\",reason=\"beta\",rule=\"2\"}")
        };
        let beta_before = beta_bans(&p);
        assert!(
            daemon.log().contains("reloaded 1 rules"),
            "{}",
            daemon.log()
        );
        std::fs::remove_file(&filler).unwrap();
        wait_until(
            || {
                format!(
                    "{backend}: the waiting ban of {addr} never landed: {}",
                    daemon.log()
                )
            },
            Duration::from_secs(30),
            || record(db, &addr).is_some(),
        );
        let r = record(db, &addr).unwrap();
        assert_eq!(r["reason"], "beta", "{backend}: {r}");
        // Counted under the rule that matched it, from the rule set it was matched with.
        wait_until(
            || format!("{backend}: the held ban counted: {}", scrape(p.metrics)),
            Duration::from_secs(20),
            || beta_bans(&p) == beta_before + 1.0 && p.metric("ipqbdb_parse_bans_waiting") == 0.0,
        );
        assert_eq!(
            r["stored_probability"],
            1u64 << 29,
            "{backend}: count 2 is 1/4: {r}"
        );
        assert_eq!(r["decay"], 3 * 3600, "{backend}: {r}");
        // The new rules work too.
        feed("gamma 10.9.9.9");
        wait_until(
            || format!("{backend}: gamma not banned: {}", p.daemon.log()),
            Duration::from_secs(20),
            || record(db, "10.9.9.9").is_some(),
        );
        assert_eq!(record(db, "10.9.9.9").unwrap()["reason"], "gamma");
        p.finish();
    }
}
