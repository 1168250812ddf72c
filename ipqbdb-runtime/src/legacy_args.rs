//! The argument spellings of ipqbdb 2.x that clap's aliases cannot express, rewritten into today's
//! before clap parses the command line: init scripts, cron jobs and web applications written for the
//! original keep working unchanged, while help text shows only the new names.
//!
//! What is rewritten (everything else is left to clap, whose `alias`es cover plain renames):
//! - popt's `-?` and `--usage`: `--help` and `-h`;
//! - the daemons' verbosity levels, `-v N`, `--verbose`, `--verbose=N`: level N (0 for a bare `-v`
//!   or `--verbose`, "-v is the same as -v 0") becomes N+1 `-v`s, at most [`MAX_VERBOSE`]: the
//!   original's level 0 printed what today's `-v` prints, and its higher levels add detail as each
//!   further `-v` does;
//! - `ibd-ban -i ADDR`: the address, which today is a positional argument;
//! - the database file options `--db-block`, `--db-white`, `--db-descr`: there is one database now,
//!   so a value with a directory names the database directory (`--db-dir`), and a bare name is
//!   accepted with one warning saying it has no effect.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The `-v` count beyond which no program prints more.
pub const MAX_VERBOSE: u8 = 3;

/// The original's per-file database options.
const DB_FILE_OPTIONS: [&str; 3] = ["--db-block", "--db-white", "--db-descr"];

/// Which of the original's program-specific spellings apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ibd-ban`: `-i ADDR`.
    Ban,
    /// `ibd-judge`, `ibd-parse`, `ibd-xdp`: verbosity levels.
    Daemon,
    /// The other administration commands.
    Other,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LegacyArgError {
    #[error("{option} needs a value")]
    MissingValue { option: String },
    #[error(
        "{first} and {second} name different directories; there is one database directory now"
    )]
    TwoDirectories { first: String, second: String },
    #[error("{0}: a verbosity level is a number from 0 to 255")]
    BadLevel(String),
}

/// The rewritten arguments and the warnings to print once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translated {
    pub args: Vec<OsString>,
    pub warnings: Vec<String>,
}

/// Rewrites `args` (without the program name) for a program of `kind`. Nothing after `--` is
/// touched; arguments that are not UTF-8 pass through as they are.
pub fn translate(kind: Kind, args: Vec<OsString>) -> Result<Translated, LegacyArgError> {
    let mut out = Vec::with_capacity(args.len());
    let mut ignored_names: Vec<String> = Vec::new();
    let mut db_dir: Option<(String, PathBuf)> = None;
    let mut it = args.into_iter().peekable();
    while let Some(arg) = it.next() {
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        match s {
            "--" => {
                out.push(arg);
                out.extend(it.by_ref());
                break;
            }
            "-?" => out.push("--help".into()),
            "--usage" => out.push("-h".into()),
            "-i" if kind == Kind::Ban => {
                let addr = it.next().ok_or_else(|| LegacyArgError::MissingValue {
                    option: "-i".into(),
                })?;
                out.push(addr);
            }
            _ if kind == Kind::Ban && s.starts_with("-i") && s.len() > 2 => {
                out.push(s[2..].into());
            }
            "-v" | "--verbose" if kind == Kind::Daemon => {
                // A level is the next word only when it is a number: `-v Q0` is a flag and a queue.
                let level = match it.peek().and_then(|n| n.to_str()) {
                    Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                        let n = n.to_string();
                        it.next();
                        parse_level(&n)?
                    }
                    _ => 0,
                };
                push_verbose(&mut out, level);
            }
            _ if kind == Kind::Daemon && s.starts_with("--verbose=") => {
                push_verbose(&mut out, parse_level(&s["--verbose=".len()..])?);
            }
            _ => {
                let Some((option, value)) = db_file_option(s, &mut it)? else {
                    out.push(arg);
                    continue;
                };
                let path = expand_home(&value);
                match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    None => ignored_names.push(format!("{option}={value}")),
                    Some(dir) => {
                        let given = format!("{option}={value}");
                        match &db_dir {
                            Some((first, d)) if d != dir => {
                                return Err(LegacyArgError::TwoDirectories {
                                    first: first.clone(),
                                    second: given,
                                })
                            }
                            Some(_) => {}
                            None => {
                                let mut flag = OsString::from("--db-dir=");
                                flag.push(dir.as_os_str());
                                out.push(flag);
                                db_dir = Some((given, dir.to_path_buf()));
                            }
                        }
                    }
                }
            }
        }
    }
    let mut warnings = Vec::new();
    if !ignored_names.is_empty() {
        warnings.push(format!(
            "{}: ignored, there is one database now (in the database directory) and these options \
             only name a file in it",
            ignored_names.join(", ")
        ));
    }
    Ok(Translated {
        args: out,
        warnings,
    })
}

/// `--db-X=V` or `--db-X V`: the option and its value.
fn db_file_option(
    s: &str,
    rest: &mut impl Iterator<Item = OsString>,
) -> Result<Option<(&'static str, String)>, LegacyArgError> {
    for option in DB_FILE_OPTIONS {
        if s == option {
            let value = rest
                .next()
                .ok_or_else(|| LegacyArgError::MissingValue {
                    option: option.into(),
                })?
                .to_string_lossy()
                .into_owned();
            return Ok(Some((option, value)));
        }
        if let Some(v) = s.strip_prefix(option).and_then(|v| v.strip_prefix('=')) {
            return Ok(Some((option, v.to_string())));
        }
    }
    Ok(None)
}

/// `~/x` as a shell would have expanded it (popt option files and `--opt=~/x` reach us unexpanded).
fn expand_home(value: &str) -> PathBuf {
    match (value.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(value),
    }
}

fn parse_level(text: &str) -> Result<u8, LegacyArgError> {
    text.parse()
        .map_err(|_| LegacyArgError::BadLevel(text.to_string()))
}

fn push_verbose(out: &mut Vec<OsString>, level: u8) {
    for _ in 0..=level.min(MAX_VERBOSE - 1) {
        out.push("-v".into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(kind: Kind, words: &[&str]) -> Result<Translated, LegacyArgError> {
        translate(kind, words.iter().map(OsString::from).collect())
    }

    fn args(kind: Kind, words: &[&str]) -> Vec<String> {
        t(kind, words)
            .unwrap()
            .args
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn verbosity_levels_become_counts() {
        let d = Kind::Daemon;
        assert_eq!(args(d, &["-v"]), ["-v"]);
        assert_eq!(args(d, &["-v", "0"]), ["-v"]);
        assert_eq!(args(d, &["-v", "1"]), ["-v", "-v"]);
        assert_eq!(args(d, &["-v", "4"]), ["-v", "-v", "-v"]);
        assert_eq!(args(d, &["--verbose=4", "Q0S"]), ["-v", "-v", "-v", "Q0S"]);
        assert_eq!(args(d, &["--verbose", "Q0"]), ["-v", "Q0"]);
        assert_eq!(args(d, &["-D", "-v"]), ["-D", "-v"]);
        assert!(t(d, &["--verbose=x"]).is_err());
        // Not for the administration commands, whose -v is a flag.
        assert_eq!(args(Kind::Other, &["-v", "4"]), ["-v", "4"]);
    }

    #[test]
    fn ban_address_option_and_popt_help() {
        let b = Kind::Ban;
        assert_eq!(
            args(b, &["-e", "-i", "192.0.2.1", "--reason=Apache login"]),
            ["-e", "192.0.2.1", "--reason=Apache login"]
        );
        assert_eq!(args(b, &["-i192.0.2.1"]), ["192.0.2.1"]);
        assert!(t(b, &["-i"]).is_err());
        assert_eq!(args(Kind::Other, &["-?"]), ["--help"]);
        assert_eq!(args(Kind::Other, &["--usage"]), ["-h"]);
        assert_eq!(args(b, &["--", "-?", "-i"]), ["--", "-?", "-i"]);
    }

    #[test]
    fn database_file_options() {
        let o = Kind::Other;
        assert_eq!(
            args(
                o,
                &[
                    "--db-descr=/srv/tests/descr",
                    "--db-block",
                    "/srv/tests/block"
                ]
            ),
            ["--db-dir=/srv/tests"]
        );
        let named = t(o, &["--db-white=white", "--db-descr", "descr", "-L"]).unwrap();
        assert_eq!(named.args, [OsString::from("-L")]);
        assert_eq!(named.warnings.len(), 1, "one warning for all: {named:?}");
        assert!(named.warnings[0].contains("--db-white=white, --db-descr=descr"));
        assert!(matches!(
            t(o, &["--db-block=/a/block", "--db-descr=/b/descr"]),
            Err(LegacyArgError::TwoDirectories { .. })
        ));
    }
}
