//! What a subcommand needs before it acts: its resolved database setup and its name for messages.

use std::ops::Deref;

use ipqbdb_runtime::setup::{DbArgs, Setup};
use ipqbdb_store::AnyStore;

use crate::error::{AdminError, Result};

pub struct Context {
    /// The program name to print in messages (`ibd ban` or `ibd-ban`).
    pub program: String,
    setup: Setup,
}

impl Deref for Context {
    type Target = Setup;

    fn deref(&self) -> &Setup {
        &self.setup
    }
}

impl Context {
    /// `section` is the configuration section of the subcommand (`ban`, `del`, ...).
    pub fn new(args: &DbArgs, section: &str, program: String) -> Result<Self> {
        let setup = Setup::resolve(args, section).map_err(|e| match e {
            ipqbdb_runtime::setup::SetupError::Config(c) => AdminError::Config(c),
            other => AdminError::Usage(other.to_string()),
        })?;
        Ok(Context { program, setup })
    }

    /// Opens the database; `create` only for commands that write, so that a mistyped directory given
    /// to a listing is an error, not a new empty database.
    pub fn open(&self, create: bool) -> Result<AnyStore> {
        Ok(self.setup.open(create)?)
    }

    /// Opens the database without checking the configured IPv6 prefix against the database's: for
    /// the command that shows or changes the database's own, which must work while they disagree.
    pub fn open_any_prefix(&self, create: bool) -> Result<AnyStore> {
        let setup = Setup {
            v6_prefix: None,
            ..self.setup.clone()
        };
        Ok(setup.open(create)?)
    }

    /// Reports one refused input on stderr, in the one-line form every program uses.
    pub fn warn(&self, message: impl std::fmt::Display) {
        eprintln!("{}: {message}", self.program);
    }
}
