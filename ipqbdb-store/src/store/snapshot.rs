//! The judge's snapshot: a record and its whitelist decay read in one transaction.

use std::net::IpAddr;
use std::path::Path;

use ipqbdb_core::{AddrKey, Record, V6Prefix};

use super::engine::Reads;
use super::prefix::prefix_in;
use super::records::get_record;
use super::white::white_lookup_in;
use crate::error::Result;
use crate::kv::ReadTx;

/// A read snapshot answering the judge's questions.
pub struct Snapshot<'a> {
    tx: &'a dyn ReadTx,
    path: &'a Path,
    prefix: V6Prefix,
}

impl Snapshot<'_> {
    /// See [`ReadTx::version`]: whether what was read from this snapshot may have changed since.
    pub fn version(&self) -> Option<u64> {
        self.tx.version()
    }

    /// The key `ip` is banned under, its record, and (when it has a record) its whitelist decay.
    pub fn verdict_state(&self, ip: IpAddr) -> Result<(AddrKey, Option<Record>, Option<u32>)> {
        let key = AddrKey::banned(ip, self.prefix);
        let rec = get_record(self.tx, self.path, key)?;
        let white = match rec {
            Some(_) => white_lookup_in(self.tx, self.path, AddrKey::exact(ip))?.map(|w| w.decay),
            None => None,
        };
        Ok((key, rec, white))
    }
}

pub(super) fn with_snapshot<S: Reads, R>(
    s: &S,
    f: &mut dyn FnMut(&Snapshot<'_>) -> Result<R>,
) -> Result<R> {
    let path = &s.place().path;
    let fallback = s.place().v6_prefix;
    s.read_tx(&mut |tx| {
        let prefix = prefix_in(tx, path, fallback)?;
        f(&Snapshot { tx, path, prefix })
    })
}
