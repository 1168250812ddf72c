//! What `ibd-parse` tells Prometheus (`--metrics-listen`, `--metrics-file`). Counters are bumped on
//! the matching thread where match results and ban outcomes are consumed (`daemon.rs`), never in
//! the matcher; per-rule series are made at a rule's first match or ban, so an idle rule set of a
//! hundred rules costs nothing, and a match costs an atomic add once its rule has its counter.

use ipqbdb_core::model::{BanKind, BanOutcome};
use ipqbdb_metrics::prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};
use ipqbdb_metrics::Render;

use crate::matcher::Catcher;

/// How a rotation of a followed file was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Renamed away and replaced by a new file (logrotate's default).
    Renamed,
    /// Truncated in place (logrotate's copytruncate).
    Truncated,
}

impl Rotation {
    fn label(self) -> &'static str {
        match self {
            Rotation::Renamed => "rename",
            Rotation::Truncated => "truncate",
        }
    }
}

/// The counters of one input, resolved at start.
pub struct InputMetrics {
    pub lines: IntCounter,
    pub too_long: IntCounter,
}

pub struct ParseMetrics {
    registry: Registry,
    lines: IntCounterVec,
    too_long: IntCounterVec,
    matches: IntCounterVec,
    bad_addresses: IntCounterVec,
    bans: IntCounterVec,
    reached_max: IntCounterVec,
    rotations: IntCounterVec,
    pub commit_seconds: Histogram,
    pub db_errors: IntCounter,
    pub bans_waiting: IntGauge,
    pub followed_files: IntGauge,
    /// Each rule's match counter, by its index in the rule set in use, made at its first match.
    matched: Vec<Option<IntCounter>>,
}

fn must<T>(r: ipqbdb_metrics::prometheus::Result<T>) -> T {
    r.expect("metric names and labels are constants")
}

/// The labels of a rule: its line in the rule file (or its fail2ban filter) and its reason (written
/// by the administrator, never by a log line).
fn rule_labels(rule: Catcher<'_>) -> [String; 2] {
    [rule.label(), rule.reason().to_string()]
}

impl ParseMetrics {
    pub fn new(engine: &str) -> ParseMetrics {
        let registry = ipqbdb_metrics::registry("ibd-parse", engine);
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let v = must(IntCounterVec::new(Opts::new(name, help), labels));
            must(registry.register(Box::new(v.clone())));
            v
        };
        let lines = vec(
            "ipqbdb_parse_lines_total",
            "Log lines read, by input",
            &["input"],
        );
        let too_long = vec(
            "ipqbdb_parse_lines_too_long_total",
            "Log lines skipped for their length, by input",
            &["input"],
        );
        let matches = vec(
            "ipqbdb_parse_matches_total",
            "Lines a rule recognised, by rule (its line in the rule file, or its fail2ban filter) and reason",
            &["rule", "reason"],
        );
        let bad_addresses = vec(
            "ipqbdb_parse_bad_addresses_total",
            "Lines a rule matched whose capture was not an address (nothing banned)",
            &["rule", "reason"],
        );
        let bans = vec(
            "ipqbdb_parse_bans_total",
            "Bans committed, by rule and outcome: new (a new record), raised (an existing record), \
             whitelisted (nothing written: the whitelist never blocks the address)",
            &["rule", "reason", "outcome"],
        );
        let reached_max = vec(
            "ipqbdb_parse_bans_reached_max_total",
            "Bans that took an address to 100 % (the connection-kill event), by rule",
            &["rule", "reason"],
        );
        let rotations = vec(
            "ipqbdb_parse_rotations_total",
            "Rotations of followed files, by input and kind (rename, truncate)",
            &["input", "kind"],
        );
        let commit_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "ipqbdb_parse_commit_duration_seconds",
                "Duration of a committed batch of bans and read positions (one durable transaction)",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        ));
        must(registry.register(Box::new(commit_seconds.clone())));
        let db_errors = must(IntCounter::new(
            "ipqbdb_parse_database_errors_total",
            "Batches the database refused (kept and tried again)",
        ));
        must(registry.register(Box::new(db_errors.clone())));
        let bans_waiting = must(IntGauge::new(
            "ipqbdb_parse_bans_waiting",
            "Bans matched and not yet committed (held while the database refuses them)",
        ));
        must(registry.register(Box::new(bans_waiting.clone())));
        let followed_files = must(IntGauge::new(
            "ipqbdb_parse_followed_files",
            "Log files followed",
        ));
        must(registry.register(Box::new(followed_files.clone())));
        ParseMetrics {
            registry,
            lines,
            too_long,
            matches,
            bad_addresses,
            bans,
            reached_max,
            rotations,
            commit_seconds,
            db_errors,
            bans_waiting,
            followed_files,
            matched: Vec::new(),
        }
    }

    /// A new rule set is in use: rule indices mean other rules now.
    pub fn rules_changed(&mut self) {
        self.matched.clear();
    }

    /// The counters of the input named `name` (a path, `<stdin>`, `journal`).
    pub fn input(&self, name: &str) -> InputMetrics {
        InputMetrics {
            lines: self.lines.with_label_values(&[name]),
            too_long: self.too_long.with_label_values(&[name]),
        }
    }

    /// Catcher `index` of the rule set in use, `rule`, recognised a line.
    pub fn matched(&mut self, index: usize, rule: Catcher<'_>) {
        if self.matched.len() <= index {
            self.matched.resize(index + 1, None);
        }
        let matches = &self.matches;
        self.matched[index]
            .get_or_insert_with(|| {
                let [line, reason] = rule_labels(rule);
                matches.with_label_values(&[&line, &reason])
            })
            .inc();
    }

    pub fn bad_address(&self, rule: Catcher<'_>) {
        let [line, reason] = rule_labels(rule);
        self.bad_addresses
            .with_label_values(&[&line, &reason])
            .inc();
    }

    pub fn banned(&self, rule: Catcher<'_>, outcome: &BanOutcome) {
        let [line, reason] = rule_labels(rule);
        let kind = match outcome.kind {
            BanKind::New => "new",
            BanKind::Raised => "raised",
            BanKind::Whitelisted => "whitelisted",
        };
        self.bans.with_label_values(&[&line, &reason, kind]).inc();
        if outcome.reached_max {
            self.reached_max.with_label_values(&[&line, &reason]).inc();
        }
    }

    pub fn rotated(&self, input: &str, how: Rotation) {
        self.rotations
            .with_label_values(&[input, how.label()])
            .inc();
    }

    pub fn render(&self) -> Render {
        ipqbdb_metrics::render_with(self.registry.clone(), Vec::new)
    }
}
