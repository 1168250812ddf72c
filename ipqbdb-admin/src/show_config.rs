//! `ibd config`: every setting as a `NAME value` line, for people and for awk (also under ipqbdb
//! 2.x's `IPQBDB_*` names); and the one setting kept in the database, the IPv6 prefix, changed with
//! `--set-ipv6-prefix`.

use std::io::Write;

use ipqbdb_core::model::{
    DEFAULT_DECAY, DEFAULT_DECAY_ADDEND, DEFAULT_DECAY_MAX, DEFAULT_INITIAL_COUNT,
    DEFAULT_THRESHOLD,
};
use ipqbdb_core::{now, V6Prefix, P_MAX};
use ipqbdb_runtime::settings::{DEFAULT_CONNKILL_FILE, DEFAULT_RULE_FILE, PARSE_SOCKET};
use ipqbdb_store::{Engine, ReadStore, Store};

use crate::cli::ConfigArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

pub fn run(ctx: &Context, args: &ConfigArgs) -> Result<()> {
    if let Some(bits) = args.set_ipv6_prefix {
        return set_prefix(ctx, bits);
    }
    let s = &ctx.settings;
    let detected = ipqbdb_store::dir::detect(&ctx.db_dir)?;
    let db_backend = detected.map_or_else(|| "none".to_string(), |b| b.to_string());
    // The database's prefix is the one in force; a configured one that differs is reported, as every
    // program that opens the database will refuse it.
    let v6_prefix = match detected {
        Some(_) => {
            let own = ctx.open_any_prefix(false)?.v6_prefix()?;
            if let Some(given) = ctx.v6_prefix.filter(|&g| g != own) {
                ctx.warn(format!(
                    "ipv6-prefix is set to {} here, but the database bans by /{}: programs will refuse to open it",
                    given.bits(),
                    own.bits()
                ));
            }
            own
        }
        None => ctx.v6_prefix.unwrap_or_default(),
    };
    let new_backend = ctx
        .backend
        .or_else(Engine::default_for_new)
        .map_or_else(|| "none".into(), |b| b.to_string());
    let path = |p: &Option<std::path::PathBuf>, default: &str| {
        p.as_ref()
            .map_or_else(|| default.to_string(), |p| p.display().to_string())
    };
    let lines: Vec<(&str, String)> = vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("config-file", ctx.config_file.display().to_string()),
        ("db-dir", ctx.db_dir.display().to_string()),
        ("db-backend", db_backend),
        ("backend-new", new_backend),
        (
            "backends-compiled",
            Engine::compiled_names().replace(", ", ","),
        ),
        ("rule-file", path(&s.rule_file, DEFAULT_RULE_FILE)),
        (
            "connkill-file",
            path(&s.connkill_file, DEFAULT_CONNKILL_FILE),
        ),
        (
            "reason",
            s.reason
                .clone()
                .unwrap_or_else(|| crate::ban::DEFAULT_REASON.into()),
        ),
        (
            "parse-socket",
            ctx.db_dir.join(PARSE_SOCKET).display().to_string(),
        ),
        (
            "initial-count",
            s.initial_count
                .unwrap_or(u32::from(DEFAULT_INITIAL_COUNT))
                .to_string(),
        ),
        (
            "decay",
            s.decay
                .as_ref()
                .and_then(|d| d.seconds().ok())
                .unwrap_or(DEFAULT_DECAY)
                .to_string(),
        ),
        ("decay-addend", DEFAULT_DECAY_ADDEND.to_string()),
        ("decay-max", DEFAULT_DECAY_MAX.to_string()),
        ("threshold", DEFAULT_THRESHOLD.to_string()),
        ("p-max", P_MAX.to_string()),
        ("ipv6-prefix", v6_prefix.bits().to_string()),
        ("option-file", ctx.option_file.display().to_string()),
    ];
    // ipqbdb 2.x's names for the same settings, for scripts such as
    // `ibd-config | awk '/^IPQBDB_OPTION_FILE/ {print $2;}'`. Its probabilities were in RAND_MAX
    // units, glibc's 2^31-1, which is p-max: the threshold means the same number.
    let legacy: Vec<(&str, String)> = vec![
        // The original joined this prefix and a table name (`block`, `.db`): a directory and `/`.
        (
            "IPQBDB_DATABASE_PREFIX",
            format!("{}/", ctx.db_dir.display()),
        ),
        ("IPQBDB_PCRE_FILE", path(&s.rule_file, DEFAULT_RULE_FILE)),
        ("IPQBDB_OPTION_FILE", ctx.option_file.display().to_string()),
        (
            "IPQBDB_PROBABILITY_THRESHOLD",
            DEFAULT_THRESHOLD.to_string(),
        ),
        (
            "IPQBDB_DECAY_ADDEND_ON_THRESHOLD",
            DEFAULT_DECAY_ADDEND.to_string(),
        ),
    ];
    let lines = lines.into_iter().chain(legacy);
    let mut out = std::io::stdout().lock();
    for (name, value) in lines {
        let _ = writeln!(out, "{name} {value}");
    }
    Ok(())
}

/// `ibd config --set-ipv6-prefix BITS`.
fn set_prefix(ctx: &Context, bits: u32) -> Result<()> {
    let new = V6Prefix::new(bits).map_err(|e| AdminError::Usage(e.to_string()))?;
    let store = ctx.open_any_prefix(true)?;
    let change = store.set_v6_prefix(new, now())?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "ipv6-prefix {} -> {}: {} records moved, {} merged",
        change.old.bits(),
        change.new.bits(),
        change.moved,
        change.merged
    );
    if let Some(given) = ctx.v6_prefix.filter(|&g| g != new) {
        ctx.warn(format!(
            "ipv6-prefix is still set to {} in the configuration or on the command line: programs will refuse to open the database until it is removed or set to {}",
            given.bits(),
            new.bits()
        ));
    }
    Ok(())
}
