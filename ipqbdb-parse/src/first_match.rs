//! Which tagged rule a message is for, in one pass over it.
//!
//! A `RegexSet` says whether any rule matches, but to learn which one comes first in the rule file
//! it runs a second, overlapping search over every pattern, and the rule's own regex then runs a
//! third to find where its match ends: on an attack-dense log, where nearly half the lines are
//! caught, those two searches cost more than deciding that a line is caught at all. Every tagged
//! rule is anchored at the message's start, and among patterns that all start at one place a
//! leftmost-first automaton prefers the first pattern that matches, its match being exactly the
//! one that pattern's own regex finds. So one forward lazy DFA over all tagged patterns answers
//! both: the first rule in file order and its match's end.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchError, MatchKind};

type CachePool = Pool<Cache, Box<dyn Fn() -> Cache + Send + Sync>>;

/// The first of a list of `^`-anchored patterns (compiled as the rules are: bytes, no Unicode) to
/// match a text.
pub struct FirstMatch {
    dfa: std::sync::Arc<DFA>,
    caches: CachePool,
}

impl std::fmt::Debug for FirstMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirstMatch")
            .field("patterns", &self.dfa.pattern_len())
            .finish()
    }
}

impl FirstMatch {
    /// `nfa_limit` and `cache` bound the automaton as the rule sets' size limits do.
    pub fn new(patterns: &[&str], nfa_limit: usize, cache: usize) -> Result<Self, regex::Error> {
        let dfa = DFA::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .thompson(
                thompson::Config::new()
                    .utf8(false)
                    .nfa_size_limit(Some(nfa_limit))
                    .which_captures(thompson::WhichCaptures::None),
            )
            .configure(
                DFA::config()
                    .match_kind(MatchKind::LeftmostFirst)
                    .cache_capacity(cache)
                    .skip_cache_capacity_check(true),
            )
            .build_many(patterns)
            .map_err(|e| regex::Error::Syntax(e.to_string()))?;
        let dfa = std::sync::Arc::new(dfa);
        let for_caches = dfa.clone();
        let caches: CachePool = Pool::new(Box::new(move || for_caches.create_cache()));
        Ok(FirstMatch { dfa, caches })
    }

    /// The index of the first pattern that matches `text` from its start and where that match
    /// ends, `None` when none does; an error when the automaton gave up (the caller then asks
    /// each regex).
    pub fn find(&self, text: &[u8]) -> Result<Option<(usize, usize)>, MatchError> {
        let mut cache = self.caches.get();
        let input = Input::new(text).anchored(Anchored::Yes);
        let found = self.dfa.try_search_fwd(&mut cache, &input)?;
        Ok(found.map(|m| (m.pattern().as_usize(), m.offset())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_pattern_in_order_and_its_own_match() {
        let patterns = [r"^(?:a+b)", r"^(?:a.*)", r"^(?:a)", r"^(?:x\d+)"];
        let first = FirstMatch::new(&patterns, 1 << 20, 1 << 20).unwrap();
        let regexes: Vec<regex::bytes::Regex> = patterns
            .iter()
            .map(|p| {
                regex::bytes::RegexBuilder::new(p)
                    .unicode(false)
                    .build()
                    .unwrap()
            })
            .collect();
        for text in ["aab tail", "aaa tail", "a", "x12y", "yx1", "", "\u{ff}ab"] {
            let want = regexes
                .iter()
                .position(|r| r.is_match(text.as_bytes()))
                .map(|i| (i, regexes[i].find(text.as_bytes()).unwrap().end()));
            assert_eq!(first.find(text.as_bytes()), Ok(want), "{text:?}");
        }
    }
}
