//! fail2ban filters as catchers beside the rule file: each filter (read by `ipqbdb-fail2ban`)
//! matches lines as fail2ban 1.0.x does: timestamp cut out (`datepattern`), `prefregex` with its
//! `<F-CONTENT>`, the `failregex` list in order (first match wins), `ignoreregex`, `maxlines`
//! lines seen at once, and `<F-MLFID>` correlation (a connection's lines share what each one
//! learnt: the address, the user names, `<F-NOFAIL>`, `<F-MLFFORGET>`, `<F-MLFGAINED>`).
//!
//! fail2ban's regexes are Python's. Each is compiled with the `regex` crate when it can (linear
//! time, most of them once `<HOST>` is ours), else with `fancy-regex` (back-references,
//! look-around, conditionals), one regex at a time (`hybrid_regex`); `--test` shows which crate
//! each runs on. Lines are matched as text: invalid UTF-8 is replaced, so it can neither panic nor
//! hide an address.
//!
//! The address banned is always the `ip4`/`ip6` group of our own `<HOST>` expansion: a filter's
//! other groups (`<F-ID>` text, user names) never choose it, and host names are never resolved.
//!
//! One job per file: `filter` (a loaded filter and what a line is to it), `import` (reading and
//! compiling filters), `matching` (running a filter on a line), `shortcuts` (what the regexes'
//! syntax trees let a filter skip), `mlfid` (the connections `<F-MLFID>` correlates), `set` (the
//! filters a rule set runs beside its rules).

mod filter;
mod import;
mod matching;
mod mlfid;
mod set;
mod shortcuts;

pub use filter::{BanParams, Compiled, FilterMatch, ImportedFilter};
pub use import::{ban_params, load_all};
pub use mlfid::{MLFID_CAPACITY, MLFID_TTL};
pub use set::FilterSet;
