//! The fail2ban filters a rule set runs beside its rules.

use super::filter::{FilterMatch, ImportedFilter};

/// The filters, in the order given: the first one to find a failure decides the line.
pub struct FilterSet {
    pub filters: Vec<ImportedFilter>,
}

impl FilterSet {
    /// Runs every filter on the line (each keeps its own multi-line state, so each must see every
    /// line) and returns the first that found a failure, with what it found: an address, or text
    /// that is none.
    pub fn check(&self, line: &[u8]) -> Option<(usize, FilterMatch)> {
        let text = String::from_utf8_lossy(line);
        let mut first = None;
        for (i, f) in self.filters.iter().enumerate() {
            let found = f.check(&text);
            if first.is_none()
                && matches!(
                    found,
                    FilterMatch::Failure(_) | FilterMatch::NotAnAddress(_)
                )
            {
                first = Some((i, found));
            }
        }
        first
    }
}
