//! `ibd stats`: the database's figures (records, records by probability band, reasons, whitelist
//! entries, size on disk) as `NAME value` lines, or with `--prometheus` as gauges in the Prometheus
//! text format, for a cron job writing into node_exporter's textfile directory (`--output FILE`
//! replaces the file atomically). The daemons export what they do; this exports what the database
//! holds, which no daemon reads in full.

use std::io::Write;

use ipqbdb_core::model::current_probability;
use ipqbdb_core::{now, P_MAX};
use ipqbdb_metrics::{encode, gauge};
use ipqbdb_store::{ReadStore, Store};

use crate::cli::StatsArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

/// Bands of current block probability, in percent, each including its lower bound. The top one
/// is not "exactly 100 %": a record at 100 % is below it a second later, as it decays.
const BANDS: [&str; 5] = ["0-1", "1-10", "10-50", "50-90", "90-100"];

fn band(p: u32) -> usize {
    let at_least = |percent: u64| u64::from(p) * 100 >= u64::from(P_MAX) * percent;
    match () {
        _ if at_least(90) => 4,
        _ if at_least(50) => 3,
        _ if at_least(10) => 2,
        _ if at_least(1) => 1,
        _ => 0,
    }
}

struct Figures {
    records: u64,
    bands: [u64; 5],
    reasons: u64,
    whitelist: u64,
    disk_bytes: u64,
}

fn gather(ctx: &Context) -> Result<Figures> {
    let store = ctx.open(false)?;
    let now = now();
    let mut f = Figures {
        records: 0,
        bands: [0; 5],
        reasons: store.reasons()?.len() as u64,
        whitelist: store.white_list()?.len() as u64,
        disk_bytes: store.disk_size()?,
    };
    store.for_each_record(None, &mut |_, r| {
        f.records += 1;
        f.bands[band(current_probability(r, now))] += 1;
        true
    })?;
    Ok(f)
}

pub fn run(ctx: &Context, args: &StatsArgs) -> Result<()> {
    let f = gather(ctx)?;
    let text = if args.prometheus {
        let n = |v: u64| v as f64;
        encode(vec![
            gauge(
                "ipqbdb_db_records",
                "Block records in the database",
                vec![(vec![], n(f.records))],
            ),
            gauge(
                "ipqbdb_db_records_by_band",
                "Block records by current block probability, in percent (lower bound included)",
                BANDS
                    .iter()
                    .zip(f.bands)
                    .map(|(b, v)| (vec![("band", b.to_string())], n(v)))
                    .collect(),
            ),
            gauge(
                "ipqbdb_db_reasons",
                "Reasons recorded in the database",
                vec![(vec![], n(f.reasons))],
            ),
            gauge(
                "ipqbdb_db_whitelist_entries",
                "Whitelist entries (addresses, ranges and blocks)",
                vec![(vec![], n(f.whitelist))],
            ),
            gauge(
                "ipqbdb_db_size_bytes",
                "Size of the database's files on disk",
                vec![(vec![], n(f.disk_bytes))],
            ),
        ])
    } else {
        let mut lines = format!("records {}\n", f.records);
        for (b, v) in BANDS.iter().zip(f.bands) {
            lines += &format!("records-{b}% {v}\n");
        }
        lines += &format!(
            "reasons {}\nwhitelist-entries {}\nsize-bytes {}\n",
            f.reasons, f.whitelist, f.disk_bytes
        );
        lines.into_bytes()
    };
    match &args.output {
        Some(path) => {
            ipqbdb_metrics::textfile::write(path, &text).map_err(|source| AdminError::Io {
                path: path.display().to_string(),
                source,
            })
        }
        None => {
            let _ = std::io::stdout().lock().write_all(&text);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_include_their_lower_bound() {
        assert_eq!(band(0), 0);
        assert_eq!(band(P_MAX / 100), 0, "just below 1 %");
        assert_eq!(band(P_MAX / 100 + 1), 1);
        assert_eq!(band(P_MAX / 10 + 1), 2);
        assert_eq!(band(P_MAX / 2), 2, "just below 50 %");
        assert_eq!(band(P_MAX / 2 + 1), 3);
        let ninety = (u64::from(P_MAX) * 90).div_ceil(100) as u32;
        assert_eq!(band(ninety - 1), 3, "just below 90 %");
        assert_eq!(band(ninety), 4);
        assert_eq!(band(P_MAX - 1), 4);
        assert_eq!(band(P_MAX), 4);
    }
}
