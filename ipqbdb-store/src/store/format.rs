//! The database's format marker: checked and written at open, version 1 migrated.

use std::path::Path;

use ipqbdb_core::{AddrRange, V6Prefix};

use super::engine::Writes;
use super::prefix::{stored_prefix, PREFIX_KEY};
use super::values::corrupt;
use super::white::white_key;
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, WriteTx};

const FORMAT_KEY: &[u8] = b"format";
/// Version 2 keys whitelist ranges by span class (see [`white_key`]).
const FORMAT_VERSION: &[u8] = b"ipqbdb-2";
/// Version 1 keyed whitelist ranges by start and end alone; [`ensure_format`] migrates it.
const FORMAT_V1: &[u8] = b"ipqbdb-1";
/// Meta key of the reports started on one UTC day: the day (i64 BE) then the count (u32 BE).
pub(super) const REPORT_DAY_KEY: &[u8] = b"report:day";

/// Refuses a database of another format, writes the format marker and the IPv6 prefix into a new
/// one, migrates a version-1 database, and returns the database's IPv6 prefix. Engines call it at
/// the end of `open` and keep the result in [`Location::v6_prefix`]. It only reads when all is in
/// place, so a short-lived program such as `ibd ban` pays no extra commit for opening.
///
/// A database without a stored prefix (made before the prefix was stored) adopts the configured or
/// default one when a writer (`opts.create`) opens it; until then readers use their own.
pub(crate) fn ensure_format<S: Writes>(store: &S) -> Result<V6Prefix> {
    let path = store.place_path();
    let opts = &store.place().opts;
    let given = opts.v6_prefix.unwrap_or_default();
    let (format, stored) =
        store.read_tx(&mut |tx| Ok((check_format(tx, path)?, stored_prefix(tx, path)?)))?;
    let prefix = match (format, stored) {
        (Format::Current, Some(p)) => p,
        (Format::Current, None) if !opts.create => given,
        _ => store.write_tx(&mut |tx| {
            let format = check_format(tx, path)?;
            if format == Format::V1 {
                migrate_white_v1(tx, path)?;
            }
            if format != Format::Current {
                tx.put(Table::Meta, FORMAT_KEY, FORMAT_VERSION)?;
            }
            match stored_prefix(tx, path)? {
                Some(p) => Ok(p),
                None => {
                    if opts.create || format == Format::Missing {
                        tx.put(Table::Meta, PREFIX_KEY, given.bits().to_string().as_bytes())?;
                    }
                    Ok(given)
                }
            }
        })?,
    };
    match opts.v6_prefix {
        Some(g) if g != prefix => Err(StoreError::PrefixMismatch {
            dir: store.place().dir.clone(),
            stored: prefix.bits(),
            given: g.bits(),
        }),
        _ => Ok(prefix),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Missing,
    V1,
    Current,
}

/// The format of the database; an error for a format this program does not know.
fn check_format(tx: &dyn ReadTx, path: &Path) -> Result<Format> {
    match tx.get(Table::Meta, FORMAT_KEY)? {
        None => Ok(Format::Missing),
        Some(v) if v == FORMAT_VERSION => Ok(Format::Current),
        Some(v) if v == FORMAT_V1 => Ok(Format::V1),
        Some(v) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            what: format!(
                "format {:?}, expected {:?}",
                String::from_utf8_lossy(&v),
                String::from_utf8_lossy(FORMAT_VERSION)
            ),
        }),
    }
}

/// Rewrites version-1 whitelist keys (start ++ end) as [`white_key`]s.
fn migrate_white_v1(tx: &mut dyn WriteTx, path: &Path) -> Result<()> {
    let mut old = Vec::new();
    tx.scan(Table::White, &[], Direction::Forward, &mut |k, v| {
        if k.len() == AddrRange::LEN {
            old.push((k.to_vec(), v.to_vec()));
        }
        Ok(true)
    })?;
    for (k, v) in old {
        let range =
            AddrRange::from_bytes(&k).ok_or_else(|| corrupt(path, "a bad whitelist key"))?;
        tx.delete(Table::White, &k)?;
        tx.put(Table::White, &white_key(range), &v)?;
    }
    Ok(())
}
