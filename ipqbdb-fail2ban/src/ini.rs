//! fail2ban's INI dialect: Python's `configparser` with fail2ban's additions.
//!
//! - `[section]` headers, `key = value` or `key: value` (keys are lower-cased), values continued on
//!   more-indented lines, full-line `#`/`;` comments, inline `;` comments after white space.
//! - `[INCLUDES]` `before =` / `after =`: files read before / after this one, relative to its
//!   directory; every file `x.conf` is followed by `x.local` when that exists. A missing `.local` is
//!   normal (fail2ban's own files name ones that seldom exist); a missing `.conf` is an error.
//! - Files read later override earlier ones option by option; the overridden values stay reachable
//!   as `known/` (`%(known/failregex)s`).
//! - `%(name)s` interpolation from the section, then `[DEFAULT]`; `%(section/name)s` from another
//!   section; `%%` is a `%`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Error;

/// Python's limit on nested interpolation.
const MAX_DEPTH: usize = 10;

/// An option's raw value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub file: Arc<PathBuf>,
    pub line: usize,
}

type Section = BTreeMap<String, Value>;

/// One parsed file: its sections in order (`DEFAULT` among them).
#[derive(Debug, Clone, Default)]
pub struct IniFile {
    pub sections: Vec<(String, Section)>,
}

impl IniFile {
    fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

/// Parses one file's text as Python's `configparser` does (`path` names it in errors and values).
pub fn parse(text: &str, path: &Path) -> Result<IniFile, Error> {
    let file = Arc::new(path.to_path_buf());
    let mut out = IniFile::default();
    // (section index, option name, indent of the option's line)
    let mut current: Option<usize> = None;
    let mut option: Option<(String, usize)> = None;
    let mut pending_blank = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let is_comment = {
            let t = raw.trim();
            t.starts_with('#') || t.starts_with(';')
        };
        let body = if is_comment {
            ""
        } else {
            strip_inline_comment(raw)
        };
        let value = body.trim();
        if value.is_empty() {
            if !is_comment && option.is_some() {
                pending_blank += 1;
            }
            continue;
        }
        let indent = raw.len() - raw.trim_start().len();
        if let (Some(sec), Some((name, opt_indent))) = (current, &option) {
            if indent > *opt_indent {
                let v = out.sections[sec].1.get_mut(name).expect("option exists");
                for _ in 0..pending_blank {
                    v.text.push('\n');
                }
                pending_blank = 0;
                v.text.push('\n');
                v.text.push_str(value);
                continue;
            }
        }
        pending_blank = 0;
        option = None;
        if value.starts_with('[') {
            let Some(end) = value.rfind(']') else {
                return Err(Error::at(
                    path,
                    lineno,
                    format!("malformed section header {value:?}"),
                ));
            };
            let name = value[1..end].to_string();
            current = Some(match out.sections.iter().position(|(n, _)| *n == name) {
                Some(p) => p,
                None => {
                    out.sections.push((name, Section::new()));
                    out.sections.len() - 1
                }
            });
            continue;
        }
        let Some(sec) = current else {
            return Err(Error::at(
                path,
                lineno,
                "an option before any [section] header",
            ));
        };
        let Some(at) = value.find(['=', ':']) else {
            return Err(Error::at(
                path,
                lineno,
                format!("neither a section, an option (name = value) nor a comment: {value:?}"),
            ));
        };
        let name = value[..at].trim_end().to_lowercase();
        if name.is_empty() {
            return Err(Error::at(path, lineno, "an option without a name"));
        }
        out.sections[sec].1.insert(
            name.clone(),
            Value {
                text: value[at + 1..].trim().to_string(),
                file: file.clone(),
                line: lineno,
            },
        );
        option = Some((name, indent));
    }
    Ok(out)
}

/// Python's inline comments: `;` preceded by white space.
fn strip_inline_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for i in 1..b.len() {
        if b[i] == b';' && b[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

/// Files merged in reading order, with fail2ban's includes resolved.
#[derive(Debug, Clone, Default)]
pub struct Config {
    defaults: Section,
    sections: HashMap<String, Section>,
    /// Section names in the order they first appeared.
    order: Vec<String>,
    /// Every file read, in order.
    pub files: Vec<PathBuf>,
}

impl Config {
    /// Reads `files` in order (each with its includes and its `.local`). Files that do not exist
    /// are errors only if they are `.conf` files named by an include; the caller checks its own.
    pub fn read(files: &[PathBuf]) -> Result<Config, Error> {
        let mut cfg = Config::default();
        for f in files {
            let mut list = Vec::new();
            expand(f, &mut Vec::new(), &mut list, None)?;
            for (path, ini) in list {
                cfg.merge(ini);
                cfg.files.push(path);
            }
        }
        Ok(cfg)
    }

    /// `BASE.conf`, `BASE.d/*.conf`, `BASE.local`, `BASE.d/*.local`, as fail2ban reads a named
    /// configuration; an error when none exists.
    pub fn read_named(base: &Path) -> Result<Config, Error> {
        let with = |ext: &str| {
            let mut p = base.as_os_str().to_owned();
            p.push(ext);
            PathBuf::from(p)
        };
        let mut dir = base.as_os_str().to_owned();
        dir.push(".d");
        let dir_files = |ext: &str| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .collect();
            v.sort();
            v
        };
        let mut files = vec![with(".conf")];
        files.extend(dir_files("conf"));
        files.push(with(".local"));
        files.extend(dir_files("local"));
        let files: Vec<PathBuf> = files.into_iter().filter(|f| f.is_file()).collect();
        if files.is_empty() {
            return Err(Error::file(&with(".conf"), "no such file (nor a .local)"));
        }
        // `read` adds each file's `.local` itself: keep only the files it would not add.
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut cfg = Config::default();
        for f in files {
            if seen.contains(&f) {
                continue;
            }
            let mut list = Vec::new();
            expand(&f, &mut Vec::new(), &mut list, None)?;
            for (path, ini) in list {
                if seen.contains(&path) {
                    continue;
                }
                cfg.merge(ini);
                seen.push(path.clone());
                cfg.files.push(path);
            }
        }
        Ok(cfg)
    }

    fn merge(&mut self, ini: IniFile) {
        for (name, sec) in ini.sections {
            if name == "DEFAULT" {
                self.defaults.extend(sec);
                continue;
            }
            match self.sections.get_mut(&name) {
                Some(existing) => {
                    let known: Section = existing
                        .iter()
                        .filter(|(k, _)| sec.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    existing.extend(sec);
                    self.sections
                        .entry(format!("KNOWN/{name}"))
                        .or_default()
                        .extend(known);
                }
                None => {
                    self.order.push(name.clone());
                    self.sections.insert(name, sec);
                }
            }
        }
    }

    pub fn has_section(&self, name: &str) -> bool {
        self.sections.contains_key(name)
    }

    /// Section names in reading order (fail2ban's own `KNOWN/` sections left out).
    pub fn section_names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// The section's own option names (without `[DEFAULT]`'s).
    pub fn own_options(&self, section: &str) -> Vec<&str> {
        self.sections
            .get(section)
            .map(|s| s.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The raw value of `key` in `section` or `[DEFAULT]`, with where it was written.
    pub fn raw(&self, section: &str, key: &str) -> Option<&Value> {
        let key = key.to_lowercase();
        self.sections
            .get(section)
            .and_then(|s| s.get(&key))
            .or_else(|| self.defaults.get(&key))
    }

    /// `key` of `section` interpolated; `vars` come first (fail2ban passes a filter's options so).
    /// `Ok(None)`: the option does not exist.
    pub fn get(
        &self,
        section: &str,
        key: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Option<String>, Error> {
        let key = key.to_lowercase();
        if let Some(v) = vars.get(&key) {
            return Ok(Some(v.clone()));
        }
        let Some(value) = self.raw(section, &key) else {
            return Ok(None);
        };
        self.interpolate(section, &value.text, vars, value, 0)
            .map(Some)
    }

    /// fail2ban's `get_ex`: `sec/opt` names another section's option (`known/opt` the value this
    /// section had before the last file overrode it, `default/opt` the `[DEFAULT]` one).
    pub fn get_ex(
        &self,
        section: &str,
        key: &str,
        vars: &BTreeMap<String, String>,
    ) -> Result<Option<String>, Error> {
        if let Some((sec, opt)) = key.split_once('/') {
            let candidates: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec!["DEFAULT".into()],
                _ => vec![sec.to_string()],
            };
            for s in candidates {
                let found = if s == "DEFAULT" {
                    self.defaults.get(&opt.to_lowercase())
                } else {
                    self.sections
                        .get(&s)
                        .and_then(|m| m.get(&opt.to_lowercase()))
                        .or_else(|| self.defaults.get(&opt.to_lowercase()))
                };
                if let Some(v) = found {
                    // Python reads it as that section's option: its context, without `vars`.
                    let ctx = s.strip_prefix("KNOWN/").unwrap_or(&s);
                    return self
                        .interpolate(ctx, &v.text, &BTreeMap::new(), v, 0)
                        .map(Some);
                }
            }
        }
        self.get(section, key, vars)
    }

    fn lookup(&self, section: &str, name: &str, vars: &BTreeMap<String, String>) -> Option<String> {
        if let Some(v) = vars.get(name) {
            return Some(v.clone());
        }
        if name == "__name__" {
            return Some(section.to_string());
        }
        if let Some((sec, opt)) = name.split_once('/') {
            let v = match sec {
                "known" => self
                    .sections
                    .get(&format!("KNOWN/{section}"))
                    .and_then(|s| s.get(opt)),
                "default" => None,
                _ => self.sections.get(sec).and_then(|s| s.get(opt)),
            };
            return v.or_else(|| self.defaults.get(opt)).map(|v| v.text.clone());
        }
        self.raw(section, name).map(|v| v.text.clone())
    }

    fn interpolate(
        &self,
        section: &str,
        text: &str,
        vars: &BTreeMap<String, String>,
        origin: &Value,
        depth: usize,
    ) -> Result<String, Error> {
        if !text.contains('%') {
            return Ok(text.to_string());
        }
        if depth >= MAX_DEPTH {
            return Err(Error::at(
                &origin.file,
                origin.line,
                "interpolation nested too deeply (a %(name)s loop?)",
            ));
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('%') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(r) = rest.strip_prefix("%%") {
                out.push('%');
                rest = r;
            } else if let Some(r) = rest.strip_prefix("%(") {
                let Some(end) = r.find(")s") else {
                    return Err(Error::at(
                        &origin.file,
                        origin.line,
                        format!("bad interpolation syntax in {:?}", truncate(rest)),
                    ));
                };
                let name = r[..end].to_lowercase();
                let Some(v) = self.lookup(section, &name, vars) else {
                    return Err(Error::at(
                        &origin.file,
                        origin.line,
                        format!("%({name})s is not defined in [{section}] nor [DEFAULT]"),
                    ));
                };
                out.push_str(&self.interpolate(section, &v, vars, origin, depth + 1)?);
                rest = &r[end + 2..];
            } else {
                return Err(Error::at(
                    &origin.file,
                    origin.line,
                    format!(
                        "'%' must be followed by '%' or '(' (write %% for a percent sign): {:?}",
                        truncate(rest)
                    ),
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(30) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `file` (with its includes and its `.local`) as the list of files to read, in order.
fn expand(
    file: &Path,
    seen: &mut Vec<PathBuf>,
    out: &mut Vec<(PathBuf, IniFile)>,
    included_from: Option<(&Path, usize)>,
) -> Result<(), Error> {
    let mut names = vec![file.to_path_buf()];
    if file.extension().is_some_and(|e| e == "conf") {
        let local = file.with_extension("local");
        if local.is_file() {
            names.push(local);
        }
    }
    for name in names {
        if seen.contains(&name) {
            continue;
        }
        let text = match std::fs::read(&name) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let optional = name.extension().is_some_and(|e| e == "local");
                match included_from {
                    _ if optional => continue,
                    Some((by, line)) => {
                        return Err(Error::at(
                            by,
                            line,
                            format!("included file {} does not exist", name.display()),
                        ))
                    }
                    None => return Err(Error::file(&name, e.to_string())),
                }
            }
            Err(e) => return Err(Error::file(&name, e.to_string())),
        };
        let text = String::from_utf8(text).map_err(|_| Error::file(&name, "not UTF-8 text"))?;
        let ini = parse(&text, &name)?;
        let dir = name.parent().unwrap_or(Path::new(".")).to_path_buf();
        seen.push(name.clone());
        let includes = ini.section("INCLUDES").cloned().unwrap_or_default();
        let list = |key: &str| -> Vec<(PathBuf, usize)> {
            includes
                .get(key)
                .map(|v| {
                    v.text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| (dir.join(l), v.line))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (inc, line) in list("before") {
            expand(&inc, seen, out, Some((&name, line)))?;
        }
        out.push((name.clone(), ini));
        for (inc, line) in list("after") {
            expand(&inc, seen, out, Some((&name, line)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    #[test]
    fn values_continue_and_comments_go() {
        let text = "# c\n[Definition]\nFailRegex = ^a <HOST>\n            ^b <HOST> ; inline\n  # comment inside\n            ^c\nother: x;y\n\n[Init]\nk =\n";
        let ini = parse(text, Path::new("f.conf")).unwrap();
        let d = ini.section("Definition").unwrap();
        assert_eq!(d["failregex"].text, "^a <HOST>\n^b <HOST>\n^c");
        assert_eq!(d["other"].text, "x;y");
        assert_eq!(ini.section("Init").unwrap()["k"].text, "");
        let e = parse("[a]\njunk line\n", Path::new("f.conf")).unwrap_err();
        assert_eq!(e.to_string().split(": ").next(), Some("f.conf:2"));
        assert!(parse("x = 1\n", Path::new("g")).is_err());
    }

    #[test]
    fn interpolation_and_includes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(
            dir.join("common.conf"),
            "[INCLUDES]\nafter = common.local\n[DEFAULT]\n_daemon = \\S*\npre = ^%(_daemon)s:\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("f.conf"),
            "[INCLUDES]\nbefore = common.conf\n[DEFAULT]\n_daemon = sshd\n[Definition]\nfailregex = %(pre)s fail <HOST> 100%%\n[x]\ny = 1\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("f.local"),
            "[Definition]\nfailregex = %(known/failregex)s\n            other <HOST>\n",
        )
        .unwrap();
        let cfg = Config::read_named(&dir.join("f")).unwrap();
        assert_eq!(
            cfg.get("Definition", "failregex", &vars())
                .unwrap()
                .unwrap(),
            "^sshd: fail <HOST> 100%\nother <HOST>"
        );
        assert_eq!(
            cfg.get_ex("Definition", "x/y", &vars()).unwrap().unwrap(),
            "1"
        );
        std::fs::write(dir.join("g.conf"), "[INCLUDES]\nbefore = nope.conf\n").unwrap();
        let e = Config::read_named(&dir.join("g")).unwrap_err().to_string();
        assert!(
            e.contains("g.conf:2: included file") && e.contains("nope.conf"),
            "{e}"
        );
        std::fs::write(dir.join("h.conf"), "[Definition]\na = %(b)s\n").unwrap();
        let cfg = Config::read_named(&dir.join("h")).unwrap();
        let e = cfg.get("Definition", "a", &vars()).unwrap_err().to_string();
        assert!(e.contains("h.conf:2") && e.contains("%(b)s"), "{e}");
    }
}
