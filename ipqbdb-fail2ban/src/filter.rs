//! A fail2ban filter as fail2ban 1.0.x builds it: `filter.d/NAME.conf` (with `NAME.d/*.conf`,
//! `NAME.local`, its includes), the filter's options (`name[mode=aggressive]`, which override
//! `[Init]` and feed `%(mode)s`), `[Definition]` interpolated, then `<tag>` substitution until no
//! known tag is left. The result is the regex text of `prefregex`, `failregex`, `ignoreregex` and
//! `datepattern`, still with fail2ban's own tags (`<HOST>`, `<F-USER>`, ...) for `tags::translate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::ini::Config;
use crate::{Error, FilterSpec};

/// A regex with the place of the option that defined it (fail2ban's values are built from many
/// lines; the option's first line is named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub text: String,
    pub file: PathBuf,
    pub line: usize,
}

impl Located {
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::at(&self.file, self.line, message)
    }
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub spec: FilterSpec,
    /// The filter's main file.
    pub file: PathBuf,
    pub prefregex: Option<Located>,
    pub failregex: Vec<Located>,
    pub ignoreregex: Vec<Located>,
    /// Lines a multi-line regex sees at once (1: each line alone).
    pub maxlines: usize,
    pub datepattern: Option<String>,
    /// `journalmatch`: ignored (the journal input gives each line its program), kept for the notes.
    pub journalmatch: Option<String>,
    /// What ibd-parse does differently, for `--test` to show.
    pub notes: Vec<String>,
}

/// fail2ban's limit on replacements of one tag in one value.
const MAX_TAG_REPLACE: usize = 25;

/// The filter options fail2ban reads from `[Definition]`.
const DEFINITION_OPTIONS: [&str; 7] = [
    "usedns",
    "prefregex",
    "ignoreregex",
    "failregex",
    "maxlines",
    "datepattern",
    "journalmatch",
];

/// Loads the filter `spec` names from `filter_dir` (`filter.d`): a name, or a path to a file
/// (with or without `.conf`).
pub fn load(filter_dir: &Path, spec: &FilterSpec) -> Result<Filter, Error> {
    let base = if spec.name.contains('/') {
        PathBuf::from(spec.name.trim_end_matches(".conf"))
    } else {
        filter_dir.join(&spec.name)
    };
    let cfg = Config::read_named(&base)?;
    let conf = base.with_extension("conf");
    let main = if conf.is_file() {
        conf
    } else {
        cfg.files.last().cloned().unwrap_or_else(|| base.clone())
    };
    if !cfg.has_section("Definition") {
        return Err(Error::file(
            &main,
            "no [Definition] section: not a fail2ban filter",
        ));
    }
    let p_opts: BTreeMap<String, String> = spec.options.clone();
    // [Definition]'s own options, interpolated with the filter's options first.
    let mut combined: BTreeMap<String, String> = BTreeMap::new();
    for opt in DEFINITION_OPTIONS {
        if p_opts.contains_key(opt) {
            continue;
        }
        if let Some(v) = cfg.get("Definition", opt, &p_opts)? {
            combined.insert(opt.to_string(), v);
        }
    }
    // [Init] supplies tag values the options did not set (and `known/` ones).
    let mut init = p_opts.clone();
    if cfg.has_section("Init") {
        for opt in cfg.own_options("Init") {
            let v = cfg.get("Init", opt, &BTreeMap::new())?.unwrap_or_default();
            if !opt.starts_with("known/") {
                init.insert(format!("known/{opt}"), v.clone());
            }
            init.entry(opt.to_string()).or_insert(v);
        }
    }
    combined.extend(init);
    let resolved = substitute_tags(&cfg, combined, &p_opts)?;

    let located = |opt: &str, text: String| {
        let (file, line) = cfg
            .raw("Definition", opt)
            .map(|v| ((*v.file).clone(), v.line))
            .unwrap_or_else(|| (main.clone(), 0));
        Located { text, file, line }
    };
    let lines = |opt: &str| -> Vec<Located> {
        resolved
            .get(opt)
            .map(|v| {
                v.split('\n')
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| located(opt, l.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut notes = Vec::new();
    if let Some(u) = resolved.get("usedns") {
        match u.trim() {
            "yes" => {
                let at = located("usedns", u.clone());
                return Err(at.error(
                    "usedns = yes needs name resolution, which ibd-parse never does (use no)",
                ));
            }
            "warn" | "no" | "raw" | "" => {}
            other => {
                return Err(located("usedns", u.clone())
                    .error(format!("usedns = {other:?}: not yes, warn, no or raw")))
            }
        }
    }
    let maxlines = match resolved.get("maxlines").map(|s| s.trim()) {
        None | Some("") => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(located("maxlines", v.to_string()).error(format!(
                    "maxlines = {v:?}: not a number of lines in 1..=1000"
                )))
            }
        },
    };
    let journalmatch = resolved
        .get("journalmatch")
        .filter(|j| !j.trim().is_empty())
        .cloned();
    if let Some(j) = &journalmatch {
        notes.push(format!(
            "journalmatch ignored ({}): with --journal, each line carries its program's name",
            j.replace('\n', " ")
        ));
    }
    let failregex = lines("failregex");
    if failregex.is_empty() {
        return Err(Error::file(
            &main,
            "no failregex: the filter catches nothing",
        ));
    }
    Ok(Filter {
        spec: spec.clone(),
        file: main.clone(),
        prefregex: resolved
            .get("prefregex")
            .filter(|p| !p.trim().is_empty())
            .map(|p| located("prefregex", p.clone())),
        failregex,
        ignoreregex: lines("ignoreregex"),
        maxlines,
        datepattern: resolved
            .get("datepattern")
            .filter(|d| !d.trim().is_empty())
            .cloned(),
        journalmatch,
        notes,
    })
}

/// fail2ban's `substituteRecursiveTags`: each `<name>` in a value is replaced by the option
/// `name` (of the combined options, else of `[Definition]`), until none is left that names an
/// option. Tags naming no option (`<HOST>`, `<F-USER>`) stay.
fn substitute_tags(
    cfg: &Config,
    mut tags: BTreeMap<String, String>,
    p_opts: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Error> {
    let mut done: std::collections::BTreeSet<String> = Default::default();
    let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    let mut lookups: BTreeMap<String, Option<String>> = BTreeMap::new();
    for _pass in 0..100 {
        let mut again = false;
        let keys: Vec<String> = tags.keys().cloned().collect();
        for tag in keys {
            if done.contains(&tag) {
                continue;
            }
            let orig = tags[&tag].clone();
            let mut value = orig.clone();
            let mut from = 0;
            let rplc = counts.entry(tag.clone()).or_default();
            while let Some((start, end)) = find_tag(&value, from) {
                let rtag = value[start + 1..end - 1].to_string();
                let count = rplc.get(&rtag).copied().unwrap_or(0);
                if rtag == tag || count > MAX_TAG_REPLACE {
                    let at = cfg.raw("Definition", &tag);
                    let (file, line) = at.map(|v| ((*v.file).clone(), v.line)).unwrap_or_default();
                    return Err(Error::at(
                        &file,
                        line,
                        format!(
                            "<{rtag}> refers to itself in the value of {tag}: cannot be resolved"
                        ),
                    ));
                }
                let repl = match tags.get(&rtag) {
                    Some(v) => Some(v.clone()),
                    None => {
                        if !lookups.contains_key(&rtag) {
                            let v = cfg.get_ex("Definition", &rtag, p_opts)?;
                            lookups.insert(rtag.clone(), v);
                        }
                        lookups[&rtag].clone()
                    }
                };
                match repl {
                    None => from = end,
                    Some(r) => {
                        value = value.replace(&format!("<{rtag}>"), &r);
                        *rplc.entry(rtag).or_default() += 1;
                        from = start;
                    }
                }
            }
            if value != orig {
                if find_tag(&value, 0).is_some() {
                    again = true;
                }
                tags.insert(tag.clone(), value.clone());
            }
            if !value.contains('<') {
                done.insert(tag);
            }
        }
        if !again {
            return Ok(tags);
        }
    }
    Ok(tags)
}

/// The next `<name>` (no space, `<` or `>` inside) at or after `from`: its byte range.
fn find_tag(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            while j < b.len() && !matches!(b[j], b' ' | b'<' | b'>') {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' && j > i + 1 {
                return Some((i, j + 1));
            }
            i = j;
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_tags_and_init() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(
            d.join("common.conf"),
            "[DEFAULT]\n_daemon = \\S*\n__prefix_line = <lt_<logtype>/__prefix_line>\nlogtype = file\n[lt_file]\n__prefix_line = P(<_daemon>):\n",
        )
        .unwrap();
        std::fs::write(
            d.join("svc.conf"),
            "[INCLUDES]\nbefore = common.conf\n[DEFAULT]\n_daemon = svc\n[Definition]\nmode = normal\nprefregex = ^%(__prefix_line)s<F-CONTENT>.+</F-CONTENT>$\nfailregex = ^bad <HOST> <extra>\n            <md-<mode>>\nmd-normal =\nmd-aggressive = ^worse <HOST>\n[Init]\nextra = x\nmaxlines = 2\n",
        )
        .unwrap();
        let f = load(d, &"svc".parse().unwrap()).unwrap();
        assert_eq!(
            f.prefregex.unwrap().text,
            "^P(svc):<F-CONTENT>.+</F-CONTENT>$"
        );
        let texts: Vec<_> = f.failregex.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["^bad <HOST> x"]);
        assert_eq!(f.maxlines, 2);
        assert_eq!(f.failregex[0].line, 8);
        let f = load(d, &"svc[mode=aggressive, extra=y]".parse().unwrap()).unwrap();
        let texts: Vec<_> = f.failregex.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["^bad <HOST> y", "^worse <HOST>"]);
        let e = load(d, &"nope".parse().unwrap()).unwrap_err().to_string();
        assert!(e.contains("nope.conf"), "{e}");
        std::fs::write(
            d.join("loop.conf"),
            "[Definition]\nfailregex = <a>\na = x<a>\n",
        )
        .unwrap();
        assert!(load(d, &"loop".parse().unwrap()).is_err());
    }
}
