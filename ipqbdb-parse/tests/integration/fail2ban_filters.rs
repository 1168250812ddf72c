//! fail2ban's own filters, loaded by ibd-parse, against fail2ban's own annotated samples: every
//! filter of the installed package's `filter.d` that has a sample log is loaded with each option
//! set of each `# filterOptions:` block (one filter object per option set, kept across blocks as
//! fail2ban's test keeps them, so multi-line state carries over), and every sample line is run
//! through it in file order. A filter passes when every positive is caught with the annotated host
//! and no negative (nor unannotated line) is caught. Hosts that are names (or addresses Rust does
//! not read, like `192.030.0.6`) are never resolved: those positives are skipped and counted.
//!
//! Goal: >= 90 % of the filters pass. The table and every failing filter's first failures are
//! printed. fail2ban's files are read where the package installs them, never copied.

use crate::common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use ipqbdb_fail2ban::FilterSpec;
use ipqbdb_parse::fail2ban_filters::{FilterMatch, ImportedFilter};

const FILTER_DIR: &str = "/etc/fail2ban/filter.d";

#[derive(Default)]
struct Score {
    positives: u32,
    caught: u32,
    negatives: u32,
    wrong: u32,
    names: u32,
    engines: (u32, u32),
    failures: Vec<String>,
    load_error: Option<String>,
}

impl Score {
    fn passed(&self) -> bool {
        self.load_error.is_none() && self.failures.is_empty()
    }
}

fn option_key(o: &serde_json::Map<String, serde_json::Value>) -> String {
    o.iter()
        .filter(|(k, _)| !k.starts_with("test."))
        .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), String::from)))
        .collect::<Vec<_>>()
        .join(",")
}

fn spec(name: &str, o: Option<&serde_json::Map<String, serde_json::Value>>) -> FilterSpec {
    let mut s = FilterSpec {
        name: name.to_string(),
        ..FilterSpec::default()
    };
    for (k, v) in o.into_iter().flatten() {
        if !k.starts_with("test.") {
            let v = v.as_str().map_or(v.to_string(), String::from);
            s.options.insert(k.to_lowercase(), v);
        }
    }
    s
}

fn score(name: &str) -> Score {
    let mut sc = Score::default();
    let samples = common::read_annotated(name, name);
    // One filter per option set, as fail2ban's test caches them.
    let mut filters: BTreeMap<String, ImportedFilter> = BTreeMap::new();
    let empty = std::sync::Arc::new(vec![serde_json::Map::new()]);
    for s in &samples {
        let sets = s.options.clone().unwrap_or_else(|| empty.clone());
        for o in sets.iter() {
            let key = option_key(o);
            if !filters.contains_key(&key) {
                match ImportedFilter::load(Path::new(FILTER_DIR), &spec(name, Some(o))) {
                    Ok(f) => {
                        for r in &f.regexes {
                            match r.regex.name() {
                                "regex" => sc.engines.0 += 1,
                                _ => sc.engines.1 += 1,
                            }
                        }
                        filters.insert(key.clone(), f);
                    }
                    Err(e) => {
                        sc.load_error = Some(e.to_string());
                        return sc;
                    }
                }
            }
            let f = &filters[&key];
            let mode = o.get("mode").and_then(|m| m.as_str());
            let constraint = s
                .fail
                .as_ref()
                .and_then(|j| j.get("constraint"))
                .and_then(|c| c.as_str());
            if constraint.is_some_and(|c| !common::constraint_holds(c, name, mode)) {
                continue;
            }
            let found = if o.get("logtype").and_then(|l| l.as_str()) == Some("journal") {
                let prefix = o
                    .get("test.prefix-line")
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                f.check_message(&format!("{prefix}{}", s.line))
            } else {
                f.check(&s.line)
            };
            let expect = s
                .fail
                .as_ref()
                .and_then(|j| j.get("match"))
                .and_then(|m| m.as_bool())
                .unwrap_or(false);
            let host = s
                .fail
                .as_ref()
                .and_then(|j| j.get("host"))
                .and_then(|h| h.as_str());
            let place = format!("{}:{} [{key}]", s.file, s.lineno);
            let caught = matches!(
                found,
                FilterMatch::Failure(_) | FilterMatch::NotAnAddress(_)
            );
            if !expect {
                sc.negatives += 1;
                if caught {
                    sc.wrong += 1;
                    sc.failures
                        .push(format!("{place}: caught {found:?}, should not: {}", s.line));
                }
                continue;
            }
            match host {
                Some(h) if h.parse::<IpAddr>().is_err() => sc.names += 1,
                Some(h) => {
                    sc.positives += 1;
                    match found {
                        FilterMatch::Failure(ip) if common::same(ip, h) => sc.caught += 1,
                        other => sc
                            .failures
                            .push(format!("{place}: want {h}, got {other:?}: {}", s.line)),
                    }
                }
                None => {
                    sc.positives += 1;
                    if caught {
                        sc.caught += 1;
                    } else {
                        sc.failures
                            .push(format!("{place}: want a match, got {found:?}: {}", s.line));
                    }
                }
            }
        }
    }
    sc
}

#[test]
fn fail2ban_filters_pass_their_own_samples() {
    let samples = Path::new(common::FAIL2BAN_SAMPLES);
    assert!(
        samples.is_dir() && Path::new(FILTER_DIR).is_dir(),
        "{} or {FILTER_DIR} is missing: install the fail2ban package (apt-get install fail2ban); \
         its filters and sample logs are the yardstick of this test",
        samples.display()
    );
    // `$IPQBDB_FILTERS=sshd,postfix` limits the run while working on one filter.
    let only = std::env::var("IPQBDB_FILTERS").ok();
    let mut names: Vec<String> = std::fs::read_dir(FILTER_DIR)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let n = n.strip_suffix(".conf")?.to_string();
            (n != "common" && samples.join(&n).is_file()).then_some(n)
        })
        .filter(|n| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == n)))
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "no filter with a sample log in {FILTER_DIR}"
    );
    eprintln!(
        "{:<28} {:>6} {:>11} {:>9} {:>6} {:>14}",
        "filter", "result", "positives", "wrong", "names", "regex/fancy"
    );
    let mut passed = 0;
    let mut failing = Vec::new();
    let (mut fast, mut fancy, mut names_total) = (0, 0, 0);
    for n in &names {
        let s = score(n);
        fast += s.engines.0;
        fancy += s.engines.1;
        names_total += s.names;
        eprintln!(
            "{n:<28} {:>6} {:>11} {:>9} {:>6} {:>14}",
            if s.passed() { "pass" } else { "FAIL" },
            format!("{}/{}", s.caught, s.positives),
            format!("{}/{}", s.wrong, s.negatives),
            s.names,
            format!("{}/{}", s.engines.0, s.engines.1),
        );
        if s.passed() {
            passed += 1;
        } else {
            let why = match &s.load_error {
                Some(e) => format!("does not load: {e}"),
                None => format!(
                    "{} failing samples, first: {}",
                    s.failures.len(),
                    s.failures[..s.failures.len().min(3)].join("\n      ")
                ),
            };
            failing.push(format!("{n}: {why}"));
        }
    }
    let share = 100.0 * f64::from(passed) / names.len() as f64;
    eprintln!(
        "\n{passed}/{} filters pass all their samples ({share:.1} %); {names_total} positives \
         naming a host skipped; regexes on the regex crate: {fast}, on fancy-regex: {fancy}",
        names.len()
    );
    for f in &failing {
        eprintln!("failing: {f}");
    }
    if only.is_none() {
        assert!(
            share >= 90.0,
            "{share:.1} % of the filters pass, < 90 %:\n{}",
            failing.join("\n")
        );
    }
}
