//! Process plumbing shared by the ipqbdb programs: what happens between `exec` and the program's own
//! work, and around it while it runs. Kept out of `ipqbdb-core`, which stays a pure model.
//!
//! [`command_line::prepare`] runs the first two for every program: [`popt`] applies the option file's aliases, [`legacy_args`] rewrites ipqbdb 2.x's spellings that
//! clap cannot alias, and [`setuid`] keeps a setuid `ibd-ban` to banning. [`settings`] loads the
//! configuration file and [`setup`] resolves which database a program opens; a daemon starts in
//! [`daemon_main`] and [`daemonize`], reacts to [`signals`], logs to [`syslog`], tells systemd
//! through [`notify`], reopens its handles with [`reopen`] and runs [`connkill`] commands.

pub mod command_line;
pub mod connkill;
pub mod daemon_main;
pub mod daemonize;
pub mod legacy_args;
pub mod notify;
pub mod popt;
pub mod rate_limit;
pub mod reopen;
pub mod settings;
pub mod setuid;
#[cfg(feature = "setup")]
pub mod setup;
pub mod signals;
pub mod syslog;
