//! `cargo xtask check-docs`: every repository path and Rust symbol that the documents name between
//! backticks must still exist, so a rename or a removal that leaves a document behind fails CI
//! instead of misleading the next reader.
//!
//! What counts as a reference is deliberately narrow, to keep false alarms away:
//! - a **path**: a span whose first component is a top-level entry of the repository (`ipqbdb-core/
//!   src/model.rs`, `scripts/demo.sh`), or a bare file name with a source extension (`model.rs`,
//!   `build-debs.sh`), which some file of the repository must carry; a `:LINE` suffix is ignored;
//! - a **symbol**: `a::b` paths (every segment is looked up), CamelCase names (`BanOutcome`) and
//!   snake_case names with an underscore (`apply_ban`), which must occur as a whole word in some file
//!   of the repository other than the Markdown documents themselves (so a unit directive such as
//!   `ExecReload` is found in its unit file). A `Type::method` is checked segment by segment, not as a
//!   pair: cheap, and what drifts in practice is a name disappearing.
//!
//! Command lines, options, configuration keys, absolute system paths and prose stay unchecked.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A reference that no longer resolves: the document, its line, the span and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    pub file: PathBuf,
    pub line: usize,
    pub span: String,
    pub why: &'static str,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.file.display(),
            self.line,
            self.span,
            self.why
        )
    }
}

/// What the repository holds, read once: its top-level entries, its file names, and every word of its
/// files but the Markdown documents.
pub struct Repo {
    root: PathBuf,
    top_level: HashSet<String>,
    file_names: HashSet<String>,
    words: HashSet<String>,
}

/// Extensions of the files a bare name is looked up for; C headers and configuration files are often
/// the system's (`bpf_helpers.h`, `jail.conf`), so they are not checked by name alone.
const SOURCE_EXTENSIONS: [&str; 6] = ["rs", "sh", "toml", "md", "service", "timer"];

impl Repo {
    pub fn scan(root: &Path) -> io::Result<Repo> {
        let mut repo = Repo {
            root: root.to_path_buf(),
            top_level: HashSet::new(),
            file_names: HashSet::new(),
            words: HashSet::new(),
        };
        for entry in fs::read_dir(root)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if !skipped(&name) {
                repo.top_level.insert(name);
            }
        }
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if skipped(&name) {
                    continue;
                }
                let path = entry.path();
                if entry.file_type()?.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "md") {
                    let bytes = fs::read(&path)?;
                    let text = String::from_utf8_lossy(&bytes);
                    repo.words.extend(words(&text).map(str::to_string));
                }
                // A module is named by its file: `model` in `crate::model::X`.
                if let Some(stem) = path.file_stem() {
                    repo.words.insert(stem.to_string_lossy().into_owned());
                }
                repo.file_names.insert(name);
            }
        }
        Ok(repo)
    }

    /// Checks one document's text; `file` names it in the findings.
    pub fn check(&self, file: &Path, text: &str) -> Vec<Broken> {
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            for span in backticked(line) {
                if let Some(why) = self.resolve(span) {
                    out.push(Broken {
                        file: file.to_path_buf(),
                        line: i + 1,
                        span: span.to_string(),
                        why,
                    });
                }
            }
        }
        out
    }

    /// None when the span resolves or is not a reference at all.
    fn resolve(&self, span: &str) -> Option<&'static str> {
        let span = span.trim();
        if span.contains(char::is_whitespace) {
            return None;
        }
        let path = strip_line_suffix(span).trim_end_matches('/');
        let first = path.split('/').next().unwrap_or("");
        if path.contains('/') && self.top_level.contains(first) {
            return (!self.path_exists(path)).then_some("no such path in the repository");
        }
        if !path.contains('/') && has_source_extension(path) && !path.starts_with('.') {
            return (!self.file_names.contains(path)).then_some("no file of this name");
        }
        let symbol = span.trim_end_matches("()");
        if is_symbol_path(symbol) {
            let missing = symbol
                .split("::")
                .filter(|s| !s.is_empty() && !is_keyword(s))
                .any(|s| !self.words.contains(s));
            return missing.then_some("a segment names nothing in the repository");
        }
        if is_camel_case(symbol) || is_snake_case_with_underscore(symbol) {
            return (!self.words.contains(symbol)).then_some("names nothing in the repository");
        }
        None
    }
}

impl Repo {
    /// A path from the repository's root, or from a crate's (`tests/netns.rs` in a paragraph about
    /// one crate); `*` matches as in a shell.
    fn path_exists(&self, path: &str) -> bool {
        let bases = std::iter::once(String::new()).chain(
            self.top_level
                .iter()
                .filter(|t| self.root.join(t).join("Cargo.toml").is_file())
                .map(|t| format!("{t}/")),
        );
        for base in bases {
            let full = self.root.join(format!("{base}{path}"));
            let pattern = glob::Pattern::escape(&full.to_string_lossy()).replace("[*]", "*");
            let found = match glob::glob(&pattern) {
                Ok(mut paths) => paths.next().is_some(),
                Err(_) => full.exists(),
            };
            if found {
                return true;
            }
        }
        false
    }
}

fn skipped(name: &str) -> bool {
    name.starts_with('.') || name == "target"
}

fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The spans between single backticks on one line (code fences and double backticks aside).
fn backticked(line: &str) -> Vec<&str> {
    if line.trim_start().starts_with("```") {
        return Vec::new();
    }
    let parts: Vec<&str> = line.split('`').collect();
    parts
        .iter()
        .skip(1)
        .step_by(2)
        .take((parts.len() - 1) / 2)
        .copied()
        .filter(|s| !s.is_empty())
        .collect()
}

fn strip_line_suffix(span: &str) -> &str {
    match span.rsplit_once(':') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => span,
    }
}

fn has_source_extension(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(stem, ext)| {
        // `NAME.toml`: a placeholder, not a file.
        stem.chars().any(|c| c.is_ascii_lowercase())
            && SOURCE_EXTENSIONS.contains(&ext)
            && stem
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    })
}

fn is_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_symbol_path(s: &str) -> bool {
    s.contains("::") && s.split("::").all(|seg| seg.is_empty() || is_ident(seg))
}

fn is_camel_case(s: &str) -> bool {
    is_ident(s)
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars().any(|c| c.is_ascii_lowercase())
        && s.chars().skip(1).any(|c| c.is_ascii_uppercase())
        && !s.contains('_')
}

/// `apply_ban`, `white_lookup_in`; not `x86_64`, whose segments are not all words.
fn is_snake_case_with_underscore(s: &str) -> bool {
    s.contains('_')
        && s.split('_').all(|seg| {
            seg.starts_with(|c: char| c.is_ascii_lowercase())
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

fn is_keyword(s: &str) -> bool {
    matches!(s, "crate" | "self" | "super" | "std" | "core")
}

/// The documents checked: every Markdown file under docs/, the next engineer's documents.
pub fn documents(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root.join("docs"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Every broken reference of the repository at `root`.
pub fn check_repo(root: &Path) -> io::Result<Vec<Broken>> {
    let repo = Repo::scan(root)?;
    let mut out = Vec::new();
    for doc in documents(root)? {
        let text = fs::read_to_string(&doc)?;
        let shown = doc.strip_prefix(root).unwrap_or(&doc);
        out.extend(repo.check(shown, &text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("crate-a/src")).unwrap();
        fs::write(
            dir.path().join("crate-a/src/model.rs"),
            "pub struct BanOutcome; pub fn apply_ban() {} mod store { fn open_any() {} }",
        )
        .unwrap();
        fs::write(dir.path().join("crate-a/Cargo.toml"), "").unwrap();
        fs::create_dir_all(dir.path().join("crate-a/tests")).unwrap();
        fs::write(dir.path().join("crate-a/tests/netns.rs"), "").unwrap();
        fs::create_dir_all(dir.path().join("tests")).unwrap();
        fs::create_dir_all(dir.path().join("scripts")).unwrap();
        fs::write(dir.path().join("scripts/demo.sh"), "").unwrap();
        fs::write(
            dir.path().join("scripts/a.service"),
            "RestrictAddressFamilies=AF_UNIX",
        )
        .unwrap();
        fs::write(dir.path().join("scripts/notes.md"), "GhostName ghost_fn").unwrap();
        let repo = Repo::scan(dir.path()).unwrap();
        (dir, repo)
    }

    fn spans(repo: &Repo, text: &str) -> Vec<String> {
        repo.check(Path::new("doc.md"), text)
            .into_iter()
            .map(|b| b.span)
            .collect()
    }

    #[test]
    fn existing_paths_and_symbols_pass() {
        let (_dir, repo) = repo();
        let text =
            "See `crate-a/src/model.rs:12`, `scripts/demo.sh`, `scripts/*.sh`, `tests/netns.rs` \
                    (of crate-a), `model.rs`, `BanOutcome`, \
                    `apply_ban`, `store::open_any()`, `crate::model::BanOutcome` and \
                    `RestrictAddressFamilies`.";
        assert_eq!(spans(&repo, text), Vec::<String>::new());
    }

    #[test]
    fn missing_paths_and_symbols_are_reported_with_their_line() {
        let (_dir, repo) = repo();
        // Words of Markdown files do not count: a document cannot vouch for itself.
        let text = "intro\n`crate-a/src/gone.rs` and `gone.rs`\n`GhostName`, `ghost_fn`, `store::vanished`";
        let found = repo.check(Path::new("doc.md"), text);
        let spans: Vec<_> = found.iter().map(|b| (b.line, b.span.as_str())).collect();
        assert_eq!(
            spans,
            [
                (2, "crate-a/src/gone.rs"),
                (2, "gone.rs"),
                (3, "GhostName"),
                (3, "ghost_fn"),
                (3, "store::vanished"),
            ]
        );
    }

    #[test]
    fn command_lines_options_and_system_paths_are_not_references() {
        let (_dir, repo) = repo();
        let text = "`ibd ban 192.0.2.1`, `--db-dir`, `db-dir`, `/var/lib/ipqbdb`, `Q0S`, `P_MAX`, \
                    `lmdb/data.mdb`, `ibd-parse.sock`, `x86_64`, `.ci/run`, `NAME.toml`, `jail.conf`";
        assert_eq!(spans(&repo, text), Vec::<String>::new());
    }

    #[test]
    fn code_fences_are_skipped() {
        assert!(backticked("```rust").is_empty());
        assert_eq!(backticked("a `b` c `d` e `f"), ["b", "d"]);
    }
}
