//! `ibd config`: every setting as a `NAME value` line, for people and for awk.

use std::io::Write;

use ipqbdb_core::config::{DEFAULT_CONNKILL_FILE, DEFAULT_RULE_FILE, PARSE_SOCKET};
use ipqbdb_core::model::{
    DEFAULT_DECAY, DEFAULT_DECAY_ADDEND, DEFAULT_DECAY_MAX, DEFAULT_INITIAL_COUNT,
    DEFAULT_THRESHOLD,
};
use ipqbdb_core::P_MAX;
use ipqbdb_store::Backend;

use crate::context::Context;
use crate::error::Result;

pub fn run(ctx: &Context) -> Result<()> {
    let s = &ctx.settings;
    let db_backend = ipqbdb_store::dir::detect(&ctx.db_dir)?
        .map_or_else(|| "none".to_string(), |b| b.to_string());
    let new_backend = ctx
        .backend
        .or_else(Backend::default_for_new)
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
            Backend::compiled_names().replace(", ", ","),
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
        ("ipv6-prefix", ctx.v6_prefix.bits().to_string()),
    ];
    let mut out = std::io::stdout().lock();
    for (name, value) in lines {
        let _ = writeln!(out, "{name} {value}");
    }
    Ok(())
}
