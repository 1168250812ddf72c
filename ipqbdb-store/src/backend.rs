//! Names of the storage engines, and which of them this build contains.

use std::fmt;
use std::str::FromStr;

/// A storage engine. Every name exists in every build so that a directory made by an engine this build
/// lacks can still be named in the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Lmdb,
    Redb,
    /// A shared PostgreSQL server: the database of a fleet (the directory keeps the marker only).
    Postgres,
}

impl Backend {
    pub const ALL: [Backend; 4] = [
        Backend::Lmdb,
        Backend::Sqlite,
        Backend::Redb,
        Backend::Postgres,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Lmdb => "lmdb",
            Backend::Redb => "redb",
            Backend::Postgres => "postgres",
        }
    }

    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Lmdb => cfg!(feature = "lmdb"),
            Backend::Redb => cfg!(feature = "redb"),
            Backend::Postgres => cfg!(feature = "postgres"),
        }
    }

    /// The backends of this build, default first.
    pub fn compiled() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// Whether the engine keeps its data in files of the database directory (all but postgres).
    pub fn is_local(self) -> bool {
        self != Backend::Postgres
    }

    /// The compiled engines whose data lives in the directory: what tests of files (damage, full
    /// disks, crashes of one host) and local benchmarks run over.
    pub fn compiled_local() -> Vec<Backend> {
        Self::compiled()
            .into_iter()
            .filter(|b| b.is_local())
            .collect()
    }

    /// The backend a new directory gets when none is asked for: lmdb when built in. Never
    /// postgres, which needs a server named in the configuration.
    pub fn default_for_new() -> Option<Backend> {
        Self::compiled_local().first().copied()
    }

    pub fn compiled_names() -> String {
        let names: Vec<_> = Self::compiled().iter().map(|b| b.name()).collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {0:?} (known: sqlite, lmdb, redb, postgres)")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "sqlite" => Ok(Backend::Sqlite),
            "lmdb" => Ok(Backend::Lmdb),
            "redb" => Ok(Backend::Redb),
            "postgres" => Ok(Backend::Postgres),
            other => Err(UnknownBackend(other.to_string())),
        }
    }
}
