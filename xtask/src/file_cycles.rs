//! `cargo xtask check-cycles`: no source file of a library imports from a file that imports it back,
//! directly or around a longer loop. A cycle between files means neither can be read, moved or tested
//! without the other; the usual cure is to give the shared item a file of its own.
//!
//! An import is a `crate::`, `super::` or `self::` path in a `use` statement or in code, resolved to
//! the file of the longest module path it names. Not imports: re-exports (`pub use`, which a module
//! root writes to shape its API, not to depend), comments, and a file's `#[cfg(test)]` module (its
//! `use super::*` names the file itself). Each library's module tree is read from its `src/lib.rs`;
//! binaries' `main.rs` are left out (they sit on top and nothing imports them).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A loop of files, each importing from the next and the last from the first.
#[derive(Debug, PartialEq, Eq)]
pub struct Cycle(pub Vec<PathBuf>);

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.0.iter().map(|p| p.display().to_string()).collect();
        write!(f, "{} -> {}", names.join(" -> "), names[0])
    }
}

/// The cycles of every library crate under `root` (a directory holding a `Cargo.toml` and
/// `src/lib.rs`, one or two levels down), paths relative to `root`.
pub fn check_repo(root: &Path) -> io::Result<Vec<Cycle>> {
    let mut cycles = Vec::new();
    for lib in library_roots(root)? {
        let src = lib.parent().expect("lib.rs has a directory");
        for c in crate_cycles(src)? {
            let rel =
                c.0.iter()
                    .map(|p| p.strip_prefix(root).unwrap_or(p).to_path_buf())
                    .collect();
            cycles.push(Cycle(rel));
        }
    }
    Ok(cycles)
}

fn library_roots(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    for depth in 0..2 {
        let mut next = Vec::new();
        for dir in dirs {
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if !path.is_dir() || name.starts_with('.') || name == "target" {
                    continue;
                }
                let lib = path.join("src/lib.rs");
                if path.join("Cargo.toml").is_file() && lib.is_file() {
                    out.push(lib);
                }
                if depth == 0 {
                    next.push(path);
                }
            }
        }
        dirs = next;
    }
    out.sort();
    Ok(out)
}

/// The cycles among the files of one crate whose sources are in `src`.
pub fn crate_cycles(src: &Path) -> io::Result<Vec<Cycle>> {
    let files = module_files(src)?;
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (module, path) in &files {
        let text = fs::read_to_string(path)?;
        let mut targets = BTreeSet::new();
        for import in imports(&code_of(&text)) {
            if let Some(abs) = absolute(&files, module, &import) {
                if let Some(target) = owner(&files, &abs) {
                    if target != module.as_str() {
                        targets.insert(target);
                    }
                }
            }
        }
        edges.insert(module.as_str(), targets);
    }
    Ok(find_cycles(&edges)
        .into_iter()
        .map(|c| Cycle(c.into_iter().map(|m| files[m].clone()).collect()))
        .collect())
}

/// Module path (`""` for the crate root, `a::b` for `src/a/b.rs` or `src/a/b/mod.rs`) to file.
fn module_files(src: &Path) -> io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    out.insert(String::new(), src.join("lib.rs"));
    let mut stack = vec![(src.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let join = |n: &str| {
                if prefix.is_empty() {
                    n.to_string()
                } else {
                    format!("{prefix}::{n}")
                }
            };
            if path.is_dir() {
                if name != "bin" {
                    stack.push((path.clone(), join(name)));
                }
            } else if let Some(stem) = name.strip_suffix(".rs") {
                match stem {
                    "lib" | "main" if prefix.is_empty() => {}
                    "mod" => {
                        out.insert(prefix.clone(), path.clone());
                    }
                    _ => {
                        out.insert(join(stem), path.clone());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The text of a file that can import: comments blanked, the `#[cfg(test)]` module cut, re-export
/// statements dropped.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut in_reexport = false;
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            if let Some(next) = lines.peek() {
                let n = next.trim_start();
                if n.starts_with("mod ") || n.starts_with("pub mod ") {
                    break;
                }
            }
        }
        if in_reexport {
            in_reexport = !line.contains(';');
            continue;
        }
        if t.starts_with("pub use ") || t.starts_with("pub(crate) use ") {
            in_reexport = !line.contains(';');
            continue;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every path the code names (`a::b`, `crate::a`, `super::b`, with `use` trees expanded), as segment
/// lists. Most are other crates' paths; [`absolute`] keeps those that lead into this crate, and a
/// path's last segments may be items, not modules, which [`owner`] sorts out.
fn imports(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let boundary = i == 0 || (!is_ident(bytes[i - 1]) && bytes[i - 1] != b':');
        if boundary && rest.starts_with("use ") {
            let end = rest.find(';').map_or(rest.len(), |e| e);
            let tree = rest[4..end]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let tree = tree.replace(" as ", "@").replace(' ', "");
            expand(&tree, &mut Vec::new(), &mut out);
            i += end.max(1);
            continue;
        }
        if boundary && is_ident(bytes[i]) && !bytes[i].is_ascii_digit() {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let path = &rest[..len];
            if path.contains("::") {
                out.push(
                    path.split("::")
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                );
            }
            i += len.max(1);
            continue;
        }
        i += 1;
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Expands a whitespace-free use tree such as `crate::a::{b,c::{D,E}}` onto `prefix`.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let (head, group) = match tree.find('{') {
        Some(open) if tree.ends_with('}') => (&tree[..open], Some(&tree[open + 1..tree.len() - 1])),
        _ => (tree, None),
    };
    let depth = prefix.len();
    for seg in head.split("::").filter(|s| !s.is_empty()) {
        // `x@y` is `x as y` (see [`imports`]): the imported name is `x`.
        let seg = seg.split('@').next().unwrap_or(seg);
        if seg != "*" {
            prefix.push(seg.to_string());
        }
    }
    match group {
        None => out.push(prefix.clone()),
        Some(inner) => {
            for part in split_top(inner) {
                if part == "self" {
                    out.push(prefix.clone());
                } else {
                    expand(part, prefix, out);
                }
            }
        }
    }
    prefix.truncate(depth);
}

/// Splits a use group's inside at its top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.retain(|p| !p.is_empty());
    parts
}

/// `path` made absolute from `module` (segments after `crate`): `crate::`, `self::`, `super::` and a
/// path that starts with one of `module`'s child modules lead into the crate; anything else (another
/// crate, `std`, a local type's `Type::method`) is `None`.
fn absolute(
    files: &BTreeMap<String, PathBuf>,
    module: &str,
    path: &[String],
) -> Option<Vec<String>> {
    let mut base: Vec<String> = if module.is_empty() {
        Vec::new()
    } else {
        module.split("::").map(str::to_string).collect()
    };
    let mut segs = path.iter().peekable();
    match segs.peek().map(|s| s.as_str()) {
        Some("crate") => {
            base.clear();
            segs.next();
        }
        Some("self") => {
            segs.next();
        }
        Some("super") => {
            while segs.peek().map(|s| s.as_str()) == Some("super") {
                segs.next();
                base.pop()?;
            }
        }
        Some(first) => {
            let mut child = base.clone();
            child.push(first.to_string());
            if !files.contains_key(&child.join("::")) {
                return None;
            }
        }
        None => return None,
    }
    base.extend(segs.cloned());
    Some(base)
}

/// The file of the longest module path that `abs` starts with.
fn owner<'a>(files: &'a BTreeMap<String, PathBuf>, abs: &[String]) -> Option<&'a str> {
    (0..=abs.len()).rev().find_map(|n| {
        let key = abs[..n].join("::");
        files.get_key_value(&key).map(|(k, _)| k.as_str())
    })
}

/// Each strongly connected group of more than one file, as one loop through it (Tarjan's algorithm
/// finds the groups; a walk inside the group gives a readable loop).
fn find_cycles<'a>(edges: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Vec<Vec<&'a str>> {
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        groups: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, edges: &BTreeMap<&'a str, BTreeSet<&'a str>>, st: &mut State<'a>) {
        let n = st.index.len();
        st.index.insert(v, n);
        st.low.insert(v, n);
        st.stack.push(v);
        st.on_stack.insert(v);
        for &w in edges.get(v).into_iter().flatten() {
            if !st.index.contains_key(w) {
                visit(w, edges, st);
                let lw = st.low[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if st.on_stack.contains(w) {
                let iw = st.index[w];
                let lv = st.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if st.low[v] == st.index[v] {
            let mut group = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on_stack.remove(w);
                group.push(w);
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                st.groups.push(group);
            }
        }
    }
    let mut st = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for &v in edges.keys() {
        if !st.index.contains_key(v) {
            visit(v, edges, &mut st);
        }
    }
    st.groups
        .into_iter()
        .map(|group| {
            let members: BTreeSet<&str> = group.iter().copied().collect();
            let start = *members.iter().next().expect("non-empty");
            loop_within(start, edges, &members)
        })
        .collect()
}

/// A shortest loop from `start` back to itself inside `members` (breadth-first).
fn loop_within<'a>(
    start: &'a str,
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    members: &BTreeSet<&'a str>,
) -> Vec<&'a str> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in edges.get(v).into_iter().flatten() {
            if !members.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![v];
                let mut at = v;
                while at != start {
                    at = parent[at];
                    path.push(at);
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(w) {
                parent.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    members.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = dir.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    fn names(src: &Path) -> Vec<String> {
        crate_cycles(src)
            .unwrap()
            .iter()
            .map(|c| {
                c.0.iter()
                    .map(|p| p.strip_prefix(src).unwrap().display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn two_files_importing_each_other_are_a_cycle() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("lib.rs", "mod a;\nmod b;\npub use a::A;\n"),
                ("a.rs", "use crate::b::B;\npub struct A;\n"),
                ("b.rs", "pub struct B;\nfn f() { let _ = crate::a::A; }\n"),
            ],
        );
        assert_eq!(names(dir.path()), ["a.rs b.rs"]);
    }

    #[test]
    fn a_longer_loop_through_a_use_group_and_super_is_found() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("lib.rs", "mod a;\nmod m;\n"),
                ("a.rs", "use crate::{m::x::X, other};\n"),
                ("m/mod.rs", "mod x;\nmod y;\nfn f() { y::g() }\n"),
                ("m/x.rs", "use super::y as why;\n"),
                ("m/y.rs", "use crate::a;\npub fn g() {}\n"),
            ],
        );
        // a -> m::x -> m::y -> a; m/mod.rs imports y but nothing imports m's own items back.
        assert_eq!(names(dir.path()), ["a.rs m/x.rs m/y.rs"]);
    }

    #[test]
    fn re_exports_tests_and_comments_are_not_imports() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                ("lib.rs", "mod a;\nmod b;\npub use a::{\n    A,\n};\n"),
                (
                    "a.rs",
                    "pub struct A;\n// see crate::b\n#[cfg(test)]\nmod tests {\n    use crate::b;\n}\n",
                ),
                ("b.rs", "pub use crate::a::A;\n/// [`crate::a::A`]\nfn f() {}\n"),
            ],
        );
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
    }

    #[test]
    fn the_repository_has_no_cycle() {
        let root = crate::bench::workspace_root();
        let cycles = check_repo(&root).unwrap();
        let text: Vec<String> = cycles.iter().map(ToString::to_string).collect();
        assert!(cycles.is_empty(), "file cycles:\n{}", text.join("\n"));
    }
}
