//! Process plumbing shared by the ipqbdb programs: what happens between `exec` and the program's own
//! work. Kept out of `ipqbdb-core`, which stays a pure model.
//!
//! [`command_line::prepare`] runs the first two for every program: [`popt`] applies the option file's aliases, [`legacy_args`] rewrites ipqbdb 2.x's spellings that
//! clap cannot alias, and [`setuid`] keeps a setuid `ibd-ban` to banning.

pub mod command_line;
pub mod legacy_args;
pub mod popt;
pub mod setuid;
