//! `ibd import --old-white FILE --old-reasons FILE`: what can come across from ipqbdb 2.x.
//!
//! Its Berkeley DB tables are not read: their records are the C program's structures, whose layout
//! is documented nowhere, so the data comes from text the old tools print or read. The whitelist is
//! the `RANGE DECAY` text `ibd-white` read (INSTALL's example imports verbatim). Reasons come as
//! `ID CATEGORY REASON` lines, a format defined here because the old `ibd-del --stats` layout is not
//! documented either: the administrator produces it from that listing. Block records are not
//! imported: no text the old tools print carries a whole record (probability to the unit, decay,
//! times, counters, reason), their probabilities fade by halving every decay anyway, and an address
//! still misbehaving re-earns its probability at its next offence. The per-reason counters of
//! deleted records are statistics only, and start again from 0.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use ipqbdb_core::ReasonId;
use ipqbdb_store::Store;

use crate::cli::ImportArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

/// What the import cannot bring, said on every run so nobody expects it.
const NOT_IMPORTED: &str = "block records are not imported (their probabilities are re-earned at \
the next offence), nor the reasons' counters";

pub fn run(ctx: &Context, args: &ImportArgs) -> Result<()> {
    let mut entries = Vec::new();
    let mut bad = 0;
    if let Some(path) = &args.old_white {
        let file = open(path)?;
        bad += crate::white::read_entries(
            &path.display().to_string(),
            file,
            &mut entries,
            &mut |m| ctx.warn(m),
        )?;
    }
    let mut reasons = Vec::new();
    if let Some(path) = &args.old_reasons {
        bad += read_reasons(path, &mut reasons, &mut |m| ctx.warn(m))?;
    }
    let store = ctx.open(true)?;
    store.white_set(&entries)?;
    reasons.sort_by_key(|r| r.0);
    let mut renumbered = 0;
    for (old_id, category, text) in &reasons {
        let id = store.reason_id(text)?;
        if *category != 0 {
            store.set_category(id, *category)?;
        }
        if id != *old_id {
            ctx.warn(format!(
                "reason {old_id} is now number {id} ({text}): change rule lines that name it by number"
            ));
            renumbered += 1;
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "{}: {} whitelist entries and {} reasons imported ({renumbered} renumbered); {NOT_IMPORTED}",
        ctx.program,
        entries.len(),
        reasons.len()
    );
    if bad > 0 {
        return Err(AdminError::Partial(format!("lines refused: {bad}")));
    }
    Ok(())
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| AdminError::Io {
        path: path.display().to_string(),
        source: e,
    })
}

/// Reads `ID CATEGORY REASON` lines; blank lines and `#` comments are skipped, a header line
/// starting with `ID` too. Returns how many lines were refused, each reported as `FILE:LINE: why`.
fn read_reasons(
    path: &Path,
    out: &mut Vec<(ReasonId, u8, String)>,
    warn: &mut dyn FnMut(String),
) -> Result<usize> {
    let name = path.display().to_string();
    let mut bad = 0;
    for (i, line) in BufReader::new(open(path)?).split(b'\n').enumerate() {
        let line = line.map_err(|e| AdminError::Io {
            path: name.clone(),
            source: e,
        })?;
        let Ok(line) = String::from_utf8(line) else {
            warn(format!("{name}:{}: not UTF-8 text", i + 1));
            bad += 1;
            continue;
        };
        match parse_reason(&line) {
            Ok(Some(r)) => out.push(r),
            Ok(None) => {}
            Err(why) => {
                warn(format!("{name}:{}: {why}", i + 1));
                bad += 1;
            }
        }
    }
    Ok(bad)
}

fn parse_reason(line: &str) -> Result<Option<(ReasonId, u8, String)>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with("ID") {
        return Ok(None);
    }
    let (id, rest) = line
        .split_once(char::is_whitespace)
        .ok_or("expected `ID CATEGORY REASON`")?;
    let (category, text) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or("expected `ID CATEGORY REASON`")?;
    let id: ReasonId = id
        .parse()
        .map_err(|_| format!("{id:?} is not a reason number"))?;
    let category: u8 = category
        .parse()
        .map_err(|_| format!("{category:?} is not a category (0 to 255)"))?;
    let text = text.trim();
    if text.is_empty() {
        return Err("the reason is empty".into());
    }
    Ok(Some((id, category, text.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_lines() {
        assert_eq!(
            parse_reason("  2   18 dictionary attack, smtp \n"),
            Ok(Some((2, 18, "dictionary attack, smtp".into())))
        );
        assert_eq!(parse_reason("ID CATEGORY REASON"), Ok(None));
        assert_eq!(parse_reason("# x"), Ok(None));
        assert!(parse_reason("2 300 x").unwrap_err().contains("300"));
        assert!(parse_reason("x 1 y").unwrap_err().contains("\"x\""));
        assert!(parse_reason("3 0").is_err());
    }
}
