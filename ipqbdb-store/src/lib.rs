//! Storage for ipqbdb: the [`Store`] trait and its engines.
//!
//! Which engines exist is decided at build time by the features `sqlite`, `lmdb` and `redb`; which
//! one a database directory uses is recorded in the directory itself (see [`dir`]). [`AnyStore`]
//! picks the engine at run time among those compiled in.

#[cfg(not(any(
    feature = "sqlite",
    feature = "lmdb",
    feature = "redb",
    feature = "postgres"
)))]
compile_error!(
    "ipqbdb-store needs at least one storage engine: enable the feature sqlite, lmdb, redb or postgres"
);

mod any;
mod backend;
#[cfg(feature = "cli")]
pub mod cli;
pub mod dir;
mod error;
pub mod kv;
pub mod server;
mod store;
pub mod transfer;

#[cfg(feature = "lmdb")]
pub mod lmdb;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redb")]
pub mod redb;
#[cfg(feature = "postgres")]
pub mod saved;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "postgres")]
pub mod tls;
#[cfg(feature = "postgres")]
pub mod view;

pub use any::AnyStore;
pub use backend::{Backend, UnknownBackend};
pub use error::{Result, StoreError};
pub use server::ServerOptions;
pub use store::{
    Ban, BanReport, Location, OpenOptions, PrefixChange, ReasonStats, ReportBegin, ReportCandidate,
    Snapshot, StorageEngine, Store, WhiteEntry, MAX_REASON_LEN,
};

#[cfg(feature = "lmdb")]
pub use lmdb::LmdbStore;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "redb")]
pub use redb::RedbStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;
#[cfg(feature = "postgres")]
pub use view::ViewStore;
