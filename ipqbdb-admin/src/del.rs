//! `ibd del`: list, delete and expire block records; per-reason statistics.

use std::collections::HashMap;
use std::io::Write;

use ipqbdb_core::time::format_utc;
use std::net::IpAddr;

use ipqbdb_core::{
    current_probability, format_duration, now, parse_count, parse_duration, percent, AddrKey,
    AddrRange, Reason, ReasonId, Record, UnixTime, V6Prefix,
};
use ipqbdb_store::{AnyStore, ReadStore, Store};
use serde_json::json;

use crate::cli::DelArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

pub fn run(ctx: &Context, args: &DelArgs) -> Result<()> {
    let usage = |e: ipqbdb_core::ParseError| AdminError::Usage(e.to_string());
    let min_age = args
        .min_time
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(usage)?;
    let max_records = args
        .max_records
        .as_deref()
        .map(parse_count)
        .transpose()
        .map_err(usage)?;
    let selection = args
        .selection
        .iter()
        .map(|s| Selection::parse(s))
        .collect::<Result<Vec<_>>>()?;
    if max_records.is_some() && !args.del {
        return Err(AdminError::Usage("--max-records goes with --del".into()));
    }
    if args.del && selection.is_empty() && min_age.is_none() {
        return Err(AdminError::Usage(
            "refusing to delete every record: give addresses or ranges, or --min-time".into(),
        ));
    }
    let store = ctx.open(false)?;
    let now = now();
    let mut out = std::io::stdout().lock();
    if args.stats {
        return print_stats(&store, args, &mut out);
    }
    let prefix = store.v6_prefix()?;
    let selection: Vec<AddrRange> = selection.iter().map(|s| s.range(prefix)).collect();
    let reasons: HashMap<ReasonId, Reason> =
        store.reasons()?.into_iter().map(|r| (r.id, r)).collect();
    let stale = |r: &Record| {
        min_age.is_none_or(|t| ipqbdb_core::retention::is_stale(r.last_update, now, t))
    };

    let records = if args.del {
        if selection.is_empty() {
            store.retain(min_age.unwrap_or(0), max_records, now)?
        } else {
            store.delete_selected(&selection, min_age, now)?
        }
    } else {
        let mut found = Vec::new();
        let ranges: Vec<Option<AddrRange>> = if selection.is_empty() {
            vec![None]
        } else {
            selection.iter().copied().map(Some).collect()
        };
        for range in ranges {
            store.for_each_record(range, &mut |k, r| {
                if stale(r) {
                    found.push((k, *r));
                }
                true
            })?;
        }
        found
    };
    if args.del && !args.ls {
        if !args.json {
            let _ = writeln!(out, "{} records deleted", records.len());
        } else {
            let _ = writeln!(out, "{}", json!({ "deleted": records.len() }));
        }
        return Ok(());
    }
    print_records(&records, &reasons, now, args, &mut out);
    Ok(())
}

/// A selection argument, checked before the database is opened.
enum Selection {
    Address(IpAddr),
    Range(AddrRange),
}

impl Selection {
    fn parse(s: &str) -> Result<Selection> {
        if let Ok(ip) = ipqbdb_core::parse_ip(s) {
            return Ok(Selection::Address(ip));
        }
        s.parse()
            .map(Selection::Range)
            .map_err(|e: ipqbdb_core::ParseError| AdminError::Usage(e.to_string()))
    }

    /// An IPv6 address selects the record of its prefix (the database's), as a ban would.
    fn range(&self, prefix: V6Prefix) -> AddrRange {
        match *self {
            Selection::Address(ip) => AddrRange::single(AddrKey::banned(ip, prefix)),
            Selection::Range(r) => r,
        }
    }
}

fn print_records(
    records: &[(AddrKey, Record)],
    reasons: &HashMap<ReasonId, Reason>,
    now: UnixTime,
    args: &DelArgs,
    out: &mut impl Write,
) {
    let reason_text = |id: ReasonId| reasons.get(&id).map_or("?", |r| r.text.as_str());
    if args.json {
        let list: Vec<_> = records
            .iter()
            .map(|(k, r)| {
                let p = current_probability(r, now);
                json!({
                    "address": k.to_string(),
                    "probability": p,
                    "percent": percent(p),
                    "stored_probability": r.probability,
                    "decay": r.decay,
                    "last_update": r.last_update,
                    "last_update_utc": format_utc(r.last_update),
                    "caught": r.caught,
                    "blocked": r.blocked,
                    "reason_id": r.reason,
                    "reason": reason_text(r.reason),
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(list));
        return;
    }
    if args.verbose {
        let _ = writeln!(
            out,
            "{:<39} {:>9} {:>6} {:<20} {:>8} {:>10} REASON",
            "ADDRESS", "PROB", "DECAY", "LAST-UPDATE", "CAUGHT", "BLOCKED"
        );
    }
    for (k, r) in records {
        let _ = writeln!(
            out,
            "{:<39} {:>8.3}% {:>6} {:<20} {:>8} {:>10} {}",
            k.to_string(),
            percent(current_probability(r, now)),
            format_duration(r.decay),
            format_utc(r.last_update),
            r.caught,
            r.blocked,
            reason_text(r.reason)
        );
    }
}

fn print_stats(store: &AnyStore, args: &DelArgs, out: &mut impl Write) -> Result<()> {
    let stats = store.reason_stats()?;
    if args.json {
        let list: Vec<_> = stats
            .iter()
            .map(|s| {
                json!({
                    "id": s.reason.id,
                    "reason": s.reason.text,
                    "category": s.reason.category,
                    "records": s.live_records,
                    "caught": s.total_caught(),
                    "blocked": s.total_blocked(),
                    "caught_deleted": s.reason.caught,
                    "blocked_deleted": s.reason.blocked,
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(list));
        return Ok(());
    }
    if args.verbose {
        let _ = writeln!(
            out,
            "{:>5} {:>8} {:>8} {:>10} {:>12} REASON",
            "ID", "CATEGORY", "RECORDS", "CAUGHT", "BLOCKED"
        );
    }
    for s in &stats {
        let _ = writeln!(
            out,
            "{:>5} {:>8} {:>8} {:>10} {:>12} {}",
            s.reason.id,
            s.reason.category,
            s.live_records,
            s.total_caught(),
            s.total_blocked(),
            s.reason.text
        );
    }
    Ok(())
}
