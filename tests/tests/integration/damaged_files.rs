//! Damaged database files, for every backend: truncated, or overwritten with random bytes. The
//! programs must answer with one line naming the file (or work, if the engine can still read it),
//! never panic and never die of a signal.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ipqbdb_store::Engine;
use ipqbdb_tests::workspace_bin;

fn engine_file(db: &Path, backend: Engine) -> PathBuf {
    match backend {
        Engine::Lmdb => db.join("lmdb/data.mdb"),
        Engine::Sqlite => db.join("ipqbdb.sqlite"),
        Engine::Redb => db.join("ipqbdb.redb"),
        Engine::Postgres => unreachable!("postgres keeps no file in the directory"),
    }
}

fn run(bin: &Path, db: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(["--config", "/dev/null", "--db-dir"])
        .arg(db)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn check(what: &str, out: &Output, file: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{what}: exit {:?}: {}", out.status.code(), err.trim());
    assert!(
        out.status.signal().is_none(),
        "{what}: killed by signal {:?}: {err}",
        out.status.signal()
    );
    assert!(!err.contains("panicked"), "{what}: panicked: {err}");
    match out.status.code() {
        Some(0) => {}
        Some(1) => {
            assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
            let dir = file.parent().unwrap().to_str().unwrap();
            assert!(err.contains(dir), "{what}: names the database: {err}");
        }
        other => panic!("{what}: exit {other:?}: {err}"),
    }
}

#[test]
fn truncated_and_random_files() {
    let ibd = workspace_bin("ipqbdb-admin", "ibd");
    let parse = workspace_bin("ipqbdb-parse", "ibd-parse");
    for backend in Engine::compiled_local() {
        for damage in ["truncated", "random"] {
            let tmp = tempfile::tempdir().unwrap();
            let db = tmp.path().join("db");
            let addrs: Vec<String> = (1..=2000)
                .map(|i| format!("10.0.{}.{}", i / 250, i % 250 + 1))
                .collect();
            let mut args = vec!["--backend", backend.name(), "ban", "-q"];
            args.extend(addrs.iter().map(String::as_str));
            assert!(run(&ibd, &db, &args).status.success());
            let file = engine_file(&db, backend);
            let len = std::fs::metadata(&file).unwrap().len();
            match damage {
                "truncated" => {
                    let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
                    f.set_len(len / 2).unwrap();
                }
                _ => {
                    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
                    let bytes: Vec<u8> = (0..len)
                        .map(|_| {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            x as u8
                        })
                        .collect();
                    std::fs::write(&file, bytes).unwrap();
                }
            }
            let what = |p: &str| format!("{backend}, {damage} file, {p}");
            check(
                &what("ibd del --ls"),
                &run(&ibd, &db, &["del", "--ls"]),
                &file,
            );
            check(
                &what("ibd ban"),
                &run(&ibd, &db, &["ban", "-q", "192.0.2.9"]),
                &file,
            );
            check(
                &what("ibd del --stats"),
                &run(&ibd, &db, &["del", "--stats"]),
                &file,
            );
            let rules = tmp.path().join("rules.conf");
            std::fs::write(&rules, "/x <HOST>/ * \"x\"\n").unwrap();
            let out = run(
                &parse,
                &db,
                &["-D", "--stdin", "--no-fifo", "-f", rules.to_str().unwrap()],
            );
            check(&what("ibd-parse"), &out, &file);
        }
    }
}
