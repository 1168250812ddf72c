//! `ibd report`: report banned addresses to an abuse database (the work is in `ipqbdb-report`).

use std::io::Write;

use ipqbdb_core::log::{self, Level};
use ipqbdb_core::{format_duration, now, time::format_utc};
use ipqbdb_report::client::Client;
use ipqbdb_report::{PassEnd, PassStats, ReportConfig, Reporter, Sink};
use ipqbdb_runtime::signals::Signals;
use ipqbdb_store::Store;

use crate::cli::ReportArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

const IDENT: &str = "ibd-report";

pub fn run(ctx: &Context, args: &ReportArgs) -> Result<()> {
    let cfg = ReportConfig::from_settings(&ctx.settings, &ctx.config_file)?;
    if args.status {
        return status(ctx);
    }
    // The key is read before anything is sent, so a missing key file fails at once.
    let sink = if args.dry_run {
        Sink::DryRun
    } else {
        let key = cfg.read_key()?;
        if let Some(w) = ipqbdb_report::config::key_file_warning(&cfg.key_file) {
            ctx.warn(w);
        }
        Sink::Http(Client::new(&cfg.url, key, cfg.timeout))
    };
    let store = ctx.open(!args.dry_run)?;
    let doubt = store
        .report_states()?
        .iter()
        .filter(|(_, s)| s.kind == ipqbdb_core::report::ReportKind::Sent)
        .count();
    let clock = now;
    let mut stats = PassStats::default();
    if args.follow {
        if args.log_syslog || ctx.settings.log_syslog.unwrap_or(false) {
            ipqbdb_runtime::syslog::use_syslog(IDENT);
        }
        let signals = Signals::register().map_err(|e| AdminError::Io {
            path: "signals".into(),
            source: e,
        })?;
        let mut say = |line: &str| log::log(&ctx.program, Level::Notice, line);
        if doubt > 0 {
            say(&format!(
                "{doubt} reports were being sent when a reporter stopped (see --status); they are not sent again"
            ));
        }
        say(&format!(
            "reporting to {} every {}",
            cfg.url,
            format_duration(cfg.interval.as_secs() as u32)
        ));
        if let Err(e) = ipqbdb_runtime::notify::notify_ready() {
            say(&format!("telling systemd we are ready: {e}"));
        }
        let mut reporter = Reporter::new(&store, &cfg, sink, &clock, &mut say);
        reporter.follow(&signals.terminate, &mut stats);
        log::log(
            &ctx.program,
            Level::Notice,
            &format!(
                "stopping: {} reported, {} refused, {} in doubt",
                stats.accepted, stats.refused, stats.in_doubt
            ),
        );
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let mut failed_output = None;
    let mut say = |line: &str| {
        if let Err(e) = writeln!(out, "{line}") {
            failed_output.get_or_insert(e);
        }
    };
    let end = Reporter::new(&store, &cfg, sink, &clock, &mut say).pass(&mut stats)?;
    if let Some(e) = failed_output {
        return Err(ipqbdb_report::ReportError::Output(e).into());
    }
    if doubt > 0 {
        ctx.warn(format!(
            "{doubt} reports were being sent when a reporter stopped (see --status)"
        ));
    }
    match end {
        PassEnd::Done => {}
        PassEnd::QuotaExhausted { used } => ctx.warn(format!(
            "daily quota reached ({used} reports); the rest waits for the next UTC day"
        )),
        PassEnd::Backoff(d) => {
            return Err(AdminError::Partial(format!(
                "the endpoint did not take reports now; run again in {}s or more",
                d.as_secs()
            )))
        }
    }
    if stats.refused + stats.in_doubt > 0 {
        return Err(AdminError::Partial(format!(
            "reports refused: {}, in doubt: {}",
            stats.refused, stats.in_doubt
        )));
    }
    Ok(())
}

fn status(ctx: &Context) -> Result<()> {
    let store = ctx.open(false)?;
    let mut out = std::io::stdout().lock();
    let t = now();
    let _ = writeln!(out, "reports today (UTC): {}", store.report_quota_used(t)?);
    for (key, s) in store.report_states()? {
        let _ = writeln!(
            out,
            "{key} {} {} ban {} attempt {}",
            s.kind.name(),
            s.status,
            format_utc(s.ban_time),
            format_utc(s.at)
        );
    }
    Ok(())
}
