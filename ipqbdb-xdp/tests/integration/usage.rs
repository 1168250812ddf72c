//! ibd-xdp's refusals before it touches the kernel: one line, exit 1 or 2, nothing made.

use std::process::Command;

const XDP: &str = env!("CARGO_BIN_EXE_ibd-xdp");

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(XDP).args(args).output().expect("run ibd-xdp");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_pin_directory_off_a_bpf_filesystem_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let pins = tmp.path().join("pins/lo");
    let (code, err) = run(&[
        "-D",
        "--config",
        "/dev/null",
        "--db-dir",
        db.to_str().unwrap(),
        "--pin-dir",
        pins.to_str().unwrap(),
        "lo",
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("not on a BPF filesystem"), "{err}");
    assert!(!tmp.path().join("pins").exists(), "nothing made off bpffs");
}

#[test]
fn bad_sizes_are_usage_errors() {
    for args in [
        &["--max-entries", "0", "lo"][..],
        &["--staleness-ms", "0", "lo"][..],
        &["--max-entries", "many", "lo"][..],
        &[][..],
    ] {
        let mut full = vec!["-D", "--config", "/dev/null", "--db-dir", "/nonexistent/db"];
        full.extend_from_slice(args);
        let (code, err) = run(&full);
        assert_ne!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
