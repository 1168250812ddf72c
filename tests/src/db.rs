//! Databases for tests: a fresh one per engine (with a private server for postgres), and the one a
//! program of the test created.

use std::path::Path;

use ipqbdb_store::{AnyStore, Engine, OpenOptions, Store};

use crate::postgres;

/// Opens (creating) a database of `backend` in `dir` (for postgres, on the server the directory
/// names: see [`TestDb`]).
pub fn open_any(dir: &Path, backend: Engine) -> ipqbdb_store::Result<AnyStore> {
    AnyStore::open(
        dir,
        &OpenOptions {
            backend: Some(backend),
            ..options(dir)
        },
    )
}

/// Opens the database in `dir` that a program of the test created, with the engine the directory
/// names; fails the test if there is none (it is not created).
pub fn open_existing(dir: &Path) -> AnyStore {
    AnyStore::open(
        dir,
        &OpenOptions {
            create: false,
            ..options(dir)
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
}

/// The default options, with the test server of `dir` if it has one.
pub fn options(dir: &Path) -> OpenOptions {
    OpenOptions {
        server: postgres::server_of(dir),
        ..OpenOptions::default()
    }
}

/// A database directory for a test of one engine; for postgres, with a private server and a
/// database of its own on it, named in the directory (see [`postgres::CONNINFO_FILE`]), so
/// [`open_any`] and child processes given the directory find it.
pub struct TestDb {
    // The directory goes first: it must not outlive the server it names.
    dir: tempfile::TempDir,
    pub server: Option<postgres::PgServer>,
}

impl TestDb {
    pub fn new(backend: Engine) -> TestDb {
        let dir = tempfile::tempdir().expect("temporary directory");
        let server = (backend == Engine::Postgres).then(|| {
            let server = postgres::PgServer::start();
            server.attach(dir.path());
            server
        });
        TestDb { dir, server }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The database name on the server (postgres only).
    pub fn dbname(&self) -> Option<String> {
        let conninfo = std::fs::read_to_string(self.path().join(postgres::CONNINFO_FILE)).ok()?;
        conninfo
            .split_whitespace()
            .find_map(|w| w.strip_prefix("dbname="))
            .map(str::to_string)
    }
}
