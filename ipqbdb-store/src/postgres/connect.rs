//! Connections: the client configuration from `postgres-url` (TLS, the password file), dialling,
//! preparing a new connection, and errors explained for a log line.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::MutexGuard;

use postgres::{Client, Config, NoTls};

use super::state::{Conn, PostgresStore, Prepared};
use super::fail::*;
use crate::engines::Engine;
use crate::error::{Result, StoreError};
use crate::server::{password_from_pgpass, read_password_file, ServerOptions};
use super::schema::*;

/// The server named for error messages: never the password.
pub(super) fn describe(config: &Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("postgresql://{user}@{host}:{port}/{db}")
}

impl PostgresStore {
    pub(super) fn config_error(dir: &Path, why: impl Into<String>) -> StoreError {
        StoreError::ServerConfig {
            dir: dir.to_path_buf(),
            why: why.into(),
        }
    }

    /// The client configuration: the connection string, a password from the password file or
    /// the libpq password file, and our defaults.
    pub(super) fn client_config(
        dir: &Path,
        server: &ServerOptions,
    ) -> Result<(Config, Option<tokio_postgres_rustls::MakeRustlsConnect>)> {
        let (url, tls) = crate::tls::split(&server.url)
            .map_err(|e| Self::config_error(dir, format!("postgres-url: {e}")))?;
        let mut config = Config::from_str(&url).map_err(|e| {
            Self::config_error(dir, format!("postgres-url is not a connection string: {e}"))
        })?;
        config.ssl_mode(crate::tls::ssl_mode(tls.mode));
        let connector = crate::tls::connector(&tls)
            .map_err(|e| Self::config_error(dir, format!("postgres-url: {e}")))?;
        if config.get_password().is_some() {
            return Err(Self::config_error(
                dir,
                "postgres-url holds a password, which would show in `ps` and error messages: \
                 put it in postgres-password-file or the PGPASSFILE file",
            ));
        }
        if config.get_user().is_none() {
            let user = std::env::var("PGUSER").unwrap_or_else(|_| current_user());
            config.user(&user);
        }
        if let Some(file) = &server.password_file {
            let pw = read_password_file(file).map_err(|e| {
                Self::config_error(
                    dir,
                    format!("postgres-password-file {}: {e}", file.display()),
                )
            })?;
            config.password(pw);
        } else if let Some(pw) = Self::pgpass_password(&config) {
            config.password(pw);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A server that vanishes from the network (no reset) fails the statement within this,
        // instead of after the kernel's quarter of an hour of retransmissions.
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
            config.keepalives_idle(TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("ipqbdb");
        }
        Ok((config, connector))
    }

    /// A new connection, with TLS as configured.
    pub(super) fn dial(&self) -> std::result::Result<Client, postgres::Error> {
        match &self.tls {
            Some(tls) => self.config.connect(tls.clone()),
            None => self.config.connect(NoTls),
        }
    }

    /// The password the libpq password file gives for `config`, if any (an unreadable file gives
    /// none, as in libpq).
    fn pgpass_password(config: &Config) -> Option<String> {
        let file = std::env::var_os("PGPASSFILE")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
        let text = std::fs::read_to_string(file).ok()?;
        let host = match config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            // libpq matches a Unix socket as "localhost".
            _ => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("");
        let db = config.get_dbname().unwrap_or(user);
        password_from_pgpass(&text, &host, port, db, user)
    }

    pub(super) fn backend_error(&self, e: postgres::Error) -> StoreError {
        StoreError::engine(&self.loc.path, Engine::Postgres, Explained::from(&e))
    }

    pub(super) fn connect(&self) -> Result<Conn> {
        let mut client = self.dial().map_err(|e| self.backend_error(e))?;
        if self.schema_pending.load(Ordering::Relaxed) {
            self.ensure_schema(&mut client, self.loc.opts.create)?;
            self.schema_pending.store(false, Ordering::Relaxed);
        }
        self.prepare(client)
    }

    /// The server and database, as named in errors and in the judge's saved view (never the
    /// password): a view saved from one database is not used for another.
    pub fn source_name(&self) -> String {
        self.loc.path.display().to_string()
    }

    /// A connection with its statements prepared.
    pub(super) fn prepare(&self, mut client: Client) -> Result<Conn> {
        let prepared = (|| -> std::result::Result<Conn, postgres::Error> {
            let stmts = Prepared::prepare(&mut client)?;
            Ok(Conn { client, stmts })
        })();
        prepared.map_err(|e| self.backend_error(e))
    }

    /// The connection, made anew if the last one broke.
    pub(super) fn conn(&self) -> Result<MutexGuard<'_, Option<Conn>>> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        if guard.as_ref().is_none_or(|c| c.client.is_closed()) {
            *guard = None;
            *guard = Some(self.connect()?);
        }
        Ok(guard)
    }

    /// This host's name in the shared database (the scope of its notes).
    pub fn host_name(&self) -> &str {
        &self.host
    }
}

fn current_user() -> String {
    // SAFETY: getpwuid returns a pointer to static storage or null; it is read at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        if pw.is_null() {
            return "postgres".into();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}
