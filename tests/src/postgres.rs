//! A private PostgreSQL server for a test: a cluster of the Debian package's binaries in a
//! temporary directory, run as the `postgres` user and reached by a Unix socket in that directory
//! only (no TCP port), stopped and removed when the guard drops.
//!
//! The binaries are the installed `postgresql` package's (`/usr/lib/postgresql/<version>/bin`);
//! without them a test fails saying so, it never skips.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// The file in a test database directory that names its test server (see [`PgServer::attach`]):
/// how [`crate::open_any`] and the worker processes find the server of a directory.
pub const CONNINFO_FILE: &str = "test-server.conninfo";

/// A running private cluster.
pub struct PgServer {
    bin: PathBuf,
    /// Holds the data directory (`data`), the socket and the server log (`log`).
    root: tempfile::TempDir,
    running: bool,
    /// The TCP port on loopback, once [`PgServer::serve_tcp`] opened one (also the socket's).
    port: Option<u16>,
    /// Server options added by [`PgServer::serve_tcp`].
    extra: String,
}

/// The newest installed server version's binaries.
fn server_bin() -> PathBuf {
    let base = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server under {}/*/bin: install the Debian package postgresql \
             (the postgres engine's tests start a private server and never skip)",
            base.display()
        )
    })
}

/// Runs `program` of the server's binaries as the `postgres` user (initdb and the server refuse
/// to run as root).
fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program} as postgres (runuser): {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new temporary directory for a server's files, the `postgres` user's alone, and its path.
fn server_root(prefix: &str) -> (tempfile::TempDir, String) {
    let root = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temporary directory");
    let path = root.path().to_str().expect("UTF-8 path").to_string();
    let chown = Command::new("chown")
        .args(["postgres:postgres", &path])
        .status()
        .expect("chown");
    assert!(chown.success(), "chown postgres {path}");
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    (root, path)
}

impl PgServer {
    /// Makes and starts a new cluster.
    pub fn start() -> PgServer {
        let bin = server_bin();
        let (root, path) = server_root("ipqbdb-pg.");
        as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                &format!("{path}/data"),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale",
                "C.UTF-8",
                "--no-sync",
            ],
        );
        let mut server = PgServer {
            bin,
            root,
            running: false,
            port: None,
            extra: String::new(),
        };
        server.resume();
        server
    }

    /// Starts the stopped server again (same data).
    pub fn resume(&mut self) {
        let path = self.root.path().to_str().unwrap().to_string();
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                &format!("{path}/data"),
                "-l",
                &format!("{path}/log"),
                "-o",
                &format!(
                    "-k {path} -c listen_addresses= -c max_connections=200 {}{}",
                    self.port.map(|p| format!("-p {p} ")).unwrap_or_default(),
                    self.extra
                ),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.running = true;
    }

    /// Stops the server ("fast": clients are disconnected, as in an administrator's restart).
    pub fn stop(&mut self) {
        let path = self.root.path().to_str().unwrap().to_string();
        as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &format!("{path}/data"), "-m", "fast", "-w", "stop"],
        );
        self.running = false;
    }

    /// The data directory (configuration files, certificates a test puts there).
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// Restarts the server listening on a free TCP port on 127.0.0.1 too, with `options` (server
    /// `-c` options, e.g. TLS settings) added; returns the port, which the socket takes too.
    pub fn serve_tcp(&mut self, options: &str) -> u16 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        self.stop();
        self.port = Some(port);
        self.extra = format!("-c listen_addresses=127.0.0.1 {options}");
        self.resume();
        port
    }

    /// A streaming standby of this server, started: a base backup (`pg_basebackup -R`, so it
    /// follows this server) in a directory and on a socket of its own.
    pub fn standby(&self) -> PgServer {
        let (root, path) = server_root("ipqbdb-pg-standby.");
        as_postgres(
            &self.bin,
            "pg_basebackup",
            &[
                "-h",
                self.socket_dir().to_str().unwrap(),
                "-p",
                &self.port.unwrap_or(5432).to_string(),
                "-U",
                "postgres",
                "-D",
                &format!("{path}/data"),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        );
        let mut standby = PgServer {
            bin: self.bin.clone(),
            root,
            running: false,
            port: self.port,
            extra: self.extra.clone(),
        };
        standby.resume();
        standby
    }

    /// Promotes this standby to a primary, and waits until it takes writes.
    pub fn promote(&self) {
        as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", self.data_dir().to_str().unwrap(), "-w", "promote"],
        );
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    /// The connection string of database `dbname` as the superuser.
    pub fn conninfo(&self, dbname: &str) -> String {
        format!(
            "host={} {}user=postgres dbname={dbname}",
            self.socket_dir().display(),
            self.port.map(|p| format!("port={p} ")).unwrap_or_default()
        )
    }

    /// Runs SQL as the superuser in `dbname` with psql; its output, one row a line.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let out = as_postgres(
            &self.bin,
            "psql",
            &[
                "-h",
                self.socket_dir().to_str().unwrap(),
                "-p",
                &self.port.unwrap_or(5432).to_string(),
                "-d",
                dbname,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A new, empty database with a unique name.
    pub fn new_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("ipqbdb_t{}", N.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        name
    }

    /// Makes `dir` a test database directory of this server: a new database, named in `dir`'s
    /// [`CONNINFO_FILE`]. Returns its connection string.
    pub fn attach(&self, dir: &Path) -> String {
        let conninfo = self.conninfo(&self.new_database());
        std::fs::write(dir.join(CONNINFO_FILE), &conninfo).expect("conninfo file");
        conninfo
    }

    /// Ends every client connection of `dbname` (the server's equivalent of a dropped network).
    pub fn drop_connections(&self, dbname: &str) -> u32 {
        self.psql(
            "postgres",
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
            ),
        )
        .trim()
        .parse()
        .unwrap_or(0)
    }

    /// Makes `dir` another database directory of `dbname`, reaching it as `role` (a superuser
    /// made here if missing): a client the test can cut off alone ([`PgServer::cut_off`]).
    pub fn attach_as(&self, dir: &Path, dbname: &str, role: &str) -> String {
        self.psql(
            "postgres",
            &format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN \
                 CREATE ROLE {role} SUPERUSER LOGIN; END IF; END $$"
            ),
        );
        let conninfo = format!(
            "host={} {}user={role} dbname={dbname}",
            self.socket_dir().display(),
            self.port.map(|p| format!("port={p} ")).unwrap_or_default()
        );
        std::fs::write(dir.join(CONNINFO_FILE), &conninfo).expect("conninfo file");
        conninfo
    }

    /// Cuts `role` off the server (no new connection, its open ones ended: a host behind a broken
    /// network while the others go on), or with `cut` false lets it in again.
    pub fn cut_off(&self, role: &str, cut: bool) {
        let login = if cut { "NOLOGIN" } else { "LOGIN" };
        self.psql("postgres", &format!("ALTER ROLE {role} {login}"));
        if cut {
            self.psql(
                "postgres",
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
                ),
            );
        }
    }

    /// The server's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let path = self.root.path().to_str().unwrap_or("").to_string();
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args([
                    "-D",
                    &format!("{path}/data"),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The server options of a test database directory (its [`CONNINFO_FILE`]), if it has one.
pub fn server_of(dir: &Path) -> Option<ipqbdb_store::ServerOptions> {
    let url = std::fs::read_to_string(dir.join(CONNINFO_FILE)).ok()?;
    Some(ipqbdb_store::ServerOptions {
        url: url.trim().to_string(),
        password_file: None,
        host_name: None,
    })
}
