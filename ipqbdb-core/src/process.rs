//! Process-level helpers the daemons share.

use std::io::Write;
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::log::{self, Level};

/// Lets a closed standard output end the program quietly, as it ends `cat` or `grep` (`ibd del --ls |
/// head`). Rust ignores SIGPIPE, which turns the closed pipe into an error message instead. Only for
/// programs and modes whose job is to print: a daemon keeps ignoring it, so a vanished log reader
/// cannot kill it.
pub fn default_sigpipe() {
    // SAFETY: restoring a signal's default disposition has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// Tells systemd that the daemon is ready (`Type=notify` units), when `$NOTIFY_SOCKET` says where to.
/// Outside systemd it does nothing.
pub fn notify_ready() -> std::io::Result<()> {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) => notify(std::path::Path::new(&path), "READY=1"),
        None => Ok(()),
    }
}

/// Sends one sd_notify message to `socket` (a path, or `@name` for an abstract socket).
pub fn notify(socket: &std::path::Path, message: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = socket.as_os_str().as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(socket)?,
    };
    UnixDatagram::unbound()?
        .send_to_addr(message.as_bytes(), &addr)
        .map(drop)
}

/// The signals a daemon reacts to, as flags its loop reads and clears: SIGTERM and SIGINT ask it to
/// end, SIGHUP to reload, SIGUSR1 to log its counters, SIGUSR2 to close and reopen the database
/// (ipqbdb 2.03's recovery signal, which its scripts send to every daemon: it must never kill one).
#[derive(Debug, Default, Clone)]
pub struct Signals {
    pub terminate: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
    pub report: Arc<AtomicBool>,
    pub reopen: Arc<AtomicBool>,
}

impl Signals {
    pub fn register() -> std::io::Result<Signals> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
        let s = Signals::default();
        signal_hook::flag::register(SIGTERM, s.terminate.clone())?;
        signal_hook::flag::register(SIGINT, s.terminate.clone())?;
        signal_hook::flag::register(SIGHUP, s.reload.clone())?;
        signal_hook::flag::register(SIGUSR1, s.report.clone())?;
        signal_hook::flag::register(SIGUSR2, s.reopen.clone())?;
        Ok(s)
    }
}

/// Opens a database handle again when asked (SIGUSR2), for each thread that owns one: the thread
/// checks [`Reopener::due`] where it can swap its handle, so no handle is replaced under a reader.
/// Clones share the asking, each keeps its own progress; [`Reopener::with_open`] makes one that
/// opens another kind of handle on the same asking.
pub struct Reopener<S> {
    open: Arc<dyn Fn() -> Result<S, String> + Send + Sync>,
    asked: Arc<AtomicU64>,
    done: u64,
}

impl<S> Clone for Reopener<S> {
    fn clone(&self) -> Self {
        Reopener {
            open: self.open.clone(),
            asked: self.asked.clone(),
            done: self.done,
        }
    }
}

impl<S> Reopener<S> {
    pub fn new(open: impl Fn() -> Result<S, String> + Send + Sync + 'static) -> Self {
        Reopener {
            open: Arc::new(open),
            asked: Arc::default(),
            done: 0,
        }
    }

    /// A reopener of other handles, asked together with this one.
    pub fn with_open<T>(
        &self,
        open: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> Reopener<T> {
        Reopener {
            open: Arc::new(open),
            asked: self.asked.clone(),
            done: self.done,
        }
    }

    /// Asks every reopener sharing this one's asking to reopen at its next check.
    pub fn ask(&self) {
        self.asked.fetch_add(1, Ordering::Relaxed);
    }

    /// A new handle when a reopen was asked since the last check (several asks make one).
    pub fn due(&mut self) -> Option<Result<S, String>> {
        let asked = self.asked.load(Ordering::Relaxed);
        (asked != self.done).then(|| {
            self.done = asked;
            (self.open)()
        })
    }
}

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
        log::use_syslog(program);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopeners_reopen_once_per_asking() {
        let opened = Arc::new(AtomicU64::new(0));
        let counter = opened.clone();
        let mut a = Reopener::new(move || Ok(counter.fetch_add(1, Ordering::Relaxed) + 1));
        let mut b = a.clone();
        let mut c = a.with_open(|| Err::<(), _>("no database".to_string()));
        assert!(a.due().is_none() && b.due().is_none() && c.due().is_none());
        a.ask();
        a.ask();
        assert_eq!(a.due(), Some(Ok(1)));
        assert_eq!(a.due(), None);
        assert_eq!(b.due(), Some(Ok(2)));
        assert_eq!(c.due(), Some(Err("no database".into())));
        assert_eq!(c.due(), None);
        b.ask();
        assert_eq!(a.due(), Some(Ok(3)));
    }

    #[test]
    fn notify_reaches_path_and_abstract_sockets() {
        use std::os::linux::net::SocketAddrExt;
        use std::os::unix::net::{SocketAddr, UnixDatagram};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify(&path, "READY=1").unwrap();
        let mut buf = [0u8; 32];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let name = format!("ipqbdb-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        notify(std::path::Path::new(&format!("@{name}")), "READY=1").unwrap();
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        assert!(notify(&dir.path().join("absent"), "READY=1").is_err());
    }
}
