//! Storage for ipqbdb: the [`Store`] trait and its engines.
//!
//! Which engines exist is decided at build time by the features `sqlite`, `lmdb`, `redb` and
//! `postgres` (the one list of engines is `engines!` in `engines.rs`); which one a database directory
//! uses is recorded in the directory itself (see [`dir`]). [`AnyStore`] picks the engine at run time
//! among those compiled in.

/// The engines' modules, their store types, and the refusal to build without any: from the one
/// list of engines (`engines!` in `engines.rs`).
macro_rules! engine_modules {
    ($($(#[$doc:meta])* $v:ident {
        name: $name:literal, feature: $feat:literal, module: $module:ident, store: $store:ident,
        held: $held:ty, files: [$($file:literal),*] $(,)?
    }),* $(,)?) => {
        #[cfg(not(any($(feature = $feat),*)))]
        compile_error!(concat!(
            "ipqbdb-store needs at least one storage engine: enable one of the features",
            $(" ", $feat),*
        ));
        $(
            #[cfg(feature = $feat)]
            pub mod $module;
            #[cfg(feature = $feat)]
            pub use $module::$store;
        )*
    };
}

mod any;
pub mod dir;
mod engines;
mod error;
pub mod kv;
pub mod server;
mod store;
pub mod transfer;
engines::engines!(engine_modules);

#[cfg(feature = "postgres")]
pub mod saved;
#[cfg(feature = "postgres")]
pub mod tls;
#[cfg(feature = "postgres")]
pub mod view;

pub use any::{AnyStore, LocalReader};
pub use engines::{Engine, UnknownEngine};
pub use error::{Result, StoreError};
pub use server::ServerOptions;
pub use store::{
    Ban, BanEffect, Location, OpenOptions, PrefixChange, ReadStore, ReasonStats, ReportBegin,
    ReportCandidate, Snapshot, StorageEngine, Store, WhiteEntry, MAX_REASON_LEN,
};

#[cfg(feature = "postgres")]
pub use view::ViewStore;
