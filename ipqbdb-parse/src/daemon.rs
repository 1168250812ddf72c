//! The `ibd-parse` main loop: events from the inputs in, bans out, in batches.
//!
//! Bans are committed in batches together with the read positions of followed files, so a crash can
//! neither lose a ban (the position was not committed, the line is read again) nor repeat one (the
//! position and the ban commit together). When the database refuses a batch (disk full, read-only),
//! the loop stops taking lines and retries: the bounded channel pushes back on the inputs, and no line
//! of a followed file is skipped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipqbdb_core::banlog::BanLine;
use ipqbdb_core::log::{log, log_lines, Level};
use ipqbdb_core::{now, ReasonId};
use ipqbdb_runtime::connkill::ConnKill;
use ipqbdb_runtime::rate_limit::{RateLimit, Repeat};
pub use ipqbdb_runtime::reopen::Reopener;
pub use ipqbdb_runtime::signals::Signals;
use ipqbdb_store::{Ban, Store};

use crate::input_readers::Event;
use crate::killer::Killer;
use crate::matcher::RuleSet;
use crate::metrics::{InputMetrics, ParseMetrics};
use crate::rules;
use crate::sessions::{LineCount, Sessions};

const PROGRAM: &str = "ibd-parse";
/// Most bans in one transaction. A commit costs a synchronous flush of the database whatever its
/// size, and on a large database each flush writes back leaf pages all over the tree (40 ms each on
/// ext4 with 330,000 addresses): under a flood of attacks the batch grows to this bound or to
/// `MAX_DELAY`, so the flushes stay few and share pages.
const MAX_BATCH: usize = 32768;
/// How long a ban may wait for its batch to fill while lines keep arriving: the time an attacker
/// keeps at most, beyond the commit itself, which matters less than keeping up with the flood.
const MAX_DELAY: Duration = Duration::from_millis(200);
/// How often read positions are committed when no ban carries them.
const POSITION_INTERVAL: Duration = Duration::from_secs(1);
const RETRY: Duration = Duration::from_secs(1);

/// What the daemon knows of an input.
#[derive(Debug, Clone)]
pub struct InputInfo {
    /// For log messages.
    pub name: String,
    /// A followed file's path: rules may be restricted to it.
    pub path: Option<PathBuf>,
    /// The program whose own log the input is (`--input FILE:program=NAME`), if declared.
    pub program: Option<String>,
    /// Where the input's read position is saved (with the bans of the lines before it), for
    /// inputs that resume after a restart.
    pub position_key: Option<Vec<u8>>,
    /// The daemon ends when every input that can end (standard input) has, and no other remains.
    pub can_end: bool,
}

/// The key under which a followed file's position is kept in the database.
pub fn position_key(path: &std::path::Path) -> Vec<u8> {
    [&b"pos:"[..], path.as_os_str().as_encoded_bytes()].concat()
}

#[derive(Debug, Default, Clone, Copy)]
struct RuleStats {
    matches: u64,
    errors: u64,
}

#[derive(Debug, Default)]
struct Totals {
    lines: u64,
    too_long: u64,
    bans: u64,
    db_errors: u64,
}

pub struct Daemon<S: Store> {
    store: S,
    rule_file: PathBuf,
    rules: Arc<RuleSet>,
    sessions: Sessions,
    started: Instant,
    rule_stats: Vec<RuleStats>,
    inputs: Vec<InputInfo>,
    killer: Option<Killer>,
    verbose: u8,
    totals: Totals,
    /// Each pending ban keeps the rule set it was matched with, so a reload cannot change its
    /// reason, count or decay however long the database refuses it.
    pending_bans: Vec<(IpAddr, Arc<RuleSet>, usize)>,
    pending_positions: HashMap<usize, Vec<u8>>,
    first_pending: Option<Instant>,
    last_position_flush: Instant,
    ban_errors: RateLimit,
    kill_skips: RateLimit,
    last_maintenance: Instant,
    maintenance_every: Option<Duration>,
    metrics: ParseMetrics,
    /// Each input's counters, by index.
    input_metrics: Vec<InputMetrics>,
    /// `--log-category`: log every ban with its reason's category (see `ipqbdb_core::banlog`).
    log_category: bool,
    /// Builds the rule set again on SIGHUP when the rules come from more than the rule file
    /// (fail2ban filters); `None`: the rule file alone.
    loader: Option<Loader>,
    /// Opens the store again on SIGUSR2.
    reopen: Option<Reopener<S>>,
}

/// What SIGHUP runs to build the rule set again.
pub type Loader = Box<dyn Fn(crate::rules::RuleMode) -> Result<RuleSet, String> + Send>;

/// How often the daemon does the database's housekeeping (LMDB's stale reader slots, SQLite's WAL
/// checkpoint) by default: a reader killed with SIGKILL otherwise keeps its slot, and LMDB's file
/// grows, until some process opens the environment again.
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);

/// How long shutdown waits for connection kills still running.
const KILL_GRACE: Duration = Duration::from_secs(10);

impl<S: Store> Daemon<S> {
    pub fn new(
        store: S,
        rule_file: PathBuf,
        rules: RuleSet,
        inputs: Vec<InputInfo>,
        connkill: Option<ConnKill>,
        verbose: u8,
    ) -> Self {
        let n = rules.catcher_count();
        let metrics = ParseMetrics::new(store.engine().name());
        let input_metrics = inputs.iter().map(|s| metrics.input(&s.name)).collect();
        metrics
            .followed_files
            .set(inputs.iter().filter(|s| s.path.is_some()).count() as i64);
        Daemon {
            store,
            rule_file,
            rules: Arc::new(rules),
            sessions: Sessions::default(),
            started: Instant::now(),
            rule_stats: vec![RuleStats::default(); n],
            inputs,
            killer: connkill.and_then(|ck| {
                Killer::start(ck, crate::killer::QUEUE, |ip, e| {
                    log(
                        PROGRAM,
                        Level::Error,
                        &format!("connection kill for {ip}: {e}"),
                    )
                })
                .map_err(|e| log(PROGRAM, Level::Error, &format!("connection kills: {e}")))
                .ok()
            }),
            verbose,
            totals: Totals::default(),
            pending_bans: Vec::new(),
            pending_positions: HashMap::new(),
            first_pending: None,
            last_position_flush: Instant::now(),
            ban_errors: RateLimit::new(Repeat::WhenChanged),
            kill_skips: RateLimit::new(Repeat::AtPowersOfTwo),
            last_maintenance: Instant::now(),
            maintenance_every: Some(MAINTENANCE_INTERVAL),
            metrics,
            input_metrics,
            log_category: false,
            loader: None,
            reopen: None,
        }
    }

    /// The metrics page, for an [`ipqbdb_metrics::Exporter`] running beside the loop.
    pub fn metrics_render(&self) -> ipqbdb_metrics::Render {
        self.metrics.render()
    }

    /// Logs every ban with its reason's report category appended (the original's
    /// `--log-category`), for administrators who report with their own scripts.
    pub fn set_log_category(&mut self, on: bool) {
        self.log_category = on;
    }

    /// How often to do the database's housekeeping (`None`: never, for tests that show its effect).
    pub fn set_maintenance_interval(&mut self, every: Option<Duration>) {
        self.maintenance_every = every;
    }

    /// Runs until terminated or until every input has ended; commits what is pending before it returns.
    pub fn run(&mut self, rx: &Receiver<Event>, signals: &Signals) {
        let mut open_ends = self.inputs.iter().filter(|s| s.can_end).count();
        let endless = self.inputs.iter().any(|s| !s.can_end);
        let mut retry_at: Option<Instant> = None;
        loop {
            if signals.terminate.load(Ordering::Relaxed) {
                break;
            }
            if signals.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            if signals.dump.swap(false, Ordering::Relaxed) {
                self.dump();
            }
            if signals.reopen.swap(false, Ordering::Relaxed) {
                self.reopen();
            }
            self.metrics
                .bans_waiting
                .set(self.pending_bans.len() as i64);
            if let Some(at) = retry_at {
                // The database refused the last batch: take no more lines until it accepts one.
                if Instant::now() < at {
                    std::thread::sleep(Duration::from_millis(100).min(at - Instant::now()));
                    continue;
                }
                retry_at = self.flush().err().map(|_| Instant::now() + RETRY);
                continue;
            }
            let timeout = match self.first_pending {
                Some(t) => MAX_DELAY.saturating_sub(t.elapsed()),
                None => Duration::from_millis(200),
            };
            let mut ended = 0;
            // Whether every line that had arrived is handled: then pending bans commit at once.
            let mut drained = false;
            match rx.recv_timeout(timeout) {
                Ok(ev) => ended += usize::from(self.handle(ev)),
                Err(RecvTimeoutError::Timeout) => drained = true,
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Take what is already queued, up to a batch.
            while self.pending_bans.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(ev) => ended += usize::from(self.handle(ev)),
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                        drained = true;
                        break;
                    }
                }
            }
            open_ends = open_ends.saturating_sub(ended);
            self.maintain();
            if self.should_flush(drained) {
                retry_at = self.flush().err().map(|_| Instant::now() + RETRY);
            }
            if open_ends == 0 && !endless && retry_at.is_none() {
                break;
            }
        }
        // Commit what is pending; a database that still refuses gets a few more tries.
        for _ in 0..5 {
            if self.flush().is_ok() {
                break;
            }
            std::thread::sleep(RETRY);
        }
        // Let the connection kills of the last bans finish, within reason.
        if let Some(k) = &mut self.killer {
            if !k.finish(KILL_GRACE) {
                log(
                    PROGRAM,
                    Level::Warning,
                    "connection kills still running at exit",
                );
            }
        }
    }

    /// Handles one event; true when an input ended.
    fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Lines { input, lines, pos } => {
                self.totals.lines += lines.len() as u64;
                self.input_metrics[input].lines.inc_by(lines.len() as u64);
                for line in lines.iter() {
                    match line {
                        Ok(line) => self.check(input, line),
                        Err(len) => {
                            self.totals.too_long += 1;
                            self.input_metrics[input].too_long.inc();
                            self.log(
                                Level::Warning,
                                format!(
                                    "{}: skipped a line of {len} bytes",
                                    self.inputs[input].name
                                ),
                            );
                        }
                    }
                }
                if let Some(p) = pos {
                    self.pending_positions.insert(input, p);
                }
                false
            }
            Event::End { .. } => true,
            Event::Rotated { input, how } => {
                self.metrics.rotated(&self.inputs[input].name, how);
                false
            }
            Event::Error { input, message } => {
                self.log(
                    Level::Error,
                    format!("{}: {message}", self.inputs[input].name),
                );
                false
            }
        }
    }

    fn check(&mut self, input: usize, line: &[u8]) {
        let info = &self.inputs[input];
        let outcome = self
            .rules
            .check_from(line, info.path.as_deref(), info.program.as_deref());
        let now = self.started.elapsed().as_secs();
        match self.sessions.count(&self.rules, outcome, now) {
            LineCount::Miss => {
                if self.verbose >= 3 {
                    self.log(
                        Level::Debug,
                        format!("no match: {}", String::from_utf8_lossy(line)),
                    );
                }
            }
            LineCount::Caught {
                rule,
                ip,
                bans,
                folded,
            } => {
                self.rule_stats[rule].matches += 1;
                self.metrics.matched(rule, self.rules.catcher(rule));
                for _ in 0..bans {
                    self.pending_bans.push((ip, self.rules.clone(), rule));
                }
                if bans > 0 {
                    self.first_pending.get_or_insert_with(Instant::now);
                }
                if self.verbose >= 2 {
                    let r = self.rules.catcher(rule);
                    let how = if folded > 0 && bans == 0 {
                        "folded into the attempt already banned".to_string()
                    } else {
                        format!("{bans} ban(s)")
                    };
                    self.log(
                        Level::Debug,
                        format!(
                            "rule at line {} caught {ip}, {how}: {}",
                            r.line().unwrap_or(0),
                            String::from_utf8_lossy(line)
                        ),
                    );
                }
            }
            LineCount::Noted { rule, .. } | LineCount::NoSession { rule } => {
                self.rule_stats[rule].matches += 1;
                self.metrics.matched(rule, self.rules.catcher(rule));
            }
            LineCount::BadAddress { rule, text } => {
                self.rule_stats[rule].errors += 1;
                let r = self.rules.catcher(rule);
                self.metrics.bad_address(r);
                self.log(
                    Level::Warning,
                    format!(
                        "rule at line {} matched but {text:?} is not an address",
                        r.line().unwrap_or(0)
                    ),
                );
            }
        }
    }

    fn should_flush(&self, drained: bool) -> bool {
        let bans_due = bans_due(
            self.pending_bans.len(),
            self.first_pending.map(|t| t.elapsed()),
            drained,
        );
        let positions_due = !self.pending_positions.is_empty()
            && self.last_position_flush.elapsed() >= POSITION_INTERVAL;
        bans_due || positions_due
    }

    /// Commits pending bans and positions in one transaction.
    fn flush(&mut self) -> Result<(), ()> {
        if self.pending_bans.is_empty() && self.pending_positions.is_empty() {
            return Ok(());
        }
        let bans: Vec<Ban<'_>> = self
            .pending_bans
            .iter()
            .map(|(ip, set, r)| {
                let rule = set.catcher(*r);
                Ban {
                    ip: *ip,
                    reason: rule.reason(),
                    initial_count: rule.initial_count(),
                    decay: rule.decay(),
                }
            })
            .collect();
        let positions: Vec<(Vec<u8>, Vec<u8>)> = self
            .pending_positions
            .iter()
            .filter_map(|(&s, p)| self.inputs[s].position_key.clone().map(|k| (k, p.clone())))
            .collect();
        let started = Instant::now();
        match self.store.ban_batch_noting(&bans, now(), &positions) {
            Ok(reports) => {
                self.metrics
                    .commit_seconds
                    .observe(started.elapsed().as_secs_f64());
                if self.ban_errors.clear() {
                    self.log(Level::Notice, "the database accepts bans again".into());
                }
                self.totals.bans += reports.len() as u64;
                let categories = self.categories();
                let mut to_kill = Vec::new();
                let mut lines = Vec::with_capacity(reports.len());
                for ((ip, set, r), report) in self.pending_bans.iter().zip(&reports) {
                    let (ip, rule) = (*ip, set.catcher(*r));
                    let reason = rule.reason();
                    self.metrics.banned(rule, &report.outcome);
                    let category = categories
                        .as_ref()
                        .map(|c| c.get(&report.reason).copied().unwrap_or(0));
                    if let Some(line) = BanLine::new(ip, &report.outcome, reason, category) {
                        lines.push(line);
                    }
                    if report.outcome.reached_max {
                        to_kill.push(ip);
                    }
                }
                log_lines(PROGRAM, Level::Info, lines);
                for ip in to_kill {
                    self.kill_connections(ip);
                }
                self.pending_bans.clear();
                self.pending_positions.clear();
                self.first_pending = None;
                self.last_position_flush = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.totals.db_errors += 1;
                self.metrics.db_errors.inc();
                if let Some(msg) = self.ban_errors.hit(|_| e.to_string()) {
                    self.log(
                        Level::Error,
                        format!("{msg} (retrying; {} bans wait)", self.pending_bans.len()),
                    );
                }
                Err(())
            }
        }
    }

    /// With `--log-category`, every reason's category, read after the commit (`ibd category` may
    /// change one at any time); a failed read is logged and the bans are logged with category 0.
    fn categories(&self) -> Option<HashMap<ReasonId, u8>> {
        if !self.log_category {
            return None;
        }
        match self.store.reasons() {
            Ok(all) => Some(all.into_iter().map(|r| (r.id, r.category)).collect()),
            Err(e) => {
                self.log(Level::Warning, format!("reading categories: {e}"));
                Some(HashMap::new())
            }
        }
    }

    fn kill_connections(&mut self, ip: IpAddr) {
        let Some(k) = &mut self.killer else {
            return;
        };
        if !k.kill(ip) {
            let dropped = k.dropped();
            // A flood must not flood the log too.
            if let Some(line) = self.kill_skips.hit(|_| {
                format!("connection kill queue full: skipped the kill for {ip} ({dropped} skipped so far)")
            }) {
                self.log(Level::Warning, line);
            }
        }
    }

    /// The database's housekeeping, when due.
    fn maintain(&mut self) {
        let Some(every) = self.maintenance_every else {
            return;
        };
        if self.last_maintenance.elapsed() < every {
            return;
        }
        self.last_maintenance = Instant::now();
        if let Err(e) = self.store.maintenance() {
            self.log(Level::Warning, format!("database housekeeping: {e}"));
        }
    }

    /// What the rules need from the database, checked once it is open and before any line is read:
    /// numeric reasons (2.x's reason ids) must name reasons it holds; and the one message that the
    /// rules' 2.x database field is set aside. An error stops the start.
    pub fn start_checks(&mut self) -> Result<(), String> {
        let rules = Arc::get_mut(&mut self.rules).ok_or("the rule set is already shared")?;
        Self::resolve(&self.store, &self.rule_file, rules)?;
        if let Some(msg) = rules::database_fields(self.rules.rules()) {
            self.log(
                Level::Notice,
                format!("{}: {msg}", self.rule_file.display()),
            );
        }
        Ok(())
    }

    fn resolve(store: &S, file: &std::path::Path, rules: &mut RuleSet) -> Result<(), String> {
        rules
            .resolve_reasons(file, |id| store.reason(id).map(|r| r.map(|r| r.text)))
            .map_err(|e| e.to_string())
    }

    /// Makes SIGUSR2 (ipqbdb 2.03's recovery signal) open the database again with `reopen`.
    pub fn set_reopen(&mut self, reopen: Reopener<S>) {
        self.reopen = Some(reopen);
    }

    /// Replaces the store with a new handle; bans waiting for a commit go to the new one. A
    /// failure keeps the handle in use.
    fn reopen(&mut self) {
        let Some(r) = &mut self.reopen else {
            self.log(Level::Warning, "SIGUSR2: cannot reopen here".into());
            return;
        };
        r.ask();
        match r.due() {
            Some(Ok(store)) => {
                self.store = store;
                self.log(Level::Notice, "SIGUSR2: reopened the database".into());
            }
            Some(Err(e)) => self.log(
                Level::Error,
                format!("SIGUSR2: reopening the database: {e}; keeping the handle in use"),
            ),
            None => {}
        }
    }

    /// Makes SIGHUP build the rule set with `loader` rather than from the rule file alone.
    pub fn set_loader(&mut self, loader: Loader) {
        self.loader = Some(loader);
    }

    fn reload(&mut self) {
        let loaded = match &self.loader {
            Some(load) => load(self.rules.mode()),
            None => rules::load(&self.rule_file)
                .map_err(|e| e.to_string())
                .and_then(|r| RuleSet::with_mode(r, self.rules.mode()).map_err(|e| e.to_string())),
        }
        .and_then(|mut set| {
            Self::resolve(&self.store, &self.rule_file, &mut set)?;
            Ok(set)
        });
        match loaded {
            Ok(set) => {
                // Bans already matched keep the rules that matched them (each holds its set), so
                // they are committed as matched even if this flush fails and a later one succeeds.
                let _ = self.flush();
                self.rule_stats = vec![RuleStats::default(); set.catcher_count()];
                self.metrics.rules_changed();
                self.rules = Arc::new(set);
                self.log(
                    Level::Notice,
                    format!(
                        "reloaded {} rules from {}",
                        self.rules.catcher_count(),
                        self.rule_file.display()
                    ),
                );
            }
            Err(e) => self.log(
                Level::Error,
                format!(
                    "{e}; keeping the {} rules in use",
                    self.rules.catcher_count()
                ),
            ),
        }
    }

    /// The SIGUSR1 dump: totals, the connection-kill worker's counts and each catcher's counters.
    fn dump(&self) {
        let t = &self.totals;
        self.log(
            Level::Notice,
            format!(
                "{} lines, {} bans, {} too long, {} database errors",
                t.lines, t.bans, t.too_long, t.db_errors
            ),
        );
        if let Some(k) = &self.killer {
            self.log(
                Level::Notice,
                format!(
                    "connection kills: {} skipped (queue full), {} failed",
                    k.dropped(),
                    k.failed()
                ),
            );
        }
        for (r, s) in self.rules.catchers().zip(&self.rule_stats) {
            self.log(
                Level::Notice,
                format!(
                    "rule at line {}: {} matches, {} errors ({})",
                    r.line().unwrap_or(0),
                    s.matches,
                    s.errors,
                    r.reason_label()
                ),
            );
        }
    }

    fn log(&self, level: Level, message: String) {
        log(PROGRAM, level, &message);
    }
}

/// Whether `pending` bans, the first of them `waited` ago, commit now. They commit as soon as no
/// line waits behind them (`drained`), so a lone attack is banned without delay; under a flood,
/// lines keep arriving during each commit's flush and the next batch grows until it is full or
/// its first ban has waited `MAX_DELAY` (group commit).
fn bans_due(pending: usize, waited: Option<Duration>, drained: bool) -> bool {
    pending > 0 && (drained || pending >= MAX_BATCH || waited.is_some_and(|w| w >= MAX_DELAY))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_ban_commits_at_once_and_a_flood_in_batches() {
        let fresh = Some(Duration::ZERO);
        // Nothing waits behind it: no delay.
        assert!(bans_due(1, fresh, true));
        // Lines keep coming: the batch grows...
        assert!(!bans_due(1, fresh, false));
        assert!(!bans_due(MAX_BATCH - 1, fresh, false));
        // ...until it is full, or its first ban has waited long enough.
        assert!(bans_due(MAX_BATCH, fresh, false));
        assert!(bans_due(1, Some(MAX_DELAY), false));
        // Nothing to commit.
        assert!(!bans_due(0, None, true));
    }
}
