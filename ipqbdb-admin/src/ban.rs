//! `ibd ban`: ban addresses, or insert a reason.

use std::io::Write;
use std::net::IpAddr;

use ipqbdb_core::banlog::BanLine;
use ipqbdb_core::log::{self, Level};
use ipqbdb_core::model::{initial_count, DEFAULT_INITIAL_COUNT};
use ipqbdb_core::{format_duration, now, parse_ban_decay, parse_ip, percent, BanKind};
use ipqbdb_store::{Ban, BanEffect, Store};

use crate::cli::BanArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

pub const DEFAULT_REASON: &str = "banned by ibd ban";

pub fn run(ctx: &Context, args: &BanArgs) -> Result<()> {
    let s = &ctx.settings;
    let reason = args
        .reason
        .clone()
        .or_else(|| s.reason.clone())
        .unwrap_or_else(|| DEFAULT_REASON.to_string());
    let count = match args.initial_count.or(s.initial_count) {
        Some(c) => initial_count(c).map_err(|e| AdminError::Usage(e.to_string()))?,
        None => DEFAULT_INITIAL_COUNT,
    };
    let decay = match (&args.decay, &s.decay) {
        (Some(text), _) => {
            Some(parse_ban_decay(text).map_err(|e| AdminError::Usage(e.to_string()))?)
        }
        (None, Some(d)) => Some(
            d.ban_seconds()
                .map_err(|e| AdminError::Usage(e.to_string()))?,
        ),
        (None, None) => None,
    };
    let syslog = args.log_syslog || s.log_syslog.unwrap_or(false);
    if syslog {
        ipqbdb_runtime::syslog::use_syslog("ibd-ban");
    }
    // Load the command before banning: a broken command file is reported while nothing has happened.
    let connkill = args.connkill.load(s)?;

    let store = ctx.open(true)?;
    let mut out = std::io::stdout().lock();
    if args.addresses.is_empty() {
        let id = store.reason_id(&reason)?;
        if !args.quiet {
            let _ = writeln!(out, "reason {id}: {reason}");
        }
        return Ok(());
    }

    let mut refused = 0;
    let mut kills_failed = 0;
    let mut ips: Vec<IpAddr> = Vec::with_capacity(args.addresses.len());
    for a in &args.addresses {
        match parse_ip(a) {
            Ok(ip) => ips.push(ip),
            Err(e) => {
                ctx.warn(e);
                refused += 1;
            }
        }
    }
    let bans: Vec<Ban<'_>> = ips
        .iter()
        .map(|&ip| Ban {
            ip,
            reason: &reason,
            initial_count: count,
            decay,
        })
        .collect();
    // One durable transaction for the whole command line.
    let reports = store.ban_batch(&bans, now())?;
    // Every ban of one command has the same reason.
    let category = match reports.first() {
        Some(r) if args.log_category || s.log_category.unwrap_or(false) => {
            Some(store.reason(r.reason)?.map_or(0, |r| r.category))
        }
        _ => None,
    };
    for (ip, report) in ips.iter().zip(&reports) {
        let mut line = describe(*ip, report);
        if let Some(c) = category {
            line.push_str(&format!(", category {c}"));
        }
        if !args.quiet {
            let _ = writeln!(out, "{line}");
        }
        if syslog {
            // ipqbdb 2.x's line (`ipqbdb_core::banlog`), which reporting scripts read.
            match BanLine::new(*ip, &report.outcome, &reason, category) {
                Some(ban) => log::log("ibd-ban", Level::Info, &ban.to_string()),
                None => log::log("ibd-ban", Level::Notice, &line),
            }
        }
        if report.outcome.reached_max {
            if let Some(ck) = &connkill {
                if let Err(e) = ck.run(*ip) {
                    ctx.warn(format!("connection kill for {ip}: {e}"));
                    kills_failed += 1;
                }
            }
        }
    }
    let kills = (kills_failed > 0).then(|| {
        format!("connection kills failed for {kills_failed} banned addresses (their bans stand)")
    });
    if refused > 0 {
        let mut msg = format!("addresses refused: {refused} of {}", args.addresses.len());
        if let Some(k) = kills {
            msg = format!("{msg}; {k}");
        }
        return Err(AdminError::Partial(msg));
    }
    if let Some(k) = kills {
        // The bans stand; only killing their connections failed: a status of its own, so a
        // caller does not ban again or report a ban that did not happen.
        return Err(AdminError::KillsFailed(k));
    }
    Ok(())
}

fn describe(ip: IpAddr, r: &BanEffect) -> String {
    let o = &r.outcome;
    let shown = if r.key.ip() == ip {
        ip.to_string()
    } else {
        format!("{ip} (as {})", r.key)
    };
    let Some(rec) = o.record else {
        return format!("{shown}: whitelisted, not banned");
    };
    let mut line = match o.kind {
        BanKind::Whitelisted => format!("{shown}: whitelisted (decay 0), not banned"),
        BanKind::New => format!(
            "{shown}: new, {:.3}%, decay {}",
            percent(rec.probability),
            format_duration(rec.decay)
        ),
        BanKind::Raised => format!(
            "{shown}: raised {:.3}% -> {:.3}%, caught {} times",
            percent(o.before),
            percent(rec.probability),
            rec.caught
        ),
    };
    if o.decay_grew {
        line.push_str(&format!(", decay now {}", format_duration(rec.decay)));
    }
    if o.reached_max {
        line.push_str(", reached 100%");
    }
    line
}
