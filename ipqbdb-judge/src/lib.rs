//! Verdicts for ipqbdb: queue specs, packet addresses, the verdict engine, the NFQUEUE socket, the
//! `ibd-judge` loop and its block-counter writer.

pub mod cli;
pub mod daemon;
pub mod judge;
pub mod metrics;
pub mod netlink;
pub mod packet;
pub mod qspec;
pub mod writer;
