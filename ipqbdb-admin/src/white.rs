//! `ibd white`: read, list and delete whitelist entries.

use std::io::{BufRead, Read, Write};

use ipqbdb_core::{format_duration, parse_duration, AddrRange};
use ipqbdb_store::{ReadStore, Store, WhiteEntry};

use crate::cli::WhiteArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

/// Longest whitelist line read; longer lines are refused rather than buffered without bound.
const MAX_LINE: usize = 4096;

pub fn run(ctx: &Context, args: &WhiteArgs) -> Result<()> {
    if args.ls {
        let store = ctx.open(false)?;
        let mut out = std::io::stdout().lock();
        if args.verbose {
            let _ = writeln!(out, "RANGE DECAY");
        }
        for e in store.white_list()? {
            let _ = writeln!(out, "{} {}", e.range, format_duration(e.decay));
        }
        return Ok(());
    }
    if !args.del.is_empty() {
        let ranges = args
            .del
            .iter()
            .map(|s| s.parse::<AddrRange>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AdminError::Usage(e.to_string()))?;
        let store = ctx.open(false)?;
        let mut missing = 0;
        for r in ranges {
            if !store.white_remove(r)? {
                ctx.warn(format!("{r}: no such whitelist entry"));
                missing += 1;
            }
        }
        return match missing {
            0 => Ok(()),
            n => Err(AdminError::Partial(format!("{n} entries not found"))),
        };
    }
    let mut entries = Vec::new();
    let mut bad = 0;
    let stdin = [std::path::PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin[..]
    } else {
        &args.files[..]
    };
    for file in files {
        let (name, reader): (String, Box<dyn Read>) = if file.as_os_str() == "-" {
            ("<stdin>".into(), Box::new(std::io::stdin()))
        } else {
            let f = std::fs::File::open(file).map_err(|e| AdminError::Io {
                path: file.display().to_string(),
                source: e,
            })?;
            (file.display().to_string(), Box::new(f))
        };
        bad += read_entries(&name, reader, &mut entries, &mut |msg| ctx.warn(msg))?;
    }
    // The good lines are stored even when others were refused.
    let store = ctx.open(true)?;
    store.white_set(&entries)?;
    if bad > 0 {
        return Err(AdminError::Partial(format!(
            "lines refused: {bad}; entries stored: {}",
            entries.len()
        )));
    }
    Ok(())
}

/// Parses `RANGE [DECAY]` lines; a missing decay is 0 (never blocked). Returns how many lines were
/// refused, each reported through `warn` as `FILE:LINE: why`.
pub fn read_entries(
    name: &str,
    reader: impl Read,
    entries: &mut Vec<WhiteEntry>,
    warn: &mut dyn FnMut(String),
) -> Result<usize> {
    let mut reader = std::io::BufReader::new(reader);
    let mut bad = 0;
    let mut buf = Vec::new();
    let mut lineno = 0;
    loop {
        buf.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| AdminError::Io {
                path: name.to_string(),
                source: e,
            })?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if buf.len() > MAX_LINE && !buf.ends_with(b"\n") {
            warn(format!(
                "{name}:{lineno}: line longer than {MAX_LINE} bytes"
            ));
            bad += 1;
            // Skip the rest of the long line.
            let mut rest = Vec::new();
            reader
                .read_until(b'\n', &mut rest)
                .map_err(|e| AdminError::Io {
                    path: name.to_string(),
                    source: e,
                })?;
            continue;
        }
        match std::str::from_utf8(&buf) {
            Ok(text) => match parse_line(text) {
                Ok(Some(e)) => entries.push(e),
                Ok(None) => {}
                Err(why) => {
                    warn(format!("{name}:{lineno}: {why}"));
                    bad += 1;
                }
            },
            Err(_) => {
                warn(format!("{name}:{lineno}: not UTF-8 text"));
                bad += 1;
            }
        }
    }
    Ok(bad)
}

/// One whitelist line; `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str) -> Result<Option<WhiteEntry>, String> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let mut words = line.split_whitespace();
    let range: AddrRange = words
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|e: ipqbdb_core::ParseError| e.to_string())?;
    let decay = match words.next() {
        Some(d) => parse_duration(d).map_err(|e| e.to_string())?,
        None => 0,
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected {extra:?} after the decay"));
    }
    Ok(Some(WhiteEntry { range, decay }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let e = parse_line("10.0.0.0/8 4h # office\n").unwrap().unwrap();
        assert_eq!(
            (e.range.to_string(), e.decay),
            ("10.0.0.0/8".into(), 14_400)
        );
        assert_eq!(parse_line("192.0.2.1").unwrap().unwrap().decay, 0);
        assert_eq!(parse_line("  # just a comment").unwrap(), None);
        assert!(parse_line("10.0.0.0/33 1h")
            .unwrap_err()
            .contains("10.0.0.0/33"));
        assert!(parse_line("10.0.0.1 1y").unwrap_err().contains("1y"));
        assert!(parse_line("10.0.0.1 1h extra")
            .unwrap_err()
            .contains("extra"));
    }

    #[test]
    fn bad_lines_are_counted_and_good_ones_kept() {
        let input = b"10.0.0.0/8 1h\nnonsense\n\xff\xfe\n192.0.2.0-192.0.2.9 0\n".to_vec();
        let mut big = input.clone();
        big.extend(std::iter::repeat_n(b'x', 10 * MAX_LINE));
        big.extend(b"\n198.51.100.1 5m\n");
        let mut entries = Vec::new();
        let mut msgs = Vec::new();
        let bad = read_entries("w.txt", &big[..], &mut entries, &mut |m| msgs.push(m)).unwrap();
        assert_eq!(bad, 3);
        assert_eq!(entries.len(), 3);
        assert!(msgs[0].starts_with("w.txt:2: "), "{msgs:?}");
        assert!(msgs[1].starts_with("w.txt:3: not UTF-8"), "{msgs:?}");
        assert!(msgs[2].starts_with("w.txt:5: line longer"), "{msgs:?}");
    }
}
