//! Recognising log lines: which rule matches a line, and what it captured.
//!
//! Most log lines match no rule, so automata over every rule decide first, in one pass, whether
//! any rule matches: a `RegexSet` over the whole line for the untagged rules, and for the tagged ones
//! (anchored at the message) a leftmost-first lazy DFA that also names the first of them to match
//! and where its match ends (`first_match`); only then is the first applicable rule run for its
//! address. Rules on the backtracking engine (PCRE syntax, see `rules`) are outside the sets and
//! tried one by one. Lines are bytes: logs carry attacker-chosen bytes, and invalid UTF-8 must
//! neither panic nor hide an address.
//!
//! This module is stateless; what a recognised line counts for (a ban, part of an attempt already
//! counted, a note about a session) is decided by `sessions`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use ipqbdb_core::parse_ip;
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use crate::capture::{group_span, group_span_in, FastCapture};
use crate::fail2ban_filters::{FilterMatch, FilterSet, ImportedFilter};
use crate::first_match::FirstMatch;
use crate::rules::{Rule, RuleMode};

/// What a line is to the rule set: the second stage of a line's result, after each filter's
/// [`FilterMatch`] and before the sessions' `sessions::LineCount`. `rule` is the index of a
/// [`Catcher`] in the set: the rule file's rules first, then the fail2ban filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineMatch {
    /// No rule matched.
    Miss,
    /// Rule `rule` matched. `ip` is what it captured (`None` for a rule that takes
    /// the session's address); `repeat` is how many log lines the line stands for (syslog's "message
    /// repeated N times"); `session` names the process that wrote it (`prog[pid]`), when known.
    Hit {
        rule: usize,
        ip: Option<IpAddr>,
        repeat: u32,
        session: Option<Box<[u8]>>,
    },
    /// Rule `rule` matched, but what it captured is not an address.
    BadAddress { rule: usize, text: String },
}

/// What catches lines in a rule set: a rule of the rule file, or a fail2ban filter run beside them.
/// Bans, counters, `--test` output and metrics name a catcher by its label and reason.
#[derive(Clone, Copy)]
pub enum Catcher<'a> {
    Rule(&'a Rule),
    Filter(&'a ImportedFilter),
}

impl<'a> Catcher<'a> {
    /// The rule's line in the rule file, or the filter's name.
    pub fn label(self) -> String {
        match self {
            Catcher::Rule(r) => r.label(),
            Catcher::Filter(f) => f.name(),
        }
    }

    /// The rule's line in the rule file; a filter has none.
    pub fn line(self) -> Option<usize> {
        match self {
            Catcher::Rule(r) => Some(r.line),
            Catcher::Filter(_) => None,
        }
    }

    /// The reason its bans are filed under.
    pub fn reason(self) -> &'a str {
        match self {
            Catcher::Rule(r) => &r.reason,
            Catcher::Filter(f) => &f.ban.reason,
        }
    }

    /// The reason as messages show it (see [`Rule::reason_label`]).
    pub fn reason_label(self) -> std::borrow::Cow<'a, str> {
        match self {
            Catcher::Rule(r) => r.reason_label(),
            Catcher::Filter(f) => f.ban.reason.as_str().into(),
        }
    }

    pub fn initial_count(self) -> u8 {
        match self {
            Catcher::Rule(r) => r.initial_count,
            Catcher::Filter(f) => f.ban.initial_count,
        }
    }

    pub fn decay(self) -> Option<u32> {
        match self {
            Catcher::Rule(r) => r.decay,
            Catcher::Filter(f) => f.ban.decay,
        }
    }

    /// The rule set mode it belongs to: a filter runs in every mode (its own `mode=` option
    /// chooses its regexes).
    pub fn mode(self) -> RuleMode {
        match self {
            Catcher::Rule(r) => r.mode,
            Catcher::Filter(_) => RuleMode::Normal,
        }
    }

    /// The rule, for a catcher that is one.
    pub fn rule(self) -> Option<&'a Rule> {
        match self {
            Catcher::Rule(r) => Some(r),
            Catcher::Filter(_) => None,
        }
    }
}

/// A group of a rule beside its address, and the automata that find it without a capture search
/// where they can (a capture search costs tens of thousands of instructions on a long line).
type Group = Option<(usize, Option<FastCapture>)>;

/// The groups of a rule beside its address: how many tries the line stands for, and the session.
struct Extras {
    tries: Group,
    session: Group,
}

impl Extras {
    fn of(rule: &Rule) -> Option<Extras> {
        if rule.backtrack.is_some() {
            return None;
        }
        let at = |name: &str| -> Group {
            let i = rule.regex.capture_names().position(|n| n == Some(name))?;
            Some((i, FastCapture::new(rule.pattern(), u32::try_from(i).ok()?)))
        };
        let (tries, session) = (at("TRIES"), at("SESSION"));
        (tries.is_some() || session.is_some()).then_some(Extras { tries, session })
    }
}

pub struct RuleSet {
    rules: Vec<Rule>,
    /// Rules with `tag=`, over the message after the syslog header; `tagged[i]` is the rule index
    /// of the automaton's pattern `i`.
    tagged_first: FirstMatch,
    tagged: Vec<usize>,
    /// The syslog header of the programs the tagged rules name.
    header: Regex,
    /// The other rules, over the whole line.
    plain_set: RegexSet,
    plain: Vec<usize>,
    /// Active rules on the backtracking engine (no set holds them): each is tried on every line.
    backtracking: Vec<usize>,
    mode: RuleMode,
    /// Per rule: the capture group of its address (`None`: the session's), and the automata that
    /// find it without a capture search where they can, built when the rule first catches a line
    /// (most rules of a set never do, and building them all cost a third of the start-up).
    groups: Vec<(Option<usize>, OnceLock<Option<FastCapture>>)>,
    /// Per rule: its `TRIES` and `SESSION` groups, if it has them (see `rules`).
    extras: Vec<Option<Extras>>,
    /// fail2ban filters run beside the rules (`fail2ban_filters`); their catchers follow the rules'.
    filters: Option<FilterSet>,
}

/// The most repeats one line may stand for: rsyslog's counts are small, and a forged huge count must
/// not become millions of bans.
pub const MAX_REPEAT: u32 = 1000;

/// Limits of the compiled rule sets and of their lazy automata's memory.
const SET_SIZE_LIMIT: usize = 256 << 20;
const SET_DFA_LIMIT: usize = 64 << 20;

fn build_set<'a>(patterns: impl Iterator<Item = &'a str>) -> Result<RegexSet, regex::Error> {
    RegexSetBuilder::new(patterns)
        .unicode(false)
        .size_limit(SET_SIZE_LIMIT)
        .dfa_size_limit(SET_DFA_LIMIT)
        .build()
}

impl RuleSet {
    /// The rules of `rules` that `mode` runs (the others are kept, for listing, but never match).
    pub fn with_mode(rules: Vec<Rule>, mode: RuleMode) -> Result<Self, regex::Error> {
        let active = |tagged: bool| -> Vec<usize> {
            (0..rules.len())
                .filter(|&i| mode.includes(rules[i].mode) && rules[i].tags.is_empty() != tagged)
                .collect()
        };
        let (tagged, plain) = (active(true), active(false));
        let backtracking = (0..rules.len())
            .filter(|&i| mode.includes(rules[i].mode) && rules[i].backtrack.is_some())
            .collect();
        let tagged_patterns: Vec<&str> = tagged.iter().map(|&i| rules[i].pattern()).collect();
        let tagged_first = FirstMatch::new(&tagged_patterns, SET_SIZE_LIMIT, SET_DFA_LIMIT)?;
        let tags: Vec<&str> = tagged
            .iter()
            .flat_map(|&i| rules[i].tags.iter().map(String::as_str))
            .collect();
        let header = crate::rules::header(if tags.is_empty() { &["-"] } else { &tags });
        let plain_set = build_set(plain.iter().map(|&i| rules[i].pattern()))?;
        let groups = rules
            .iter()
            .map(|r| (r.address_group(), OnceLock::new()))
            .collect();
        let extras = rules.iter().map(Extras::of).collect();
        Ok(RuleSet {
            extras,
            rules,
            tagged_first,
            tagged,
            header,
            plain_set,
            plain,
            backtracking,
            mode,
            groups,
            filters: None,
        })
    }

    /// Adds fail2ban filters after the rules: each is a catcher of its own (its reason, count and
    /// decay) that no regex set holds, and decides its lines itself.
    pub fn with_filters(mut self, filters: Vec<ImportedFilter>) -> Self {
        if filters.is_empty() {
            // No filter to feed: lines are not decoded as text for nothing.
            return self;
        }
        self.filters = Some(FilterSet { filters });
        self
    }

    /// The fail2ban filters the set runs, if any.
    pub fn filters(&self) -> Option<&FilterSet> {
        self.filters.as_ref()
    }

    /// The `normal` rules of `rules`.
    pub fn new(rules: Vec<Rule>) -> Result<Self, regex::Error> {
        RuleSet::with_mode(rules, RuleMode::Normal)
    }

    /// The rule file's rules (the first catchers).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many catchers the set has: its rules, then its filters.
    pub fn catcher_count(&self) -> usize {
        self.rules.len() + self.filters.as_ref().map_or(0, |f| f.filters.len())
    }

    /// Catcher `index` (as [`LineMatch`] names it).
    ///
    /// # Panics
    /// If `index` is not below [`RuleSet::catcher_count`].
    pub fn catcher(&self, index: usize) -> Catcher<'_> {
        match self.rules.get(index) {
            Some(r) => Catcher::Rule(r),
            None => {
                let filters = self.filters.as_ref().map_or(&[][..], |f| &f.filters[..]);
                Catcher::Filter(&filters[index - self.rules.len()])
            }
        }
    }

    /// Every catcher, in index order.
    pub fn catchers(&self) -> impl Iterator<Item = Catcher<'_>> {
        let filters = self.filters.as_ref().map_or(&[][..], |f| &f.filters[..]);
        self.rules
            .iter()
            .map(Catcher::Rule)
            .chain(filters.iter().map(Catcher::Filter))
    }

    /// Names the rules' numeric reasons by the database's texts (see [`crate::rules::resolve_reasons`]).
    pub fn resolve_reasons<E: std::fmt::Display>(
        &mut self,
        file: &Path,
        lookup: impl FnMut(ipqbdb_core::ReasonId) -> Result<Option<String>, E>,
    ) -> Result<(), crate::rules::RuleError> {
        crate::rules::resolve_reasons(&mut self.rules, file, lookup)
    }

    pub fn mode(&self) -> RuleMode {
        self.mode
    }

    /// Checks one line (without its newline) read from `input` (`None`: FIFO or stdin).
    pub fn check(&self, line: &[u8], input: Option<&Path>) -> LineMatch {
        self.check_from(line, input, None)
    }

    /// Checks one line of `input`, which is `program`'s own log when given (`sshd -E FILE`): its
    /// lines have no syslog header, the rules tagged for `program` read each line whole, and no
    /// other rule does (but those restricted to the input with `input=`), so nothing another
    /// program writes can be taken for that input's lines, nor the other way round.
    pub fn check_from(
        &self,
        line: &[u8],
        input: Option<&Path>,
        program: Option<&str>,
    ) -> LineMatch {
        if let Some(set) = &self.filters {
            // Every filter sees every line: its multi-line state must.
            let found = set.check(line);
            let rules = self.check_rules(line, input, program);
            if rules != LineMatch::Miss {
                return rules;
            }
            let rule = |i: usize| self.rules.len() + i;
            return match found {
                Some((i, FilterMatch::Failure(ip))) => LineMatch::Hit {
                    rule: rule(i),
                    ip: Some(ip),
                    repeat: 1,
                    session: None,
                },
                Some((i, FilterMatch::NotAnAddress(text))) => LineMatch::BadAddress {
                    rule: rule(i),
                    text,
                },
                Some((_, FilterMatch::Miss | FilterMatch::Noted)) | None => LineMatch::Miss,
            };
        }
        self.check_rules(line, input, program)
    }

    fn check_rules(&self, line: &[u8], input: Option<&Path>, program: Option<&str>) -> LineMatch {
        if program.is_some() {
            // No syslog daemon wrote the input: no "message repeated" wrapper either.
            return self.check_one(line, input, program);
        }
        if let Some((inner, n)) = unwrap_repeated(line) {
            return match self.check_one(&inner, input, None) {
                LineMatch::Hit {
                    rule,
                    ip,
                    session,
                    repeat,
                } => LineMatch::Hit {
                    rule,
                    ip,
                    repeat: n.saturating_mul(repeat).min(MAX_REPEAT),
                    session,
                },
                other => other,
            };
        }
        self.check_one(line, input, None)
    }

    fn check_one(&self, line: &[u8], input: Option<&Path>, program: Option<&str>) -> LineMatch {
        // The message starts after the syslog header, if the line has one; a program's own log
        // has none.
        let msg_at = if self.tagged.is_empty() {
            None
        } else if program.is_some() {
            Some(0)
        } else {
            self.header.find(line).map(|m| m.end())
        };
        // The first tagged rule whose pattern matches the message, and where its match ends; the
        // others that match are looked for only if that one does not apply to the line.
        let first = msg_at.map(|at| self.tagged_first.find(&line[at..]));
        let mut candidates: Vec<(usize, bool)> = Vec::new();
        // `is_match` stops at the first match; most lines match nothing, and only hits pay for
        // finding every pattern that matches.
        if !self.plain.is_empty() && self.plain_set.is_match(line) {
            let hits = self.plain_set.matches(line);
            candidates.extend(hits.iter().map(|i| (self.plain[i], false)));
        }
        // The backtracking engine reads text: the line (or message) with invalid UTF-8 replaced.
        let (mut line_text, mut msg_text) = (None, None);
        for &i in &self.backtracking {
            let Some(engine) = &self.rules[i].backtrack else {
                continue;
            };
            if program.is_some() && self.rules[i].tags.is_empty() && self.rules[i].input.is_none() {
                continue;
            }
            let tagged = !self.rules[i].tags.is_empty();
            let hay = match (tagged, msg_at) {
                (false, _) => line_text.get_or_insert_with(|| String::from_utf8_lossy(line)),
                (true, Some(at)) => {
                    msg_text.get_or_insert_with(|| String::from_utf8_lossy(&line[at..]))
                }
                (true, None) => continue,
            };
            if engine.is_match(hay) {
                candidates.push((i, tagged));
            }
        }
        let mut header: Option<Option<TagPid<'_>>> = None;
        let from = match first {
            None | Some(Ok(None)) => None,
            // The usual case: the first tagged rule alone, its match known.
            Some(Ok(Some((p, end)))) => {
                if candidates.is_empty() {
                    let found = self.try_rule(
                        self.tagged[p],
                        true,
                        line,
                        msg_at,
                        input,
                        program,
                        &mut header,
                        Some(end),
                    );
                    if let Some(found) = found {
                        return found;
                    }
                } else {
                    // Known to match; it competes with the untagged hits in file order.
                    candidates.push((self.tagged[p], true));
                }
                // Only the later tagged rules are left to ask.
                Some(p + 1)
            }
            // The automaton gave up: each tagged regex decides.
            Some(Err(_)) => Some(0),
        };
        if let (Some(from), Some(at)) = (from, msg_at) {
            let msg = &line[at..];
            candidates.extend(
                self.tagged[from..]
                    .iter()
                    .filter(|&&i| self.rules[i].regex.is_match(msg))
                    .map(|&i| (i, true)),
            );
        }
        // The first applicable rule in file order wins.
        candidates.sort_unstable();
        for (i, tagged) in candidates {
            if let Some(found) =
                self.try_rule(i, tagged, line, msg_at, input, program, &mut header, None)
            {
                return found;
            }
        }
        LineMatch::Miss
    }

    /// What rule `i`, whose pattern matches the line (its message if `tagged`), makes of it;
    /// `None` when the rule does not apply to the line, which the next candidate then decides.
    /// `end`: where the rule's match of the message ends, when already known.
    #[allow(clippy::too_many_arguments)]
    fn try_rule<'l>(
        &self,
        i: usize,
        tagged: bool,
        line: &'l [u8],
        msg_at: Option<usize>,
        input: Option<&Path>,
        program: Option<&str>,
        header: &mut Option<Option<TagPid<'l>>>,
        end: Option<usize>,
    ) -> Option<LineMatch> {
        let rule = &self.rules[i];
        if !rule.applies_to(input) {
            return None;
        }
        if let Some(program) = program {
            // Only the program's rules, and those written for this very input.
            let its = tagged && rule.tags.iter().any(|t| t == program);
            if !its && (tagged || rule.input.is_none()) {
                return None;
            }
        }
        let (text, session) = if tagged && program.is_some() {
            // No pid tells its processes apart: the session is set once the address is known.
            (line, None)
        } else if tagged {
            let at = msg_at.unwrap_or(0);
            let (tag, pid) = (*header.get_or_insert_with(|| parse_header(&line[..at])))?;
            if !rule.tags.iter().any(|t| t.as_bytes() == tag) {
                return None;
            }
            let session = pid.map(|pid| {
                let mut key = Vec::with_capacity(tag.len() + pid.len() + 2);
                key.extend_from_slice(tag);
                key.push(b'[');
                key.extend_from_slice(pid);
                key.push(b']');
                key.into_boxed_slice()
            });
            (&line[at..], session)
        } else {
            (line, None)
        };
        // A tagged rule's match starts at the message's start.
        let known = end.filter(|_| tagged).map(|end| 0..end);
        let (group, fast) = &self.groups[i];
        let Some(group) = *group else {
            // The set has matched the pattern on this very text: nothing to capture.
            return Some(LineMatch::Hit {
                rule: i,
                ip: None,
                repeat: 1,
                session,
            });
        };
        let text = if let Some(engine) = &rule.backtrack {
            let text = String::from_utf8_lossy(text);
            let span = engine.group(&text, group)?;
            std::borrow::Cow::Owned(span.map_or("", |s| &text[s]).to_string())
        } else {
            let fast =
                fast.get_or_init(|| FastCapture::new(rule.pattern(), u32::try_from(group).ok()?));
            let span = match known.clone() {
                Some(m) => group_span_in(&rule.regex, fast.as_ref(), group, text, m)?,
                None => group_span(&rule.regex, fast.as_ref(), group, text, true)?,
            };
            String::from_utf8_lossy(span.map_or(&b""[..], |s| &text[s]))
        };
        let (mut repeat, mut session) = (1, session);
        if let Some(extras) = &self.extras[i] {
            let hay = line_of(line, msg_at, tagged);
            // One search for the match serves both groups.
            let found = known.or_else(|| rule.regex.find(hay).map(|m| m.range()));
            let group = |g: &Group| -> Option<&[u8]> {
                let (index, fast) = g.as_ref()?;
                let span = match (fast, found.clone()) {
                    (Some(fast), Some(m)) => fast.locate(hay, m),
                    _ => None,
                };
                let span = match span {
                    Some(span) => span,
                    None => group_span(&rule.regex, None, *index, hay, true)??,
                };
                Some(&hay[span])
            };
            if let Some(n) = group(&extras.tries) {
                let n = std::str::from_utf8(n).ok();
                repeat = n
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1)
                    .clamp(1, MAX_REPEAT);
            }
            if let Some(id) = group(&extras.session) {
                session = Some([b"session<", id, b">"].concat().into());
            }
        }
        Some(match parse_ip(&text) {
            Ok(ip) => LineMatch::Hit {
                rule: i,
                ip: Some(ip),
                repeat,
                session: session.or_else(|| program.and_then(|p| per_address(p, ip))),
            },
            Err(_) => LineMatch::BadAddress {
                rule: i,
                text: text.into_owned(),
            },
        })
    }
}

/// The text a rule reads: the message of a tagged rule, else the whole line.
fn line_of(line: &[u8], msg_at: Option<usize>, tagged: bool) -> &[u8] {
    if tagged {
        &line[msg_at.unwrap_or(0)..]
    } else {
        line
    }
}

/// The session of a program's own log line, which names no pid: the program's lines about one
/// client (`sshd[203.0.113.9]`), so one attempt's lines still fold into one ban.
fn per_address(program: &str, ip: IpAddr) -> Option<Box<[u8]>> {
    Some(format!("{program}[{ip}]").into_bytes().into_boxed_slice())
}

/// A syslog line's program and pid (`[prog]` has no pid).
type TagPid<'a> = (&'a [u8], Option<&'a [u8]>);

/// The program and pid in a syslog header.
fn parse_header(header: &[u8]) -> Option<TagPid<'_>> {
    if let Some(found) = plain_tag(header) {
        return Some(found);
    }
    let caps = crate::rules::header_tag().captures(header)?;
    let tag = caps.name("TAG").or_else(|| caps.name("BTAG"))?;
    let pid = caps.name("PID").or_else(|| caps.name("PID5"));
    Some((tag.as_bytes(), pid.map(|p| p.as_bytes())))
}

/// The common header end, ` prog[pid]: `, read without a capture search (a third of the cost of a
/// caught line on an attack-dense log); `None` for any other form, which the regex reads.
fn plain_tag(header: &[u8]) -> Option<TagPid<'_>> {
    let head = header.strip_suffix(b"]: ")?;
    let open = memchr::memrchr(b'[', head)?;
    let (before, pid) = (&head[..open], &head[open + 1..]);
    let name = |b: &u8| b.is_ascii_alphanumeric() || b"_./-".contains(b);
    let start = before.iter().rposition(|b| !name(b)).map_or(0, |i| i + 1);
    let tag = &before[start..];
    let spaced = start == 0 || before[start - 1].is_ascii_whitespace();
    let valid = !tag.is_empty() && spaced && !pid.is_empty() && pid.iter().all(u8::is_ascii_digit);
    valid.then_some((tag, Some(pid)))
}

/// Syslog daemons write a run of identical messages once, as `TAG: message repeated N times: [ MSG]`.
/// Returns the line as it was (`TAG: MSG`) and N. The wrapper counts only where the syslog daemon
/// puts it, as the first words of the message right after the line's own header: a client that
/// writes `x: message repeated 1000 times: [` into a user name must not turn its one line into
/// a thousand bans.
fn unwrap_repeated(line: &[u8]) -> Option<(Vec<u8>, u32)> {
    const WRAP: &[u8] = b"message repeated ";
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    // Most lines have no wrapper anywhere: one substring search spares them the header's.
    FINDER
        .get_or_init(|| memchr::memmem::Finder::new(WRAP))
        .find(line)?;
    let at = crate::rules::any_header().find(line)?.end();
    let rest = line[at..].strip_prefix(WRAP)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let n: u32 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(b" times: [")?;
    let rest = rest.strip_suffix(b"]")?;
    let msg = rest.strip_prefix(b" ").unwrap_or(rest);
    let mut out = line[..at].to_vec();
    out.extend_from_slice(msg);
    Some((out, n.clamp(1, MAX_REPEAT)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> RuleSet {
        RuleSet::new(crate::rules::parse(text, Path::new("r")).unwrap()).unwrap()
    }

    fn hit(rule: usize, ip: &str) -> LineMatch {
        LineMatch::Hit {
            rule,
            ip: Some(ip.parse().unwrap()),
            repeat: 1,
            session: None,
        }
    }

    #[test]
    fn first_applicable_rule_wins() {
        let s = set(concat!(
            "/Failed password for .* from <HOST>/ * \"pw\" input=secure\n",
            "/from <HOST>/ * \"generic\"\n",
            "/Failed password for .* from <HOST>/ * \"pw-any\"\n",
        ));
        let line = b"sshd[1]: Failed password for root from 192.0.2.1 port 22";
        assert_eq!(
            s.check(line, Some(Path::new("/var/log/secure"))),
            hit(0, "192.0.2.1")
        );
        assert_eq!(s.check(line, None), hit(1, "192.0.2.1"));
        assert_eq!(s.check(b"nothing here", None), LineMatch::Miss);
    }

    #[test]
    fn a_tagged_rule_that_does_not_apply_leaves_the_line_to_the_next() {
        // The first tagged pattern to match is for another file, then for another program: the
        // line falls to the next rule that matches it, in file order, as if none were first.
        let s = set(concat!(
            "/Failed password for .* from <HOST>/ * \"secure only\" tag=sshd input=secure\n",
            "/Failed password for .* from <HOST>/ * \"dropbear\" tag=dropbear\n",
            "/Failed \\w+ for .* from <HOST> port \\d+$/ * \"sshd\" tag=sshd\n",
            "/Failed/ @ \"later\" tag=sshd\n",
        ));
        let line = b"Nov 21 10:00:00 gw sshd[42]: Failed password for root from 192.0.2.1 port 22";
        let hit_of = |m: LineMatch| match m {
            LineMatch::Hit { rule, ip, .. } => (rule, ip.map(|ip| ip.to_string())),
            other => panic!("{other:?}"),
        };
        let want = |rule: usize| (rule, Some("192.0.2.1".to_string()));
        assert_eq!(
            hit_of(s.check(line, Some(Path::new("/var/log/secure")))),
            want(0)
        );
        assert_eq!(
            hit_of(s.check(line, Some(Path::new("/var/log/auth.log")))),
            want(2)
        );
        assert_eq!(hit_of(s.check(line, None)), want(2));
        // Rule 2 does not match without the port; rule 3 (the session's address) does.
        let short = b"Nov 21 10:00:00 gw sshd[42]: Failed password for root from 192.0.2.1";
        assert!(matches!(
            s.check(short, None),
            LineMatch::Hit {
                rule: 3,
                ip: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_captures_and_binary_lines() {
        let s = set("/user=\\S+ rip=(\\S+)/ 1 \"dovecot\"\n");
        assert_eq!(
            s.check(b"user=x rip=999.1.1.1", None),
            LineMatch::BadAddress {
                rule: 0,
                text: "999.1.1.1".into()
            }
        );
        let mut line = b"\xff\xfe\x00 user=\xc3\x28 rip=192.0.2.7".to_vec();
        line.extend_from_slice(&[0x80; 100]);
        // Bytes glued to an address make it no address: an error, not a wrong ban.
        assert!(matches!(s.check(&line, None), LineMatch::BadAddress { .. }));
        let line = b"\xff\x00 user=\xc3\x28 rip=192.0.2.7 \xff";
        assert_eq!(s.check(line, None), hit(0, "192.0.2.7"));
    }

    #[test]
    fn tags_anchor_rules_and_name_sessions() {
        let s = set("/Failed password for .* from <HOST> port \\d+$/ * \"pw\" tag=sshd\n");
        let ok = [
            "Nov 21 10:00:00 gw sshd[42]: Failed password for root from 192.0.2.1 port 22",
            "2026-11-21T10:00:00.123456+01:00 gw sshd[42]: Failed password for root from 192.0.2.1 port 22",
            "sshd[42]: Failed password for root from 192.0.2.1 port 22",
            "Nov  1 10:00:00 sshd[42]: Failed password for root from 192.0.2.1 port 22",
            "Jun 20 02:18:39 vps auth.info sshd[42]: Failed password for root from 192.0.2.1 port 22",
            "<35>1 2020-01-03T11:57:14.257387-05:00 gw sshd 42 - - Failed password for root from 192.0.2.1 port 22",
            "2020-05-29T11:28:56.058908+02:00 bastion sshd[42] Failed password for root from 192.0.2.1 port 22",
        ];
        for line in ok {
            match s.check(line.as_bytes(), None) {
                LineMatch::Hit { session, ip, .. } => {
                    assert_eq!(session.as_deref(), Some(&b"sshd[42]"[..]), "{line}");
                    assert_eq!(ip, Some("192.0.2.1".parse().unwrap()));
                }
                other => panic!("{line}: {other:?}"),
            }
        }
        // Another program's message that quotes an sshd line, and text before the tag.
        let forged = [
            "Nov 21 10:00:00 gw cron[7]: sshd[42]: Failed password for root from 192.0.2.1 port 22",
            "Nov 21 10:00:00 gw sshd[42]: x Failed password for root from 192.0.2.1 port 22",
            "Nov 21 10:00:00 gw notsshd[42]: Failed password for root from 192.0.2.1 port 22",
            "Nov 21 10:00:00 gw cron[7]: x y sshd[42]: Failed password for root from 192.0.2.1 port 22",
            "Nov 21 10:00:00 a b c sshd[42]: Failed password for root from 192.0.2.1 port 22",
        ];
        for line in forged {
            assert_eq!(s.check(line.as_bytes(), None), LineMatch::Miss, "{line}");
        }
    }

    #[test]
    fn a_programs_own_log_is_read_by_its_rules_alone() {
        let s = set(concat!(
            "/Failed password for .* from <HOST> port \\d+$/ * \"pw\" tag=sshd\n",
            "/FAIL LOGIN: Client \"<HOST>\"$/ * \"ftp\" tag=vsftpd\n",
            "/^\\w+ FAIL LOGIN: Client \"<HOST>\"$/ * \"ftp own log\"\n",
            "/^banned <HOST>$/ * \"this file\" input=sshd.log\n",
        ));
        let file = Some(Path::new("/var/log/sshd.log"));
        let sshd = Some("sshd");
        // sshd -E: the message alone, one session per client address.
        let line = b"Failed password for root from 192.0.2.1 port 22";
        match s.check_from(line, file, sshd) {
            LineMatch::Hit { rule, session, .. } => {
                assert_eq!(rule, 0);
                assert_eq!(session.as_deref(), Some(&b"sshd[192.0.2.1]"[..]));
            }
            other => panic!("{other:?}"),
        }
        // Undeclared, the same line has no header and no tagged rule reads it.
        assert_eq!(s.check(line, file), LineMatch::Miss);
        // Neither another program's rules, nor rules of no program, nor a header inside the file.
        let others: [&[u8]; 3] = [
            b"FAIL LOGIN: Client \"192.0.2.2\"",
            b"Sat FAIL LOGIN: Client \"192.0.2.2\"",
            b"Nov 21 10:00:00 gw sshd[42]: Failed password for root from 192.0.2.3 port 22",
        ];
        for line in others {
            assert_eq!(s.check_from(line, file, sshd), LineMatch::Miss);
        }
        assert!(matches!(
            s.check(b"Sat FAIL LOGIN: Client \"192.0.2.2\"", file),
            LineMatch::Hit { rule: 2, .. }
        ));
        // A rule written for this very input still reads it.
        assert!(matches!(
            s.check_from(b"banned 192.0.2.4", file, sshd),
            LineMatch::Hit { rule: 3, .. }
        ));
    }

    #[test]
    fn the_plain_tag_reads_as_the_regex_does() {
        let headers: [&[u8]; 6] = [
            b"Nov 21 10:00:00 gw sshd[42]: ",
            b"sshd[42]: ",
            b"2026-11-21T10:00:00+01:00 gw postfix/smtpd[7]: ",
            b"Nov 21 10:00:00 gw sshd[x]: ",
            b"Nov 21 10:00:00 gw [sshd]: ",
            b"Nov 21 10:00:00 gw a:sshd[42]: ",
        ];
        for h in headers {
            let caps = crate::rules::header_tag().captures(h);
            let by_regex = caps.and_then(|c| {
                let tag = c.name("TAG").or_else(|| c.name("BTAG"))?;
                let pid = c.name("PID").or_else(|| c.name("PID5"));
                Some((tag.as_bytes(), pid.map(|p| p.as_bytes())))
            });
            if let Some(fast) = plain_tag(h) {
                assert_eq!(Some(fast), by_regex, "{}", String::from_utf8_lossy(h));
            }
            assert_eq!(parse_header(h), by_regex, "{}", String::from_utf8_lossy(h));
        }
        assert!(plain_tag(b"Nov 21 10:00:00 gw sshd[42]: ").is_some());
    }

    #[test]
    fn repeated_messages_count_their_repeats() {
        let s = set("/Failed password for .* from <HOST> port \\d+ ssh2$/ * \"pw\" tag=sshd\n");
        let line = b"Nov 21 10:00:00 gw sshd[42]: message repeated 3 times: [ Failed password for root from 192.0.2.1 port 22 ssh2]";
        match s.check(line, None) {
            LineMatch::Hit { repeat, ip, .. } => {
                assert_eq!(repeat, 3);
                assert_eq!(ip, Some("192.0.2.1".parse().unwrap()));
            }
            other => panic!("{other:?}"),
        }
        let huge = b"Nov 21 10:00:00 gw sshd[42]: message repeated 99999999 times: [ Failed password for root from 192.0.2.1 port 22 ssh2]";
        assert!(matches!(
            s.check(huge, None),
            LineMatch::Hit {
                repeat: MAX_REPEAT,
                ..
            }
        ));
        // A wrapper inside a message is not at the tag: the anchored rule does not match.
        let inner = b"Nov 21 10:00:00 gw cron[1]: x: message repeated 3 times: [ Failed password for root from 192.0.2.1 port 22 ssh2]";
        assert_eq!(s.check(inner, None), LineMatch::Miss);
    }

    #[test]
    fn a_wrapper_inside_the_message_is_no_repeat() {
        // The issue's line: the client chose the user name `x: message repeated 1000 times: [ y`.
        let forged = b"Nov 21 10:00:00 gw sshd[42]: Disconnecting: Too many authentication failures for invalid user x: message repeated 1000 times: [ y [preauth]";
        // Before: unwrapped, one line counted 1000 times.
        let s = set("/^Disconnecting: Too many authentication failures/ @ \"too many\" tag=sshd\n");
        assert!(matches!(
            s.check(forged, None),
            LineMatch::Hit { repeat: 1, .. }
        ));
        // Before: unwrapped, the line as logged was never seen by the rules.
        let s = set("/Disconnecting: .* user x: message repeated 1000 times: \\[ y \\[preauth\\]$/ @ \"r\" tag=sshd\n");
        assert!(matches!(
            s.check(forged, None),
            LineMatch::Hit { repeat: 1, .. }
        ));
    }

    #[test]
    fn modes_select_rules() {
        let text = "/a <HOST>/ * \"a\"\n/b <HOST>/ * \"b\" mode=ddos\n/c <HOST>/ * \"c\" mode=aggressive\n";
        let rules = || crate::rules::parse(text, Path::new("r")).unwrap();
        let caught = |mode: RuleMode| -> Vec<bool> {
            let s = RuleSet::with_mode(rules(), mode).unwrap();
            ["a 192.0.2.1", "b 192.0.2.1", "c 192.0.2.1"]
                .iter()
                .map(|l| s.check(l.as_bytes(), None) != LineMatch::Miss)
                .collect()
        };
        assert_eq!(caught(RuleMode::Normal), [true, false, false]);
        assert_eq!(caught(RuleMode::Ddos), [true, true, false]);
        assert_eq!(caught(RuleMode::Aggressive), [true, true, true]);
    }
}
