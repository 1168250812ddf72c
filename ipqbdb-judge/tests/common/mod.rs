//! What the end-to-end tests of this crate share.

use std::path::Path;

use ipqbdb_store::Backend;
use ipqbdb_tests::netns::Netns;

pub fn every_backend(f: impl Fn(Backend)) {
    for b in Backend::compiled_local() {
        f(b);
    }
}

/// `ibd ban ARGS` against the database in `db` of `backend` (the admin program's own entry point).
pub fn ibd_ban(db: &Path, backend: Backend, args: &[&str]) {
    let mut argv: Vec<std::ffi::OsString> =
        ["ibd", "ban", "--quiet", "--config", "/dev/null", "--db-dir"]
            .map(Into::into)
            .to_vec();
    argv.push(db.into());
    argv.extend(["--backend", backend.name()].map(Into::into));
    argv.extend(args.iter().map(Into::into));
    assert_eq!(ipqbdb_admin::run(argv), 0, "ibd ban {args:?}");
}

/// Queue `queue`, in the mangle table, judges UDP packets to `port` (a destination spec such as
/// `Q1DM4` marks them); the filter table then rejects the packets marked `mark`.
pub fn queue_and_reject_marked(ns: &Netns, port: u16, queue: u16, mark: u32) {
    let queue = queue.to_string();
    ns.queue_port("iptables", "mangle", "udp", port, &["--queue-num", &queue]);
    let (port, mark) = (port.to_string(), mark.to_string());
    ns.must(&[
        "iptables", "-A", "INPUT", "-p", "udp", "--dport", &port, "-m", "mark", "--mark", &mark,
        "-j", "REJECT",
    ]);
}

/// Packets the REJECT rule of `ns`'s INPUT chain met.
pub fn reject_count(ns: &Netns) -> u64 {
    let out = ns.must(&["iptables", "-L", "INPUT", "-v", "-x", "-n"]);
    out.lines()
        .find(|l| l.contains("REJECT"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("REJECT rule counter")
}
