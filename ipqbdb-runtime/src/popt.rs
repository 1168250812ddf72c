//! popt option files (`/etc/ipqbdb.popt`): the `PROGRAM alias NEWOPT EXPANSION...` lines of
//! ipqbdb 2.x, applied to the command line before it is parsed.
//!
//! Only `alias` lines mean anything here; popt's `exec` lines ran other programs, which an option
//! file must not make a privileged `ibd-ban` do, so they (and anything else) are reported and left
//! out. Expansions are split as a shell splits words, so `--reason="client is ugly"` is one word.
//! As in popt, an alias is not expanded again inside its own expansion (`ibd-ban alias -l -l
//! --log-category` keeps the inner `-l` as the option), which also ends every loop between aliases.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where the option file is unless `--option-file` or `$IPQBDB_OPTION_FILE` says otherwise.
pub const DEFAULT_OPTION_FILE: &str = "/etc/ipqbdb.popt";
/// The environment variable naming another option file, as ipqbdb 2.x's configure option did.
pub const OPTION_FILE_ENV: &str = "IPQBDB_OPTION_FILE";
/// The command-line option naming another option file.
pub const OPTION_FILE_ARG: &str = "--option-file";

#[derive(Debug, Error)]
pub enum PoptError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: alias {name} expands more than {MAX_WORDS} words")]
    TooLong {
        path: PathBuf,
        line: usize,
        name: String,
    },
}

/// Words one command line may grow to through aliases: a bound on what a cycle the active-alias rule
/// does not catch (none is known) or a huge file could do.
const MAX_WORDS: usize = 4096;

#[derive(Debug, Clone)]
struct Alias {
    program: String,
    name: String,
    expansion: Vec<String>,
    line: usize,
}

/// The alias lines of one option file.
#[derive(Debug, Clone, Default)]
pub struct OptionFile {
    path: PathBuf,
    aliases: Vec<Alias>,
}

/// Which option file applies: `--option-file FILE` on the command line, else `$IPQBDB_OPTION_FILE`,
/// else the default. The second value says whether it was named.
pub fn locate(args: &[OsString]) -> (PathBuf, bool) {
    if let Some(p) = option_file_arg(args) {
        return (p, true);
    }
    match std::env::var_os(OPTION_FILE_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (PathBuf::from(DEFAULT_OPTION_FILE), false),
    }
}

/// The value of `--option-file` among `args`, if given (the last one wins, as clap's would).
pub fn option_file_arg(args: &[OsString]) -> Option<PathBuf> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        }
        if a == OPTION_FILE_ARG {
            found = it.next().map(PathBuf::from);
        } else if let Some(v) = a
            .to_str()
            .and_then(|s| s.strip_prefix(OPTION_FILE_ARG))
            .and_then(|s| s.strip_prefix('='))
        {
            found = Some(PathBuf::from(v));
        }
    }
    found
}

impl OptionFile {
    /// Reads `path`; a missing file is an empty one, with a warning if it was `named` (a recipe
    /// such as `printf ... >> $(ibd-config | awk ...)` asks for the path before the file exists).
    /// Lines that are not aliases are passed to `warn` as `FILE:LINE: why`, never with their text:
    /// the file may be one the caller cannot read (a setuid `ibd-ban`).
    pub fn load(
        path: &Path,
        named: bool,
        warn: &mut dyn FnMut(String),
    ) -> Result<OptionFile, PoptError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(OptionFile::parse(
                path,
                &String::from_utf8_lossy(&bytes),
                warn,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if named {
                    warn(format!(
                        "{}: no such option file; no aliases applied",
                        path.display()
                    ));
                }
                Ok(OptionFile {
                    path: path.to_path_buf(),
                    aliases: Vec::new(),
                })
            }
            Err(source) => Err(PoptError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    pub fn parse(path: &Path, text: &str, warn: &mut dyn FnMut(String)) -> OptionFile {
        let mut aliases = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let where_ = format!("{}:{line}", path.display());
            let Some(words) = shlex::split(trimmed) else {
                warn(format!("{where_}: unbalanced quotes; line ignored"));
                continue;
            };
            match words.as_slice() {
                [program, kind, name, expansion @ ..] if kind == "alias" => {
                    if !name.starts_with('-') || expansion.is_empty() {
                        warn(format!(
                            "{where_}: an alias needs an option name (starting with -) and an expansion; line ignored"
                        ));
                        continue;
                    }
                    aliases.push(Alias {
                        program: program.clone(),
                        name: name.clone(),
                        expansion: expansion.to_vec(),
                        line,
                    });
                }
                [_, kind, ..] if kind == "exec" => warn(format!(
                    "{where_}: exec lines are not supported (only alias lines are applied); line ignored"
                )),
                _ => warn(format!(
                    "{where_}: not a `PROGRAM alias OPTION EXPANSION` line; line ignored"
                )),
            }
        }
        OptionFile {
            path: path.to_path_buf(),
            aliases,
        }
    }

    /// Replaces each argument that is an alias of one of `programs` by its expansion, up to a `--`.
    pub fn expand(
        &self,
        programs: &[&str],
        args: Vec<OsString>,
    ) -> Result<Vec<OsString>, PoptError> {
        let mine: Vec<&Alias> = self
            .aliases
            .iter()
            .filter(|a| programs.contains(&a.program.as_str()))
            .collect();
        if mine.is_empty() {
            return Ok(args);
        }
        let mut out = Vec::with_capacity(args.len());
        let mut rest = args.into_iter();
        for a in rest.by_ref() {
            if a == "--" {
                out.push(a);
                break;
            }
            self.expand_one(&mine, a, &mut Vec::new(), &mut out)?;
        }
        out.extend(rest);
        Ok(out)
    }

    fn expand_one(
        &self,
        aliases: &[&Alias],
        arg: OsString,
        active: &mut Vec<usize>,
        out: &mut Vec<OsString>,
    ) -> Result<(), PoptError> {
        // popt looks aliases up latest first: a later line overrides an earlier one of that name.
        let found = aliases
            .iter()
            .enumerate()
            .rev()
            .find(|(i, al)| arg == al.name.as_str() && !active.contains(i));
        let Some((i, alias)) = found else {
            out.push(arg);
            return Ok(());
        };
        active.push(i);
        for word in &alias.expansion {
            if out.len() >= MAX_WORDS {
                return Err(PoptError::TooLong {
                    path: self.path.clone(),
                    line: alias.line,
                    name: alias.name.clone(),
                });
            }
            self.expand_one(aliases, OsString::from(word), active, out)?;
        }
        active.pop();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn file(text: &str) -> (OptionFile, Vec<String>) {
        let mut warnings = Vec::new();
        let f = OptionFile::parse(Path::new("t.popt"), text, &mut |w| warnings.push(w));
        (f, warnings)
    }

    #[test]
    fn install_example_expands_with_quoted_words() {
        let (f, w) =
            file("ibd-ban alias --my-opt --reason=\"client is ugly\" --initial-decay=86400\n");
        assert!(w.is_empty(), "{w:?}");
        let out = f
            .expand(&["ibd-ban"], os(&["--my-opt", "192.0.2.7"]))
            .unwrap();
        assert_eq!(
            out,
            os(&[
                "--reason=client is ugly",
                "--initial-decay=86400",
                "192.0.2.7"
            ])
        );
        // Another program's aliases are not applied.
        let other = f.expand(&["ibd-del"], os(&["--my-opt"])).unwrap();
        assert_eq!(other, os(&["--my-opt"]));
    }

    #[test]
    fn an_alias_of_itself_and_of_another_alias_terminates() {
        let (f, _) = file(
            "ibd-ban alias -l -l --log-category\n\
             ibd-ban alias --log-syslog -l --log-category\n\
             ibd-ban alias --a --b\nibd-ban alias --b --a\n",
        );
        assert_eq!(
            f.expand(&["ibd-ban"], os(&["-l"])).unwrap(),
            os(&["-l", "--log-category"])
        );
        assert_eq!(
            f.expand(&["ibd-ban"], os(&["--log-syslog"])).unwrap(),
            os(&["-l", "--log-category", "--log-category"])
        );
        assert_eq!(f.expand(&["ibd-ban"], os(&["--a"])).unwrap(), os(&["--a"]));
        assert_eq!(
            f.expand(&["ibd-ban"], os(&["--", "-l"])).unwrap(),
            os(&["--", "-l"]),
            "nothing after -- is an option"
        );
    }

    #[test]
    fn other_lines_are_reported_by_file_and_line_without_their_text() {
        let (f, w) = file(
            "# comment\n\nibd-ban exec --secret /bin/sh\nibd-ban alias --x \"open\nroot:x:0:0\n",
        );
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].starts_with("t.popt:3: exec lines"), "{w:?}");
        assert!(w[1].starts_with("t.popt:4: unbalanced quotes"), "{w:?}");
        assert!(w[2].starts_with("t.popt:5: "), "{w:?}");
        assert!(w
            .iter()
            .all(|m| !m.contains("secret") && !m.contains("root:x")));
        assert!(f.aliases.is_empty());
    }

    #[test]
    fn the_option_file_is_found_on_the_command_line() {
        assert_eq!(
            option_file_arg(&os(&["-x", "--option-file", "a", "--option-file=b"])),
            Some(PathBuf::from("b"))
        );
        assert_eq!(option_file_arg(&os(&["--", "--option-file=b"])), None);
        let mut warnings = Vec::new();
        let missing = OptionFile::load(Path::new("/nonexistent/x.popt"), false, &mut |w| {
            warnings.push(w)
        });
        assert!(missing.unwrap().aliases.is_empty());
        assert!(
            warnings.is_empty(),
            "the default file may be missing quietly"
        );
        let named = OptionFile::load(Path::new("/nonexistent/x.popt"), true, &mut |w| {
            warnings.push(w)
        });
        assert!(named.unwrap().aliases.is_empty());
        assert_eq!(warnings.len(), 1, "a named file that is missing is said");
        assert!(OptionFile::load(Path::new("/"), true, &mut |_| {}).is_err());
    }
}
