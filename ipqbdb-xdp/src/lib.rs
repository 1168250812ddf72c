//! ipqbdb's kernel verdict path: an XDP program (`bpf/verdict.bpf.c`) that drops each packet of a
//! banned source with its current probability, decayed in the kernel, and `ibd-xdp`, the daemon that
//! loads it, keeps its maps in step with the database and writes its drop counts back.
//!
//! Map layouts: `maps.rs`; loading and pins: `loader.rs`; database to maps: `sync.rs` and
//! `white.rs`; wall clock to boot clock: `clock.rs`; the kernel's fixed-point decay on the host, for
//! the tests: `decay.rs`; the loop: `daemon.rs`.

pub mod cli;
pub mod clock;
pub mod daemon;
pub mod decay;
pub mod error;
pub mod loader;
pub mod maps;
pub mod sync;
pub mod white;

/// The name the daemon logs under.
pub const PROGRAM: &str = "ibd-xdp";
