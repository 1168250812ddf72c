//! The exporters one daemon runs, as its options ask: kept apart from the crate root, which the
//! exporters themselves use for rendering and errors.

use crate::{http, textfile, MetricsError, MetricsOptions, Render};

/// The running exporters of one daemon: stop them with [`Exporter::finish`], which writes the
/// file one last time so it holds the final counts.
pub struct Exporter {
    http: Option<http::Server>,
    file: Option<textfile::TextFile>,
}

impl Exporter {
    /// Starts what `opts` asks for; nothing when it asks for nothing. Binds and checks the file's
    /// directory here, so a daemon refuses to start with an unusable setting. Logs the address it
    /// serves at (a port 0 resolved), which is how a test finds it.
    pub fn start(
        program: &'static str,
        opts: &MetricsOptions,
        render: Render,
    ) -> Result<Exporter, MetricsError> {
        let http = opts
            .listen
            .map(|addr| http::Server::start(addr, render.clone()))
            .transpose()?;
        let file = opts
            .file
            .clone()
            .map(|path| {
                textfile::TextFile::start(program, path, opts.file_interval, render.clone())
            })
            .transpose()?;
        if let Some(h) = &http {
            ipqbdb_core::log::log(
                program,
                ipqbdb_core::log::Level::Notice,
                &format!("metrics at http://{}/metrics", h.local_addr()),
            );
        }
        Ok(Exporter { http, file })
    }

    /// The address the HTTP server listens on (port 0 is resolved), if it runs.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(http::Server::local_addr)
    }

    pub fn finish(self) {
        if let Some(h) = self.http {
            h.stop();
        }
        if let Some(f) = self.file {
            f.finish();
        }
    }
}
