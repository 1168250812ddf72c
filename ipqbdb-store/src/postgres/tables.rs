//! The SQL names of the logical tables, and which are kept per host.

use crate::kv::Table;

/// The SQL table of a logical table.
pub fn sql_table(table: Table) -> String {
    format!("ipqbdb_{}", table.name())
}

/// Whether a table's rows are scoped per host (only the meta table, for the notes).
pub(super) fn scoped(table: Table) -> bool {
    table == Table::Meta
}
