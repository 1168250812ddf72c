//! Logging to syslog, as the daemons and `ibd ban --log-syslog` need.
//!
//! syslog(3) is called directly: one function, no daemon of our own, and it works under systemd (the
//! journal reads /dev/log) as on a classic syslog host.

use std::ffi::CString;
use std::sync::OnceLock;

use ipqbdb_core::log::{set_sink, Level};

fn priority(level: Level) -> libc::c_int {
    match level {
        Level::Error => libc::LOG_ERR,
        Level::Warning => libc::LOG_WARNING,
        Level::Notice => libc::LOG_NOTICE,
        Level::Info => libc::LOG_INFO,
        Level::Debug => libc::LOG_DEBUG,
    }
}

static SYSLOG_IDENT: OnceLock<CString> = OnceLock::new();

/// Sends later [`ipqbdb_core::log::log`] calls to syslog (facility daemon) under `ident` instead of
/// stderr.
pub fn use_syslog(ident: &str) {
    let ident =
        SYSLOG_IDENT.get_or_init(|| CString::new(ident.replace('\0', "")).unwrap_or_default());
    // SAFETY: `ident` lives in a static for the rest of the process, as openlog requires.
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
    set_sink(write);
}

fn write(level: Level, message: &str) {
    let msg = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: constant format string with one %s argument, both valid C strings.
    unsafe { libc::syslog(priority(level), c"%s".as_ptr(), msg.as_ptr()) };
}
