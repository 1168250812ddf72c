//! Where the programs' and libraries' log lines go: stderr as `program: message`, unless the program
//! installed another destination (the runtime's syslog) with [`set_sink`].
//!
//! Only the choice lives here, so that a library below the process plumbing (the store's view logs
//! its retries) can log without depending on it.

use std::sync::OnceLock;

/// Severity, in syslog's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
    Notice,
    Info,
    Debug,
}

/// A destination for log lines in place of stderr.
pub type Sink = fn(Level, &str);

static SINK: OnceLock<Sink> = OnceLock::new();

/// Sends later [`log`] calls to `sink` instead of stderr. A process has one destination: the first
/// call decides, later ones change nothing.
pub fn set_sink(sink: Sink) {
    let _ = SINK.set(sink);
}

/// Logs one line to the installed sink, else to stderr as `program: message`.
pub fn log(program: &str, level: Level, message: &str) {
    match SINK.get() {
        Some(sink) => sink(level, message),
        None => eprintln!("{program}: {message}"),
    }
}
