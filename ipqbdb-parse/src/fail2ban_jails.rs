//! What ibd-parse makes of a fail2ban configuration: the filters to run (named on the command line
//! or in the configuration, and those of fail2ban's enabled jails), each jail's files to follow,
//! and the mapping of fail2ban's settings to ipqbdb's model, which `--test` prints for review.
//!
//! - `maxretry` N becomes the initial count N-1: the first offence starts at 2^-(N-1) and each ban
//!   doubles it, so N offences in a row reach 100 %, where fail2ban bans at the N-th.
//! - `bantime` becomes the decay: the block probability halves every `bantime` instead of
//!   dropping to 0 after it; a permanent ban (negative) becomes `DEFAULT_DECAY_MAX`.
//! - `ignoreip` is printed as `ibd white` input (decay 0: never blocked), never applied silently.

use std::io::Write;
use std::path::{Path, PathBuf};

use ipqbdb_core::model::DEFAULT_DECAY_MAX;
use ipqbdb_fail2ban::jail::Jail;
use ipqbdb_fail2ban::{Error, FilterSpec};

use crate::fail2ban_filters::{BanParams, ImportedFilter};

/// Where the fail2ban filters come from.
#[derive(Debug, Clone, Default)]
pub struct Fail2banConfig {
    /// fail2ban's directory: `filter.d` for filters named by name, jails when `jails`.
    pub dir: PathBuf,
    pub jails: bool,
    pub specs: Vec<String>,
    pub strict: bool,
}

impl Fail2banConfig {
    pub fn is_empty(&self) -> bool {
        !self.jails && self.specs.is_empty()
    }
}

/// A jail as ibd-parse runs it.
#[derive(Debug, Clone)]
pub struct JailPlan {
    pub jail: Jail,
    pub ban: BanParams,
    /// The files its `logpath` patterns name now.
    pub files: Vec<PathBuf>,
    /// Patterns that name no file now.
    pub missing: Vec<String>,
}

/// Everything loaded: the filters, the jails they came from, and what could not be loaded.
#[derive(Default)]
pub struct Loaded {
    pub filters: Vec<ImportedFilter>,
    pub jails: Vec<JailPlan>,
    pub errors: Vec<Error>,
}

/// A jail's settings as ipqbdb's.
pub fn ban_for(jail: &Jail) -> BanParams {
    let initial_count = jail
        .maxretry
        .map_or(ipqbdb_core::model::DEFAULT_INITIAL_COUNT, |n| {
            n.saturating_sub(1).min(31) as u8
        });
    let decay = jail.bantime.and_then(|b| match b {
        0 => None,
        b if b < 0 => Some(DEFAULT_DECAY_MAX),
        b => Some(u32::try_from(b).unwrap_or(u32::MAX).min(DEFAULT_DECAY_MAX)),
    });
    BanParams {
        reason: jail.name.clone(),
        initial_count,
        decay,
    }
}

/// Loads the filters `cfg` names and, with `cfg.jails`, the enabled jails. A filter or jail that
/// does not load is in `errors`, or the error when `cfg.strict`.
pub fn load(cfg: &Fail2banConfig) -> Result<Loaded, Error> {
    let filter_dir = cfg.dir.join("filter.d");
    let mut out = Loaded::default();
    let keep = |r: Result<ImportedFilter, Error>, out: &mut Loaded| -> Result<bool, Error> {
        match r {
            Ok(f) => {
                out.filters.push(f);
                Ok(true)
            }
            Err(e) if cfg.strict => Err(e),
            Err(e) => {
                out.errors.push(e);
                Ok(false)
            }
        }
    };
    for s in &cfg.specs {
        let spec = s
            .parse::<FilterSpec>()
            .map_err(|m| Error::file(&filter_dir, m));
        let r = spec.and_then(|spec| ImportedFilter::load(&filter_dir, &spec));
        keep(r, &mut out)?;
    }
    if cfg.jails {
        let jails = match ipqbdb_fail2ban::jail::read(&cfg.dir) {
            Ok(j) => j,
            Err(e) if cfg.strict => return Err(e),
            Err(e) => {
                out.errors.push(e);
                Vec::new()
            }
        };
        for jail in jails {
            let ban = ban_for(&jail);
            let spec = jail.filter.clone();
            if jail.usedns.trim() == "yes" {
                let e = Error::at(
                    &jail.file,
                    jail.line,
                    format!(
                        "jail [{}]: usedns = yes needs name resolution, which ibd-parse never \
                         does (use no)",
                        jail.name
                    ),
                );
                keep(Err(e), &mut out)?;
                continue;
            }
            let r = ipqbdb_fail2ban::filter::load(&filter_dir, &spec)
                .and_then(|f| ImportedFilter::compile(f, ban.clone()))
                .map_err(|e| Error {
                    message: format!("jail [{}]: {}", jail.name, e.message),
                    ..e
                });
            if keep(r, &mut out)? {
                let (files, missing) = expand_logpaths(&jail.logpaths);
                out.jails.push(JailPlan {
                    jail,
                    ban,
                    files,
                    missing,
                });
            }
        }
    }
    Ok(out)
}

/// The files glob patterns name now (sorted, each once), and the patterns that name none.
pub fn expand_logpaths(patterns: &[String]) -> (Vec<PathBuf>, Vec<String>) {
    let mut files = Vec::new();
    let mut missing = Vec::new();
    for p in patterns {
        let found: Vec<PathBuf> = glob::glob(p)
            .map(|paths| paths.flatten().filter(|f| f.is_file()).collect())
            .unwrap_or_default();
        if found.is_empty() {
            missing.push(p.clone());
        }
        files.extend(found);
    }
    files.sort();
    files.dedup();
    (files, missing)
}

fn duration(d: Option<u32>) -> String {
    d.map_or_else(|| "the default".to_string(), ipqbdb_core::format_duration)
}

/// The mapping, for `--test` (and the log at start): filters with their engines, jails with their
/// files and settings, and `ignoreip` as `ibd white` lines.
pub fn describe(loaded: &Loaded, out: &mut dyn Write) -> std::io::Result<()> {
    describe_filters(&loaded.filters, out)?;
    for e in &loaded.errors {
        writeln!(out, "  not loaded: {e}")?;
    }
    describe_jails(loaded, out)
}

/// Each filter: its file, what its bans get, and each regex with its engine.
pub fn describe_filters(filters: &[ImportedFilter], out: &mut dyn Write) -> std::io::Result<()> {
    if !filters.is_empty() {
        writeln!(out, "fail2ban filters:")?;
    }
    for f in filters {
        writeln!(
            out,
            "  {} ({}): reason {:?}, initial count {}, decay {}",
            f.name(),
            f.file.display(),
            f.ban.reason,
            f.ban.initial_count,
            duration(f.ban.decay)
        )?;
        if f.maxlines > 1 {
            writeln!(out, "    maxlines {}", f.maxlines)?;
        }
        for r in &f.regexes {
            let text: String = r.source.text.chars().take(60).collect();
            let more = if text.len() < r.source.text.len() {
                "..."
            } else {
                ""
            };
            writeln!(
                out,
                "    {:<11} {:<11} {}:{}  {text}{more}",
                r.kind,
                r.regex.name(),
                r.source.file.display(),
                r.source.line
            )?;
        }
        for n in &f.notes {
            writeln!(out, "    note: {n}")?;
        }
    }
    Ok(())
}

fn describe_jails(loaded: &Loaded, out: &mut dyn Write) -> std::io::Result<()> {
    for p in &loaded.jails {
        let j = &p.jail;
        writeln!(
            out,
            "fail2ban jail [{}] ({}:{}):",
            j.name,
            j.file.display(),
            j.line
        )?;
        writeln!(out, "    filter    {}", j.filter)?;
        writeln!(
            out,
            "    maxretry  {} -> initial count {} ({}th offence in a row reaches 100 %)",
            j.maxretry.map_or("-".to_string(), |m| m.to_string()),
            p.ban.initial_count,
            u32::from(p.ban.initial_count) + 1
        )?;
        writeln!(
            out,
            "    bantime   {} -> decay {} (the block probability halves every decay)",
            j.bantime.map_or("-".to_string(), |b| format!("{b}s")),
            duration(p.ban.decay)
        )?;
        if j.backend.starts_with("systemd") {
            writeln!(
                out,
                "    backend   {}: run ibd-parse with --journal for this jail's lines",
                j.backend
            )?;
        }
        for f in &p.files {
            writeln!(out, "    follows   {}", f.display())?;
        }
        for m in &p.missing {
            writeln!(out, "    logpath   {m}: no such file now (not followed)")?;
        }
    }
    let white = white_lines(&loaded.jails);
    if !white.is_empty() {
        writeln!(
            out,
            "ignoreip, as `ibd white` input (apply with: ibd white < FILE; decay 0: never blocked):"
        )?;
        for w in white {
            writeln!(out, "  {w}")?;
        }
    }
    Ok(())
}

/// `ignoreip` entries of every jail as `ibd white` lines; host names are left out with a comment.
pub fn white_lines(jails: &[JailPlan]) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for p in jails {
        for ip in &p.jail.ignoreip {
            let line = if ip.parse::<ipqbdb_core::AddrRange>().is_ok() {
                format!("{ip} 0")
            } else {
                format!(
                    "# {ip} (jail {}): not an address or range, not converted",
                    p.jail.name
                )
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    lines
}

/// The files of every jail, to follow with the others.
pub fn jail_files(loaded: &Loaded) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = loaded.jails.iter().flat_map(|p| p.files.clone()).collect();
    v.sort();
    v.dedup();
    v
}

/// fail2ban's default directory when none is configured.
pub fn default_dir() -> &'static Path {
    Path::new(ipqbdb_fail2ban::DEFAULT_CONFIG_DIR)
}
