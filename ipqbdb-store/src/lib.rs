//! Storage for ipqbdb: the [`Store`] trait and its engines.
//!
//! Which engines exist is decided at build time by the features `sqlite`, `lmdb` and `redb`; which
//! one a database directory uses is recorded in the directory itself (see [`dir`]). [`AnyStore`]
//! picks the engine at run time among those compiled in.

#[cfg(not(any(feature = "sqlite", feature = "lmdb", feature = "redb")))]
compile_error!(
    "ipqbdb-store needs at least one storage engine: enable the feature sqlite, lmdb or redb"
);

mod any;
mod backend;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dir;
mod error;
pub mod kv;
mod store;

#[cfg(feature = "lmdb")]
pub mod lmdb;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use any::AnyStore;
pub use backend::{Backend, UnknownBackend};
pub use error::{Result, StoreError};
pub use store::{
    Ban, BanReport, Location, OpenOptions, PrefixChange, ReasonStats, ReportBegin, ReportCandidate,
    Snapshot, Store, WhiteEntry, MAX_REASON_LEN,
};

#[cfg(feature = "lmdb")]
pub use lmdb::LmdbStore;
#[cfg(feature = "redb")]
pub use redb::RedbStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
