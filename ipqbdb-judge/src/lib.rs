//! Verdicts for ipqbdb: queue specs, packet addresses, the verdict engine, the NFQUEUE socket, the
//! `ibd-judge` loop and its block-counter writer.

pub mod batch;
pub mod cli;
pub mod daemon;
pub mod judge;
pub mod metrics;
pub mod netlink;
pub mod netlink_messages;
pub mod packet;
pub mod qspec;
pub mod receive;
pub mod stats;
pub mod worker;
pub mod writer;

/// The name the judge logs under.
pub const PROGRAM: &str = "ibd-judge";
