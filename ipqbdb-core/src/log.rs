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
        None => log_lines(program, level, [message]),
    }
}

/// Logs several lines of one level, as [`log`] would one by one, but to stderr in one write:
/// stderr is unbuffered and `eprintln!` makes a system call per piece, while a busy daemon logs
/// every ban of a committed batch (a system call per line was a tenth of its time). Each message
/// is formatted straight into that write's buffer.
pub fn log_lines<M: std::fmt::Display>(
    program: &str,
    level: Level,
    messages: impl IntoIterator<Item = M>,
) {
    match SINK.get() {
        Some(sink) => messages
            .into_iter()
            .for_each(|m| sink(level, &m.to_string())),
        None => {
            use std::fmt::Write as _;
            use std::io::Write as _;
            let mut text = String::new();
            for m in messages {
                let _ = writeln!(text, "{program}: {m}");
            }
            if !text.is_empty() {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    static SEEN: Mutex<Vec<(Level, String)>> = Mutex::new(Vec::new());

    fn collect(level: Level, message: &str) {
        SEEN.lock().unwrap().push((level, message.to_string()));
    }

    fn ignore(_: Level, _: &str) {}

    #[test]
    fn the_first_sink_installed_gets_every_line() {
        set_sink(collect);
        set_sink(ignore);
        log("ibd-test", Level::Warning, "disk full");
        log("ibd-test", Level::Debug, "detail");
        log_lines("ibd-test", Level::Info, ["first ban", "second ban"]);
        assert_eq!(
            *SEEN.lock().unwrap(),
            [
                (Level::Warning, "disk full".to_string()),
                (Level::Debug, "detail".to_string()),
                (Level::Info, "first ban".to_string()),
                (Level::Info, "second ban".to_string())
            ]
        );
    }
}
