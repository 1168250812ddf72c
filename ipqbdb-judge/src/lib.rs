//! Verdicts for ipqbdb: queue specs, packet addresses, the verdict engine, the NFQUEUE socket and the
//! `ibd-judge` loop.

pub mod cli;
pub mod daemon;
pub mod judge;
pub mod netlink;
pub mod packet;
pub mod qspec;
