//! What the benchmarks (`cargo xtask bench-judge|bench-parse|bench-fleet`) share: the release
//! build of the programs they drive, a program's time and memory from the kernel's own accounting
//! (`wait4`), the best of interleaved rounds, and a process tree's CPU time from `/proc`.
//!
//! The programs are built with every engine, postgres included, so that the three benchmarks run
//! the same binaries and one never rebuilds what another just built.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Why a benchmark could not run to its end. The daemons' own failures are reported by the
/// test-support guards (`ipqbdb_tests::Proc`), which end the run with the program's log.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
    /// A comparator or system tool is missing: a benchmark without it would print a table with a
    /// hole, so it stops and says what to install.
    #[error("{0}")]
    Missing(String),
    #[error("{what}: unexpected output {output:?}")]
    Output { what: String, output: String },
    #[error("{0}")]
    Usage(String),
}

pub type Result<T> = std::result::Result<T, BenchError>;

pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Builds the benchmarked programs in release mode and returns the directory holding them.
pub fn build_release() -> Result<PathBuf> {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--quiet",
        "--bins",
        "--features",
        "postgres",
    ]);
    for p in [
        "ipqbdb-judge",
        "ipqbdb-xdp",
        "ipqbdb-parse",
        "ipqbdb-admin",
        "ipqbdb-benches",
    ] {
        cmd.args(["-p", p]);
    }
    let status = cmd.current_dir(&root).status().map_err(io("cargo build"))?;
    if !status.success() {
        return Err(BenchError::Failed {
            program: "cargo build --release".into(),
            status: status.to_string(),
            stderr: String::new(),
        });
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release"))
}

/// Fails with a line saying what to install unless `path` is an executable file.
pub fn require(path: &Path, install: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        _ => Err(BenchError::Missing(format!(
            "{} is missing: {install}",
            path.display()
        ))),
    }
}

/// The full path of `program` on `$PATH`, or a [`BenchError::Missing`] saying what to install.
pub fn on_path(program: &str, install: &str) -> Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(program))
        .find(|p| require(p, "").is_ok())
        .ok_or_else(|| BenchError::Missing(format!("{program} is not on PATH: {install}")))
}

/// What one run of a program cost, as the kernel accounted it.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub secs: f64,
    /// User and system CPU seconds.
    pub cpu: f64,
    pub max_rss_kb: u64,
}

/// Runs `cmd` to its end with standard input from `stdin` (or nothing) and standard output
/// discarded; its elapsed time, CPU time and peak resident memory (`wait4`'s, what
/// `/usr/bin/time` prints). A failure is an error carrying what it wrote to standard error.
pub fn measure(name: &str, cmd: &mut Command, stdin: Option<&Path>) -> Result<Usage> {
    let err = tempfile::tempfile().map_err(io("temporary file"))?;
    let input = match stdin {
        Some(p) => Stdio::from(File::open(p).map_err(io(p.display().to_string()))?),
        None => Stdio::null(),
    };
    let start = Instant::now();
    let child = cmd
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(err.try_clone().map_err(io("temporary file"))?)
        .spawn()
        .map_err(io(format!("starting {name}")))?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with pointers to live locals; the child is reaped here
    // (its `Child` is never waited on again).
    let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    let secs = start.elapsed().as_secs_f64();
    if rc < 0 {
        return Err(BenchError::Io {
            what: format!("waiting for {name}"),
            source: std::io::Error::last_os_error(),
        });
    }
    let status = std::process::ExitStatus::from_raw(status);
    if !status.success() {
        return Err(BenchError::Failed {
            program: name.into(),
            status: status.to_string(),
            stderr: read_all(err),
        });
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Usage {
        secs,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss as u64,
    })
}

fn read_all(mut f: File) -> String {
    use std::io::{Read, Seek};
    let mut s = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut s);
    s
}

/// Runs `cmd` to its end and returns its standard output; an error with its standard error
/// unless it succeeded.
pub fn output(name: &str, cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(io(format!("running {name}")))?;
    if !out.status.success() {
        return Err(BenchError::Failed {
            program: name.into(),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The largest of `figures`: of interleaved rounds on a busy machine, the best is the one the
/// others slowed least (a busy machine slows a run, never speeds it up).
pub fn best(figures: &[f64]) -> f64 {
    figures.iter().copied().fold(f64::NAN, f64::max)
}

/// The smallest of `figures` (elapsed or CPU seconds: see [`best`]).
pub fn least(figures: &[f64]) -> f64 {
    figures.iter().copied().fold(f64::NAN, f64::min)
}

/// The `q`-quantile (0..=1) of `sorted`, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// CPU seconds (user and system) used so far by process `pid` and every descendant still alive,
/// from `/proc/PID/stat`; processes that ended are not counted.
pub fn tree_cpu_secs(pid: u32) -> f64 {
    let mut stats: Vec<(u32, u32, u64)> = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may hold spaces: fields count from its end.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // After the name: state (0), ppid (1), ..., utime (11), stime (12).
        stats.push((p, num(1) as u32, num(11) + num(12)));
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(stats.iter().filter(|s| s.1 == parent).map(|s| s.0));
        i += 1;
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    stats
        .iter()
        .filter(|s| tree.contains(&s.0))
        .map(|s| s.2 as f64 / hz)
        .sum()
}

/// Resident memory of process `pid` in bytes (`VmRSS`), 0 if it is gone.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The machine's load averages, for the header of a run (figures on a busy machine are noisy).
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The number of CPUs this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn best_and_least_of_rounds() {
        assert_eq!(best(&[3.0, 9.0, 4.0]), 9.0);
        assert_eq!(least(&[3.0, 9.0, 4.0]), 3.0);
    }

    #[test]
    fn measure_reports_a_failure_with_its_stderr() {
        let e = measure(
            "sh",
            Command::new("sh").args(["-c", "echo broken >&2; exit 3"]),
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("broken"), "{e}");
        let u = measure("true", &mut Command::new("true"), None).unwrap();
        assert!(u.max_rss_kb > 0 && u.secs >= 0.0);
    }

    #[test]
    fn our_process_tree_has_used_cpu_and_memory() {
        let me = std::process::id();
        let spin = Instant::now();
        while spin.elapsed().as_millis() < 50 {
            std::hint::black_box(0);
        }
        assert!(tree_cpu_secs(me) > 0.0);
        assert!(rss_bytes(me) > 0);
    }
}
