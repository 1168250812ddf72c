//! Finding the address in a matched line without the regex engine's capture search.
//!
//! The regex crate finds captures with a backtracker that, for the usual rule shape
//! `prefix .* from <HOST> suffix`, walks the greedy `.*` back from the end of the line: about three
//! quarters of what a caught line cost. Yet the address group is almost always a plain link of the
//! top-level chain, `A (?P<IP>H) B`, and where its bounds can only be in one place no search for
//! priorities is needed: the group starts where `A` can end and `H B` can start, and ends where `H`
//! can end and `B` can start. Reversed DFAs read from the end of the match find where `H B` can start
//! (usually one place or a few, as `11.2.3.4` may also start at `1.2.3.4`); each of those that `A`,
//! read backwards from it, cannot reach the match's start drops out, and as the true start is among
//! them, the last one standing is it, usually a byte or two later. The end is where `H`, read
//! forwards from the start (a few bytes: the address), can end and `B`, read backwards from the
//! match's end, can start. When a place is not unique (an ambiguous split, where leftmost-first
//! priorities decide), the caller asks the regex for its captures, so the answer never changes,
//! only its cost.

use std::ops::Range;

use regex::bytes::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::hybrid::LazyStateID;
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::start;
use regex_automata::{Anchored, Input, MatchKind};
use regex_syntax::hir::{Hir, HirKind, Look};

/// Memory each lazy automaton may fill before it gives up on a line (and the regex decides).
const CACHE_CAPACITY: usize = 256 << 10;

/// More candidate places than this, and the regex decides: the rule's split is loose. An IPv6
/// address may start at any of its up to 45 characters (`db8::1` is one too).
const MAX_CANDIDATES: usize = 48;

type CachePool = Pool<[Cache; 4], Box<dyn Fn() -> [Cache; 4] + Send + Sync>>;

/// The automata of a rule whose address group is a link of its top-level chain. They are lazy DFAs:
/// built state by state as lines need them, so a rule costs nothing at start-up and only the states
/// real lines reach.
pub struct FastCapture {
    /// `A` and `H B` reversed; `H` and `B` forwards.
    dfas: std::sync::Arc<[DFA; 4]>,
    caches: CachePool,
    /// The pattern is `^...$`: a line it matches is matched whole, so no search for the bounds.
    whole: bool,
}

impl std::fmt::Debug for FastCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastCapture")
            .field("whole", &self.whole)
            .finish()
    }
}

impl FastCapture {
    /// The automata for capture group `index` of `pattern` (compiled as the rules are: bytes, no
    /// Unicode), or `None` when the group is not a link of the top-level chain.
    pub fn new(pattern: &str, index: u32) -> Option<FastCapture> {
        let hir = regex_syntax::ParserBuilder::new()
            .unicode(false)
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()?;
        let HirKind::Concat(parts) = hir.kind() else {
            return None;
        };
        let at = parts
            .iter()
            .position(|p| matches!(p.kind(), HirKind::Capture(c) if c.index == index))?;
        let is_look = |p: Option<&Hir>, look: Look| {
            p.is_some_and(|p| matches!(p.kind(), HirKind::Look(l) if *l == look))
        };
        let whole = is_look(parts.first(), Look::Start) && is_look(parts.last(), Look::End);
        let concat = |parts: &[Hir]| Hir::concat(parts.to_vec());
        let dfas = std::sync::Arc::new([
            reversed(&concat(&parts[..at]))?,
            reversed(&concat(&parts[at..]))?,
            lazy_dfa(&parts[at], false)?,
            lazy_dfa(&concat(&parts[at + 1..]), false)?,
        ]);
        let for_caches = dfas.clone();
        let caches: CachePool = Pool::new(Box::new(move || {
            [0, 1, 2, 3].map(|i| for_caches[i].create_cache())
        }));
        Some(FastCapture {
            dfas,
            caches,
            whole,
        })
    }

    /// The group's bounds in `hay`, given that the whole pattern matched `hay[m]` (as the regex reports
    /// it); `None` when they are not unique or do not check out (the caller asks the regex).
    pub fn locate(&self, hay: &[u8], m: Range<usize>) -> Option<Range<usize>> {
        let mut caches = self.caches.get();
        let [c0, c1, c2, c3] = &mut *caches;
        let d = &self.dfas;
        let start = meeting((&d[0], c0), (&d[1], c1), hay, m.clone())?;
        // `meeting` trusts the span it is given and may answer without reading `A`: check that it
        // does match its part (`H B` was read to find the place). The span comes from the regex's
        // own search, which can be wrong (regex-automata 0.4.18's full DFA ends
        // ` *?(?:a|ab)[^a]+?(?P<IP>x|1+?)` on `a1Axa` at 2, not 4): then no split of it matches,
        // and the regex's captures decide. The end is found with both of its parts read.
        if !reaches(&d[0], c0, hay, start, m.start)? {
            return None;
        }
        let end = split_end((&d[2], c2), (&d[3], c3), hay, start..m.end)?;
        Some(start..end)
    }
}

fn reversed(hir: &Hir) -> Option<DFA> {
    lazy_dfa(hir, true)
}

fn lazy_dfa(hir: &Hir, reverse: bool) -> Option<DFA> {
    let nfa = thompson::Compiler::new()
        .configure(
            thompson::Config::new()
                .reverse(reverse)
                .utf8(false)
                .which_captures(thompson::WhichCaptures::None),
        )
        .build_from_hir(hir)
        .ok()?;
    DFA::builder()
        .configure(
            DFA::config()
                .match_kind(MatchKind::All)
                .cache_capacity(CACHE_CAPACITY)
                .skip_cache_capacity_check(true),
        )
        .build_from_nfa(nfa)
        .ok()
}

/// A reversed automaton anchored at `at`, about to read the byte before it.
fn start_at(dfa: &DFA, cache: &mut Cache, hay: &[u8], at: usize) -> Option<LazyStateID> {
    let cfg = start::Config::new()
        .anchored(Anchored::Yes)
        .look_behind(hay.get(at).copied());
    dfa.start_state(cache, &cfg).ok()
}

#[inline(always)]
/// Reads the byte before `at` (or the start of the haystack). The state after it says whether a
/// match of the reversed automaton starts at `at`: matches show one byte late.
fn step_back(
    dfa: &DFA,
    cache: &mut Cache,
    sid: LazyStateID,
    hay: &[u8],
    at: usize,
) -> Option<LazyStateID> {
    let sid = match at.checked_sub(1) {
        Some(i) => dfa.next_state(cache, sid, hay[i]),
        None => dfa.next_eoi_state(cache, sid),
    };
    sid.ok().filter(|s| !s.is_quit())
}

/// The one position `p` in `span` where `left` can match `span.start..p` and `right` can match
/// `p..span.end`, both given reversed; `None` when there is none, more than one, or an automaton
/// ran out of room. The caller knows that the concatenation matches the span, so at least one
/// such `p` exists: a single candidate left is the answer, even before it is checked to the end.
fn meeting(
    (left, lc): (&DFA, &mut Cache),
    (right, rc): (&DFA, &mut Cache),
    hay: &[u8],
    span: Range<usize>,
) -> Option<usize> {
    let mut candidates = [0usize; MAX_CANDIDATES];
    let n = starts(right, rc, hay, span.clone(), &mut candidates)?;
    // The true place is among the candidates: those `left` cannot reach the span's start from
    // drop out, and the last one is the answer without reading it. Candidates were found from the
    // right; a wrong one usually sits inside the address (`92.0.2.1` in `192.0.2.1`) and drops
    // out at its first byte, while the true one is the leftmost, read last if at all.
    let mut standing = None;
    for (k, &c) in candidates[..n].iter().enumerate() {
        if standing.is_none() && k + 1 == n {
            return Some(c);
        }
        // The byte before the candidate rules most of them out: one step of the automaton
        // costs a fraction of a search.
        if c > span.start {
            let sid = start_at(left, lc, hay, c)?;
            if step_back(left, lc, sid, hay, c)?.is_dead() {
                continue;
            }
        }
        if reaches(left, lc, hay, c, span.start)? {
            if standing.is_some() {
                return None;
            }
            standing = Some(c);
        }
    }
    standing
}

/// Where reversed `right` can start in `span`, read back from the span's end: the places, from
/// the right, in `found`, and how many there are; `None` when there are more than it holds or the
/// automaton ran out of room. Most bytes lead from one unremarkable state to another: one test of
/// the state's tag sets them apart from a match, the dead state or a give-up.
fn starts(
    right: &DFA,
    rc: &mut Cache,
    hay: &[u8],
    span: Range<usize>,
    found: &mut [usize; MAX_CANDIDATES],
) -> Option<usize> {
    let mut n = 0;
    let mut sid = start_at(right, rc, hay, span.end)?;
    // Matches show one byte late: after `hay[i]`, a match of `right` starts at `i + 1`.
    for (i, &b) in hay[span.start..span.end].iter().enumerate().rev() {
        sid = right.next_state(rc, sid, b).ok()?;
        if sid.is_tagged() {
            if sid.is_quit() {
                return None;
            }
            if sid.is_match() {
                *found.get_mut(n)? = span.start + i + 1;
                n += 1;
            }
            if sid.is_dead() {
                return Some(n);
            }
        }
    }
    sid = step_back(right, rc, sid, hay, span.start)?;
    if sid.is_match() {
        *found.get_mut(n)? = span.start;
        n += 1;
    }
    Some(n)
}

#[inline(always)]
/// Forward `dfa` in state `sid` reads `hay[at]`, or the end of the haystack: the state after it
/// says whether a match ends at `at` (matches show one byte late).
fn step_fwd(
    dfa: &DFA,
    cache: &mut Cache,
    sid: LazyStateID,
    hay: &[u8],
    at: usize,
) -> Option<LazyStateID> {
    let sid = match hay.get(at) {
        Some(&b) => dfa.next_state(cache, sid, b),
        None => dfa.next_eoi_state(cache, sid),
    };
    sid.ok().filter(|s| !s.is_quit())
}

/// A forward automaton anchored at `at`, about to read `hay[at]`.
fn start_fwd(dfa: &DFA, cache: &mut Cache, hay: &[u8], at: usize) -> Option<LazyStateID> {
    let cfg = start::Config::new()
        .anchored(Anchored::Yes)
        .look_behind(at.checked_sub(1).map(|i| hay[i]));
    dfa.start_state(cache, &cfg).ok()
}

/// The one position `e` in `span` where forward `group` matches `span.start..e` and forward
/// `rest` matches `e..span.end`, given that some such `e` exists (the caller read `H B` over the
/// span); `None` when there is more than one or an automaton ran out of room. The group is an
/// address: read forwards, it dies a few bytes on, with the few places it can end (`192.0.2.1`
/// also ends after `192.0.2.`'s `1`). The true end is among them; those where `rest` cannot even
/// read its first byte drop out, and one left over is the answer, as in `meeting`.
fn split_end(
    (group, gc): (&DFA, &mut Cache),
    (rest, rc): (&DFA, &mut Cache),
    hay: &[u8],
    span: Range<usize>,
) -> Option<usize> {
    let mut ends = [0usize; MAX_CANDIDATES];
    let mut n = 0;
    let mut sid = start_fwd(group, gc, hay, span.start)?;
    let mut at = span.start;
    loop {
        sid = step_fwd(group, gc, sid, hay, at)?;
        if sid.is_match() {
            *ends.get_mut(n)? = at;
            n += 1;
        }
        if sid.is_dead() || at >= span.end || at >= hay.len() {
            break;
        }
        at += 1;
    }
    let ends = &ends[..n];
    let mut passing = ends.iter().copied().filter(|&e| {
        start_fwd(rest, rc, hay, e)
            .and_then(|s| step_fwd(rest, rc, s, hay, e))
            .is_none_or(|s| !s.is_dead())
    });
    let first = passing.next();
    if passing.next().is_none() {
        return first;
    }
    // Several pass the first byte: each is read to the span's end, and one must be left.
    let mut found = None;
    for &e in ends {
        if reaches_fwd(rest, rc, hay, e, span.end)? {
            if found.is_some() {
                return None;
            }
            found = Some(e);
        }
    }
    found
}

/// Whether forward `rest`, anchored at `from`, matches exactly up to `to`: with every match kept,
/// the search reports the one that ends last.
fn reaches_fwd(rest: &DFA, rc: &mut Cache, hay: &[u8], from: usize, to: usize) -> Option<bool> {
    let input = Input::new(hay).range(from..to).anchored(Anchored::Yes);
    let found = rest.try_search_fwd(rc, &input).ok()?;
    Some(found.is_some_and(|m| m.offset() == to))
}

/// Whether reversed `left`, anchored at `from`, matches exactly back to `to`. The library's reverse
/// search reads the span (and the byte before it, for look-behind) in its unrolled loop, at a
/// fraction of the cost of stepping byte by byte; with every match kept, the last one it reports
/// is the one farthest back, so it ends at `to` exactly when some match does.
fn reaches(left: &DFA, lc: &mut Cache, hay: &[u8], from: usize, to: usize) -> Option<bool> {
    let input = Input::new(hay).range(to..from).anchored(Anchored::Yes);
    let found = left.try_search_rev(lc, &input).ok()?;
    Some(found.is_some_and(|m| m.offset() == to))
}

/// The address group's bounds in `hay`, by [`FastCapture`] where it can decide, else by `regex`:
/// `None` when `regex` does not match, `Some(None)` when it matches without the group taking part.
/// `matched`: the caller knows that `regex` matches `hay` (a `RegexSet` said so).
pub fn group_span(
    regex: &Regex,
    fast: Option<&FastCapture>,
    index: usize,
    hay: &[u8],
    matched: bool,
) -> Option<Option<Range<usize>>> {
    if let Some(fast) = fast {
        let m = if fast.whole && matched {
            0..hay.len()
        } else {
            regex.find(hay)?.range()
        };
        return group_span_in(regex, Some(fast), index, hay, m);
    }
    Some(regex.captures(hay)?.get(index).map(|g| g.range()))
}

/// As [`group_span`], for a line whose match `hay[m]` the caller has found already (as `regex`
/// would find it), so that no search runs again for it.
pub fn group_span_in(
    regex: &Regex,
    fast: Option<&FastCapture>,
    index: usize,
    hay: &[u8],
    m: Range<usize>,
) -> Option<Option<Range<usize>>> {
    if let Some(span) = fast.and_then(|fast| fast.locate(hay, m)) {
        return Some(Some(span));
    }
    Some(regex.captures(hay)?.get(index).map(|g| g.range()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compares the fast path with the regex's captures on `lines`; returns how many it decided.
    fn agree(pattern: &str, lines: &[&str]) -> usize {
        let regex = regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .unwrap();
        let index = regex.capture_names().position(|n| n == Some("IP")).unwrap();
        let fast = FastCapture::new(pattern, index as u32).expect("a top-level group");
        let mut decided = 0;
        for line in lines {
            let hay = line.as_bytes();
            let want = regex
                .captures(hay)
                .and_then(|c| c.get(index))
                .map(|g| g.range());
            if let Some(m) = regex.find(hay) {
                if let Some(got) = fast.locate(hay, m.range()) {
                    assert_eq!(Some(got), want, "{pattern} on {line}");
                    decided += 1;
                }
            }
            assert_eq!(
                group_span(&regex, Some(&fast), index, hay, false).flatten(),
                want,
                "{line}"
            );
        }
        decided
    }

    #[test]
    fn finds_what_the_regex_captures() {
        let host = crate::rules::HOST_PATTERN;
        let pw = format!(r"^(?:Failed|Invalid) password for .* from {host} port \d+(?: ssh2)?$");
        let lines = [
            "Failed password for root from 192.0.2.1 port 22 ssh2",
            "Failed password for invalid user x from 2001:db8::1 port 22",
            "Failed password for x from 192.0.2.9 port 1 ssh2 from 192.0.2.1 port 22 ssh2",
            "Failed password for  from 10.0.0.1 port 5",
        ];
        assert_eq!(agree(&pw, &lines), lines.len());
        // Ambiguous on purpose: `.*` on both sides of the group; decided only where unique.
        let loose = format!(r"x.*{host}.*y");
        agree(
            &loose,
            &["x 192.0.2.1 y", "x 192.0.2.1 192.0.2.2 y", "x1.2.3.4y"],
        );
        let rhost = format!(r"\brhost={host}(?:\s|$)");
        assert_eq!(
            agree(&rhost, &["a rhost=192.0.2.7 user=b", "rhost=192.0.2.7"]),
            2
        );
    }

    proptest::proptest! {
        /// Rules where the split can be ambiguous, on lines made of their own pieces: whatever the
        /// automata decide is what the regex captures.
        #[test]
        fn never_disagrees(pieces in proptest::collection::vec(0usize..8, 0..14)) {
            const PIECES: [&str; 8] =
                ["x", "y", " ", "192.0.2.1", "1.2.3.4", "::1", "a:b", " port 7"];
            let line: String = pieces.iter().map(|&i| PIECES[i]).collect();
            let host = crate::rules::HOST_PATTERN;
            for pattern in [
                format!("x.*{host}.*y"),
                format!("x.*?{host} ?y?"),
                format!("(?:x|x )({host})?.*"),
                format!(r"\bx? ?{host}(?: port \d+)?$"),
                format!("[x ]*{host}[x 0-9.]*"),
                // What follows the address may start with its digits: several ends pass the
                // first byte and are read to the end.
                format!("x {host}[0-9.]* ?y?"),
            ] {
                let regex = regex::bytes::RegexBuilder::new(&pattern).unicode(false).build().unwrap();
                let Some(index) = regex.capture_names().position(|n| n == Some("IP")) else {
                    continue;
                };
                let Some(fast) = FastCapture::new(&pattern, index as u32) else { continue };
                let want = regex.captures(line.as_bytes()).map(|c| c.get(index).map(|g| g.range()));
                proptest::prop_assert_eq!(
                    group_span(&regex, Some(&fast), index, line.as_bytes(), false),
                    want,
                    "{} on {:?}", pattern, line
                );
            }
        }
    }

    #[test]
    fn refuses_groups_inside_other_constructs() {
        let host = crate::rules::HOST_PATTERN;
        assert!(FastCapture::new(&format!("(?:a {host}|b)"), 1).is_none());
        assert!(FastCapture::new(&format!("(?:a {host})+"), 1).is_none());
        assert!(FastCapture::new(&format!("a {host} b"), 1).is_some());
    }
}
