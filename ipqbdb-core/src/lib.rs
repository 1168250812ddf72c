//! The ipqbdb domain: which addresses are stored how, and how their block probability evolves.
//!
//! The model is pure (time is a parameter) and uses no operating-system facility beyond the clock and
//! randomness: process plumbing (configuration loading, signals, syslog, daemonising) lives in
//! `ipqbdb-runtime`, storage in `ipqbdb-store`, packets in `ipqbdb-judge`, log parsing in
//! `ipqbdb-parse`. [`log`] only chooses where a log line goes.

pub mod addr;
pub mod banlog;
pub mod error;
pub mod log;
pub mod model;
pub mod range;
pub mod record;
pub mod report;
pub mod retention;
pub mod time;
pub mod units;

pub use addr::{parse_ip, AddrKey, V6Prefix, DEFAULT_V6_PREFIX};
pub use error::ParseError;
pub use model::{
    apply_ban, ban_decay, current_probability, initial_probability, is_guilty, BanKind, BanOutcome,
    BanRequest, ModelParams, P_MAX,
};
pub use range::AddrRange;
pub use record::{Reason, ReasonId, Record, UnixTime};
pub use units::{format_duration, parse_ban_decay, parse_count, parse_duration};

/// The current time as [`UnixTime`], for callers at the edge (binaries); libraries take time as input.
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A probability as a percentage, for display.
pub fn percent(p: u32) -> f64 {
    f64::from(p) * 100.0 / f64::from(P_MAX)
}
