//! One pass over the database (`ibd report`), and the loop of passes (`ibd report --follow`).
//!
//! **Exactly once, and what a crash can do.** For each due address, one write transaction
//! ([`Store::report_begin`]) records the attempt as `sent` and counts it in the day's quota; only
//! then does the request go out; a second transaction ([`Store::report_finish`]) records the answer.
//! - A crash before the first commit: nothing was sent and nothing recorded; the address is still
//!   due and the next run reports it (not skipped).
//! - A crash after it: the state stays `sent` and the address is never reported again for that
//!   ban, whether or not the request left or arrived (not repeated; listed by `ibd report
//!   --status` as `sent`, so the operator can see the few reports in doubt).
//! - A request that may have reached the server but got no answer (a timeout waiting for it) is
//!   recorded `in-doubt`, the same way, and not sent again.
//! - A request that certainly did not arrive (no connection) or that the server did not take
//!   (429, 5xx, and 401 or a redirection, which say the configuration is wrong) puts the previous
//!   state back, so the address stays due, after the backoff.
//!
//! So a report is sent at most once per ban, and it is missing only when a request went out and
//! the reporter could not learn whether it arrived: at most one address per crash or timeout, and
//! visible. We chose that over resending because a repeated report is a second public accusation
//! that cannot be withdrawn (and AbuseIPDB refuses it within its 15 minutes anyway), while the
//! missing one is reported with the address's next ban.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipqbdb_core::report::{ReportKind, ReportState};
use ipqbdb_core::UnixTime;
use ipqbdb_store::{ReportBegin, ReportCandidate, Store};

use crate::backoff::Backoff;
use crate::client::{Answer, Client};
use crate::config::ReportConfig;
use crate::error::Result;
use crate::request::ReportRequest;
use crate::select::due;

/// Where reports go: the endpoint, or (`--dry-run`) a printout of what would be sent.
pub enum Sink {
    Http(Client),
    DryRun,
}

/// How a pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// Every due address was handled.
    Done,
    /// The day's quota is used up; the rest waits for the next UTC day.
    QuotaExhausted { used: u32 },
    /// The endpoint did not take a report now (429, 5xx, unreachable): try again after this.
    Backoff(Duration),
}

/// Counts of one pass (or, added up, of a run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassStats {
    pub due: u64,
    pub accepted: u64,
    pub refused: u64,
    pub in_doubt: u64,
    pub dry_run: u64,
}

pub struct Reporter<'a, S: Store> {
    store: &'a S,
    cfg: &'a ReportConfig,
    sink: Sink,
    backoff: Backoff,
    clock: &'a dyn Fn() -> UnixTime,
    /// Gets one line per report and per event.
    say: &'a mut dyn FnMut(&str),
}

impl<'a, S: Store> Reporter<'a, S> {
    pub fn new(
        store: &'a S,
        cfg: &'a ReportConfig,
        sink: Sink,
        clock: &'a dyn Fn() -> UnixTime,
        say: &'a mut dyn FnMut(&str),
    ) -> Self {
        Reporter {
            store,
            cfg,
            sink,
            backoff: Backoff::default(),
            clock,
            say,
        }
    }

    /// Reports every address due now, oldest ban first.
    pub fn pass(&mut self, stats: &mut PassStats) -> Result<PassEnd> {
        let now = (self.clock)();
        let policy = self.cfg.policy;
        if !matches!(self.sink, Sink::DryRun) {
            let keep = i64::from(policy.cooldown.max(policy.max_age));
            self.store.report_prune(now.saturating_sub(keep))?;
        }
        let since = now.saturating_sub(policy.max_age.into());
        let v6_exact = self.store.v6_prefix()?.bits() == 128;
        let list = due(self.store.report_candidates(since)?, &policy, now, v6_exact);
        stats.due += list.len() as u64;
        for c in list {
            if let Some(end) = self.report(&c, stats)? {
                return Ok(end);
            }
        }
        Ok(PassEnd::Done)
    }

    /// Reports one address; `Some` ends the pass.
    fn report(&mut self, c: &ReportCandidate, stats: &mut PassStats) -> Result<Option<PassEnd>> {
        let req = ReportRequest::new(c, &self.cfg.comment);
        let client = match &self.sink {
            Sink::DryRun => {
                (self.say)(&format!("POST {} {}", self.cfg.url, req.form()));
                stats.dry_run += 1;
                return Ok(None);
            }
            Sink::Http(client) => client,
        };
        let now = (self.clock)();
        let sent = ReportState {
            kind: ReportKind::Sent,
            ban_time: c.record.last_update,
            at: now,
            status: 0,
        };
        match self
            .store
            .report_begin(c.key, c.state, sent, self.cfg.daily_quota)?
        {
            ReportBegin::Started => {}
            ReportBegin::Changed => return Ok(None),
            ReportBegin::QuotaExhausted { used } => {
                return Ok(Some(PassEnd::QuotaExhausted { used }));
            }
        }
        let answer = client.send(&req);
        let finished = |kind, status| {
            Some(ReportState {
                kind,
                status,
                ..sent
            })
        };
        let ip = &req.ip;
        match answer {
            Answer::Accepted { status } => {
                self.store
                    .report_finish(c.key, finished(ReportKind::Accepted, status))?;
                self.backoff.succeeded();
                stats.accepted += 1;
                (self.say)(&format!(
                    "{ip}: reported, category {} ({status})",
                    req.categories
                ));
                Ok(None)
            }
            Answer::Refused { status, detail } => {
                self.store
                    .report_finish(c.key, finished(ReportKind::Refused, status))?;
                stats.refused += 1;
                (self.say)(&format!("{ip}: refused by the server ({status}): {detail}"));
                Ok(None)
            }
            Answer::NoAnswer(why) => {
                self.store
                    .report_finish(c.key, finished(ReportKind::InDoubt, 0))?;
                stats.in_doubt += 1;
                let wait = self.backoff.failed(None);
                (self.say)(&format!(
                    "{ip}: no answer ({why}); it may have arrived, so it is not sent again; next try in {}s",
                    wait.as_secs()
                ));
                Ok(Some(PassEnd::Backoff(wait)))
            }
            Answer::RateLimited {
                status,
                retry_after,
            }
            | Answer::ServerError {
                status,
                retry_after,
            } => {
                let shown = retry_after
                    .map_or(String::new(), |d| format!(", Retry-After {}s", d.as_secs()));
                self.stays_due(c, &format!("not taken ({status}{shown}),"), retry_after)
            }
            Answer::Misconfigured { status, detail } => self.stays_due(
                c,
                &format!("not taken ({status}): {detail} (check report-url and the key file);"),
                None,
            ),
            Answer::NotSent(why) => self.stays_due(c, &format!("not sent ({why}),"), None),
        }
    }

    /// The endpoint did not take the report (or never got it): puts the previous state back, so
    /// the address stays due, and ends the pass for the backoff.
    fn stays_due(
        &mut self,
        c: &ReportCandidate,
        what: &str,
        retry_after: Option<Duration>,
    ) -> Result<Option<PassEnd>> {
        self.store.report_finish(c.key, c.state)?;
        let wait = self.backoff.failed(retry_after);
        (self.say)(&format!(
            "{}: {what} next try in {}s",
            c.key,
            wait.as_secs()
        ));
        Ok(Some(PassEnd::Backoff(wait)))
    }

    /// Passes until `stop` is set: every `interval` when all went out, after the backoff when the
    /// endpoint did not take a report, at the next UTC midnight when the quota is used up. Database
    /// errors are said and retried at the next interval, never fatal.
    pub fn follow(&mut self, stop: &AtomicBool, stats: &mut PassStats) {
        while !stop.load(Ordering::Relaxed) {
            let wait = match self.pass(stats) {
                Ok(PassEnd::Done) => self.cfg.interval,
                Ok(PassEnd::Backoff(d)) => d,
                Ok(PassEnd::QuotaExhausted { used }) => {
                    let now = (self.clock)();
                    let midnight = (now.div_euclid(86_400) + 1) * 86_400;
                    (self.say)(&format!(
                        "daily quota reached ({used} reports); waiting for the next UTC day"
                    ));
                    Duration::from_secs((midnight - now).max(1) as u64)
                }
                Err(e) => {
                    (self.say)(&format!("{e}"));
                    self.cfg.interval
                }
            };
            sleep_unless(stop, wait);
        }
    }
}

/// Sleeps for `d`, waking early when `stop` is set (checked every 100 ms).
fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}
