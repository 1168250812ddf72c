//! `ibd stats` on every engine: the figures match what was put in the database, and the
//! `--prometheus` page passes `promtool check metrics`, printed and written with `--output`.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ipqbdb_store::Engine;
use ipqbdb_tests::scrape::{must_value, promtool_check};
use ipqbdb_tests::{db_options, Proc};

const IBD: &str = env!("CARGO_BIN_EXE_ibd");
/// How long one `ibd` may take: a hang detector.
const LIMIT: Duration = Duration::from_secs(60);

fn ibd(db: &Path, backend: Engine, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(IBD);
    db_options(&mut cmd, backend, db)
        .args(args)
        .env_remove("IPQBDB_CONFIG");
    let out = Proc::run_with_input("ibd", &mut cmd, stdin.as_bytes(), LIMIT);
    assert!(
        out.status.success(),
        "ibd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn stats_count_what_the_database_holds() {
    for backend in Engine::compiled_local() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("db");
        // Two at 100 % (above 90 % for hours as they decay), one at 1/32 (3.125 %), one at 25 %;
        // two reasons; two whitelist entries.
        ibd(
            &db,
            backend,
            &["ban", "-q", "-c", "0", "192.0.2.1", "2001:db8::1"],
            "",
        );
        ibd(&db, backend, &["ban", "-q", "-r", "other", "192.0.2.2"], "");
        ibd(
            &db,
            backend,
            &["ban", "-q", "-c", "2", "-r", "other", "192.0.2.3"],
            "",
        );
        ibd(&db, backend, &["white"], "10.0.0.0/8 0\n198.51.100.7 600\n");

        let text = String::from_utf8(ibd(&db, backend, &["stats"], "").stdout).unwrap();
        assert!(text.starts_with("records 4\n"), "{backend}: {text}");
        assert!(text.contains("records-90-100% 2\n"), "{backend}: {text}");
        assert!(text.contains("whitelist-entries 2\n"), "{backend}: {text}");

        let page =
            String::from_utf8(ibd(&db, backend, &["stats", "--prometheus"], "").stdout).unwrap();
        promtool_check(&format!("ibd stats --prometheus on {backend}"), &page);
        let band =
            |b: &str| must_value(&page, &format!("ipqbdb_db_records_by_band{{band=\"{b}\"}}"));
        assert_eq!(must_value(&page, "ipqbdb_db_records"), 4.0, "{backend}");
        assert_eq!(band("90-100"), 2.0, "{backend}");
        assert_eq!(band("10-50"), 1.0, "{backend}");
        assert_eq!(band("1-10"), 1.0, "{backend}");
        assert_eq!(band("50-90") + band("0-1"), 0.0, "{backend}");
        assert_eq!(must_value(&page, "ipqbdb_db_reasons"), 2.0, "{backend}");
        assert_eq!(
            must_value(&page, "ipqbdb_db_whitelist_entries"),
            2.0,
            "{backend}"
        );
        assert!(must_value(&page, "ipqbdb_db_size_bytes") > 0.0, "{backend}");

        // For the textfile collector: the same page, replacing the file.
        let file = tmp.path().join("ipqbdb-db.prom");
        std::fs::write(&file, "stale").unwrap();
        let out = ibd(
            &db,
            backend,
            &["stats", "--prometheus", "--output", file.to_str().unwrap()],
            "",
        );
        assert!(out.stdout.is_empty());
        let written = std::fs::read_to_string(&file).unwrap();
        promtool_check("ibd stats --output", &written);
        assert_eq!(must_value(&written, "ipqbdb_db_records"), 4.0, "{backend}");
    }
}

#[test]
fn stats_of_a_missing_database_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(IBD)
        .args(["--config", "/dev/null", "--db-dir"])
        .arg(tmp.path().join("none"))
        .args(["stats", "--prometheus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ibd stats: ") && err.lines().count() == 1,
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
