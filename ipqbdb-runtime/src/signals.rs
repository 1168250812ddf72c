//! The signals the programs react to, and the one they stop ignoring.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Lets a closed standard output end the program quietly, as it ends `cat` or `grep` (`ibd del --ls |
/// head`). Rust ignores SIGPIPE, which turns the closed pipe into an error message instead. Only for
/// programs and modes whose job is to print: a daemon keeps ignoring it, so a vanished log reader
/// cannot kill it.
pub fn default_sigpipe() {
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// The signals a daemon reacts to, as flags its loop reads and clears: SIGTERM and SIGINT ask it to
/// end, SIGHUP to reload, SIGUSR1 to dump its counters and state to the log, SIGUSR2 to close and
/// reopen the database (ipqbdb 2.03's recovery signal, which its scripts send to every daemon: it
/// must never kill one).
#[derive(Debug, Default, Clone)]
pub struct Signals {
    pub terminate: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
    pub dump: Arc<AtomicBool>,
    pub reopen: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        let s = Signals::default();
        signal_hook::flag::register(SIGTERM, s.terminate.clone())?;
        signal_hook::flag::register(SIGINT, s.terminate.clone())?;
        signal_hook::flag::register(SIGHUP, s.reload.clone())?;
        signal_hook::flag::register(SIGUSR1, s.dump.clone())?;
        signal_hook::flag::register(SIGUSR2, s.reopen.clone())?;
        Ok(s)
    }
}
