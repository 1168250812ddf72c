//! Run-time choice among the compiled-in backends.
//!
//! A directory that exists says which engine it belongs to; a new one gets the engine the caller asks
//! for, else the default (lmdb when compiled in).

use std::path::Path;

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::kv::{ReadTx, WriteTx};
use crate::store::{Location, OpenOptions, StorageEngine};

/// A store of whichever engine the directory uses.
pub enum AnyStore {
    #[cfg(feature = "sqlite")]
    Sqlite(crate::SqliteStore),
    #[cfg(feature = "lmdb")]
    Lmdb(crate::LmdbStore),
    #[cfg(feature = "redb")]
    Redb(crate::RedbStore),
    /// Boxed: its connection and statements make it several times larger than the others.
    #[cfg(feature = "postgres")]
    Postgres(Box<crate::PostgresStore>),
    /// The judge's local view of a postgres database ([`AnyStore::into_local_view`]); shared by
    /// the handles [`AnyStore::share_view`] gives.
    #[cfg(feature = "postgres")]
    View(std::sync::Arc<crate::ViewStore>),
}

macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            #[cfg(feature = "sqlite")]
            AnyStore::Sqlite($s) => $body,
            #[cfg(feature = "lmdb")]
            AnyStore::Lmdb($s) => $body,
            #[cfg(feature = "redb")]
            AnyStore::Redb($s) => $body,
            #[cfg(feature = "postgres")]
            AnyStore::Postgres($s) => $body,
            #[cfg(feature = "postgres")]
            AnyStore::View($s) => $body,
        }
    };
}

impl AnyStore {
    /// For reading verdicts: a postgres store becomes a local view refreshed every `refresh`
    /// (see [`crate::view`]), so no lookup waits on the network; a local engine stays as it is.
    pub fn into_local_view(
        self,
        refresh: std::time::Duration,
        program: &'static str,
    ) -> Result<AnyStore> {
        match self {
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => crate::ViewStore::start(*s, refresh, program)
                .map(|v| AnyStore::View(std::sync::Arc::new(v))),
            #[allow(unreachable_patterns)]
            other => {
                let _ = (refresh, program);
                Ok(other)
            }
        }
    }
}

impl AnyStore {
    /// Another handle on this local view, for another thread: one view per process (one copy of
    /// the tables, one refresher and its connections) rather than one per queue thread. Readers
    /// share its lock for reading, so none waits on another. `None` for any other store, which
    /// each thread opens for itself.
    pub fn share_view(&self) -> Option<AnyStore> {
        match self {
            #[cfg(feature = "postgres")]
            AnyStore::View(v) => Some(AnyStore::View(v.clone())),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

impl StorageEngine for AnyStore {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        let backend = match (crate::dir::detect(dir)?, opts.backend) {
            (Some(found), Some(wanted)) if found != wanted => {
                return Err(StoreError::BackendMismatch {
                    dir: dir.to_path_buf(),
                    found,
                    wanted,
                })
            }
            (Some(found), _) => found,
            (None, Some(wanted)) => wanted,
            (None, None) => Backend::default_for_new().ok_or_else(|| StoreError::NotCompiled {
                dir: dir.to_path_buf(),
                backend: "any".into(),
                compiled: Backend::compiled_names(),
            })?,
        };
        match backend {
            #[cfg(feature = "sqlite")]
            Backend::Sqlite => crate::SqliteStore::open(dir, opts).map(AnyStore::Sqlite),
            #[cfg(feature = "lmdb")]
            Backend::Lmdb => crate::LmdbStore::open(dir, opts).map(AnyStore::Lmdb),
            #[cfg(feature = "redb")]
            Backend::Redb => crate::RedbStore::open(dir, opts).map(AnyStore::Redb),
            #[cfg(feature = "postgres")]
            Backend::Postgres => {
                crate::PostgresStore::open(dir, opts).map(|s| AnyStore::Postgres(Box::new(s)))
            }
            #[allow(unreachable_patterns)]
            other => Err(StoreError::NotCompiled {
                dir: dir.to_path_buf(),
                backend: other.to_string(),
                compiled: Backend::compiled_names(),
            }),
        }
    }

    fn backend(&self) -> Backend {
        each!(self, s => s.backend())
    }

    fn location(&self) -> &Location {
        each!(self, s => s.location())
    }

    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        each!(self, s => s.read(f))
    }

    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        each!(self, s => s.write(f))
    }

    fn maintenance(&self) -> Result<()> {
        each!(self, s => s.maintenance())
    }

    fn disk_size(&self) -> Result<u64> {
        each!(self, s => s.disk_size())
    }
}
