//! The seam between the store's semantics and an engine: how a store is opened and where it
//! lives, what an engine implements, and the sealed traits through which the semantics reach it.

use std::path::{Path, PathBuf};

use ipqbdb_core::{ModelParams, V6Prefix};

use crate::engines::Engine;
use crate::error::Result;
use crate::kv::{ReadTx, WriteTx};
use crate::server::ServerOptions;

/// How a store is opened and how it applies the model.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Create the directory and database when missing. Read-only tools turn this off so that a typo in
    /// a path is an error rather than a new empty database.
    pub create: bool,
    /// With several backends compiled in: the engine for a new directory (an existing one says its own).
    pub backend: Option<Engine>,
    /// The IPv6 prefix this program was configured with, if it was. A new database stores it (or the
    /// default); an existing one keeps its own, and a different value here is
    /// [`StoreError::PrefixMismatch`]. `None` takes whatever the database says.
    pub v6_prefix: Option<V6Prefix>,
    pub model: ModelParams,
    /// The server of the `postgres` engine; the other engines ignore it.
    pub server: Option<ServerOptions>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            create: true,
            backend: None,
            v6_prefix: None,
            model: ModelParams::default(),
            server: None,
        }
    }
}

/// Where a store lives and how it was opened: the same for every engine.
#[derive(Debug, Clone)]
pub struct Location {
    /// The database directory.
    pub dir: PathBuf,
    /// The engine's main file or directory inside it, named in error messages.
    pub path: PathBuf,
    pub opts: OpenOptions,
    /// The IPv6 prefix found (or stored) at open. Operations read the stored one inside their own
    /// transaction, so a change by `ibd config --set-ipv6-prefix` takes effect in running programs
    /// at once; this value stands in only where the database has none (an old database opened by a
    /// program that does not write).
    pub v6_prefix: V6Prefix,
}

impl Location {
    pub(crate) fn new(dir: &Path, path: &Path, opts: &OpenOptions) -> Self {
        Location {
            dir: dir.to_path_buf(),
            path: path.to_path_buf(),
            opts: opts.clone(),
            v6_prefix: opts.v6_prefix.unwrap_or_default(),
        }
    }
}

/// What differs from one engine to the next, and nothing else: an engine implements this, and
/// every [`crate::Store`] operation comes with it, written once over the key-value transactions.
/// Batched reads and writes are the transactions' `get_many`/`put_many`, which an engine
/// overrides when one round trip can serve many keys.
pub trait StorageEngine: Send + Sync + Sized {
    /// Opens (and with `opts.create`, creates) the database in `dir`.
    fn open(dir: &Path, opts: &OpenOptions) -> Result<Self>;
    /// Its name: the engine of the database directory.
    fn engine(&self) -> Engine;
    fn location(&self) -> &Location;
    /// Runs `f` on a consistent snapshot.
    fn read<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R>;
    /// Runs `f` in one write transaction, committed durably when `f` succeeds and rolled back when it
    /// fails. `f` may run more than once if the engine must retry.
    fn write<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R>;
    /// Housekeeping that long-running daemons call now and then: stale LMDB readers, SQLite WAL
    /// checkpoints.
    fn maintenance(&self) -> Result<()>;
    /// Bytes the database occupies on disk.
    fn disk_size(&self) -> Result<u64>;
}

/// Public in a module no other crate can name: keeps [`crate::Store`] and [`crate::ReadStore`]
/// implemented only in this crate (every [`StorageEngine`], the postgres view,
/// [`crate::LocalReader`]), so no engine can override the semantics, and gives the
/// read semantics what they need from any of them: a snapshot and where the store lives. Its
/// methods are named apart from the public traits' so that a caller never sees two candidates.
pub trait Reads: Send + Sync {
    fn read_tx<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R>;
    fn place(&self) -> &Location;

    /// The engine's main file or directory, named in error messages.
    fn place_path(&self) -> &Path {
        &self.place().path
    }
}

/// What the writing semantics need besides [`Reads`]: a write transaction.
pub trait Writes: Reads {
    fn write_tx<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R>;
}

impl<E: StorageEngine> Reads for E {
    fn read_tx<R>(&self, f: &mut dyn FnMut(&dyn ReadTx) -> Result<R>) -> Result<R> {
        StorageEngine::read(self, f)
    }
    fn place(&self) -> &Location {
        StorageEngine::location(self)
    }
}

impl<E: StorageEngine> Writes for E {
    fn write_tx<R>(&self, f: &mut dyn FnMut(&mut dyn WriteTx) -> Result<R>) -> Result<R> {
        StorageEngine::write(self, f)
    }
}
