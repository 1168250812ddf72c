//! The connection-kill command run when an address reaches 100 %.
//!
//! The command file holds one command per line (`#` comments), split into words like a shell would
//! split plain words and quotes, but run without a shell: `ADDRESS` and `FAMILY` words are replaced by
//! the address and `ipv4`/`ipv6`, and a command naming neither gets the address appended. Nothing from
//! a log line or a reason ever reaches the command, and the address is printed by us from a parsed
//! `IpAddr`, so no input can inject a command.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use clap::Args;
use thiserror::Error;

use crate::settings::{Settings, DEFAULT_CONNKILL_FILE};

#[derive(Debug, Error)]
pub enum ConnKillError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {why}")]
    Syntax {
        path: PathBuf,
        line: usize,
        why: &'static str,
    },
    #[error("{path}: no command in the file")]
    Empty { path: PathBuf },
    #[error("{program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} exited with {status}")]
    Failed { command: String, status: ExitStatus },
}

/// Parsed commands of a connection-kill file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnKill {
    commands: Vec<Vec<String>>,
}

impl ConnKill {
    pub fn load(path: &Path) -> Result<Self, ConnKillError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConnKillError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConnKillError> {
        let mut commands = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let words = split_words(line).map_err(|why| ConnKillError::Syntax {
                path: path.to_path_buf(),
                line: i + 1,
                why,
            })?;
            commands.push(words);
        }
        if commands.is_empty() {
            return Err(ConnKillError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(ConnKill { commands })
    }

    /// The argument vectors that would run for `ip`.
    pub fn argv(&self, ip: IpAddr) -> Vec<Vec<String>> {
        let family = if ip.is_ipv4() { "ipv4" } else { "ipv6" };
        self.commands
            .iter()
            .map(|cmd| {
                let mut named = false;
                let mut argv: Vec<String> = cmd
                    .iter()
                    .map(|w| match w.as_str() {
                        "ADDRESS" => {
                            named = true;
                            ip.to_string()
                        }
                        "FAMILY" => family.to_string(),
                        _ => w.clone(),
                    })
                    .collect();
                if !named {
                    argv.push(ip.to_string());
                }
                argv
            })
            .collect()
    }

    /// Runs every command for `ip` in turn and waits for each; the first failure is returned after
    /// all have run, since killing some connections beats killing none.
    pub fn run(&self, ip: IpAddr) -> Result<(), ConnKillError> {
        let mut first_err = None;
        for argv in self.argv(ip) {
            let status = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status();
            let err = match status {
                Ok(s) if s.success() => continue,
                Ok(status) => ConnKillError::Failed {
                    command: argv.join(" "),
                    status,
                },
                Err(source) => ConnKillError::Spawn {
                    program: argv[0].clone(),
                    source,
                },
            };
            first_err.get_or_insert(err);
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// The connection-kill options of the programs that ban.
#[derive(Debug, Clone, Args)]
pub struct ConnKillArgs {
    /// Run the connection-kill command for addresses that reach 100 %
    #[arg(short = 'e', long)]
    pub exec_connkill: bool,
    /// Connection-kill command file [default: /etc/ipqbdb-connkill.cmd]
    #[arg(long, value_name = "FILE")]
    pub connkill_file: Option<PathBuf>,
}

impl ConnKillArgs {
    /// The command to run, when asked for on the command line or in the configuration. Loaded up
    /// front, so a broken command file is reported before anything is banned.
    pub fn load(&self, settings: &Settings) -> Result<Option<ConnKill>, ConnKillError> {
        if !(self.exec_connkill || settings.exec_connkill.unwrap_or(false)) {
            return Ok(None);
        }
        let path = self
            .connkill_file
            .clone()
            .or_else(|| settings.connkill_file.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONNKILL_FILE));
        ConnKill::load(&path).map(Some)
    }
}

fn split_words(line: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.push(chars.next().ok_or("backslash at end of line")?),
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.push(chars.next().ok_or("backslash at end of line")?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '|' | '&' | ';' | '<' | '>' | '`' | '$' => {
                return Err("shell syntax is not supported: the command runs without a shell")
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(text: &str) -> ConnKill {
        ConnKill::parse(text, Path::new("/etc/ck")).unwrap()
    }

    #[test]
    fn placeholders_and_appending() {
        let c = ck("# kill\nconntrack -D -f FAMILY -s ADDRESS\n\n/usr/bin/logger 'ipqbdb kill'\n");
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            c.argv(v4),
            vec![
                vec!["conntrack", "-D", "-f", "ipv4", "-s", "192.0.2.1"],
                vec!["/usr/bin/logger", "ipqbdb kill", "192.0.2.1"],
            ]
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(c.argv(v6)[0][3], "ipv6");
    }

    #[test]
    fn shell_syntax_and_bad_quotes_are_refused_with_line() {
        for bad in [
            "rm -rf / ; echo",
            "a $(b)",
            "a `b`",
            "x > /etc/passwd",
            "'open",
            "\"open",
        ] {
            let e = ConnKill::parse(&format!("# c\n{bad}"), Path::new("/etc/ck")).unwrap_err();
            assert!(e.to_string().starts_with("/etc/ck:2: "), "{bad}: {e}");
        }
        assert!(ConnKill::parse("# only\n", Path::new("/x")).is_err());
        assert_eq!(
            ck("echo 'a;b' \"c|d\"").argv("1.2.3.4".parse().unwrap())[0],
            ["echo", "a;b", "c|d", "1.2.3.4"]
        );
    }

    #[test]
    fn runs_and_reports_failures() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(ck("true").run(ip).is_ok());
        let e = ck("false\ntrue").run(ip).unwrap_err();
        assert!(matches!(e, ConnKillError::Failed { .. }), "{e}");
        let e = ck("/nonexistent/prog").run(ip).unwrap_err();
        assert!(e.to_string().starts_with("/nonexistent/prog: "), "{e}");
    }
}
