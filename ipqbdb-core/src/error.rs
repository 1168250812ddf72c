//! Errors for everything a user can type: addresses, ranges, durations, counts.
//!
//! Each variant keeps the offending text so that a binary can print one line that says exactly what was
//! wrong, without having to know where the text came from (the caller adds file and line).

use thiserror::Error;

/// Why a piece of user input was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("invalid IP address {0:?}")]
    Address(String),
    #[error("invalid address range {input:?}: {why}")]
    Range { input: String, why: &'static str },
    #[error("invalid duration {input:?}: {why} (use e.g. 30s, 15m, 4h, 4d, 2w)")]
    Duration { input: String, why: &'static str },
    #[error("invalid count {input:?}: {why} (use e.g. 500, 4k, 4M)")]
    Count { input: String, why: &'static str },
    #[error("invalid IPv6 prefix length {0} (must be 1 to 128)")]
    Prefix(u32),
    #[error("invalid initial count {0} (must be 0 to 31)")]
    InitialCount(u32),
    #[error("a ban's decay cannot be 0 (it would never block, yet a second ban would leave it at 50 %); to never block an address, whitelist it with decay 0")]
    ZeroBanDecay,
}
