//! A fail2ban filter as loaded: its regexes compiled, its ban parameters, and the state it keeps
//! between lines.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use ipqbdb_fail2ban::{FilterSpec, Located};

use super::mlfid::MlfidCache;
use super::shortcuts::DateFinder;
use crate::hybrid_regex::HybridRegex;

/// A regex of a filter, where it was written and how it runs.
pub struct Compiled {
    pub kind: &'static str,
    pub source: Located,
    pub regex: HybridRegex,
}

/// What a filter's bans get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanParams {
    pub reason: String,
    pub initial_count: u8,
    pub decay: Option<u32>,
}

/// A fail2ban filter, compiled.
pub struct ImportedFilter {
    pub spec: FilterSpec,
    pub file: PathBuf,
    pub ban: BanParams,
    pub notes: Vec<String>,
    pub maxlines: usize,
    pub(super) dates: Vec<DateFinder>,
    pub regexes: Vec<Compiled>,
    /// Indices in `regexes`.
    pub(super) pref: Option<usize>,
    /// The part of a single-line `prefregex` before its `(?P<content>.+)$`, when that is how it
    /// ends: found by the DFA alone, it says where the content starts, and the prefregex's own
    /// groups (the costly part) are only captured for lines a failregex matches.
    pub(super) pref_head: Option<regex::Regex>,
    pub(super) fail: Vec<usize>,
    /// The failregexes on the `regex` crate as one set: one pass tells that none of them matches
    /// a line (most lines), instead of asking each.
    pub(super) fast_set: Option<regex::RegexSet>,
    pub(super) ignore: Vec<usize>,
    pub(super) state: Mutex<State>,
}

#[derive(Default)]
pub(super) struct State {
    /// The last `maxlines` lines (without their timestamps).
    pub(super) buffer: VecDeque<String>,
    pub(super) mlfid: MlfidCache,
}

/// What one line is to one filter: the first stage of a line's result (the rule set's
/// `matcher::LineMatch` and the sessions' `sessions::LineCount` follow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterMatch {
    Miss,
    /// A failure of this address.
    Failure(IpAddr),
    /// Recognised, but not a failure (yet): `<F-NOFAIL>`, or a connection's address still unknown.
    Noted,
    /// A failure whose id is no address (a host name, or an `<F-ID>` that is not one).
    NotAnAddress(String),
}

impl ImportedFilter {
    /// The filter's name as its bans and reports show it.
    pub fn name(&self) -> String {
        self.spec.to_string()
    }
}
