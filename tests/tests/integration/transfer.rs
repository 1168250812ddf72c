//! `ibd export` and `ibd import` move a database through every compiled engine (postgres
//! included, on a private server) and back, unchanged: the dump taken at each step is the same,
//! byte for byte, and the last database answers as the first.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use ipqbdb_core::{UnixTime, V6Prefix};
use ipqbdb_store::{AnyStore, Ban, Engine, OpenOptions, ReadStore, Store, WhiteEntry};
use ipqbdb_tests::postgres::server_of;
use ipqbdb_tests::{ip, options, workspace_bin, TestDb};

const T0: UnixTime = 1_700_000_000;

fn ibd(db: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(workspace_bin("ipqbdb-admin", "ibd"));
    cmd.args(["--config", "/dev/null", "--db-dir"]).arg(db);
    if let Some(server) = server_of(db) {
        cmd.args(["--postgres-url", &server.url]);
    }
    cmd.args(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A database with something in every table: IPv4 and IPv6 records under a /56 prefix, a
/// whitelist, a reason with a category and statistics credited by a deletion, and a note.
fn fill(s: &AnyStore) {
    let b = |a: &'static str, r: &'static str| Ban {
        ip: ip(a),
        reason: r,
        initial_count: 3,
        decay: Some(7200),
    };
    s.ban_batch_noting(
        &[
            b("192.0.2.1", "ssh"),
            b("192.0.2.1", "ssh"),
            b("2001:db8:0:1::5", "web"),
            b("198.51.100.9", "gone"),
        ],
        T0,
        &[(b"pos:/var/log/auth.log".to_vec(), b"4711".to_vec())],
    )
    .unwrap();
    s.add_blocked(&[("192.0.2.1".parse().unwrap(), 42)])
        .unwrap();
    s.delete_records(&["198.51.100.9".parse().unwrap()])
        .unwrap();
    s.white_set(&[
        WhiteEntry {
            range: "10.0.0.0/8".parse().unwrap(),
            decay: 0,
        },
        WhiteEntry {
            range: "192.0.2.0/24".parse().unwrap(),
            decay: 600,
        },
    ])
    .unwrap();
    let web = s.find_reason("web").unwrap().unwrap();
    s.set_category(web.id, 14).unwrap();
}

#[test]
fn a_database_moves_through_every_engine_unchanged() {
    let mut engines = Engine::compiled();
    let first = engines[0];
    engines.push(first);
    let dbs: Vec<TestDb> = engines.iter().map(|&b| TestDb::new(b)).collect();
    let src = AnyStore::open(
        dbs[0].path(),
        &OpenOptions {
            backend: Some(first),
            v6_prefix: Some(V6Prefix::new(56).unwrap()),
            ..options(dbs[0].path())
        },
    )
    .unwrap();
    fill(&src);
    let stats = src.reason_stats().unwrap();
    let records = src.list_records(None).unwrap();
    drop(src);
    let tmp = tempfile::tempdir().unwrap();
    let mut dumps: Vec<String> = Vec::new();
    for (i, (db, b)) in dbs.iter().zip(&engines).enumerate() {
        let dump = tmp.path().join(format!("dump{i}"));
        if i > 0 {
            ok(ibd(
                db.path(),
                &[
                    "--backend",
                    b.name(),
                    "import",
                    dumps.last().unwrap().as_str(),
                ],
            ));
        }
        ok(ibd(db.path(), &["export", dump.to_str().unwrap()]));
        let text = std::fs::read_to_string(&dump).unwrap();
        if let Some(prev) = dumps.last() {
            assert_eq!(
                std::fs::read_to_string(prev).unwrap(),
                text,
                "the dump changed on the way into {b}"
            );
        }
        eprintln!("{b}: {} lines", text.lines().count());
        dumps.push(dump.to_str().unwrap().to_string());
    }
    let last = ipqbdb_tests::open_any(dbs.last().unwrap().path(), first).unwrap();
    assert_eq!(last.v6_prefix().unwrap().bits(), 56);
    assert_eq!(last.reason_stats().unwrap(), stats);
    assert_eq!(last.list_records(None).unwrap(), records);
    assert_eq!(
        last.note(b"pos:/var/log/auth.log").unwrap().as_deref(),
        Some(&b"4711"[..])
    );
    assert_eq!(
        last.white_lookup("10.1.2.3".parse().unwrap())
            .unwrap()
            .unwrap()
            .decay,
        0
    );
}

#[test]
fn import_refuses_a_full_database_and_a_bad_dump() {
    let b = Engine::compiled_local()[0];
    let db = TestDb::new(b);
    fill(&ipqbdb_tests::open_any(db.path(), b).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let dump = tmp.path().join("dump");
    ok(ibd(db.path(), &["export", dump.to_str().unwrap()]));
    let out = ibd(db.path(), &["import", dump.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not empty") && err.lines().count() == 1,
        "{err}"
    );
    let text = std::fs::read_to_string(&dump).unwrap();
    let bad = tmp.path().join("bad");
    std::fs::write(&bad, text.replacen("\nblock\t", "\nblock\tzz", 1)).unwrap();
    let fresh = tmp.path().join("fresh");
    let out = ibd(
        &fresh,
        &["--backend", b.name(), "import", bad.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("{}:2: ", bad.display())), "{err}");
    let empty = ipqbdb_tests::open_any(&fresh, b).unwrap();
    assert_eq!(
        empty.record_count().unwrap(),
        0,
        "nothing of a refused dump is kept"
    );
}
