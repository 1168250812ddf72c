//! Metrics of the daemons in the Prometheus text format (0.0.4), served two ways: over HTTP
//! (`--metrics-listen`, [`http`]) for hosts where Prometheus scrapes the daemon, and as a file for
//! node_exporter's textfile collector (`--metrics-file`, [`textfile`]) for units without network,
//! as `ibd-parse`'s.
//!
//! The daemons count with the `prometheus` crate's atomics on their own threads; rendering happens
//! on the exporter's threads, so a scrape never waits for a packet or a commit, and a packet or a
//! commit never waits for a scrape.

mod exporter;
pub mod http;
pub mod options;
pub mod textfile;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use prometheus;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};
use thiserror::Error;

pub use exporter::Exporter;
pub use options::{MetricsArgs, MetricsOptions};

/// Every metric's name starts with it.
pub const PREFIX: &str = "ipqbdb";
/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Error)]
pub enum MetricsError {
    #[error("metrics listen address {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics file {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// What renders the page: called on an exporter thread for each scrape and file write.
pub type Render = Arc<dyn Fn() -> Vec<u8> + Send + Sync>;

/// A registry with the metrics every program has: `ipqbdb_build_info` (version, program, engine)
/// and `process_start_time_seconds`, the conventional name dashboards compute uptime from.
pub fn registry(program: &str, engine: &str) -> Registry {
    let registry = Registry::new();
    let start = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    let fixed = [
        gauge(
            "ipqbdb_build_info",
            "Always 1: the version, program and storage engine running",
            vec![(
                vec![
                    ("engine", engine.to_string()),
                    ("program", program.to_string()),
                    ("version", env!("CARGO_PKG_VERSION").to_string()),
                ],
                1.0,
            )],
        ),
        gauge(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            vec![(vec![], start)],
        ),
    ];
    registry
        .register(Box::new(Fixed(fixed.to_vec())))
        .expect("fixed names are valid and unique");
    registry
}

/// Families whose values never change after start.
#[derive(Clone)]
struct Fixed(Vec<MetricFamily>);

impl prometheus::core::Collector for Fixed {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.0.clone()
    }
}

/// Labels of one sample, in order.
pub type Labels = Vec<(&'static str, String)>;

fn family(name: &str, help: &str, kind: MetricType, samples: Vec<(Labels, f64)>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(kind);
    let metrics = samples
        .into_iter()
        .map(|(labels, value)| {
            let mut m = Metric::from_label(
                labels
                    .into_iter()
                    .map(|(k, v)| {
                        let mut p = LabelPair::default();
                        p.set_name(k.to_string());
                        p.set_value(v);
                        p
                    })
                    .collect(),
            );
            match kind {
                MetricType::COUNTER => {
                    let mut c = Counter::default();
                    c.set_value(value);
                    m.set_counter(c);
                }
                _ => {
                    let mut g = Gauge::default();
                    g.set_value(value);
                    m.set_gauge(g);
                }
            }
            m
        })
        .collect();
    f.set_metric(metrics);
    f
}

/// A gauge family computed at render time (database figures, ages).
pub fn gauge(name: &str, help: &str, samples: Vec<(Labels, f64)>) -> MetricFamily {
    family(name, help, MetricType::GAUGE, samples)
}

/// A counter family computed at render time from counts kept elsewhere (the judge's writer).
pub fn counter(name: &str, help: &str, samples: Vec<(Labels, f64)>) -> MetricFamily {
    family(name, help, MetricType::COUNTER, samples)
}

/// The text format of `families`, sorted by name as the format's readers expect.
pub fn encode(mut families: Vec<MetricFamily>) -> Vec<u8> {
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(8 * 1024);
    // Writing to a Vec fails only on a family without samples, which the encoder skips anyway.
    let _ = TextEncoder::new().encode(&families, &mut out);
    out
}

/// Renders `registry` and the families `extra` computes at that moment.
pub fn render_with(
    registry: Registry,
    extra: impl Fn() -> Vec<MetricFamily> + Send + Sync + 'static,
) -> Render {
    Arc::new(move || {
        let mut families = registry.gather();
        families.extend(extra());
        encode(families)
    })
}
