//! `--metrics-listen` and `--metrics-file`, shared by both daemons, and their keys in the
//! configuration (`metrics-listen`, `metrics-file`, in the daemon's section).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ipqbdb_runtime::settings::Settings;

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
    /// The command line over the configuration (already checked at load). A relative file is made
    /// absolute here: call it before detaching, which changes the directory to `/`.
    pub fn resolve(args: &MetricsArgs, settings: &Settings) -> MetricsOptions {
        let file = args
            .metrics_file
            .clone()
            .or_else(|| settings.metrics_file.clone())
            .map(|f| std::path::absolute(&f).unwrap_or(f));
        MetricsOptions {
            listen: args.metrics_listen.or_else(|| {
                settings
                    .metrics_listen
                    .as_deref()
                    .and_then(|a| a.parse().ok())
            }),
            file,
            file_interval: crate::textfile::INTERVAL,
        }
    }

    pub fn any(&self) -> bool {
        self.listen.is_some() || self.file.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        metrics: MetricsArgs,
    }

    #[test]
    fn the_command_line_wins_and_a_relative_file_is_made_absolute() {
        let settings = Settings {
            metrics_listen: Some("127.0.0.1:9100".into()),
            metrics_file: Some(PathBuf::from("/var/lib/x.prom")),
            ..Settings::default()
        };
        let none = Cli::parse_from(["t"]).metrics;
        let o = MetricsOptions::resolve(&none, &settings);
        assert_eq!(o.listen, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(
            o.file.as_deref(),
            Some(std::path::Path::new("/var/lib/x.prom"))
        );
        let given = Cli::parse_from([
            "t",
            "--metrics-listen",
            "[::1]:0",
            "--metrics-file",
            "m.prom",
        ])
        .metrics;
        let o = MetricsOptions::resolve(&given, &settings);
        assert_eq!(o.listen, Some("[::1]:0".parse().unwrap()));
        assert_eq!(
            o.file,
            Some(std::env::current_dir().unwrap().join("m.prom")),
            "relative to where the daemon was started, not to / after detaching"
        );
        assert!(!MetricsOptions::resolve(&none, &Settings::default()).any());
    }
}
