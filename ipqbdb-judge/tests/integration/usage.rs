//! Command-line errors of the real ibd-judge binary: refused before any socket is opened.

use std::process::Command;

const JUDGE: &str = env!("CARGO_BIN_EXE_ibd-judge");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(JUDGE)
        .args([
            "-D",
            "--config",
            "/dev/null",
            "--db-dir",
            "/nonexistent/ipqbdb-usage-test",
        ])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_queue_specs_are_usage_errors() {
    for bad in ["Q", "Q1X", "P0", "Q0DM", "Q99999"] {
        let (code, err) = run(&[bad]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("invalid queue spec"), "{bad}: {err}");
    }
}

/// Fewer bytes than an IPv6 header would leave IPv6 packets unjudgeable (no queue argument is not
/// an error: it is queue 0, as in ipqbdb 2.x, tested with real packets in tests/tests/upgrade.rs).
#[test]
fn a_copy_range_below_an_ipv6_header_is_a_usage_error() {
    for bad in ["0", "39"] {
        let (code, err) = run(&["--copy-range", bad, "Q0"]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("40.."), "{bad}: {err}");
    }
}

#[test]
fn a_queue_given_twice_is_refused() {
    let (code, err) = run(&["Q3", "Q3DM1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("queue 3 is given twice"), "{err}");
}
