//! The rule file: one rule per line,
//!
//! ```text
//! DELIM regex DELIM  I  "reason"  [initial-count]  [filename]  [decay]
//! ```
//!
//! with any delimiter, `-` as a placeholder for an optional field, and `#` comments: ipqbdb 2.x's
//! syntax, whose files keep their meaning. `<HOST>` in the regex stands for an IPv4 or IPv6 address
//! captured as the group `IP`. `I` says where the address is: `*` (the `<HOST>` group), `-` (a group
//! the rule names `IP` itself), a group number, or `@` (the address the same process logged earlier
//! in this session, see `sessions`). A reason that is a number is the id of a reason already in the
//! database (as in 2.x), resolved when the daemon opens it. `filename` was 2.x's block database for
//! the rule; there is one database now, so it is read and set aside (the daemon says so at start).
//!
//! A regex the `regex` crate refuses for PCRE-only syntax (look-around, back-references, atomic
//! groups, possessive quantifiers, `\K`, `(?'name'...)`) runs on `fancy-regex`, a backtracking
//! engine, for that rule only, as the fail2ban filters do (`hybrid_regex::HybridRegex`, with its
//! backtracking budget per line); the line is then matched as text (invalid UTF-8 replaced), and its
//! address group is still validated as an address. `--test` names such rules.
//!
//! Options may follow the reason, anywhere among the positional fields, as `name=value`:
//!
//! - `tag=sshd,sshd-session`: the line must come from one of these programs (the syslog tag, with or
//!   without `[pid]`, right after the timestamp and host), and the regex matches the message from its
//!   first byte. Nothing a client writes into a message can then make the rule fire for another
//!   program, or move where the message starts. The pid names the session (`sessions`).
//! - `mode=normal|ddos|aggressive`: the set the rule belongs to (default `normal`). The daemon runs
//!   `normal` unless configured otherwise; `ddos` adds the `ddos` rules; `aggressive` runs all.
//! - `attempt=start|end|close`: the line is one step of an authentication attempt that the service
//!   logs on several lines. The first line of an attempt bans; its other lines are folded into it
//!   (reported, not banned again). `start` opens an attempt in the session, `end` closes it.
//!   `close` ends the session's attempts (MaxAuthTries reached, a disconnect, a summary of N tries):
//!   it bans only the tries the session has not banned yet, so a line that sums up tries already
//!   caught adds nothing, and one about a session never seen still counts.
//! - A group named `TRIES` (digits) says how many tries the line stands for (dovecot's `auth failed,
//!   3 attempts`); a group named `SESSION` names the session instead of the syslog pid (dovecot's
//!   `<session id>`, written by its login and auth processes alike), so the lines of one client's
//!   connection meet in one session across processes.
//! - `twin=NAME/SIDE`: the line records the same event as a line of a rule of another SIDE of NAME,
//!   written to another file (nginx's error and access logs, dovecot's log and PAM's line in
//!   auth.log): for one address, what one side banned is not banned again by the other, in
//!   whichever order the files are read.
//! - `ban=no`: the line is recognised and its address noted for the session, but never banned (a
//!   line that repeats what another line of the same attempt says, or names the client before the
//!   failure does).
//! - `input=PATH`: only lines of this followed file (by path or file name); FIFO, standard input
//!   and journal lines never match the rule.
//!
//! Rules match bytes with Unicode classes off: `\S`, `.` and `\w` see bytes, so invalid UTF-8 that
//! an attacker puts in a user name cannot make a rule skip the line (with Unicode classes, `\S+`
//! does not match an invalid byte), and the automata stay small and fast.
//!
//! Every error names file, line and column, and a rule file with any error is refused as a whole: a
//! daemon running half a rule set would silently stop catching an attack.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use ipqbdb_core::model::{initial_count, DEFAULT_INITIAL_COUNT};
use ipqbdb_core::{parse_ban_decay, ReasonId};
use regex::bytes::Regex;

use crate::hybrid_regex::HybridRegex;
use thiserror::Error;

/// The `<HOST>` macro: IPv4, or anything IPv6-shaped (validated after matching), with an optional zone
/// index outside the group (sshd logs `fe80::1%eth0`). Brackets around IPv6 stay outside too.
pub const HOST_PATTERN: &str = r"(?P<IP>(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*[0-9A-Fa-f])(?:%[\w.\-]+)?";
const HOST_MACRO: &str = "<HOST>";
/// Compiled size limit per rule: generous for real rules, a wall for pathological ones.
const REGEX_SIZE_LIMIT: usize = 2 << 20;

/// Shown as `FILE:LINE:COLUMN: message`, or `FILE: message` when the error has no line (the file
/// cannot be read).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{}: {message}", file.display(), place(*line, *column))]
pub struct RuleError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

fn place(line: usize, column: usize) -> String {
    match (line, column) {
        (0, _) => String::new(),
        (l, 0) => format!(":{l}"),
        (l, c) => format!(":{l}:{c}"),
    }
}

/// Where a rule finds the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrGroup {
    Named,
    Index(usize),
    /// The session's address (`@`).
    Session,
}

/// The rule sets a daemon can run, as fail2ban's filter modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum RuleMode {
    /// The conservative default: signs of an attack that a legitimate client does not produce.
    #[default]
    Normal,
    /// Adds noisy signs that floods and scanners produce (connections dropped before authentication).
    Ddos,
    /// Every rule.
    Aggressive,
}

impl RuleMode {
    pub fn name(self) -> &'static str {
        match self {
            RuleMode::Normal => "normal",
            RuleMode::Ddos => "ddos",
            RuleMode::Aggressive => "aggressive",
        }
    }

    /// Whether a daemon running `self` runs a rule of mode `rule`.
    pub fn includes(self, rule: RuleMode) -> bool {
        match self {
            RuleMode::Normal => rule == RuleMode::Normal,
            RuleMode::Ddos => rule != RuleMode::Aggressive,
            RuleMode::Aggressive => true,
        }
    }
}

impl std::str::FromStr for RuleMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "normal" => Ok(RuleMode::Normal),
            "ddos" => Ok(RuleMode::Ddos),
            "aggressive" => Ok(RuleMode::Aggressive),
            _ => Err(format!("unknown mode {s:?} (normal, ddos or aggressive)")),
        }
    }
}

impl std::fmt::Display for RuleMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A rule's step in a multi-line authentication attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A line of its own: always bans.
    Single,
    /// Opens an attempt (bans unless one is open for the address in this session).
    Start,
    /// Closes the attempt (bans unless one was open for the address in this session).
    End,
    /// Ends the session's attempts: bans the tries (1, or its `TRIES`) the session has not banned.
    Close,
}

#[derive(Debug, Clone)]
pub struct Rule {
    /// The regex as written (before `<HOST>` expansion), for messages.
    pub source: String,
    /// The rule's regex; for a rule on the backtracking engine, one that never matches (so the
    /// sets of regexes that screen lines never pick it).
    pub regex: Regex,
    /// The backtracking engine, for a regex the `regex` crate refuses.
    pub backtrack: Option<Arc<HybridRegex>>,
    pub group: AddrGroup,
    /// The reason's text, or, while `reason_id` is set, the id as written.
    pub reason: String,
    /// A numeric reason field: the id of a reason in the database, not yet resolved to its text
    /// ([`resolve_reasons`]).
    pub reason_id: Option<ReasonId>,
    pub initial_count: u8,
    /// Only lines from this input (`input=`; `None`: every input).
    pub input: Option<String>,
    /// The fifth field, 2.x's block database for the rule: kept to be named at start, else unused.
    pub database: Option<String>,
    pub decay: Option<u32>,
    /// Line in the rule file, for messages.
    pub line: usize,
    pub mode: RuleMode,
    pub attempt: Attempt,
    /// `ban=no`: recognised and noted for the session, never banned.
    pub note_only: bool,
    /// The programs (syslog tags) whose lines the rule reads; empty: any line.
    pub tags: Vec<String>,
    /// `twin=NAME/SIDE`: lines of rules of NAME's other sides record the same events.
    pub twin: Option<String>,
}

impl Rule {
    /// How reports and metrics name the rule: its line in the rule file, or, for a rule that
    /// stands for something loaded from elsewhere (line 0: a fail2ban filter), that thing's name,
    /// so two such rules with one reason stay apart.
    pub fn label(&self) -> String {
        if self.line == 0 {
            self.source.clone()
        } else {
            self.line.to_string()
        }
    }

    /// The capture group that holds the address; `None` for a rule that takes the session's.
    pub fn address_group(&self) -> Option<usize> {
        match self.group {
            AddrGroup::Named => match &self.backtrack {
                Some(e) => e
                    .capture_names()
                    .iter()
                    .position(|n| n.as_deref() == Some("IP")),
                None => self.regex.capture_names().position(|n| n == Some("IP")),
            },
            AddrGroup::Index(n) => Some(n),
            AddrGroup::Session => None,
        }
    }

    /// The expanded pattern, as compiled.
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    /// The reason as messages show it: its text, or `reason id N` before the database named it.
    pub fn reason_label(&self) -> std::borrow::Cow<'_, str> {
        match self.reason_id {
            Some(id) => format!("reason id {id}").into(),
            None => self.reason.as_str().into(),
        }
    }

    /// The crate the rule's regex runs on (`regex` or `fancy-regex`), for `--test`.
    pub fn regex_kind(&self) -> &'static str {
        self.backtrack.as_ref().map_or("regex", |e| e.name())
    }

    /// Whether this rule applies to lines of `input` (a followed file's path, or `None` for the FIFO
    /// and standard input). A rule names a file by path or by file name.
    pub fn applies_to(&self, input: Option<&Path>) -> bool {
        match (&self.input, input) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(want), Some(path)) => {
                Path::new(want) == path || path.file_name().is_some_and(|n| n == want.as_str())
            }
        }
    }
}

/// Reads and parses a rule file.
pub fn load(path: &Path) -> Result<Vec<Rule>, RuleError> {
    let text = std::fs::read(path).map_err(|e| RuleError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        message: e.to_string(),
    })?;
    let text = String::from_utf8(text).map_err(|e| {
        let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = upto.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = upto.rsplit(|&b| b == b'\n').next().map_or(0, |l| l.len()) + 1;
        RuleError {
            file: path.to_path_buf(),
            line,
            column,
            message: "not UTF-8 text".into(),
        }
    })?;
    parse(&text, path)
}

/// Parses rule-file text; `path` names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Rule>, RuleError> {
    let mut rules = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(rule) = parse_line(line, i + 1).map_err(|(column, message)| RuleError {
            file: path.to_path_buf(),
            line: i + 1,
            column,
            message,
        })? {
            rules.push(rule);
        }
    }
    Ok(rules)
}

type LineError = (usize, String);

fn parse_line(line: &str, lineno: usize) -> Result<Option<Rule>, LineError> {
    let chars: Vec<char> = line.chars().collect();
    let mut pos = skip_space(&chars, 0);
    if pos == chars.len() || chars[pos] == '#' {
        return Ok(None);
    }
    let delim = chars[pos];
    if delim.is_alphanumeric() || delim == '\\' || delim == '"' {
        return Err((pos + 1, format!("{delim:?} cannot delimit a regex")));
    }
    let open = pos;
    let regex_col = pos + 2;
    pos += 1;
    let mut source = String::new();
    let keep_escape = regex_syntax::is_meta_character(delim);
    loop {
        match chars.get(pos) {
            None => return Err((open + 1, format!("no closing {delim:?} for this regex"))),
            Some(&c) if c == delim => break,
            Some('\\') if chars.get(pos + 1) == Some(&delim) => {
                if keep_escape {
                    source.push('\\');
                }
                source.push(delim);
                pos += 2;
            }
            Some('\\') if pos + 1 < chars.len() => {
                source.push('\\');
                source.push(chars[pos + 1]);
                pos += 2;
            }
            Some(&c) => {
                source.push(c);
                pos += 1;
            }
        }
    }
    pos += 1;
    if source.is_empty() {
        return Err((open + 1, "empty regex".into()));
    }
    let all_fields = split_fields(&chars, pos)?;
    // `name=value` fields after the reason are options; the rest are positional.
    let (options, fields): (Vec<_>, Vec<_>) = all_fields
        .into_iter()
        .enumerate()
        .partition(|(i, (_, text))| *i >= 2 && text.contains('=') && !text.starts_with('/'));
    let fields: Vec<(usize, String)> = fields.into_iter().map(|(_, f)| f).collect();
    let field = |i: usize| fields.get(i).map(|(col, text)| (*col, text.as_str()));
    let opts = parse_options(options.into_iter().map(|(_, f)| f))?;

    let has_host = source.matches(HOST_MACRO).count();
    if has_host > 1 {
        return Err((regex_col, "<HOST> may appear only once".into()));
    }
    let mut expanded = source.replace(HOST_MACRO, HOST_PATTERN);
    if !opts.tags.is_empty() {
        // A tagged rule reads the message only (see `header`): it starts where the message does.
        expanded = format!("^(?:{expanded})");
    }
    let (regex, backtrack) = compile(&source, &expanded, regex_col)?;
    let names: Vec<Option<String>> = match &backtrack {
        Some(e) => e.capture_names(),
        None => regex.capture_names().map(|n| n.map(String::from)).collect(),
    };

    let (icol, ifield) = field(0).ok_or((
        chars.len() + 1,
        "missing the address field I (*, - or a group number)".to_string(),
    ))?;
    let group = match ifield {
        "@" if opts.tags.is_empty() => {
            return Err((
                icol,
                "I is @ (the session's address) but the rule has no tag= to name the session"
                    .into(),
            ))
        }
        "@" if opts.note_only => {
            return Err((icol, "a ban=no rule must name an address, not @".into()))
        }
        "@" => AddrGroup::Session,
        "*" if has_host == 1 => AddrGroup::Named,
        "*" => return Err((icol, "I is * but the regex has no <HOST>".into())),
        "-" if names.iter().any(|n| n.as_deref() == Some("IP")) => AddrGroup::Named,
        "-" => return Err((icol, "I is - but the regex has no group named IP".into())),
        n => match n.parse::<usize>() {
            Ok(n) if n >= 1 && n < names.len() => AddrGroup::Index(n),
            Ok(n) => {
                return Err((
                    icol,
                    format!(
                        "group {n} does not exist (the regex has {})",
                        names.len() - 1
                    ),
                ))
            }
            Err(_) => {
                return Err((
                    icol,
                    format!("I must be *, -, @ or a group number, not {n:?}"),
                ))
            }
        },
    };
    let (rcol, reason) = field(1).ok_or((chars.len() + 1, "missing the reason".to_string()))?;
    if reason.is_empty() || reason == "-" {
        return Err((rcol, "the reason may not be empty".into()));
    }
    if reason.len() > ipqbdb_store::MAX_REASON_LEN {
        return Err((
            rcol,
            format!(
                "the reason is longer than {} bytes",
                ipqbdb_store::MAX_REASON_LEN
            ),
        ));
    }
    // A number is a reason id, as in 2.x ("if it's not a numeric key already").
    let reason_id = match reason.parse::<ReasonId>() {
        Ok(0) => return Err((rcol, "reason id 0 does not exist (ids start at 1)".into())),
        Ok(id) if reason.bytes().all(|b| b.is_ascii_digit()) => Some(id),
        _ => None,
    };
    let initial_count = match field(2) {
        None | Some((_, "-")) => DEFAULT_INITIAL_COUNT,
        Some((col, text)) => text
            .parse::<u32>()
            .ok()
            .and_then(|c| initial_count(c).ok())
            .ok_or((col, format!("initial count must be 0 to 31, not {text:?}")))?,
    };
    let database = match field(3) {
        None | Some((_, "-")) => None,
        Some((_, text)) => Some(text.to_string()),
    };
    let decay = match field(4) {
        None | Some((_, "-")) => None,
        // "Never block" is the whitelist's job: a ban with no decay would become 50 % on its
        // second offence.
        Some((col, text)) => Some(parse_ban_decay(text).map_err(|e| (col, e.to_string()))?),
    };
    if let Some((col, text)) = field(5) {
        return Err((col, format!("unexpected {text:?} after the decay")));
    }
    Ok(Some(Rule {
        source,
        regex,
        backtrack,
        group,
        reason: reason.to_string(),
        reason_id,
        initial_count,
        input: opts.input,
        database,
        decay,
        line: lineno,
        mode: opts.mode,
        attempt: opts.attempt.unwrap_or(Attempt::Single),
        note_only: opts.note_only,
        tags: opts.tags,
        twin: opts.twin,
    }))
}

/// The `name=value` options of one rule line.
#[derive(Default)]
struct RuleOptions {
    mode: RuleMode,
    attempt: Option<Attempt>,
    note_only: bool,
    tags: Vec<String>,
    input: Option<String>,
    twin: Option<String>,
}

fn parse_options(fields: impl Iterator<Item = (usize, String)>) -> Result<RuleOptions, LineError> {
    let mut o = RuleOptions::default();
    let mut seen = Vec::new();
    for (col, text) in fields {
        let (name, value) = text.split_once('=').unwrap_or((&text, ""));
        if seen.contains(&name.to_string()) {
            return Err((col, format!("option {name} given twice")));
        }
        seen.push(name.to_string());
        match name {
            "mode" => o.mode = value.parse().map_err(|e| (col, e))?,
            "attempt" => {
                o.attempt = Some(match value {
                    "start" => Attempt::Start,
                    "end" => Attempt::End,
                    "close" => Attempt::Close,
                    _ => {
                        return Err((
                            col,
                            format!("attempt must be start, end or close, not {value:?}"),
                        ))
                    }
                })
            }
            "ban" => {
                o.note_only = match value {
                    "no" => true,
                    "yes" => false,
                    _ => return Err((col, format!("ban must be yes or no, not {value:?}"))),
                }
            }
            "input" if value.is_empty() => {
                return Err((col, "input= needs a file (a path or a file name)".into()))
            }
            "input" => o.input = Some(value.to_string()),
            "twin"
                if !value
                    .split_once('/')
                    .is_some_and(|(n, s)| !n.is_empty() && !s.is_empty()) =>
            {
                return Err((
                    col,
                    format!("twin must be NAME/SIDE (http-auth/access), not {value:?}"),
                ))
            }
            "twin" => o.twin = Some(value.to_string()),
            "tag" => {
                for t in value.split(',') {
                    let ok = !t.is_empty()
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
                    if !ok {
                        return Err((
                            col,
                            format!("{t:?} is not a program name (letters, digits, - _ . /)"),
                        ));
                    }
                    o.tags.push(t.to_string());
                }
            }
            _ => {
                return Err((
                    col,
                    format!("unknown option {name:?} (mode, attempt, ban, tag, input or twin)"),
                ))
            }
        }
    }
    if o.attempt.is_some() && o.tags.is_empty() {
        let col = 1;
        return Err((col, "attempt= needs tag=: an attempt is followed by the session of the program that logs it".into()));
    }
    Ok(o)
}

/// Syslog timestamps as files and the journal write them: `Nov  3 10:00:00` (optionally with a
/// fraction and a year), ISO 8601 (`2026-11-03T10:00:00.123+01:00`, also with a space), and
/// daemontools' TAI64N label.
const TIMESTAMP: &str = r"(?:[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?:\.\d+)?(?: \d{4})?|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?|@[0-9a-f]{24})";

/// The start of a syslog line up to its message: an optional priority (`<13>`, with RFC 5424's
/// version), timestamp (socklog's `facility.level:` and a second timestamp may follow), up to two
/// plain words (the host; some daemons add a facility such as `auth.info` or a relay address), then
/// the program's tag as `prog[pid]:`, `prog[pid]`, `prog:`, `[prog]` (captured as `BTAG`: it has no
/// pid, so no session) or RFC 5424's `prog PROCID MSGID SD`, and Solaris' `[ID n facility]`. The
/// program is captured as `TAG`, its pid as `PID` (or `PID5` in RFC 5424). Anchored at the start of
/// the line, and no word before the tag may contain `[`, `]` or `:`, so another program's tag, or
/// anything after it, can never stand in for the tag: a rule with `tag=` runs only on lines whose
/// tag is one of its programs, from the first byte of the message. Built for the programs `tags`
/// that a rule set names, so a line of any other program (the kernel, cron) costs one short search.
pub fn header(tags: &[&str]) -> Regex {
    let mut names: Vec<String> = tags.iter().map(|t| regex_syntax::escape(t)).collect();
    names.sort();
    names.dedup();
    header_for(&format!("(?:{})", names.join("|")))
}

/// The header pattern with `names` (a regex) standing for the program's name.
fn header_for(names: &str) -> Regex {
    let part = TAG_PART.replace(TAG_NAME, names);
    compile_builtin(&format!(
        r"^(?:<\d{{1,3}}>(?:1 )?)?(?:{TIMESTAMP}\s+)?(?:[a-z0-9]+\.[a-z]+:\s+(?:{TIMESTAMP}\s+)?)?(?:[^\s\[\]:]+\s+){{0,2}}{part}"
    ))
}

/// The tag at the end of a header [`header`] found, with its captures: matched backwards from the
/// end of the header (a search anchored at the end), so it costs a few bytes, not the line.
pub fn header_tag() -> &'static Regex {
    static TAG: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    TAG.get_or_init(|| compile_builtin(&format!("{TAG_PART}$").replace(TAG_NAME, TAG_CHARS)))
}

/// The syslog header of any program, as [`header`] finds it for the programs it is built for.
pub fn any_header() -> &'static Regex {
    static ANY: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    ANY.get_or_init(|| header_for(TAG_CHARS))
}

/// Where the program's name goes in [`TAG_PART`], and what a name may be.
const TAG_NAME: &str = "{NAME}";
const TAG_CHARS: &str = "[A-Za-z0-9_./-]+";

/// The tag part of a header; RFC 5424's structured data is `-` or elements `[id k="v" ...]` whose
/// quoted values may hold `]`.
const TAG_PART: &str = r#"(?:\[(?P<BTAG>{NAME})\]:?|(?P<TAG>{NAME})(?:\[(?P<PID>\d+)\]:?|:|\s(?:(?P<PID5>\d+)|-)\s\S+\s(?:-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+)))\s+(?:\[ID \d+ [\w.]+\]\s+)?"#;

fn compile_builtin(pattern: &str) -> Regex {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .expect("a built-in pattern compiles")
}

fn skip_space(chars: &[char], mut pos: usize) -> usize {
    while pos < chars.len() && chars[pos].is_whitespace() {
        pos += 1;
    }
    pos
}

/// Splits the fields after the regex: whitespace-separated, double quotes group (with `\"` and `\\`),
/// `#` after whitespace starts a comment. Returns each field with its 1-based column.
fn split_fields(chars: &[char], mut pos: usize) -> Result<Vec<(usize, String)>, LineError> {
    let mut fields = Vec::new();
    loop {
        let before = pos;
        pos = skip_space(chars, pos);
        if pos == chars.len() {
            break;
        }
        if pos > before && chars[pos] == '#' {
            break;
        }
        if pos == before && !fields.is_empty() {
            return Err((pos + 1, "fields must be separated by white space".into()));
        }
        let col = pos + 1;
        let mut text = String::new();
        if chars[pos] == '"' {
            pos += 1;
            loop {
                match chars.get(pos) {
                    None => return Err((col, "unterminated quoted string".into())),
                    Some('"') => {
                        pos += 1;
                        break;
                    }
                    Some('\\') if matches!(chars.get(pos + 1), Some('"' | '\\')) => {
                        text.push(chars[pos + 1]);
                        pos += 2;
                    }
                    Some(&c) => {
                        text.push(c);
                        pos += 1;
                    }
                }
            }
            if pos < chars.len() && !chars[pos].is_whitespace() {
                return Err((
                    pos + 1,
                    "a quoted string must be followed by white space".into(),
                ));
            }
        } else {
            while pos < chars.len() && !chars[pos].is_whitespace() {
                text.push(chars[pos]);
                pos += 1;
            }
        }
        fields.push((col, text));
    }
    Ok(fields)
}

/// Compiles the expanded pattern: with the `regex` crate, or, for syntax only a backtracking engine
/// reads, with `fancy-regex` (then the `regex` returned is [`never`]). Errors point at the column in
/// the rule file.
fn compile(
    source: &str,
    expanded: &str,
    regex_col: usize,
) -> Result<(Regex, Option<Arc<HybridRegex>>), LineError> {
    // Locate syntax errors in the text as written: `<HOST>` is replaced by a group of the same length.
    let probe = source.replace(HOST_MACRO, "(?:xx)");
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(&probe) {
        let offset = probe[..e.span().start.offset].chars().count();
        use regex_syntax::ast::ErrorKind as K;
        let pcre_only = matches!(
            e.kind(),
            K::UnsupportedLookAround
                | K::UnsupportedBackreference
                | K::FlagUnrecognized
                | K::EscapeUnrecognized
                | K::GroupNameInvalid
                | K::RepetitionMissing
        );
        let engine = HybridRegex::compile(expanded, false);
        return match (engine, fancy_regex::Expr::parse_tree(&probe)) {
            (Ok(engine), _) => Ok((never().clone(), Some(Arc::new(engine)))),
            // Refused by both, where the `regex` crate stopped at PCRE syntax: the backtracking
            // engine's parser read past it to the error, if it found one.
            (Err(_), Err(fancy_regex::Error::ParseError(at, kind))) if pcre_only => {
                let offset = probe[..at.min(probe.len())].chars().count();
                Err((regex_col + offset, format!("invalid regex: {kind}")))
            }
            (Err(msg), _) if pcre_only => {
                Err((regex_col + offset, format!("invalid regex: {msg}")))
            }
            (Err(_), _) => Err((regex_col + offset, format!("invalid regex: {}", e.kind()))),
        };
    }
    regex::bytes::RegexBuilder::new(expanded)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(|r| (r, None))
        .map_err(|e| {
            let msg = e.to_string();
            let last = msg
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ");
            (regex_col, format!("invalid regex: {last}"))
        })
}

/// A regex that matches nothing: the stand-in of a rule whose lines something else decides.
pub fn never() -> &'static Regex {
    static NEVER: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    NEVER.get_or_init(|| compile_builtin(r"\A\z\A[^\x00-\xFF]"))
}

/// Replaces the numeric reasons of `rules` with the text of the reason with that id, as `lookup`
/// finds it in the database (`Ok(None)`: no such reason). A reason id that does not exist is an
/// error at its line: banning under a reason the administrator did not mean would file the bans
/// wrongly for good.
pub fn resolve_reasons<E: std::fmt::Display>(
    rules: &mut [Rule],
    file: &Path,
    mut lookup: impl FnMut(ReasonId) -> Result<Option<String>, E>,
) -> Result<(), RuleError> {
    for rule in rules.iter_mut() {
        let Some(id) = rule.reason_id else { continue };
        let error = |message: String| RuleError {
            file: file.to_path_buf(),
            line: rule.line,
            column: 0,
            message,
        };
        match lookup(id) {
            Ok(Some(text)) => {
                rule.reason = text;
                rule.reason_id = None;
            }
            Ok(None) => {
                return Err(error(format!(
                    "reason id {id} does not exist in the database (`ibd category` lists the reasons; quote a text reason)"
                )))
            }
            Err(e) => return Err(error(format!("reading reason id {id}: {e}"))),
        }
    }
    Ok(())
}

/// The lines of rules whose fifth field names a 2.x block database, for the one message that
/// says it is set aside; `None` when no rule has one.
pub fn database_fields(rules: &[Rule]) -> Option<String> {
    let lines: Vec<String> = rules
        .iter()
        .filter(|r| r.database.is_some())
        .map(|r| r.line.to_string())
        .collect();
    (!lines.is_empty()).then(|| {
        format!(
            "rule lines {}: the fifth field (ipqbdb 2.x's block database) is ignored, there is one database now; use input=FILE to restrict a rule to a followed file",
            lines.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Result<Vec<Rule>, RuleError> {
        parse(text, Path::new("/etc/ipqbdb-pcre.conf"))
    }

    fn err(text: &str) -> String {
        rules(text).unwrap_err().to_string()
    }

    #[test]
    fn a_rule_is_labelled_by_its_line_or_by_what_it_stands_for() {
        let r = rules("\n/Failed for <HOST>/ * \"sshd\"\n").unwrap();
        assert_eq!(r[0].label(), "2");
        let filter = Rule {
            line: 0,
            source: "sshd[mode=aggressive]".into(),
            ..r[0].clone()
        };
        assert_eq!(filter.label(), "sshd[mode=aggressive]");
    }

    #[test]
    fn full_and_minimal_rules() {
        let r = rules(concat!(
            "# comment\n\n",
            r#"/Failed password for .* from <HOST> port/ * "sshd: failed password" 3 block.db 4h input=auth.log"#,
            "\n",
            r#"|user=(\S+) rip=(\S+)|  2  "dovecot"  # trailing comment"#,
            "\n",
            r#"@(?P<IP>[0-9.]+) said \@ it@ - "at delim" - - -"#,
        ))
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].initial_count, r[0].decay, r[0].line),
            (3, Some(14_400), 3)
        );
        assert_eq!(r[0].input.as_deref(), Some("auth.log"));
        assert_eq!(r[0].database.as_deref(), Some("block.db"));
        assert_eq!((r[1].input.as_ref(), r[1].database.as_ref()), (None, None));
        assert_eq!(r[0].group, AddrGroup::Named);
        assert_eq!(r[1].group, AddrGroup::Index(2));
        assert_eq!((r[1].initial_count, r[1].reason.as_str()), (5, "dovecot"));
        assert_eq!(r[2].source, r"(?P<IP>[0-9.]+) said @ it");
        assert!(r[2].regex.is_match(b"1.2.3.4 said @ it"));
        assert!(r[0].applies_to(Some(Path::new("/var/log/auth.log"))));
        assert!(!r[0].applies_to(Some(Path::new("/var/log/mail.log"))));
        assert!(!r[0].applies_to(None));
        assert!(r[1].applies_to(None));
    }

    #[test]
    fn the_original_fields_keep_their_meaning() {
        let r = rules(concat!(
            "/a <HOST>/ * 2\n",
            "/b <HOST>/ * \"17\" 3 /var/lib/ipqbdb/block.db\n",
            "/c <HOST>/ * \"2 tries\" - mail.db\n",
        ))
        .unwrap();
        assert_eq!(
            (r[0].reason_id, r[1].reason_id, r[2].reason_id),
            (Some(2), Some(17), None)
        );
        assert_eq!(r[0].reason_label(), "reason id 2");
        assert_eq!(r[2].reason_label(), "2 tries");
        // The database field no longer restricts the rule to an input.
        assert!(r[1].applies_to(None) && r[2].applies_to(None));
        assert_eq!(
            database_fields(&r).unwrap(),
            "rule lines 2, 3: the fifth field (ipqbdb 2.x's block database) is ignored, there is one database now; use input=FILE to restrict a rule to a followed file"
        );
        assert_eq!(database_fields(&r[..1]), None);
        let f = "/etc/ipqbdb-pcre.conf";
        assert_eq!(
            err("/a <HOST>/ * 0"),
            format!("{f}:1:14: reason id 0 does not exist (ids start at 1)")
        );
        assert!(err("/a <HOST>/ * \"r\" input=").contains("input= needs a file"));

        let mut r = r;
        let known = |id| Ok::<_, String>((id == 2 || id == 17).then(|| format!("text {id}")));
        resolve_reasons(&mut r, Path::new(f), known).unwrap();
        assert_eq!((r[0].reason.as_str(), r[0].reason_id), ("text 2", None));
        assert_eq!(r[1].reason_label(), "text 17");
        let mut r = rules("\n/a <HOST>/ * 9\n").unwrap();
        assert_eq!(
            resolve_reasons(&mut r, Path::new(f), known).unwrap_err().to_string(),
            format!("{f}:2: reason id 9 does not exist in the database (`ibd category` lists the reasons; quote a text reason)")
        );
    }

    #[test]
    fn pcre_only_syntax_runs_on_the_backtracking_engine() {
        let r = rules(concat!(
            "/from <HOST>(?! port 22)/ * \"look-ahead\"\n",
            "/(?<=user )(\\w+) again \\1 from ([0-9.]+)/ 2 \"back-reference\"\n",
            "/(?>a+)b from <HOST>/ * \"atomic\"\n",
            "/x++y from (?'IP'[0-9.]+)/ - \"possessive, named\"\n",
            "/prefix \\Kfrom <HOST>/ * \"keep out\"\n",
            "/plain from <HOST>/ * \"plain\"\n",
        ))
        .unwrap();
        let engines: Vec<&str> = r.iter().map(Rule::regex_kind).collect();
        assert_eq!(
            engines,
            [
                "fancy-regex",
                "fancy-regex",
                "fancy-regex",
                "fancy-regex",
                "fancy-regex",
                "regex"
            ]
        );
        assert!(r[..5].iter().all(|r| r.address_group().is_some()));
        // Invalid in every engine: still an error at its column.
        let f = "/etc/ipqbdb-pcre.conf";
        assert_eq!(
            err(r#"/(?<=a <HOST>/ * "r""#),
            format!("{f}:1:14: invalid regex: Opening parenthesis without closing parenthesis")
        );
        assert_eq!(
            err(r#"/(?!a) <HOST> \q/ * "r""#),
            format!("{f}:1:15: invalid regex: Invalid escape: \\q")
        );
        let e = err(r#"/(?!a) <HOST> x{2,1}/ * "r""#);
        assert!(e.starts_with(&format!("{f}:1:2: invalid regex: ")), "{e}");
        assert_eq!(
            err(r#"/(?!a) <HOST> (/ * "r""#),
            format!("{f}:1:16: invalid regex: Opening parenthesis without closing parenthesis")
        );
    }

    #[test]
    fn meta_delimiters_keep_their_escape() {
        let r = rules(r#"|a\|b <HOST>| * "x""#).unwrap();
        assert!(r[0].regex.is_match(b"a|b 1.2.3.4"));
        assert!(!r[0].regex.is_match(b"ab 1.2.3.4"));
    }

    #[test]
    fn quoted_reason_with_escapes() {
        let r = rules(r#"/x <HOST>/ * "say \"hi\" \\ there""#).unwrap();
        assert_eq!(r[0].reason, r#"say "hi" \ there"#);
    }

    #[test]
    fn errors_have_file_line_and_column() {
        let f = "/etc/ipqbdb-pcre.conf";
        assert_eq!(
            err("\n/x <HOST>"),
            format!("{f}:2:1: no closing '/' for this regex")
        );
        assert_eq!(
            err(r#"/a(b <HOST>/ * "r""#),
            format!("{f}:1:3: invalid regex: unclosed group")
        );
        assert_eq!(
            err(r#"  /<HOST> x[/ * "r""#),
            format!("{f}:1:12: invalid regex: unclosed character class")
        );
        assert_eq!(
            err(r#"/no host/ * "r""#),
            format!("{f}:1:11: I is * but the regex has no <HOST>")
        );
        assert_eq!(
            err(r#"/no host/ - "r""#),
            format!("{f}:1:11: I is - but the regex has no group named IP")
        );
        assert_eq!(
            err(r#"/(a) <HOST>/ 3 "r""#),
            format!("{f}:1:14: group 3 does not exist (the regex has 2)")
        );
        assert_eq!(
            err(r#"/<HOST>/ x "r""#),
            format!("{f}:1:10: I must be *, -, @ or a group number, not \"x\"")
        );
        assert_eq!(
            err(r#"/<HOST>/ *"#),
            format!("{f}:1:11: missing the reason")
        );
        assert_eq!(
            err(r#"/<HOST>/ * "r" 32"#),
            format!("{f}:1:16: initial count must be 0 to 31, not \"32\"")
        );
        assert!(err(r#"/<HOST>/ * "r" - - 4y"#).starts_with(&format!("{f}:1:20: invalid duration")));
        let zero = err(r#"/<HOST>/ * "r" - - 0"#);
        assert!(
            zero.starts_with(&format!("{f}:1:20: ")) && zero.contains("whitelist"),
            "{zero}"
        );
        assert_eq!(
            err(r#"/<HOST>/ * "r" - - 4h extra"#),
            format!("{f}:1:23: unexpected \"extra\" after the decay")
        );
        assert_eq!(
            err(r#"/<HOST>/ * "r"#),
            format!("{f}:1:12: unterminated quoted string")
        );
        assert_eq!(
            err(r#"/<HOST> <HOST>/ * "r""#),
            format!("{f}:1:2: <HOST> may appear only once")
        );
        assert_eq!(
            err(r#"a<HOST>a * "r""#),
            format!("{f}:1:1: 'a' cannot delimit a regex")
        );
        assert_eq!(err(r#"// * "r""#), format!("{f}:1:1: empty regex"));
        assert_eq!(
            err(r#"/<HOST>/ * """#),
            format!("{f}:1:12: the reason may not be empty")
        );
    }

    #[test]
    fn options() {
        let r = rules(concat!(
            r#"/Failed .* from <HOST> port \d+$/ * "pw" 3 attempt=end tag=sshd,sshd-session - 2h mode=aggressive"#,
            "\n",
            r#"/Disconnecting: Too many/ @ "too many" tag=sshd"#,
            "\n",
            r#"/pam .* rhost=<HOST>/ * "pam" ban=no tag=sshd"#,
        ))
        .unwrap();
        assert_eq!((r[0].initial_count, r[0].decay), (3, Some(7200)));
        assert_eq!(r[0].input, None);
        assert_eq!(r[0].mode, RuleMode::Aggressive);
        assert_eq!(r[0].attempt, Attempt::End);
        assert_eq!(r[0].tags, ["sshd", "sshd-session"]);
        assert_eq!(r[1].group, AddrGroup::Session);
        assert!(r[2].note_only && r[2].mode == RuleMode::Normal && r[2].attempt == Attempt::Single);
        let f = "/etc/ipqbdb-pcre.conf";
        assert_eq!(
            err(r#"/<HOST>/ * "r" colour=red"#),
            format!("{f}:1:16: unknown option \"colour\" (mode, attempt, ban, tag, input or twin)")
        );
        assert_eq!(
            err(r#"/<HOST>/ * "r" mode=wild"#),
            format!("{f}:1:16: unknown mode \"wild\" (normal, ddos or aggressive)")
        );
        assert_eq!(
            err(r#"/<HOST>/ * "r" mode=ddos mode=ddos"#),
            format!("{f}:1:26: option mode given twice")
        );
        assert!(err(r#"/<HOST>/ * "r" attempt=start"#).contains("attempt= needs tag="));
        let r = rules(r#"/<HOST>/ * "r" attempt=close twin=web/access tag=x"#).unwrap();
        assert_eq!(r[0].attempt, Attempt::Close);
        assert_eq!(r[0].twin.as_deref(), Some("web/access"));
        assert!(err(r#"/<HOST>/ * "r" twin=web"#).contains("twin must be NAME/SIDE"));
        assert!(err(r#"/<HOST>/ * "r" attempt=later tag=x"#).contains("start, end or close"));
        assert!(err(r#"/x/ @ "r""#).contains("no tag= to name the session"));
        assert!(err(r#"/<HOST>/ * "r" tag=ss;hd"#).contains("is not a program name"));
    }

    #[test]
    fn unreadable_file_has_no_line() {
        let e = load(Path::new("/nonexistent/rules.conf")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/rules.conf: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn oversized_patterns_are_refused() {
        let e = err(r#"/<HOST> (?:a{1000}){1000}/ * "r""#);
        assert!(e.contains("invalid regex"), "{e}");
    }

    #[test]
    fn host_macro_matches_both_families_and_drops_zone() {
        let r = rules(r#"/from <HOST> port/ * "r""#).unwrap();
        for (line, want) in [
            ("from 192.0.2.1 port", "192.0.2.1"),
            (
                "from 2001:db8::a11:beef:7ac0 port",
                "2001:db8::a11:beef:7ac0",
            ),
            ("from fe80::1%enp3s0 port", "fe80::1"),
            ("from ::ffff:192.0.2.9 port", "::ffff:192.0.2.9"),
            ("from ::1 port", "::1"),
        ] {
            let caps = r[0]
                .regex
                .captures(line.as_bytes())
                .unwrap_or_else(|| panic!("{line}"));
            assert_eq!(&caps["IP"], want.as_bytes());
        }
    }
}
