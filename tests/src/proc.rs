//! Programs a test starts, owned by a guard that kills and reaps them however the test ends.
//!
//! A daemon left running by a failed test outlives it, keeps writing into a removed directory and
//! holds the test runner's output pipe open, so the suite never finishes and the failure is lost.
//! [`Proc`] prevents all three: it kills and reaps on drop (panics included), the kernel kills the
//! program if the test process itself dies (`PR_SET_PDEATHSIG`), its output goes to a log file
//! rather than the runner's pipe, and that log is printed when the test fails.
//!
//! For a program the test runs to its end: [`Proc::run_with_input`] feeds it standard input, and
//! [`output_ok`] fails the test unless it succeeded.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// A running program of a test.
pub struct Proc {
    name: String,
    child: Child,
    log: Option<PathBuf>,
    reaped: Option<ExitStatus>,
}

impl Proc {
    /// Starts `cmd` with its standard output and error appended to `log` (created if missing), and
    /// standard input from nowhere unless the caller set it.
    pub fn spawn_logged(name: &str, cmd: &mut Command, log: &Path) -> Proc {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        };
        cmd.stdout(open()).stderr(open());
        let mut p = Proc::spawn(name, cmd);
        p.log = Some(log.to_path_buf());
        p
    }

    /// Starts `cmd` with the standard streams the caller set (never leave stdout inherited for a
    /// daemon: it would hold the runner's pipe).
    pub fn spawn(name: &str, cmd: &mut Command) -> Proc {
        // SAFETY: prctl is async-signal-safe; the closure touches nothing else between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // The parent dies (the test runner killed, a thread ended without dropping the
                // guard): so does the program.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({:?}): {e}", cmd.get_program()));
        Proc {
            name: name.to_string(),
            child,
            log: None,
            reaped: None,
        }
    }

    /// Like [`Proc::spawn`] with standard input null, output piped: for a program whose output the
    /// test reads through [`Proc::child`].
    pub fn spawn_piped(name: &str, cmd: &mut Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        Proc::spawn(name, cmd)
    }

    /// Runs `cmd` to its end (within `limit`) with `input` on its standard input, written while
    /// its standard output and error are collected. A program that exits without reading all its
    /// input closes the pipe: not a failure here (its status and output tell).
    pub fn run_with_input(name: &str, cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut p = Proc::spawn(name, cmd);
        let mut stdin = p.child.stdin.take().expect("piped stdin");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || match stdin.write_all(&input) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
            _ => Ok(()),
        });
        let out = p.output(limit);
        writer
            .join()
            .expect("stdin writer")
            .unwrap_or_else(|e| panic!("writing to {name}: {e}"));
        out
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child, for its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// What the program has logged so far (empty without a log file).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits until the log contains `text`; fails with the log after `limit`, or at once if the
    /// program exits first.
    pub fn wait_log(&mut self, text: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.log().contains(text) {
                return;
            }
            if let Some(s) = self.child.try_wait().expect("wait") {
                self.reaped = Some(s);
                panic!(
                    "{} exited ({s}) before logging {text:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not log {text:?} within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: libc::c_int) {
        assert!(self.reaped.is_none(), "{} has already exited", self.name);
        // SAFETY: kill(2) on our own child, not yet reaped (so the pid is still ours).
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(
            rc,
            0,
            "kill {}: {}",
            self.name,
            std::io::Error::last_os_error()
        );
    }

    /// Kills with SIGKILL and reaps; fails if the program had already exited by itself.
    pub fn sigkill(&mut self) {
        self.signal(libc::SIGKILL);
        let status = self.child.wait().expect("reap child");
        self.reaped = Some(status);
        assert!(
            !status.success(),
            "{} had already exited:\n{}",
            self.name,
            self.log()
        );
    }

    /// Waits up to `limit` for the program to exit by itself.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        if let Some(s) = self.reaped {
            return s;
        }
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                self.reaped = Some(s);
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {limit:?}:\n{}",
                self.name,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `limit` for the program to end, collecting what it wrote to piped stdout and
    /// stderr (empty for streams not piped).
    pub fn output(mut self, limit: Duration) -> Output {
        fn drain(r: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut r) = r {
                    let _ = r.read_to_end(&mut buf);
                }
                buf
            })
        }
        let out = drain(self.child.stdout.take());
        let err = drain(self.child.stderr.take());
        let status = self.wait(limit);
        Output {
            status,
            stdout: out.join().expect("stdout reader"),
            stderr: err.join().expect("stderr reader"),
        }
    }

    /// SIGTERM, and a clean exit (status 0) within `limit`.
    pub fn stop(&mut self, limit: Duration) {
        self.signal(libc::SIGTERM);
        let status = self.wait(limit);
        assert!(
            status.success(),
            "{} ended with {status} on SIGTERM:\n{}",
            self.name,
            self.log()
        );
    }
}

/// Runs `cmd` to its end and returns its output; fails the test, with the command and what it wrote
/// to standard error, unless it exited with success.
pub fn output_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{:?}: {e}", cmd.get_program()));
    assert!(
        out.status.success(),
        "{cmd:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            if let Some(log) = &self.log {
                eprintln!(
                    "---- log of {} ({}):\n{}---- end of {}",
                    self.name,
                    log.display(),
                    self.log(),
                    self.name
                );
            }
        }
    }
}
