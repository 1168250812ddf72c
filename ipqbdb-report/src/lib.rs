//! Reports banned addresses to an AbuseIPDB-compatible abuse database: which addresses are due
//! ([`select`], [`exclusion`]), what is sent ([`request`], [`comment`]), how ([`client`],
//! [`backoff`]) and the passes that tie them to the database ([`reporter`]). `ibd report` is the
//! thin command over it.

pub mod backoff;
pub mod client;
pub mod comment;
pub mod config;
mod error;
pub mod exclusion;
pub mod reporter;
pub mod request;
pub mod select;

pub use config::ReportConfig;
pub use error::{ReportError, Result};
pub use reporter::{PassEnd, PassStats, Reporter, Sink};
