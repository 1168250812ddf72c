//! Finding the address in a matched line without the regex engine's capture search.
//!
//! The regex crate finds captures with a backtracker that, for the usual rule shape
//! `prefix .* from <HOST> suffix`, walks the greedy `.*` back from the end of the line: about three
//! quarters of what a caught line costs. Yet the address group is almost always a plain link of the
//! top-level chain, `A (?P<IP>H) B`, and where its bounds can only be in one place no search for
//! priorities is needed: the bounds are where `A` can end and `H B` can start, and where `H` can end
//! and `B` can start. Four anchored DFA passes, each stopping as soon as its automaton dies, find every
//! such place; when each is unique, those are the captures any engine would report. When one is not
//! (a rule where the split is ambiguous, and leftmost-first priorities decide), the caller falls back
//! to the regex's own captures, so the answer never changes, only its cost.

use std::ops::Range;

use regex::bytes::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Hir, HirKind};

/// Memory each lazy automaton may fill before it gives up on a line (and the regex decides).
const CACHE_CAPACITY: usize = 256 << 10;

type CachePool = Pool<[Cache; 4], Box<dyn Fn() -> [Cache; 4] + Send + Sync>>;

/// The four automata of a rule whose address group is a link of its top-level chain. They are lazy
/// DFAs: built state by state as lines need them, so a rule costs nothing at start-up and only the
/// states real lines reach.
pub struct FastCapture {
    /// `A` forward (where it can end), `H B` reversed (where it can start), `H` forward, `B`
    /// reversed.
    dfas: std::sync::Arc<[DFA; 4]>,
    caches: CachePool,
}

impl std::fmt::Debug for FastCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FastCapture")
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
        let concat = |parts: &[Hir]| Hir::concat(parts.to_vec());
        let dfas = std::sync::Arc::new([
            build(&concat(&parts[..at]), false)?,
            build(&concat(&parts[at..]), true)?,
            build(&parts[at], false)?,
            build(&concat(&parts[at + 1..]), true)?,
        ]);
        let for_caches = dfas.clone();
        let caches: CachePool = Pool::new(Box::new(move || {
            [0, 1, 2, 3].map(|i| for_caches[i].create_cache())
        }));
        Some(FastCapture { dfas, caches })
    }

    /// The group's bounds in `hay`, given that the whole pattern matched `hay[m]` (as the regex reports
    /// it); `None` when they are not unique (the caller asks the regex).
    pub fn locate(&self, hay: &[u8], m: Range<usize>) -> Option<Range<usize>> {
        let mut caches = self.caches.get();
        let [c0, c1, c2, c3] = &mut *caches;
        let d = &self.dfas;
        let start = unique_meeting((&d[0], c0), (&d[1], c1), hay, m.clone())?;
        let end = unique_meeting((&d[2], c2), (&d[3], c3), hay, start..m.end)?;
        Some(start..end)
    }
}

fn build(hir: &Hir, reverse: bool) -> Option<DFA> {
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

/// The one position `p` in `span` where `fwd` (anchored at the span's start) can end and `rev`
/// (anchored at the span's end, run backwards) can start; `None` when there is none, more than
/// one, or an automaton ran out of room.
fn unique_meeting(
    (fwd, fc): (&DFA, &mut Cache),
    (rev, rc): (&DFA, &mut Cache),
    hay: &[u8],
    span: Range<usize>,
) -> Option<usize> {
    let len = span.end - span.start;
    // Log lines are short: a bit set on the stack for them, on the heap for the rare long one.
    let mut small = [0u64; 16];
    let mut large = Vec::new();
    let ends: &mut [u64] = if len < 16 * 64 {
        &mut small
    } else {
        large.resize(len / 64 + 1, 0);
        &mut large
    };
    let mut any = false;
    let cfg = start::Config::new()
        .anchored(Anchored::Yes)
        .look_behind(span.start.checked_sub(1).map(|i| hay[i]));
    let mut sid = fwd.start_state(fc, &cfg).ok()?;
    // A DFA reports a match one byte late: the state after byte `i` says whether a match ends at
    // `i`. The byte after the span (or the end of the haystack) is fed for the last position.
    for i in span.start..=span.end {
        sid = match hay.get(i) {
            Some(&b) => fwd.next_state(fc, sid, b).ok()?,
            None => fwd.next_eoi_state(fc, sid).ok()?,
        };
        if sid.is_match() {
            let p = i - span.start;
            ends[p / 64] |= 1 << (p % 64);
            any = true;
        }
        if sid.is_dead() || sid.is_quit() {
            break;
        }
    }
    if !any {
        return None;
    }
    let cfg = start::Config::new()
        .anchored(Anchored::Yes)
        .look_behind(hay.get(span.end).copied());
    let mut sid = rev.start_state(rc, &cfg).ok()?;
    let mut found = None;
    // Backwards: the state after byte `i - 1` says whether a match starts at `i`.
    let mut i = span.end;
    loop {
        sid = if i > 0 {
            rev.next_state(rc, sid, hay[i - 1]).ok()?
        } else {
            rev.next_eoi_state(rc, sid).ok()?
        };
        if sid.is_match() {
            let p = i - span.start;
            if ends[p / 64] & (1 << (p % 64)) != 0 {
                if found.is_some() {
                    return None;
                }
                found = Some(i);
            }
        }
        if sid.is_dead() || sid.is_quit() || i == span.start {
            break;
        }
        i -= 1;
    }
    found
}

/// The address group's bounds in `hay`, by [`FastCapture`] where it can decide, else by `regex`:
/// `None` when `regex` does not match, `Some(None)` when it matches without the group taking part.
pub fn group_span(
    regex: &Regex,
    fast: Option<&FastCapture>,
    index: usize,
    hay: &[u8],
) -> Option<Option<Range<usize>>> {
    if let Some(fast) = fast {
        let m = regex.find(hay)?;
        if let Some(span) = fast.locate(hay, m.range()) {
            return Some(Some(span));
        }
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
                group_span(&regex, Some(&fast), index, hay).flatten(),
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
            ] {
                let regex = regex::bytes::RegexBuilder::new(&pattern).unicode(false).build().unwrap();
                let Some(index) = regex.capture_names().position(|n| n == Some("IP")) else {
                    continue;
                };
                let Some(fast) = FastCapture::new(&pattern, index as u32) else { continue };
                let want = regex.captures(line.as_bytes()).map(|c| c.get(index).map(|g| g.range()));
                proptest::prop_assert_eq!(
                    group_span(&regex, Some(&fast), index, line.as_bytes()),
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
