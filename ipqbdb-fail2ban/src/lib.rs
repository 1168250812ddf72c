//! fail2ban's configuration as fail2ban 1.0.x reads it: filter files (`filter.d/*.conf`) and jails
//! (`jail.conf`, `jail.local`, `jail.d/*`), so that a fail2ban user's filters and jails run under
//! ipqbdb unchanged.
//!
//! This crate only reads text: it resolves includes, `%(name)s` interpolation, `<tag>` substitution
//! and filter options into plain regular-expression text (`tags` turns fail2ban's `<HOST>`,
//! `<F-USER>` and kin into named groups, `datepattern` turns date patterns into regexes). Compiling
//! and matching is the parser's job (`ipqbdb-parse`), which picks the regex engine per expression.
//! It never resolves host names: `<DNS>` and `usedns = yes` are refused.
//!
//! fail2ban's files are read where they are installed; nothing of them is copied here.

pub mod datepattern;
pub mod error;
pub mod filter;
pub mod ini;
pub mod jail;
pub mod spec;
pub mod tags;

pub use error::Error;
pub use filter::{Filter, Located};
pub use spec::FilterSpec;

/// fail2ban's configuration directory on Debian.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/fail2ban";
