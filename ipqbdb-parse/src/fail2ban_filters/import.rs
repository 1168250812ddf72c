//! Reading a filter (through `ipqbdb-fail2ban`) and compiling its regexes, with the options of
//! ours that set its bans.

use std::path::Path;
use std::sync::Mutex;

use ipqbdb_core::model::{initial_count, DEFAULT_INITIAL_COUNT};
use ipqbdb_fail2ban::{filter, tags, Error, FilterSpec, Located};

use super::filter::{BanParams, Compiled, ImportedFilter, State};
use super::shortcuts::{content_head, line_begin_body, DateFinder};
use crate::hybrid_regex::{HybridRegex, REGEX_SIZE_LIMIT};

/// The ibd-side options of a filter spec (`reason`, `initial-count`, `decay`), taken out of it.
pub fn ban_params(spec: &mut FilterSpec) -> Result<BanParams, String> {
    let default_reason = Path::new(&spec.name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| spec.name.clone());
    let reason = spec.options.remove("reason").unwrap_or(default_reason);
    if reason.is_empty() || reason.len() > ipqbdb_store::MAX_REASON_LEN {
        return Err(format!(
            "{}: reason must be 1 to {} bytes",
            spec.name,
            ipqbdb_store::MAX_REASON_LEN
        ));
    }
    let initial_count = match spec.options.remove("initial-count") {
        None => DEFAULT_INITIAL_COUNT,
        Some(c) => c
            .parse::<u32>()
            .map_err(|_| format!("{}: initial-count={c:?} is not a number", spec.name))
            .and_then(|n| initial_count(n).map_err(|e| format!("{}: {e}", spec.name)))?,
    };
    let decay = match spec.options.remove("decay") {
        None => None,
        Some(d) => Some(
            ipqbdb_core::parse_ban_decay(&d)
                .map_err(|e| format!("{}: decay={d:?}: {e}", spec.name))?,
        ),
    };
    Ok(BanParams {
        reason,
        initial_count,
        decay,
    })
}

impl ImportedFilter {
    /// Loads and compiles the filter `spec` names (`reason`, `initial-count` and `decay` options
    /// are ours; the others go to the filter), from `filter_dir` unless it is a path.
    pub fn load(filter_dir: &Path, spec: &FilterSpec) -> Result<ImportedFilter, Error> {
        let mut spec = spec.clone();
        let ban = ban_params(&mut spec).map_err(|m| Error::file(filter_dir, m))?;
        let f = filter::load(filter_dir, &spec)?;
        ImportedFilter::compile(f, ban)
    }

    pub fn compile(f: filter::Filter, ban: BanParams) -> Result<ImportedFilter, Error> {
        let multiline = f.maxlines > 1;
        let mut regexes = Vec::new();
        let mut add = |kind: &'static str, loc: &Located| -> Result<usize, Error> {
            let text =
                tags::translate(&loc.text).map_err(|u| loc.error(format!("{kind}: {}", u.0)))?;
            let regex = HybridRegex::compile(&text, multiline)
                .map_err(|e| loc.error(format!("{kind} {e}")))?;
            if kind == "failregex" {
                let has_id = |n: &Option<String>| {
                    matches!(n.as_deref(), Some("ip4" | "ip6" | "fid" | "mlfid"))
                };
                if !regex.capture_names().iter().any(has_id) && !pref_has_id(&f) {
                    return Err(loc.error(format!(
                        "failregex has no <HOST> (nor another address or failure id): {}",
                        loc.text
                    )));
                }
            }
            regexes.push(Compiled {
                kind,
                source: loc.clone(),
                regex,
            });
            Ok(regexes.len() - 1)
        };
        let pref = f
            .prefregex
            .as_ref()
            .map(|p| add("prefregex", p))
            .transpose()?;
        let fail = f
            .failregex
            .iter()
            .map(|r| add("failregex", r))
            .collect::<Result<Vec<_>, _>>()?;
        let ignore = f
            .ignoreregex
            .iter()
            .map(|r| add("ignoreregex", r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut dates = Vec::new();
        for d in ipqbdb_fail2ban::datepattern::regexes(f.datepattern.as_deref()) {
            let body =
                line_begin_body(&d).and_then(|b| regex::Regex::new(&format!("^(?:{b})")).ok());
            dates.push(match body {
                Some(b) => DateFinder::LineBegin(b),
                None => DateFinder::Group1(HybridRegex::compile(&d, false).map_err(|e| {
                    Error::file(&f.file, format!("datepattern {:?} {e}", f.datepattern))
                })?),
            });
        }
        let fast: Vec<&str> = fail
            .iter()
            .filter_map(|&i| match &regexes[i].regex {
                HybridRegex::Fast(r) => Some(r.as_str()),
                HybridRegex::Fancy(..) => None,
            })
            .collect();
        let fast_set = regex::RegexSetBuilder::new(fast)
            .multi_line(multiline)
            .size_limit(REGEX_SIZE_LIMIT * 4)
            .build()
            .ok();
        let pref_head = pref.and_then(|p| match (&regexes[p].regex, multiline) {
            (HybridRegex::Fast(r), false) => content_head(r.as_str()),
            _ => None,
        });
        Ok(ImportedFilter {
            spec: f.spec,
            file: f.file,
            ban,
            notes: f.notes,
            maxlines: f.maxlines,
            dates,
            regexes,
            pref_head,
            pref,
            fail,
            fast_set,
            ignore,
            state: Mutex::new(State::default()),
        })
    }
}

fn pref_has_id(f: &filter::Filter) -> bool {
    f.prefregex.as_ref().is_some_and(|p| {
        [
            "<HOST>",
            "<ADDR>",
            "<IP4>",
            "<IP6>",
            "<F-ID",
            "<F-MLFID>",
            "<SUBNET>",
        ]
        .iter()
        .any(|t| p.text.contains(t))
    })
}

/// Loads every filter of `specs` from `filter_dir`. A broken filter is reported in the errors and
/// left out, unless `strict`, which makes it fatal (the first error is returned).
pub fn load_all(
    filter_dir: &Path,
    specs: &[FilterSpec],
    strict: bool,
) -> Result<(Vec<ImportedFilter>, Vec<Error>), Error> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for s in specs {
        match ImportedFilter::load(filter_dir, s) {
            Ok(f) => ok.push(f),
            Err(e) if strict => return Err(e),
            Err(e) => errors.push(e),
        }
    }
    Ok((ok, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_filters_name_file_and_line() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("a.conf"), "[Definition]\nfailregex = ^x (<HOST>\n").unwrap();
        let e = ImportedFilter::load(d, &"a".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("a.conf:2: failregex does not compile"), "{e}");
        std::fs::write(d.join("b.conf"), "[Definition]\nfailregex = ^x\n").unwrap();
        let e = ImportedFilter::load(d, &"b".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("b.conf:2: failregex has no <HOST>"), "{e}");
        std::fs::write(d.join("c.conf"), "[Definition]\nfailregex = ^x <DNS>\n").unwrap();
        let e = ImportedFilter::load(d, &"c".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("c.conf:2") && e.contains("name resolution"),
            "{e}"
        );
        let e = ImportedFilter::load(d, &"a[initial-count=40]".parse().unwrap())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("initial"), "{e}");
        let (ok, errs) = load_all(d, &["a".parse().unwrap(), "b".parse().unwrap()], false).unwrap();
        assert_eq!((ok.len(), errs.len()), (0, 2));
        assert!(load_all(d, &["a".parse().unwrap()], true).is_err());
    }
}
