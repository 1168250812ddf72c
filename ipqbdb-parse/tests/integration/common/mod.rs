//! What the tests of this crate share: the rule file under test and fail2ban's samples, for the
//! tests of the shipped rules; a directory of files, for the tests that run the program.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipqbdb_core::AddrKey;

use ipqbdb_parse::matcher::RuleSet;
use ipqbdb_parse::rules::RuleMode;

pub mod service_lines;

/// A temporary directory for one test's files (database, rules, logs, configuration), each named by
/// [`Setup::path`]; each test file adds what it does with them.
pub struct Setup {
    pub tmp: tempfile::TempDir,
}

impl Setup {
    pub fn empty() -> Setup {
        Setup {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// The database directory of the programs a test runs.
    pub fn db(&self) -> PathBuf {
        self.path("db")
    }

    /// Writes `text` to the file `name`.
    pub fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }
}

/// fail2ban's annotated sample logs, one file per filter, as the Debian package installs them.
pub const FAIL2BAN_SAMPLES: &str = "/usr/lib/python3/dist-packages/fail2ban/tests/files/logs";

/// The shipped rule file, or (while writing rules) the file `$IPQBDB_RULES` names.
fn rule_path() -> PathBuf {
    std::env::var_os("IPQBDB_RULES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/ipqbdb-pcre.conf"),
        PathBuf::from,
    )
}

/// The rules under test, as `mode` runs them.
pub fn rules(mode: RuleMode) -> RuleSet {
    let path = rule_path();
    let rules =
        ipqbdb_parse::rules::load(&path).unwrap_or_else(|e| panic!("the rules under test: {e}"));
    RuleSet::with_mode(rules, mode).unwrap()
}

/// Evaluates the constraints fail2ban's samples use: `name == 'x'` and `opts.get('mode') == 'x'`
/// (or `!=`), joined by `and`. `mode` is `None` for the filter's default mode.
pub fn constraint_holds(c: &str, service: &str, mode: Option<&str>) -> bool {
    c.split(" and ").all(|part| {
        let part = part.replace(' ', "");
        let (lhs, want, eq) = if let Some((l, r)) = part.split_once("==") {
            (
                l.to_string(),
                r.trim_matches(|c| c == '\'' || c == '"').to_string(),
                true,
            )
        } else if let Some((l, r)) = part.split_once("!=") {
            (
                l.to_string(),
                r.trim_matches(|c| c == '\'' || c == '"').to_string(),
                false,
            )
        } else {
            panic!("unknown constraint {c:?}");
        };
        let have = match lhs.as_str() {
            "name" => Some(service),
            "opts.get('mode')" => mode,
            other => panic!("unknown constraint subject {other:?} in {c:?}"),
        };
        (have == Some(want.as_str())) == eq
    })
}

pub fn same(a: IpAddr, b: &str) -> bool {
    b.parse::<IpAddr>()
        .is_ok_and(|b| AddrKey::exact(a) == AddrKey::exact(b))
}

/// One line of a fail2ban sample log, with the annotations in force, as fail2ban's own sample test
/// reads them: the line right after `# failJSON:` is the sample; other lines that are neither
/// comments nor empty are samples that must not match.
#[derive(Debug, Clone)]
pub struct Annotated {
    pub file: String,
    pub lineno: usize,
    pub line: String,
    pub fail: Option<serde_json::Value>,
    /// The option sets of the `# filterOptions:` block in force (`# fileOptions:` merged in),
    /// those whose `test.condition` fails left out; `None` before any block: the defaults.
    pub options: Option<std::sync::Arc<Vec<serde_json::Map<String, serde_json::Value>>>>,
}

/// Reads fail2ban's sample log `name` (and the files its `# addFILE:` lines add) for filter
/// `filter` (the name `test.condition` sees). Blocks whose last condition fails are skipped.
pub fn read_annotated(name: &str, filter: &str) -> Vec<Annotated> {
    let mut files = vec![name.to_string()];
    let mut out = Vec::new();
    let mut options = None;
    let mut i = 0;
    while i < files.len() {
        let file = files[i].clone();
        i += 1;
        let path = Path::new(FAIL2BAN_SAMPLES).join(&file);
        let text = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: fail2ban's sample logs are the yardstick of these tests \
                 (apt-get install fail2ban)",
                path.display()
            )
        });
        let text = String::from_utf8_lossy(&text).into_owned();
        let mut common = serde_json::Map::new();
        let mut ignore_block = false;
        let mut lines = text.lines().enumerate();
        while let Some((n, line)) = lines.next() {
            let json = |s: &str| -> serde_json::Value {
                serde_json::from_str(s.trim())
                    .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
            };
            let tagged = line
                .trim_start_matches('#')
                .trim_start()
                .split_once(':')
                .filter(|_| line.starts_with('#'));
            let (fail, line, lineno) = match tagged {
                Some(("fileOptions", v)) => {
                    if let serde_json::Value::Object(m) = json(v) {
                        common = m;
                    }
                    continue;
                }
                Some(("addFILE", v)) => {
                    files.push(json(v).as_str().unwrap_or_default().to_string());
                    continue;
                }
                Some(("filterOptions", v)) => {
                    let list = match json(v) {
                        serde_json::Value::Array(a) => a,
                        o => vec![o],
                    };
                    let mut kept = Vec::new();
                    ignore_block = false;
                    for o in list {
                        let mut m = common.clone();
                        if let serde_json::Value::Object(o) = o {
                            m.extend(o);
                        }
                        if let Some(c) = m.get("test.condition").and_then(|c| c.as_str()) {
                            ignore_block = !constraint_holds(c, filter, None);
                        }
                        if !ignore_block {
                            kept.push(m);
                        }
                    }
                    options = Some(std::sync::Arc::new(kept));
                    continue;
                }
                Some(("failJSON", v)) => {
                    let fail = json(v);
                    let Some((m, next)) = lines.next() else { break };
                    (Some(fail), next, m + 1)
                }
                _ if ignore_block || line.starts_with('#') || line.trim().is_empty() => continue,
                _ => (None, line, n + 1),
            };
            if ignore_block {
                continue;
            }
            out.push(Annotated {
                file: file.clone(),
                lineno,
                line: line.trim_end_matches('\r').to_string(),
                fail,
                options: options.clone(),
            });
        }
    }
    out
}
