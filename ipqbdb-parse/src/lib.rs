//! Log parsing for ipqbdb: the rule file, the matcher, the inputs (FIFO, standard input, followed
//! files) and the `ibd-parse` daemon built from them.

pub mod capture;
pub mod cli;
pub mod daemon;
pub mod fail2ban_filters;
pub mod fail2ban_jails;
pub mod first_match;
pub mod hybrid_regex;
pub mod input_readers;
pub mod inputs;
pub mod journal;
pub mod killer;
pub mod lines;
pub mod matcher;
pub mod metrics;
pub mod rule_loading;
pub mod rules;
pub mod sessions;
pub mod testmode;
