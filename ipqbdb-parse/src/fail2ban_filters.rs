//! fail2ban filters as a rule source beside the rule file: each filter (read by `ipqbdb-fail2ban`)
//! matches lines as fail2ban 1.0.x does: timestamp cut out (`datepattern`), `prefregex` with its
//! `<F-CONTENT>`, the `failregex` list in order (first match wins), `ignoreregex`, `maxlines`
//! lines seen at once, and `<F-MLFID>` correlation (a connection's lines share what each one
//! learnt: the address, the user names, `<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>`).
//!
//! fail2ban's regexes are Python's. Each is compiled with the `regex` crate when it can (linear
//! time, most of them once `<HOST>` is ours), else with `fancy-regex` (back-references,
//! look-around, conditionals), one regex at a time; `--test` shows which engine each uses. Lines
//! are matched as text: invalid UTF-8 is replaced, so it can neither panic nor hide an address.
//!
//! The address banned is always the `ip4`/`ip6` group of our own `<HOST>` expansion: a filter's
//! other groups (`<F-ID>` text, user names) never choose it, and host names are never resolved.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ipqbdb_core::model::{initial_count, DEFAULT_INITIAL_COUNT};
use ipqbdb_fail2ban::{filter, tags, Error, FilterSpec, Located};
use regex_syntax::ast::{Ast, GroupKind};

/// Compiled size limit per regex (as the rule file's).
const REGEX_SIZE_LIMIT: usize = 8 << 20;
/// fancy-regex's backtracking budget per match: a hostile line costs at most this much work, and
/// then counts as no match.
const BACKTRACK_LIMIT: usize = 100_000;
/// Connections (`<F-MLFID>`) remembered per filter, and for how long.
pub const MLFID_CAPACITY: usize = 10_000;
pub const MLFID_TTL: Duration = Duration::from_secs(600);

/// One regex on the engine it compiled with.
#[derive(Debug, Clone)]
pub enum Engine {
    Fast(regex::Regex),
    /// With the literal text a match must start the line with, if the regex says so (`^Failed `):
    /// the backtracking engine then runs only on lines that can match.
    Fancy(fancy_regex::Regex, Option<String>),
}

/// The named groups of a match that took part in it.
pub type Groups = BTreeMap<String, String>;

impl Engine {
    /// `regex` first, `fancy-regex` when `regex` refuses the syntax.
    pub fn compile(pattern: &str, multiline: bool) -> Result<Engine, String> {
        let fast = regex::RegexBuilder::new(pattern)
            .multi_line(multiline)
            .size_limit(REGEX_SIZE_LIMIT)
            .build();
        match fast {
            Ok(r) => Ok(Engine::Fast(r)),
            Err(regex::Error::CompiledTooBig(_)) => {
                Err(format!("compiles larger than {REGEX_SIZE_LIMIT} bytes"))
            }
            Err(fast_err) => {
                let p = if multiline {
                    format!("(?m){pattern}")
                } else {
                    pattern.to_string()
                };
                fancy_regex::RegexBuilder::new(&p)
                    .backtrack_limit(BACKTRACK_LIMIT)
                    .delegate_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map(|r| {
                        let lit = (!multiline).then(|| anchored_literal(pattern)).flatten();
                        Engine::Fancy(r, lit)
                    })
                    .map_err(|e| {
                        let fast_err = fast_err.to_string();
                        let last = fast_err.lines().last().unwrap_or("").trim();
                        format!("does not compile: {e} (regex crate: {last})")
                    })
            }
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Engine::Fast(_) => "regex",
            Engine::Fancy(..) => "fancy-regex",
        }
    }

    /// The capture groups' names by index (0 is the whole match).
    pub fn capture_names(&self) -> Vec<Option<String>> {
        match self {
            Engine::Fast(r) => r.capture_names().map(|n| n.map(String::from)).collect(),
            Engine::Fancy(r, _) => r.capture_names().map(|n| n.map(String::from)).collect(),
        }
    }

    /// Group `index` of the first match: `None` when nothing matches, `Some(None)` when the group
    /// took no part.
    pub fn group(&self, text: &str, index: usize) -> Option<Option<std::ops::Range<usize>>> {
        match self {
            Engine::Fast(r) => Some(r.captures(text)?.get(index).map(|m| m.range())),
            Engine::Fancy(r, lit) => {
                if lit.as_ref().is_some_and(|l| !text.starts_with(l.as_str())) {
                    return None;
                }
                Some(r.captures(text).ok()??.get(index).map(|m| m.range()))
            }
        }
    }

    pub fn is_match(&self, text: &str) -> bool {
        match self {
            Engine::Fast(r) => r.is_match(text),
            Engine::Fancy(r, lit) => {
                lit.as_ref().is_none_or(|l| text.starts_with(l.as_str()))
                    && r.is_match(text).unwrap_or(false)
            }
        }
    }

    /// The match's span and named groups.
    fn captures(&self, text: &str) -> Option<((usize, usize), Groups)> {
        let mut groups = Groups::new();
        match self {
            Engine::Fast(r) => {
                let c = r.captures(text)?;
                for name in r.capture_names().flatten() {
                    if let Some(m) = c.name(name) {
                        groups.insert(name.to_string(), m.as_str().to_string());
                    }
                }
                let m = c.get(0)?;
                Some(((m.start(), m.end()), groups))
            }
            Engine::Fancy(r, lit) => {
                if lit.as_ref().is_some_and(|l| !text.starts_with(l.as_str())) {
                    return None;
                }
                let c = r.captures(text).ok()??;
                for name in r.capture_names().flatten() {
                    if let Some(m) = c.name(name) {
                        groups.insert(name.to_string(), m.as_str().to_string());
                    }
                }
                let m = c.get(0)?;
                Some(((m.start(), m.end()), groups))
            }
        }
    }

    /// The span of group 1 (a timestamp).
    fn group1(&self, text: &str) -> Option<(usize, usize)> {
        match self {
            Engine::Fast(r) => {
                let mut locs = r.capture_locations();
                r.captures_read(&mut locs, text)?;
                locs.get(1)
            }
            Engine::Fancy(r, _) => {
                let c = r.captures(text).ok()??;
                c.get(1).map(|m| (m.start(), m.end()))
            }
        }
    }
}

/// How a timestamp is found.
enum DateEngine {
    /// `^\W{0,2}(X)`, as the regex X at the start of the line after at most two non-word
    /// characters: found by the DFA alone (capturing group 1 costs most of a line's time).
    LineBegin(regex::Regex),
    /// Any other form: group 1 of the regex.
    Group1(Engine),
}

impl DateEngine {
    fn find(&self, line: &str) -> Option<(usize, usize)> {
        match self {
            DateEngine::Group1(e) => e.group1(line),
            DateEngine::LineBegin(body) => {
                // As many leading non-word characters as the timestamp allows, most first.
                let mut offsets = vec![0];
                for (i, c) in line.char_indices().take(2) {
                    if c.is_alphanumeric() || c == '_' {
                        break;
                    }
                    offsets.push(i + c.len_utf8());
                }
                offsets
                    .into_iter()
                    .rev()
                    .find_map(|k| body.find(&line[k..]).map(|m| (k, k + m.end())))
            }
        }
    }
}

/// A regex of a filter, where it was written and how it runs.
pub struct Compiled {
    pub kind: &'static str,
    pub source: Located,
    pub engine: Engine,
}

/// What a filter's bans get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanParams {
    pub reason: String,
    pub initial_count: u8,
    pub decay: Option<u32>,
}

pub struct ImportedFilter {
    pub spec: FilterSpec,
    pub file: PathBuf,
    pub ban: BanParams,
    pub notes: Vec<String>,
    pub maxlines: usize,
    dates: Vec<DateEngine>,
    pub regexes: Vec<Compiled>,
    /// Indices in `regexes`.
    pref: Option<usize>,
    /// The part of a single-line `prefregex` before its `(?P<content>.+)$`, when that is how it
    /// ends: found by the DFA alone, it says where the content starts, and the prefregex's own
    /// groups (the costly part) are only captured for lines a failregex matches.
    pref_head: Option<regex::Regex>,
    fail: Vec<usize>,
    /// The failregexes on the `regex` crate as one set: one pass tells that none of them matches
    /// a line (most lines), instead of asking each.
    fast_set: Option<regex::RegexSet>,
    ignore: Vec<usize>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The last `maxlines` lines (without their timestamps).
    buffer: VecDeque<String>,
    mlfid: MlfidCache,
}

/// What one line is to a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Miss,
    /// A failure of this address.
    Failure(IpAddr),
    /// Recognised, but not a failure (yet): `<F-NOFAIL>`, or a connection's address still unknown.
    Noted,
    /// A failure whose id is no address (a host name, or an `<F-ID>` that is not one).
    NotAnAddress(String),
}

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
            let engine =
                Engine::compile(&text, multiline).map_err(|e| loc.error(format!("{kind} {e}")))?;
            if kind == "failregex" {
                let names: Vec<String> = match &engine {
                    Engine::Fast(r) => r.capture_names().flatten().map(String::from).collect(),
                    Engine::Fancy(r, _) => r.capture_names().flatten().map(String::from).collect(),
                };
                let has_id = |n: &String| matches!(n.as_str(), "ip4" | "ip6" | "fid" | "mlfid");
                if !names.iter().any(has_id) && !pref_has_id(&f) {
                    return Err(loc.error(format!(
                        "failregex has no <HOST> (nor another address or failure id): {}",
                        loc.text
                    )));
                }
            }
            regexes.push(Compiled {
                kind,
                source: loc.clone(),
                engine,
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
                Some(b) => DateEngine::LineBegin(b),
                None => DateEngine::Group1(Engine::compile(&d, false).map_err(|e| {
                    Error::file(&f.file, format!("datepattern {:?} {e}", f.datepattern))
                })?),
            });
        }
        let fast: Vec<&str> = fail
            .iter()
            .filter_map(|&i| match &regexes[i].engine {
                Engine::Fast(r) => Some(r.as_str()),
                Engine::Fancy(..) => None,
            })
            .collect();
        let fast_set = regex::RegexSetBuilder::new(fast)
            .multi_line(multiline)
            .size_limit(REGEX_SIZE_LIMIT * 4)
            .build()
            .ok();
        let pref_head = pref.and_then(|p| match (&regexes[p].engine, multiline) {
            (Engine::Fast(r), false) => content_head(r.as_str()),
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

    /// The filter's name as its bans and reports show it.
    pub fn name(&self) -> String {
        self.spec.to_string()
    }

    /// Cuts the timestamp out of `line`, as fail2ban does before its regexes run.
    pub fn strip_date<'a>(&self, line: &'a str) -> Cow<'a, str> {
        for d in &self.dates {
            if let Some((s, e)) = d.find(line) {
                if s == e {
                    continue;
                }
                let mut out = String::with_capacity(line.len() - (e - s));
                out.push_str(&line[..s]);
                out.push_str(&line[e..]);
                return Cow::Owned(out);
            }
        }
        Cow::Borrowed(line)
    }

    /// What `line` is (its timestamp still on it).
    pub fn check(&self, line: &str) -> Found {
        let msg = self.strip_date(line);
        self.check_message(&msg)
    }

    /// What a line is whose timestamp was already taken off (journal entries).
    pub fn check_message(&self, msg: &str) -> Found {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        let multiline = self.maxlines > 1;
        let mut buf: Cow<'_, str> = if multiline {
            state.buffer.push_back(msg.to_string());
            while state.buffer.len() > self.maxlines {
                state.buffer.pop_front();
            }
            let mut b = String::new();
            for l in &state.buffer {
                b.push_str(l);
                b.push('\n');
            }
            Cow::Owned(b)
        } else {
            Cow::Borrowed(msg)
        };
        let mut pre = Groups::new();
        // The prefregex's groups are still to be captured from this line (see `pref_head`).
        let mut pre_pending: Option<&str> = None;
        let head_end = self
            .pref_head
            .as_ref()
            .map(|h| h.find(&buf).map(|m| m.end()));
        if let (Some(head_end), Cow::Borrowed(line)) = (head_end, &buf) {
            match head_end {
                None => return Found::Miss,
                Some(end) if end < line.len() => {
                    pre_pending = Some(line);
                    buf = Cow::Borrowed(&line[end..]);
                }
                Some(_) => {}
            }
        }
        if let Some(p) = self.pref.filter(|_| pre_pending.is_none()) {
            let Some((_, mut g)) = self.regexes[p].engine.captures(&buf) else {
                return Found::Miss;
            };
            if let Some(content) = g.remove("content") {
                if multiline {
                    state.buffer.clear();
                    state.buffer.push_back(content.clone());
                }
                buf = Cow::Owned(content);
            }
            pre = g;
        }
        let any_fast = self.fast_set.as_ref().is_none_or(|set| set.is_match(&buf));
        for &i in &self.fail {
            let engine = &self.regexes[i].engine;
            let skip = matches!(engine, Engine::Fast(_)) && !any_fast;
            if skip || !engine.is_match(&buf) {
                continue;
            }
            let Some((span, groups)) = engine.captures(&buf) else {
                continue;
            };
            if self
                .ignore
                .iter()
                .any(|&j| self.regexes[j].engine.is_match(&buf))
            {
                if multiline {
                    drop_matched(&mut state.buffer, &buf, span);
                }
                return Found::Miss;
            }
            if multiline {
                drop_matched(&mut state.buffer, &buf, span);
            }
            if let (Some(line), Some(p)) = (pre_pending, self.pref) {
                if let Some((_, mut g)) = self.regexes[p].engine.captures(line) {
                    g.remove("content");
                    pre = g;
                }
            }
            let mut fail = pre.clone();
            fail.extend(groups);
            merge_alternates(&mut fail);
            let mlfid = fail.get("mlfid").cloned();
            let fail = match &mlfid {
                Some(id) => {
                    let merged = state.mlfid.merge(id, fail);
                    if truthy(&merged, "nofail") {
                        return Found::Noted;
                    }
                    merged
                }
                None => fail,
            };
            let ip = fail.get("ip4").or_else(|| fail.get("ip6"));
            return match ip {
                Some(text) => match text.parse::<IpAddr>() {
                    Ok(ip) => Found::Failure(ip),
                    Err(_) => Found::NotAnAddress(text.clone()),
                },
                None => {
                    if let Some(id) = &mlfid {
                        // The connection's address is not known yet: count it when it is.
                        state.mlfid.set_pending(id);
                        Found::Noted
                    } else if let Some(fid) = fail.get("fid").or_else(|| fail.get("dns")) {
                        match fid.parse::<IpAddr>() {
                            Ok(ip) => Found::Failure(ip),
                            Err(_) => Found::NotAnAddress(fid.clone()),
                        }
                    } else {
                        Found::Noted
                    }
                }
            };
        }
        Found::Miss
    }
}

/// The literal text every match of `pattern` starts the text with (`^Failed (?:...` -> `Failed `),
/// if it is anchored at the start and has no top-level alternative. The pattern is one the regex
/// crate refused (look-around, back-references), so fancy-regex's own parser reads it.
fn anchored_literal(pattern: &str) -> Option<String> {
    use fancy_regex::{Assertion, Expr};
    let Expr::Concat(pieces) = fancy_regex::Expr::parse_tree(pattern).ok()?.expr else {
        return None;
    };
    let (Expr::Assertion(Assertion::StartText), rest) = pieces.split_first()? else {
        return None;
    };
    let lit: String = rest
        .iter()
        .map_while(|p| match p {
            Expr::Literal { val, casei: false } => Some(val.as_str()),
            _ => None,
        })
        .collect();
    (!lit.is_empty()).then_some(lit)
}

/// The pieces every match of `pattern` runs through in order, as the regex crate reads it: `None`
/// when it does not parse or has a top-level alternative, for then no piece is in every match.
fn chain(pattern: &str) -> Option<Vec<Ast>> {
    let mut ast = regex_syntax::ast::parse::Parser::new()
        .parse(pattern)
        .ok()?;
    if let Ast::Concat(c) = &mut ast {
        return Some(std::mem::take(&mut c.asts));
    }
    (!matches!(ast, Ast::Alternation(_))).then(|| vec![ast])
}

/// `^HEAD(?P<content>.+)$` -> `HEAD` compiled, when HEAD is a whole regex of its own.
fn content_head(pattern: &str) -> Option<regex::Regex> {
    let head = pattern.strip_suffix("(?P<content>.+)$")?;
    // A chain of its own: the content group is not inside another group nor one alternative.
    chain(head)?;
    regex::RegexBuilder::new(head)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// For a date regex of the `{^LN-BEG}` form `^\W{0,2}(X)` (whose group 1 is all of X), X: the
/// timestamp is then X matched at the start of the line, after at most two non-word characters (as
/// many as X allows, most first), which a matcher can find without capturing groups.
fn line_begin_body(regex: &str) -> Option<&str> {
    let rest = regex.strip_prefix(r"^\W{0,2}")?;
    let pieces = chain(rest)?;
    let [Ast::Group(g)] = pieces.as_slice() else {
        return None;
    };
    if !matches!(g.kind, GroupKind::CaptureIndex(_)) || has_unnamed_group(&g.ast) {
        return None;
    }
    let span = g.ast.span();
    Some(&rest[span.start.offset..span.end.offset])
}

/// Whether `ast` holds an unnamed group: datepattern wraps only a body without one (with one, the
/// body's own group 1 is the date), so such a body is left to the general engine.
fn has_unnamed_group(ast: &Ast) -> bool {
    match ast {
        Ast::Group(g) => matches!(g.kind, GroupKind::CaptureIndex(_)) || has_unnamed_group(&g.ast),
        Ast::Repetition(r) => has_unnamed_group(&r.ast),
        Ast::Alternation(a) => a.asts.iter().any(has_unnamed_group),
        Ast::Concat(c) => c.asts.iter().any(has_unnamed_group),
        _ => false,
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

/// Removes the lines a multi-line match used from the buffer (fail2ban keeps the others).
fn drop_matched(buffer: &mut VecDeque<String>, buf: &str, (start, end): (usize, usize)) {
    let first = buf[..start].matches('\n').count();
    // (`start` and `end` are the regex's, so both are character boundaries.)
    let last = buf[..end.max(start)]
        .trim_end_matches('\n')
        .matches('\n')
        .count();
    let last = last.max(first);
    for _ in first..=last.min(buffer.len().saturating_sub(1)) {
        if first < buffer.len() {
            buffer.remove(first);
        }
    }
}

/// fail2ban's `alt_` groups: `alt_user` (or `alt_user_2`) fills `user` when that is empty.
fn merge_alternates(fail: &mut Groups) {
    let alts: Vec<(String, String)> = fail
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("alt_")?;
            let n = n
                .rsplit_once('_')
                .filter(|(_, d)| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                .map_or(n, |(a, _)| a);
            Some((n.to_string(), v.clone()))
        })
        .collect();
    for (n, v) in alts {
        if !v.is_empty() && !truthy(fail, &n) {
            fail.insert(n, v);
        }
    }
}

fn truthy(g: &Groups, k: &str) -> bool {
    g.get(k).is_some_and(|v| !v.is_empty())
}

/// What fail2ban remembers per connection (`<F-MLFID>`): the groups its lines matched so far, the
/// user names tried, and whether a failure waits for the address.
struct Connection {
    groups: Groups,
    users: std::collections::BTreeSet<String>,
    pending: bool,
    seen: Instant,
    seq: u64,
}

/// Bounded in count (oldest first out) and in time, like the session table of `sessions`.
#[derive(Default)]
struct MlfidCache {
    map: HashMap<String, Connection>,
    order: VecDeque<(String, u64)>,
    seq: u64,
}

impl MlfidCache {
    fn expire(&mut self, now: Instant) {
        while self.map.len() > MLFID_CAPACITY
            || self.order.front().is_some_and(|(k, s)| {
                self.map
                    .get(k)
                    .is_some_and(|c| c.seq == *s && now.duration_since(c.seen) > MLFID_TTL)
            })
        {
            let Some((k, s)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|c| c.seq == s) {
                self.map.remove(&k);
            }
        }
        // Entries whose key was touched again since are stale.
        while self
            .order
            .front()
            .is_some_and(|(k, s)| self.map.get(k).is_none_or(|c| c.seq != *s))
        {
            self.order.pop_front();
        }
    }

    fn touch(&mut self, id: &str, now: Instant) {
        self.seq += 1;
        if let Some(c) = self.map.get_mut(id) {
            c.seen = now;
            c.seq = self.seq;
            self.order.push_back((id.to_string(), self.seq));
        }
        // One connection's many lines leave stale entries behind a live one at the front: keep
        // the queue within a bound of the table.
        if self.order.len() > 2 * self.map.len() + 1024 {
            let mut live: Vec<(String, u64)> =
                self.map.iter().map(|(k, c)| (k.clone(), c.seq)).collect();
            live.sort_unstable_by_key(|(_, s)| *s);
            self.order = live.into();
        }
    }

    fn set_pending(&mut self, id: &str) {
        if let Some(c) = self.map.get_mut(id) {
            c.pending = true;
        }
    }

    /// fail2ban's `_mergeFailure`: what the connection `id` amounts to with this line's groups.
    fn merge(&mut self, id: &str, mut fail: Groups) -> Groups {
        let now = Instant::now();
        self.expire(now);
        let mut flags = 0u8;
        if let Some(g) = fail.get("mlfgained").filter(|v| !v.is_empty()).cloned() {
            flags |= 8 | 1;
            if !truthy(&fail, "nofail") {
                fail.insert("nofail".into(), g);
            }
        } else if truthy(&fail, "nofail") {
            flags |= 1;
        }
        if fail.remove("mlfforget").is_some_and(|v| !v.is_empty()) {
            flags |= 2;
        }
        let user = fail.get("user").filter(|u| !u.is_empty()).cloned();
        // A connection id that comes back with another address is a new connection (a reused
        // pid), as in `sessions`: nothing of the old one (its users, its failures) carries over.
        // fail2ban forgets it only by count (100 ids) or age.
        let addr = |g: &Groups| g.get("ip4").or_else(|| g.get("ip6")).cloned();
        if let (Some(new), Some(c)) = (addr(&fail), self.map.get(id)) {
            if addr(&c.groups).is_some_and(|old| old != new) {
                self.map.remove(id);
            }
        }
        let (mut merged, pending, users) = if let Some(c) = self.map.get_mut(id) {
            if let Some(u) = user {
                c.users.insert(u);
            }
            if c.groups.remove("nofail").is_some() {
                flags |= 4;
            }
            if c.groups.remove("mlfgained").is_some() {
                flags |= 4;
            }
            if flags & 8 != 0 {
                c.pending = false;
            }
            c.groups.extend(fail);
            let pending = std::mem::take(&mut c.pending);
            let users = c.users.len();
            let merged = c.groups.clone();
            if flags & 2 != 0 {
                self.map.remove(id);
            } else {
                self.touch(id, now);
            }
            (merged, pending, users)
        } else {
            let users: std::collections::BTreeSet<String> = user.into_iter().collect();
            let n = users.len();
            if flags & 2 == 0 {
                self.seq += 1;
                self.map.insert(
                    id.to_string(),
                    Connection {
                        groups: fail.clone(),
                        users,
                        pending: false,
                        seen: now,
                        seq: self.seq,
                    },
                );
                self.order.push_back((id.to_string(), self.seq));
            }
            (fail, false, n)
        };
        if pending || users > 1 {
            // Failures already pending, or several user names tried: no longer a non-failure.
            merged.remove("nofail");
            merged.remove("mlfgained");
            if let Some(c) = self.map.get_mut(id) {
                c.groups.remove("nofail");
                c.groups.remove("mlfgained");
            }
        }
        merged
    }
}

/// The rule that stands for `f` in a rule set: its reason, count and decay; its regex matches
/// nothing (the filter matches).
pub fn rule_for(f: &ImportedFilter) -> crate::rules::Rule {
    crate::rules::Rule {
        source: f.name(),
        regex: crate::rules::never().clone(),
        backtrack: None,
        group: crate::rules::AddrGroup::Named,
        reason: f.ban.reason.clone(),
        reason_id: None,
        initial_count: f.ban.initial_count,
        input: None,
        database: None,
        decay: f.ban.decay,
        line: 0,
        mode: crate::rules::Mode::Normal,
        attempt: crate::rules::Attempt::Single,
        note_only: false,
        tags: Vec::new(),
        twin: None,
    }
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

/// The filters a rule set runs beside its rules; their rules in the set start at `first_rule`.
pub struct Imported {
    pub filters: Vec<ImportedFilter>,
    pub first_rule: usize,
}

impl Imported {
    /// Runs every filter on the line (each keeps its own multi-line state); the first failure
    /// found is the line's outcome.
    pub fn check(&self, line: &[u8]) -> crate::matcher::Outcome {
        use crate::matcher::Outcome;
        let text = String::from_utf8_lossy(line);
        let mut outcome = Outcome::Miss;
        for (i, f) in self.filters.iter().enumerate() {
            let found = f.check(&text);
            if outcome != Outcome::Miss {
                continue;
            }
            outcome = match found {
                Found::Failure(ip) => Outcome::Hit {
                    rule: self.first_rule + i,
                    ip: Some(ip),
                    repeat: 1,
                    session: None,
                },
                Found::NotAnAddress(text) => Outcome::BadAddress {
                    rule: self.first_rule + i,
                    text,
                },
                Found::Miss | Found::Noted => Outcome::Miss,
            };
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(dir: &Path, name: &str, text: &str) -> ImportedFilter {
        std::fs::write(dir.join(format!("{name}.conf")), text).unwrap();
        ImportedFilter::load(dir, &name.parse().unwrap()).unwrap()
    }

    #[test]
    fn dates_prefregex_and_engines() {
        let tmp = tempfile::tempdir().unwrap();
        let f = filter(
            tmp.path(),
            "svc",
            "[Definition]\nprefregex = ^\\s*\\S+ svc\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-CONTENT>.+</F-CONTENT>$\nfailregex = ^bad (?P<q>')?user <F-USER>\\S+</F-USER>(?(q)') from <HOST>$\n            ^<F-NOFAIL>connect from <HOST></F-NOFAIL>$\n            ^too many failures$\nignoreregex = from 192\\.0\\.2\\.99$\n",
        );
        let engines: Vec<&str> = f.regexes.iter().map(|r| r.engine.name()).collect();
        assert_eq!(engines, ["regex", "fancy-regex", "regex", "regex", "regex"]);
        let ip = |s: &str| Found::Failure(s.parse().unwrap());
        assert_eq!(
            f.check("Nov 21 10:00:00 gw svc[7]: bad 'user x' from 192.0.2.1"),
            ip("192.0.2.1")
        );
        assert_eq!(
            f.check("Nov 21 10:00:00 gw svc[7]: bad 'user x from 192.0.2.1"),
            Found::Miss
        );
        assert_eq!(
            f.check("Nov 21 10:00:00 gw svc[7]: bad user x from 192.0.2.99"),
            Found::Miss
        );
        // A connection's address comes from an earlier line.
        assert_eq!(
            f.check("Nov 21 10:00:01 gw svc[8]: connect from 192.0.2.2"),
            Found::Noted
        );
        assert_eq!(
            f.check("Nov 21 10:00:02 gw svc[8]: too many failures"),
            ip("192.0.2.2")
        );
        assert_eq!(
            f.check("Nov 21 10:00:02 gw svc[9]: too many failures"),
            Found::Noted
        );
        assert_eq!(
            f.check("2026-11-21T10:00:00+01:00 gw svc[70]: bad user y from 2001:db8::1"),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn connection_table_stays_bounded() {
        let mut c = MlfidCache::default();
        let g = |ip: &str| Groups::from([("ip4".to_string(), ip.to_string())]);
        c.merge("first", g("192.0.2.1"));
        for _ in 0..10_000 {
            c.merge("busy", g("192.0.2.2"));
        }
        assert!(c.order.len() <= 2 * c.map.len() + 1024, "{}", c.order.len());
        for i in 0..(MLFID_CAPACITY + 10) {
            c.merge(&format!("id{i}"), g("192.0.2.3"));
        }
        assert!(c.map.len() <= MLFID_CAPACITY + 1, "{}", c.map.len());
    }

    #[test]
    fn literal_prefixes() {
        assert_eq!(
            anchored_literal(r"^Failed \S+ for").as_deref(),
            Some("Failed ")
        );
        assert_eq!(anchored_literal(r"^ab?c").as_deref(), Some("a"));
        assert_eq!(anchored_literal(r"^a\.b(?i)x").as_deref(), Some("a.b"));
        assert_eq!(anchored_literal(r"^a|b"), None);
        assert_eq!(anchored_literal(r"a"), None);
        assert_eq!(anchored_literal(r"^[iI]x"), None);
        assert_eq!(anchored_literal(r"^(?i)abc"), None);
    }

    #[test]
    fn line_begin_bodies() {
        use ipqbdb_fail2ban::datepattern::regexes;
        let r = regexes(Some("^%Y-%m-%d %H:%M:%S\n{^LN-BEG}Epoch"));
        assert_eq!(line_begin_body(&r[1]), Some(r"\d{10}(?:\.\d{1,9})?"));
        assert_eq!(line_begin_body(&r[0]), None);
        assert!(line_begin_body(&regexes(None)[0]).is_some());
        assert_eq!(line_begin_body(r"^\W{0,2}(a)(b)"), None);
        assert_eq!(line_begin_body(r"^\W{0,2}(?:a)"), None);
        assert_eq!(line_begin_body(r"^\W{0,2}(a(b))"), None);
        assert_eq!(line_begin_body(r"^\W{0,2}([)]b)"), Some("[)]b"));
    }

    #[test]
    fn content_heads() {
        let head = |p: &str| content_head(p).map(|r| r.as_str().to_string());
        assert_eq!(
            head(r"^(?:a|b) x(?P<content>.+)$").as_deref(),
            Some(r"^(?:a|b) x")
        );
        assert_eq!(head(r"^a|b(?P<content>.+)$"), None);
        assert_eq!(head(r"^(a(?P<content>.+)$)"), None);
        assert_eq!(head(r"^[(]\((?P<content>.+)$").as_deref(), Some(r"^[(]\("));
        assert_eq!(head(r"^a(?P<content>.*)$"), None);
    }

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
