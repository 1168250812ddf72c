//! Starting a daemon: into the background, with its failure reported where it was started.

use std::io::Write;
use std::os::fd::FromRawFd;

use ipqbdb_core::log::{self, Level};

use crate::notify::notify_ready;
use crate::syslog::use_syslog;

/// Forks into the background. The parent waits on a pipe: end-of-file means the daemon started, a
/// message means it failed (the parent prints it and exits 1), so a daemon started from a script
/// still reports a bad database directory. The child writes an error to the returned pipe, or
/// drops it once it runs. Call it before any thread is spawned.
pub fn detach(program: &str) -> Result<std::fs::File, String> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we own from here on.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: no other thread runs yet (nothing has been spawned), which makes fork sound.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            // SAFETY: closing our copy of the read end; setsid and dup2 on valid descriptors.
            unsafe {
                libc::close(fds[0]);
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::dup2(null, 1);
                    libc::dup2(null, 2);
                    libc::close(null);
                }
            }
            let _ = std::env::set_current_dir("/");
            // SAFETY: fds[1] is the write end, owned by the child alone from here.
            Ok(unsafe { std::fs::File::from_raw_fd(fds[1]) })
        }
        _ => {
            // SAFETY: closing the write end; reading the other end we own.
            unsafe { libc::close(fds[1]) };
            let mut r = unsafe { std::fs::File::from_raw_fd(fds[0]) };
            let mut msg = String::new();
            let _ = std::io::Read::read_to_string(&mut r, &mut msg);
            if msg.is_empty() {
                std::process::exit(0);
            }
            eprintln!("{program}: {msg}");
            std::process::exit(1);
        }
    }
}

/// Starts a daemon: in the background unless `foreground` (see [`detach`]), logging to syslog when
/// detached or `syslog` asks, then `start`. A failure of `start` reaches the parent still waiting
/// where the daemon was started; success releases it, then tells systemd, whose failure only warns
/// (the daemon runs, and a unit that is not `Type=notify` does not care).
pub fn start_daemon<T>(
    program: &str,
    foreground: bool,
    syslog: bool,
    start: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let mut ready = if foreground {
        None
    } else {
        Some(detach(program)?)
    };
    if !foreground || syslog {
        use_syslog(program);
    }
    let started = start();
    if let (Err(msg), Some(w)) = (&started, &mut ready) {
        let _ = w.write_all(msg.as_bytes());
    }
    drop(ready);
    if started.is_ok() {
        if let Err(e) = notify_ready() {
            log::log(
                program,
                Level::Warning,
                &format!("systemd notification: {e}"),
            );
        }
    }
    started
}
