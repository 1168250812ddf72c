//! The setuid guard. ipqbdb 2.x's INSTALL has `ibd-ban` made setuid so that scripts of other users
//! can ban; `ibd-ban` is a link to the multi-call `ibd` now, so without a guard every subcommand, and
//! every option naming a file, would run with the owner's rights for any local user.
//!
//! When the effective ids differ from the real ones the program runs only what
//! [`refused_option`] allows, with an environment reduced to [`SAFE_ENV`], reading its
//! configuration only from the system paths.

use std::ffi::OsString;

/// The environment a privileged run keeps: a fixed `PATH` (the connection-kill command runs
/// `conntrack`), nothing from the caller.
pub const SAFE_ENV: [(&str, &str); 1] = [("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")];

/// Whether the process runs with ids other than its caller's (setuid or setgid).
pub fn privileged() -> bool {
    // SAFETY: these calls only read the process's credentials.
    unsafe { libc::geteuid() != libc::getuid() || libc::getegid() != libc::getgid() }
}

/// Replaces the environment by [`SAFE_ENV`]. Call at start, before any thread exists.
pub fn reset_environment() {
    let names: Vec<OsString> = std::env::vars_os().map(|(k, _)| k).collect();
    for name in names {
        std::env::remove_var(name);
    }
    for (k, v) in SAFE_ENV {
        std::env::set_var(k, v);
    }
}

/// The first of `args` that is one of `options` (as `--opt`, `--opt=value`, or a short `-o`
/// cluster containing it), up to a `--`. Options the privileged run refuses are matched on the raw
/// command line, before anything reads the file they name.
pub fn refused_option<'a>(
    args: &'a [OsString],
    long: &[&str],
    short: &[char],
) -> Option<&'a OsString> {
    for a in args {
        if a == "--" {
            return None;
        }
        let Some(s) = a.to_str() else { continue };
        if let Some(name) = s.strip_prefix("--") {
            let name = name.split('=').next().unwrap_or(name);
            if long.contains(&name) {
                return Some(a);
            }
        } else if let Some(cluster) = s.strip_prefix('-') {
            if cluster.chars().any(|c| short.contains(&c)) {
                return Some(a);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_options_are_found_in_every_spelling() {
        let os = |w: &[&str]| w.iter().map(OsString::from).collect::<Vec<_>>();
        let long = ["config", "db-dir"];
        assert_eq!(
            refused_option(&os(&["-q", "--config=/etc/shadow"]), &long, &[]),
            Some(&OsString::from("--config=/etc/shadow"))
        );
        assert!(refused_option(&os(&["--db-dir", "/x"]), &long, &[]).is_some());
        assert!(refused_option(&os(&["-qf", "x"]), &long, &['f']).is_some());
        assert!(refused_option(&os(&["--reason=--config", "192.0.2.1"]), &long, &[]).is_none());
        assert!(refused_option(&os(&["--", "--config"]), &long, &[]).is_none());
    }
}
