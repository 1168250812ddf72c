//! `cargo xtask bench-parse [LINES]`: the parser against its comparators, in one run on one machine.
//!
//! Over a generated mixed sshd/postfix/dovecot log (one line in six an attack) and an sshd log where
//! a third of the lines are attacks: `ibd-parse --test` with the shipped rules against sshguard's
//! `sshg-parser` (three interleaved rounds, best of each, and the ratio); fail2ban's sshd filter
//! loaded in `ibd-parse` against `fail2ban-regex` on the same log (fail2ban-regex, at about 30 k
//! lines/s, on the first 100,000 lines, its time scaled to the whole log, and both match counts);
//! the daemon end to end with durable bans on lmdb. Then bans per failed password attempt on a
//! multi-line OpenSSH log, and the daemon on sqlite and redb. Lines per second and peak resident
//! memory come from the kernel's accounting of each run (`wait4`).
//!
//! Both comparators are required: a run without one would print a table with a hole, so a missing
//! one stops the run saying what to install. `sshg-parser` is found at `$SSHG_PARSER` or where the
//! Debian package `sshguard` puts it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench::{self, io, least, measure, BenchError, Result, Usage};

const DEFAULT_SSHG: &str = "/usr/libexec/sshguard/sshg-parser";
const F2B_FILTER: &str = "/etc/fail2ban/filter.d/sshd.conf";
/// fail2ban-regex reads about 30 k lines/s: it runs on this many lines of the log.
const F2B_SAMPLE: u64 = 100_000;
const ROUNDS: usize = 3;

struct Run {
    bin: PathBuf,
    rules: PathBuf,
    sshg: PathBuf,
    f2b_regex: PathBuf,
    lines: u64,
    tmp: tempfile::TempDir,
}

pub fn run(args: &[String]) -> Result<()> {
    let lines: u64 = match args {
        [] => 1_000_000,
        [n] => n
            .parse()
            .map_err(|_| BenchError::Usage(format!("bench-parse: {n:?} is not a line count")))?,
        _ => {
            return Err(BenchError::Usage(
                "usage: cargo xtask bench-parse [LINES]".into(),
            ))
        }
    };
    let sshg = std::env::var_os("SSHG_PARSER")
        .map(PathBuf::from)
        .unwrap_or_else(|| DEFAULT_SSHG.into());
    bench::require(
        &sshg,
        "install the Debian package sshguard, or point $SSHG_PARSER at an sshg-parser \
         (apt-get download sshguard; dpkg -x sshguard_*.deb DIR gives DIR/usr/libexec/sshguard/sshg-parser)",
    )?;
    let f2b_regex = bench::on_path("fail2ban-regex", "install the Debian package fail2ban")?;
    if !Path::new(F2B_FILTER).is_file() {
        return Err(BenchError::Missing(format!(
            "{F2B_FILTER} is missing: install the Debian package fail2ban"
        )));
    }
    let bin = bench::build_release()?;
    let run = Run {
        rules: bench::workspace_root().join("ipqbdb-parse/rules/ipqbdb-pcre.conf"),
        bin,
        sshg,
        f2b_regex,
        lines,
        tmp: tempfile::tempdir().map_err(io("temporary directory"))?,
    };
    let mixed = run.generate("mixed.log", &[])?;
    let size = std::fs::metadata(&mixed).map_err(io("mixed.log"))?.len();
    println!(
        "log: {lines} lines, {} MB; load {}",
        size >> 20,
        bench::load()
    );
    run.bench_log("mixed", &mixed)?;
    // An internet-facing sshd host: a third of the lines are attacks (goal: daemon >= 400 k lines/s).
    let dense = run.generate("dense.log", &["--dense"])?;
    run.bench_log("dense", &dense)?;
    run.bans_per_attempt()?;
    println!("== other backends, mixed log");
    for backend in ["sqlite", "redb"] {
        run.daemon(backend, &format!("daemon, {backend}"), &mixed)?;
    }
    println!("load after: {}", bench::load());
    Ok(())
}

impl Run {
    fn tool(&self, name: &str) -> Command {
        Command::new(self.bin.join(name))
    }

    /// `ipqbdb-gen-log [FLAGS] LINES` into a file of the temporary directory.
    fn generate(&self, name: &str, flags: &[&str]) -> Result<PathBuf> {
        let path = self.tmp.path().join(name);
        let file = std::fs::File::create(&path).map_err(io(path.display().to_string()))?;
        let status = self
            .tool("ipqbdb-gen-log")
            .args(flags)
            .arg(self.lines.to_string())
            .stdout(file)
            .status()
            .map_err(io("ipqbdb-gen-log"))?;
        if !status.success() {
            return Err(BenchError::Failed {
                program: "ipqbdb-gen-log".into(),
                status: status.to_string(),
                stderr: String::new(),
            });
        }
        Ok(path)
    }

    /// Measures `cmd` and prints its line: seconds, lines/s over `lines`, peak RSS, CPU.
    fn timed(&self, label: &str, cmd: &mut Command, stdin: Option<&Path>) -> Result<Usage> {
        let u = measure(label, cmd, stdin)?;
        println!(
            "{label:<26} {:8.2} s {:12.0} lines/s {:8} KB max RSS  (CPU {:.2} s)",
            u.secs,
            self.lines as f64 / u.secs,
            u.max_rss_kb,
            u.cpu
        );
        Ok(u)
    }

    fn parse_test(&self, log: &Path, rules: &Path) -> Command {
        let mut c = self.tool("ibd-parse");
        c.args(["--config", "/dev/null", "--test"])
            .arg(log)
            .arg(rules);
        c
    }

    fn bench_log(&self, name: &str, log: &Path) -> Result<()> {
        println!("== {name}");
        let (mut ours, mut sshg) = (Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            ours.push(self.timed(
                &format!("ibd-parse --test ({round})"),
                &mut self.parse_test(log, &self.rules),
                None,
            )?);
            sshg.push(self.timed(
                &format!("sshg-parser ({round})"),
                &mut Command::new(&self.sshg),
                Some(log),
            )?);
        }
        let secs = |v: &[Usage]| least(&v.iter().map(|u| u.secs).collect::<Vec<_>>());
        let cpu = |v: &[Usage]| least(&v.iter().map(|u| u.cpu).collect::<Vec<_>>());
        println!(
            "ratio ({name}): ibd-parse is {:.2} times as fast as sshg-parser (best elapsed {:.2} s vs {:.2} s; CPU time: {:.2}x; goal >= 2)",
            secs(&sshg) / secs(&ours),
            secs(&ours),
            secs(&sshg),
            cpu(&sshg) / cpu(&ours)
        );
        self.fail2ban(name, log)?;
        self.daemon("lmdb", &format!("{name}-lmdb"), log)
            .map(|_| ())
    }

    /// fail2ban's own sshd filter as a rule source, against fail2ban-regex on the same log.
    fn fail2ban(&self, name: &str, log: &Path) -> Result<()> {
        let empty = self.tmp.path().join("empty.rules");
        std::fs::write(&empty, "").map_err(io("empty rule file"))?;
        let with_filter = |log: &Path| {
            let mut c = self.parse_test(log, &empty);
            c.args(["--fail2ban-filter", "sshd"]);
            c
        };
        let ours = self.timed("ibd-parse, fail2ban sshd", &mut with_filter(log), None)?;
        let sample = self.lines.min(F2B_SAMPLE);
        let prefix = self.tmp.path().join("prefix.log");
        // Streamed, not read whole: a child's peak RSS counts what it had at the fork, before it
        // became the program measured, so this process stays small.
        copy_lines(log, &prefix, sample)?;
        let theirs_out = self.tmp.path().join("f2b.out");
        // fail2ban-regex's report goes to a file for its match count; measure() discards stdout.
        let theirs = measure(
            "fail2ban-regex",
            Command::new("sh").args([
                "-c",
                "exec \"$0\" \"$1\" \"$2\" > \"$3\"",
                self.f2b_regex.to_str().unwrap_or_default(),
                prefix.to_str().unwrap_or_default(),
                F2B_FILTER,
                theirs_out.to_str().unwrap_or_default(),
            ]),
            None,
        )?;
        let scale = self.lines as f64 / sample as f64;
        println!(
            "{:<26} {:8.2} s {:12.0} lines/s (first {sample} lines; {:.1} s, CPU {:.1} s, scaled to {} lines)",
            "fail2ban-regex, sshd",
            theirs.secs,
            sample as f64 / theirs.secs,
            theirs.secs * scale,
            theirs.cpu * scale,
            self.lines
        );
        let report = std::fs::read_to_string(&theirs_out).map_err(io("f2b.out"))?;
        // "Lines: N lines, I ignored, M matched, K missed": the sixth word is the matched count.
        let theirs_matched = field_after(&report, "Lines:", 5)?;
        let mine = bench::output("ibd-parse --test", &mut with_filter(&prefix))?;
        let mine_matched = field_after(&mine, "Lines:", 3)?;
        println!(
            "same filter, first {sample} lines: fail2ban-regex matched {theirs_matched} lines, ibd-parse {mine_matched}"
        );
        println!(
            "ratio ({name}): ibd-parse with fail2ban's sshd filter is {:.1} times as fast as fail2ban-regex (elapsed; CPU time: {:.1}x; goal >= 10)",
            theirs.secs * scale / ours.secs,
            theirs.cpu * scale / ours.cpu
        );
        Ok(())
    }

    /// The daemon with durable bans on `backend`, the log on its standard input.
    fn daemon(&self, backend: &str, db: &str, log: &Path) -> Result<Usage> {
        let mut c = self.tool("ibd-parse");
        c.args(["--config", "/dev/null", "--db-dir"])
            .arg(self.tmp.path().join(format!("db-{db}")))
            .args(["--backend", backend, "--stdin", "--no-fifo", "-f"])
            .arg(&self.rules);
        self.timed(&format!("daemon, {backend}"), &mut c, Some(log))
    }

    /// Bans per failed password attempt on a multi-line OpenSSH log (goal 0.9-1.2).
    fn bans_per_attempt(&self) -> Result<()> {
        let log = self.tmp.path().join("sshd.log");
        let file = std::fs::File::create(&log).map_err(io("sshd.log"))?;
        let out = self
            .tool("ipqbdb-gen-log")
            .args(["--sshd", "20000"])
            .stdout(file)
            .output()
            .map_err(io("ipqbdb-gen-log --sshd"))?;
        let attempts_text = String::from_utf8_lossy(&out.stderr);
        let attempts: u64 = attempts_text
            .trim()
            .parse()
            .map_err(|_| BenchError::Output {
                what: "ipqbdb-gen-log --sshd (attempts on stderr)".into(),
                output: attempts_text.clone().into_owned(),
            })?;
        let report = bench::output("ibd-parse --test", &mut self.parse_test(&log, &self.rules))?;
        let bans = field_after(&report, "Bans:", 1)?;
        let lines = std::io::BufRead::lines(std::io::BufReader::new(
            std::fs::File::open(&log).map_err(io("sshd.log"))?,
        ))
        .count();
        println!(
            "sshd log: {lines} lines, {attempts} attempts, {bans} bans: {:.3} bans per attempt",
            bans as f64 / attempts as f64
        );
        Ok(())
    }
}

/// Copies the first `n` lines of `from` to `to`.
fn copy_lines(from: &Path, to: &Path, n: u64) -> Result<()> {
    use std::io::{BufRead, Write};
    let input =
        std::io::BufReader::new(std::fs::File::open(from).map_err(io(from.display().to_string()))?);
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(to).map_err(io(to.display().to_string()))?);
    for line in input.lines().take(n as usize) {
        let line = line.map_err(io(from.display().to_string()))?;
        writeln!(out, "{line}").map_err(io(to.display().to_string()))?;
    }
    out.flush().map_err(io(to.display().to_string()))
}

/// The number that is word `n` (0: the label itself) of the first line starting with `label`.
fn field_after(text: &str, label: &str, n: usize) -> Result<u64> {
    text.lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.split_whitespace().nth(n))
        .and_then(|w| w.trim_end_matches(',').parse().ok())
        .ok_or_else(|| BenchError::Output {
            what: format!("a number after {label:?}"),
            output: text.chars().take(2000).collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::field_after;

    #[test]
    fn counts_are_read_from_the_report_lines() {
        let f2b =
            "Results\n=======\n\nLines: 100000 lines, 0 ignored, 8253 matched, 91747 missed\n";
        assert_eq!(field_after(f2b, "Lines:", 5).unwrap(), 8253);
        let ours = "Lines: 100000 read, 8232 matched\nBans: 21400 in 0.1 s\n";
        assert_eq!(field_after(ours, "Lines:", 3).unwrap(), 8232);
        assert_eq!(field_after(ours, "Bans:", 1).unwrap(), 21400);
        assert!(field_after(ours, "Nothing:", 1).is_err());
    }
}
