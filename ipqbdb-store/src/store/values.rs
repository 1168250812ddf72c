//! The values the store's operations take and give, shared by the trait and the domain files.

use std::net::IpAddr;
use std::path::Path;

use ipqbdb_core::report::ReportState;
use ipqbdb_core::{AddrKey, AddrRange, BanOutcome, Reason, ReasonId, Record, V6Prefix};

use crate::error::StoreError;

/// Longest reason text: LMDB keys are limited to 511 bytes and the text is a key of the reason index.
pub const MAX_REASON_LEN: usize = 400;

/// One ban to apply.
#[derive(Debug, Clone, Copy)]
pub struct Ban<'a> {
    pub ip: IpAddr,
    pub reason: &'a str,
    pub initial_count: u8,
    /// The rule's or command's decay; `None` for the default.
    pub decay: Option<u32>,
}

/// What one ban did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanEffect {
    /// The key the ban applied to (an IPv6 address masked to its prefix).
    pub key: AddrKey,
    pub reason: ReasonId,
    pub outcome: BanOutcome,
}

/// A whitelist entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhiteEntry {
    pub range: AddrRange,
    pub decay: u32,
}

/// A reason with the counters of its live records beside those credited by deletions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonStats {
    pub reason: Reason,
    pub live_records: u64,
    pub live_caught: u64,
    pub live_blocked: u64,
}

impl ReasonStats {
    /// Bans of live and deleted records, saturating: counters are read from a database, where any value
    /// may be stored, and a total must never wrap or panic.
    pub fn total_caught(&self) -> u64 {
        self.reason.caught.saturating_add(self.live_caught)
    }

    /// Blocked packets of live and deleted records, saturating like [`ReasonStats::total_caught`].
    pub fn total_blocked(&self) -> u64 {
        self.reason.blocked.saturating_add(self.live_blocked)
    }
}

/// What [`crate::Store::set_v6_prefix`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixChange {
    pub old: V6Prefix,
    pub new: V6Prefix,
    /// IPv6 records that moved to a new key.
    pub moved: u64,
    /// IPv6 records merged into another one that took the same key.
    pub merged: u64,
}

/// A banned address whose reason has a report category, with what a reporter needs to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportCandidate {
    pub key: AddrKey,
    pub record: Record,
    pub reason: Reason,
    /// The latest report attempt for this key, if any.
    pub state: Option<ReportState>,
    /// Whether a whitelist range holds the address (whatever its decay).
    pub whitelisted: bool,
}

/// What [`crate::Store::report_begin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportBegin {
    /// The attempt is recorded as [`ipqbdb_core::report::ReportKind::Sent`] and counted in the
    /// day's quota: send it now.
    Started,
    /// What the caller selected the key by no longer holds: another reporter took it or recorded
    /// something meanwhile, or the address was whitelisted, deleted or banned again (a new ban
    /// time) since the candidates were read. Do not send.
    Changed,
    /// The day's quota is used up: nothing was recorded.
    QuotaExhausted { used: u32 },
}

pub(super) fn corrupt(path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}
