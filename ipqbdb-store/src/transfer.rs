//! Moving a database from one engine to another (`ibd export`, `ibd import`): every logical table,
//! as the bytes the engines store, so a switch of package strands no data.
//!
//! The dump is text: a header line, then one line per entry, `TABLE<TAB>hex key<TAB>hex value`, in
//! table and key order. It is written from one read transaction and read back into one write
//! transaction of an empty database. The tables come from [`Table::ALL`], so a table added later
//! moves too. Left out: the engine's own meta keys (LMDB's `generation`) and the format marker,
//! which is checked instead (a dump of another format is refused, not converted).

use std::io::{BufRead, Write};
use std::path::Path;

use ipqbdb_core::Record;

use crate::error::{Result, StoreError};
use crate::kv::{Direction, Table};
use crate::store::Store;

/// The first line of a dump.
pub const HEADER: &str = "ipqbdb-export 1";
/// Meta keys that belong to one engine or are written by every open, never moved.
const ENGINE_KEYS: [&[u8]; 2] = [b"generation", b"format"];
/// The format marker the dump must have been taken at.
const FORMAT: &[u8] = b"ipqbdb-2";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes every table of `store` to `out`; returns the number of entries. `name` names `out` in
/// errors.
pub fn export<S: Store>(store: &S, out: &mut dyn Write, name: &Path) -> Result<u64> {
    let io = |e| StoreError::io(name, e);
    writeln!(out, "{HEADER}").map_err(io)?;
    let n = store.read(&mut |tx| {
        if let Some(f) = tx.get(Table::Meta, b"format")? {
            if f != FORMAT {
                return Err(import_error(
                    store.engine_path(),
                    0,
                    format!("database format {:?}", String::from_utf8_lossy(&f)),
                ));
            }
        }
        let mut n = 0u64;
        for table in Table::ALL {
            tx.scan(table, &[], Direction::Forward, &mut |k, v| {
                if table == Table::Meta && ENGINE_KEYS.contains(&k) {
                    return Ok(true);
                }
                writeln!(out, "{}\t{}\t{}", table.name(), hex(k), hex(v)).map_err(io)?;
                n += 1;
                Ok(true)
            })?;
        }
        Ok(n)
    })?;
    out.flush().map_err(io)?;
    Ok(n)
}

fn import_error(path: &Path, line: usize, what: impl Into<String>) -> StoreError {
    StoreError::Import {
        path: path.to_path_buf(),
        line,
        what: what.into(),
    }
}

/// Reads a dump from `input` (named `name` in errors, with the line) into `store`, which must hold
/// no data yet, in one transaction; returns the number of entries.
pub fn import<S: Store>(store: &S, input: &mut dyn BufRead, name: &Path) -> Result<u64> {
    let mut entries: Vec<(Table, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut header = false;
    for (i, line) in input.lines().enumerate() {
        let no = i + 1;
        let line = line.map_err(|e| import_error(name, no, e.to_string()))?;
        if !header {
            if line != HEADER {
                return Err(import_error(
                    name,
                    no,
                    format!("not an ipqbdb export (the first line is not {HEADER:?})"),
                ));
            }
            header = true;
            continue;
        }
        let bad = |what: &str| import_error(name, no, what);
        let mut fields = line.split('\t');
        let (Some(t), Some(k), Some(v), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected TABLE, KEY and VALUE separated by tabs"));
        };
        let table = Table::ALL
            .into_iter()
            .find(|x| x.name() == t)
            .ok_or_else(|| bad(&format!("unknown table {t:?}")))?;
        let key = unhex(k)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| bad("the key is not hex"))?;
        let value = unhex(v).ok_or_else(|| bad("the value is not hex"))?;
        if table == Table::Block && (key.len() != 16 || Record::decode(&value).is_none()) {
            return Err(bad("not a block record"));
        }
        if table == Table::Meta && ENGINE_KEYS.contains(&key.as_slice()) {
            continue;
        }
        entries.push((table, key, value));
    }
    if !header {
        return Err(import_error(name, 0, "empty: not an ipqbdb export"));
    }
    let target = store.engine_path().to_path_buf();
    store.write(&mut |tx| {
        for table in Table::ALL.into_iter().filter(|&t| t != Table::Meta) {
            let n = tx.len(table)?;
            if n > 0 {
                return Err(import_error(
                    &target,
                    0,
                    format!(
                        "the database is not empty ({n} entries in {}): import into a new one",
                        table.name()
                    ),
                ));
            }
        }
        for (table, k, v) in &entries {
            tx.put(*table, k, v)?;
        }
        Ok(entries.len() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_refusals() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])).unwrap(),
            [0, 1, 0xab, 0xff]
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("é1"), None);
    }
}
