//! The kernel's verifier, for real: a program it refuses (`bpf/refused.bpf.c`, built beside the
//! verdict program) gives one line naming the program and the verifier's reason. (The verdict
//! program passes it in every test of `netns.rs`.)

use ipqbdb_tests::root_test;
use ipqbdb_xdp::error::XdpError;
use ipqbdb_xdp::loader::load_object;

static REFUSED: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/refused.bpf.o"));

#[root_test("loads BPF programs")]
fn a_refused_program_is_one_line_with_the_reason() {
    let err = load_object(REFUSED, "ipqbdb_refused")
        .expect_err("the verifier refuses a read past the packet's checked bounds");
    let XdpError::Verifier { program, reason } = &err else {
        panic!("not the verifier's refusal: {err}");
    };
    assert_eq!(program, "ipqbdb_refused");
    let line = err.to_string();
    eprintln!("{line}");
    assert_eq!(line.lines().count(), 1, "one line: {line:?}");
    assert!(line.contains("ipqbdb_refused"), "{line}");
    // The reason, not the log's closing statistics.
    assert!(
        reason.contains("packet") && !reason.contains("processed"),
        "{reason}"
    );
}

#[test]
fn an_object_without_the_program_is_named() {
    let err = load_object(REFUSED, "no_such_program").expect_err("no such program");
    assert!(err.to_string().contains("no_such_program"), "{err}");
}
