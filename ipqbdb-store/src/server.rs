//! Where a database server is and how to log in to it: the options of the `postgres` engine.
//!
//! Compiled into every build (the configuration names them whatever the engines), and free of the
//! client crate, so the password rules are tested without a server.
//!
//! The password never comes from the connection string: that string is given on command lines and
//! shown in error messages and `ps`. It comes from `postgres-password-file` (the whole first line),
//! else from the libpq password file (`$PGPASSFILE`, else `~/.pgpass`), matched as libpq does.

use std::path::{Path, PathBuf};

/// How to reach the shared database server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// libpq connection string (`host=db1 dbname=ipqbdb user=ipqbdb`) or URL
    /// (`postgresql://ipqbdb@db1/ipqbdb`), without a password.
    pub url: String,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// This host's name in the shared database: parser read positions are kept per host. Default:
    /// the system's host name.
    pub host_name: Option<String>,
}

/// One line of a libpq password file: `host:port:database:user:password`, `*` matching anything.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PassEntry {
    fields: [String; 5],
}

/// Splits a password file line at unescaped colons (`\:` and `\\` are escapes).
fn split_pass_line(line: &str) -> Option<PassEntry> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    let fields: [String; 5] = fields.try_into().ok()?;
    Some(PassEntry { fields })
}

/// The password for (host, port, database, user) in the text of a libpq password file: the first
/// matching line wins, as in libpq. Comment and malformed lines are skipped.
pub fn password_from_pgpass(
    text: &str,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    let port = port.to_string();
    let wanted = [host, port.as_str(), dbname, user];
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .filter_map(split_pass_line)
        .find(|e| {
            e.fields[..4]
                .iter()
                .zip(wanted)
                .all(|(f, w)| f == "*" || f == w)
        })
        .map(|e| e.fields[4].clone())
}

/// Reads a password file's first line (without its line end).
pub fn read_password_file(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// The system's host name.
pub fn system_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_first_match_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db1:5432:other:ipqbdb:wrong\n\
                    db1:*:ipqbdb:ipqbdb:s\\:ecret\\\\x\n\
                    *:*:*:*:fallback\n";
        assert_eq!(
            password_from_pgpass(text, "db1", 5433, "ipqbdb", "ipqbdb").as_deref(),
            Some("s:ecret\\x")
        );
        assert_eq!(
            password_from_pgpass(text, "db2", 5432, "ipqbdb", "ipqbdb").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            password_from_pgpass("a:b:c\n", "a", 1, "c", "d"),
            None,
            "a short line is skipped"
        );
    }

    #[test]
    fn password_file_takes_the_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2\nignored\n").unwrap();
        assert_eq!(read_password_file(&p).unwrap(), "hunter2");
    }
}
