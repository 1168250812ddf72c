//! The small key-value interface every backend implements.
//!
//! All ipqbdb logic (bans, retention, whitelist precedence, reason statistics) is written once, in
//! `store/`, against these two traits. A backend only moves bytes, so the three engines cannot
//! disagree on semantics.

use crate::error::Result;

/// The logical tables. Keys and values are the byte encodings of `ipqbdb-core`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Address key (16 bytes) -> `Record`.
    Block,
    /// Range (start ++ end, 32 bytes) -> decay (u32 BE).
    White,
    /// Reason id (u32 BE) -> `Reason` value.
    Reason,
    /// Reason text -> reason id (u32 BE): the get-or-insert index.
    ReasonText,
    /// Format information.
    Meta,
    /// Address key (16 bytes) -> `ReportState`: what `ibd report` sent for it last. Added after
    /// format `ipqbdb-2` was fixed, without a new format: older programs ignore it, and an engine
    /// creates it, empty, when a database lacks it.
    Report,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Block,
        Table::White,
        Table::Reason,
        Table::ReasonText,
        Table::Meta,
        Table::Report,
    ];

    /// How many tables there are, for engines that keep one handle per table.
    pub const COUNT: usize = Table::ALL.len();

    pub const fn name(self) -> &'static str {
        match self {
            Table::Block => "block",
            Table::White => "white",
            Table::Reason => "reason",
            Table::ReasonText => "reason_text",
            Table::Meta => "meta",
            Table::Report => "report",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Scan direction: forward visits keys `>= from` ascending, backward keys `<= from` descending.
///
/// Keys compare as byte strings, so the empty key is the smallest of all, and no table holds it
/// (LMDB cannot store it). Hence a forward scan from `&[]` visits the whole table and a backward scan
/// from `&[]` visits nothing; every engine must agree (the conformance suite checks it). To walk a
/// table backwards from its end, start from a key above every key it holds (e.g. `[0xff; N]` for
/// keys of length at most N).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// The callback of [`ReadTx::scan`]: gets each key and value, returns whether to go on.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// A consistent snapshot. Keys are never empty.
pub trait ReadTx {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Calls `visit` per entry until it returns `Ok(false)` or the table ends (see [`Direction`]).
    fn scan(&self, table: Table, from: &[u8], dir: Direction, visit: &mut Visit<'_>) -> Result<()>;
    fn len(&self, table: Table) -> Result<u64>;

    /// The values of `keys`, in their order. An engine where each lookup is a round trip to a
    /// server answers in one; the default, right for engines in memory or on local files, loops.
    fn get_many(&self, table: Table, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|k| self.get(table, k)).collect()
    }

    /// The values of keys in any tables, in their order: what an operation must read before it
    /// can start, asked at once so that a server engine answers in one round trip (a single ban
    /// on postgres: the IPv6 prefix, the reason and the record). The default loops.
    fn get_each(&self, keys: &[(Table, &[u8])]) -> Result<Vec<Option<Vec<u8>>>> {
        keys.iter().map(|&(t, k)| self.get(t, k)).collect()
    }

    /// For a reader that caches what it read: `None` when this transaction sees one fixed state
    /// (every engine's own transactions), else a number that moves whenever what it reads may
    /// have changed (the postgres engine's local view, whose reads follow its refreshes, see
    /// `view.rs`).
    fn version(&self) -> Option<u64> {
        None
    }
}

/// A write transaction: nothing it does is visible to others until the backend commits it durably.
pub trait WriteTx: ReadTx {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()>;
    /// Returns whether the key existed.
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool>;

    /// Puts every entry, in order (a key given twice ends with its last value). One statement on a
    /// server engine; the default loops (see [`ReadTx::get_many`]).
    fn put_many(&mut self, table: Table, entries: &[(&[u8], &[u8])]) -> Result<()> {
        for (k, v) in entries {
            self.put(table, k, v)?;
        }
        Ok(())
    }
}
