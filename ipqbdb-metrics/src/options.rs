//! `--metrics-listen` and `--metrics-file`, shared by both daemons, and their keys in the
//! configuration (`metrics-listen`, `metrics-file`, in the daemon's section).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipqbdb_core::config::Settings;

#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (nothing else is served; keep it on
    /// loopback or a management network) [config: metrics-listen]
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Write Prometheus metrics to FILE every 5 s, atomically, for node_exporter's textfile
    /// collector (name it *.prom in the collector's directory) [config: metrics-file]
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// Where the metrics go; neither is the default.
#[derive(Debug, Clone, Default)]
pub struct MetricsOptions {
    pub listen: Option<SocketAddr>,
    pub file: Option<PathBuf>,
    pub file_interval: Duration,
}

impl MetricsOptions {
    /// The command line over the configuration (already checked at load).
    pub fn resolve(args: &MetricsArgs, settings: &Settings) -> MetricsOptions {
        MetricsOptions {
            listen: args.metrics_listen.or_else(|| {
                settings
                    .metrics_listen
                    .as_deref()
                    .and_then(|a| a.parse().ok())
            }),
            file: args
                .metrics_file
                .clone()
                .or_else(|| settings.metrics_file.clone()),
            file_interval: crate::textfile::INTERVAL,
        }
    }

    pub fn any(&self) -> bool {
        self.listen.is_some() || self.file.is_some()
    }
}
