//! Names of the storage engines, and which of them this build contains.

use std::fmt;
use std::str::FromStr;

/// The one list of storage engines: everything that names them all (the [`Engine`] enum, the
/// marker's text, which are compiled in, the files each keeps in a database directory, the
/// modules in `lib.rs`, [`crate::AnyStore`]'s variants and dispatch) is derived from it by
/// `engines!(a_macro)`, which calls `a_macro!` with the entries. The first entry is the default for
/// a new directory when compiled in. Per entry: its name (the marker's text and `--backend`'s
/// value), the cargo feature that compiles it, its module and store type, how [`crate::AnyStore`]
/// holds it (by the store type's bare name, which the user imports from the module), and its
/// files in the directory, the first of which identifies the engine (a
/// directory holding it without a marker is foreign); an engine without files keeps its data
/// elsewhere (not [`Engine::is_local`]).
macro_rules! engines {
    ($then:ident) => {
        $then! {
            Lmdb {
                name: "lmdb",
                feature: "lmdb",
                module: lmdb,
                store: LmdbStore,
                held: LmdbStore,
                files: ["lmdb/data.mdb", "lmdb/lock.mdb"],
            },
            Sqlite {
                name: "sqlite",
                feature: "sqlite",
                module: sqlite,
                store: SqliteStore,
                held: SqliteStore,
                files: ["ipqbdb.sqlite", "ipqbdb.sqlite-wal", "ipqbdb.sqlite-shm"],
            },
            Redb {
                name: "redb",
                feature: "redb",
                module: redb,
                store: RedbStore,
                held: RedbStore,
                files: ["ipqbdb.redb"],
            },
            /// A shared PostgreSQL server: the database of a fleet (the directory keeps the marker
            /// only). Boxed: its connection and statements make it several times larger than the others.
            Postgres {
                name: "postgres",
                feature: "postgres",
                module: postgres,
                store: PostgresStore,
                held: Box<PostgresStore>,
                files: [],
            },
        }
    };
}
pub(crate) use engines;

macro_rules! backend_enum {
    ($($(#[$doc:meta])* $v:ident {
        name: $name:literal, feature: $feat:literal, module: $module:ident, store: $store:ident,
        held: $held:ty, files: [$($file:literal),*] $(,)?
    }),* $(,)?) => {
        /// A storage engine. Every name exists in every build so that a directory made by an engine
        /// this build lacks can still be named in the error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Engine {
            $($(#[$doc])* $v,)*
        }

        impl Engine {
            /// Every engine, in the list's order: the default first.
            pub const ALL: [Engine; [$($name),*].len()] = [$(Engine::$v),*];

            pub fn name(self) -> &'static str {
                match self {
                    $(Engine::$v => $name,)*
                }
            }

            pub fn is_compiled(self) -> bool {
                match self {
                    $(Engine::$v => cfg!(feature = $feat),)*
                }
            }

            /// The engine's files in a database directory; the first identifies it.
            pub fn files(self) -> &'static [&'static str] {
                match self {
                    $(Engine::$v => &[$($file),*],)*
                }
            }
        }

        impl FromStr for Engine {
            type Err = UnknownEngine;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim() {
                    $($name => Ok(Engine::$v),)*
                    other => Err(UnknownEngine(other.to_string())),
                }
            }
        }
    };
}
engines!(backend_enum);

impl Engine {
    /// The backends of this build, default first.
    pub fn compiled() -> Vec<Engine> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    /// Whether the engine keeps its data in files of the database directory (all but postgres).
    pub fn is_local(self) -> bool {
        !self.files().is_empty()
    }

    /// The compiled engines whose data lives in the directory: what tests of files (damage, full
    /// disks, crashes of one host) and local benchmarks run over.
    pub fn compiled_local() -> Vec<Engine> {
        Self::compiled()
            .into_iter()
            .filter(|b| b.is_local())
            .collect()
    }

    /// The backend a new directory gets when none is asked for: lmdb when built in. Never
    /// postgres, which needs a server named in the configuration.
    pub fn default_for_new() -> Option<Engine> {
        Self::compiled_local().first().copied()
    }

    /// Every engine's name, for the error that names an unknown one.
    pub fn known_names() -> String {
        Self::ALL.map(Engine::name).join(", ")
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

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend {:?} (known: {known})", .0, known = Engine::known_names())]
pub struct UnknownEngine(pub String);
