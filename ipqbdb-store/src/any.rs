//! Run-time choice among the compiled-in backends.
//!
//! A directory that exists says which engine it belongs to; a new one gets the engine the caller asks
//! for, else the default (lmdb when compiled in).

use std::path::Path;

use crate::engines::Engine;
use crate::error::{Result, StoreError};
use crate::kv::{ReadTx, WriteTx};
use crate::store::{Location, OpenOptions, ReadStore, Reads, StorageEngine};

/// Derives [`AnyStore`] from the list of engines ([`crate::engines::engines`]): a variant per
/// compiled engine, the opening of one by name, and the dispatch of every engine method.
macro_rules! any_store {
    ($($(#[$doc:meta])* $v:ident {
        name: $name:literal, feature: $feat:literal, module: $module:ident, store: $store:ident,
        held: $held:ty, files: [$($file:literal),*] $(,)?
    }),* $(,)?) => {
        // From the engine's own module: `held` names the store type bare, and the crate root's
        // re-exports of it are themselves derived from the list.
        $(#[cfg(feature = $feat)] use crate::$module::$store;)*

        /// A store of whichever engine the directory uses.
        pub enum AnyStore {
            $(#[cfg(feature = $feat)] $v($held),)*
        }

        impl AnyStore {
            /// Opens `dir` with `backend`, an error when this build lacks it.
            fn open_engine(backend: Engine, dir: &Path, opts: &OpenOptions) -> Result<AnyStore> {
                match backend {
                    $(#[cfg(feature = $feat)]
                    Engine::$v => $store::open(dir, opts).map(|s| AnyStore::$v(s.into())),)*
                    #[allow(unreachable_patterns)]
                    other => Err(StoreError::NotCompiled {
                        dir: dir.to_path_buf(),
                        backend: other.to_string(),
                        compiled: Engine::compiled_names(),
                    }),
                }
            }

            // Named through the engine's type: its `StorageEngine` and `ReadStore` methods of
            // these names are the same and a method call cannot choose between them.
            fn engine_of(&self) -> Engine {
                match self {
                    $(#[cfg(feature = $feat)]
                    AnyStore::$v(s) => <$store as StorageEngine>::engine(s),)*
                }
            }

            fn location_of(&self) -> &Location {
                match self {
                    $(#[cfg(feature = $feat)]
                    AnyStore::$v(s) => <$store as StorageEngine>::location(s),)*
                }
            }
        }

        /// Runs `$body` with `$s` bound to the engine inside whichever variant `$self` is.
        macro_rules! each {
            ($self_:expr, $s_:ident => $body_:expr) => {
                match $self_ {
                    $(#[cfg(feature = $feat)] AnyStore::$v($s_) => $body_,)*
                }
            };
        }
    };
}
crate::engines::engines!(any_store);

/// What a reader of verdicts holds (the judge's packet threads): a local engine's store as it is,
/// or the local view of a postgres database ([`crate::view`]). A [`ReadStore`]: a write on it
/// does not compile.
// One per packet thread, made once: the local store stays unboxed, so a snapshot of it costs no
// more than it did before the reader type.
#[allow(clippy::large_enum_variant)]
pub enum LocalReader {
    Store(AnyStore),
    /// Shared by the handles [`LocalReader::share_view`] gives.
    #[cfg(feature = "postgres")]
    View(std::sync::Arc<crate::ViewStore>),
}

impl AnyStore {
    /// For reading verdicts: a postgres store becomes a local view refreshed every `refresh`
    /// (see [`crate::view`]), so no lookup waits on the network; a local engine stays as it is.
    pub fn into_local_view(
        self,
        refresh: std::time::Duration,
        program: &'static str,
    ) -> Result<LocalReader> {
        self.into_local_view_with(refresh, true, program)
    }

    /// [`AnyStore::into_local_view`], the view listening for commit notices only when `notices`
    /// (else it polls alone: the `postgres-notices` setting).
    pub fn into_local_view_with(
        self,
        refresh: std::time::Duration,
        notices: bool,
        program: &'static str,
    ) -> Result<LocalReader> {
        match self {
            #[cfg(feature = "postgres")]
            AnyStore::Postgres(s) => crate::ViewStore::start_with(*s, refresh, notices, program)
                .map(|v| LocalReader::View(std::sync::Arc::new(v))),
            #[allow(unreachable_patterns)]
            other => {
                let _ = (refresh, notices, program);
                Ok(LocalReader::Store(other))
            }
        }
    }
}

impl LocalReader {
    /// Another handle on this local view, for another thread: one view per process (one copy of
    /// the tables, one refresher and its connections) rather than one per queue thread. Readers
    /// share its lock for reading, so none waits on another. `None` for a local engine's store,
    /// which each thread opens for itself.
    pub fn share_view(&self) -> Option<LocalReader> {
        match self {
            #[cfg(feature = "postgres")]
            LocalReader::View(v) => Some(LocalReader::View(v.clone())),
            LocalReader::Store(_) => None,
        }
    }
}

impl Reads for LocalReader {
    fn read_tx<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        match self {
            LocalReader::Store(s) => s.read_tx(f),
            #[cfg(feature = "postgres")]
            LocalReader::View(v) => v.read_tx(f),
        }
    }

    fn place(&self) -> &Location {
        match self {
            LocalReader::Store(s) => s.place(),
            #[cfg(feature = "postgres")]
            LocalReader::View(v) => v.place(),
        }
    }
}

impl ReadStore for LocalReader {
    fn engine(&self) -> Engine {
        match self {
            LocalReader::Store(s) => StorageEngine::engine(s),
            #[cfg(feature = "postgres")]
            LocalReader::View(v) => v.engine(),
        }
    }
}

impl StorageEngine for AnyStore {
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self> {
        let backend = match (crate::dir::detect(dir)?, opts.backend) {
            (Some(found), Some(wanted)) if found != wanted => {
                return Err(StoreError::EngineMismatch {
                    dir: dir.to_path_buf(),
                    found,
                    wanted,
                })
            }
            (Some(found), _) => found,
            (None, Some(wanted)) => wanted,
            (None, None) => Engine::default_for_new().ok_or_else(|| StoreError::NotCompiled {
                dir: dir.to_path_buf(),
                backend: "any".into(),
                compiled: Engine::compiled_names(),
            })?,
        };
        AnyStore::open_engine(backend, dir, opts)
    }

    fn engine(&self) -> Engine {
        self.engine_of()
    }

    fn location(&self) -> &Location {
        self.location_of()
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
