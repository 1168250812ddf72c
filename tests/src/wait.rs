//! Waiting for what another thread or process brings about, always with a deadline.

use std::io::{BufRead, BufReader};
use std::process::ChildStdout;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// Runs `f` on another thread and fails the test if it does not finish within `limit`: a hang
/// detector for operations that must never block (opening a database after a crash), not a timing.
pub fn must_finish<T: Send + 'static>(
    what: &str,
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}: it hangs"))
}

/// Polls `cond` every 20 ms until it holds; fails the test, saying `what`, after `limit`. For
/// conditions another process brings about (a ban committed, a log line written), where there is no
/// event to block on.
pub fn wait_until(what: impl Fn() -> String, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited {limit:?} in vain: {}",
            what()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Lines of a child's stdout, read on a thread so the test can wait for a given line with a deadline.
pub struct Lines {
    rx: mpsc::Receiver<String>,
}

impl Lines {
    pub fn new(out: ChildStdout) -> Self {
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line, or `None` at end of output or after `limit`.
    pub fn next(&self, limit: Duration) -> Option<String> {
        self.rx.recv_timeout(limit).ok()
    }
}
