//! The retention rule of `del --min-time T --max-records N`.

use crate::record::UnixTime;

/// How many of the candidates (records not updated for at least `min_age`) to delete, oldest first.
///
/// Without `max_records` every candidate goes. With it, only as many as needed to bring the total down to
/// `max_records`, and never a record updated within `min_age`.
pub fn retention_quota(total: u64, candidates: u64, max_records: Option<u64>) -> u64 {
    match max_records {
        None => candidates,
        Some(n) => total.saturating_sub(n).min(candidates),
    }
}

/// Whether a record last updated at `last_update` is old enough to be a candidate.
pub fn is_stale(last_update: UnixTime, now: UnixTime, min_age: u32) -> bool {
    now.saturating_sub(last_update) >= i64::from(min_age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota() {
        assert_eq!(retention_quota(10, 4, None), 4);
        assert_eq!(retention_quota(10, 4, Some(8)), 2, "just enough to leave 8");
        assert_eq!(
            retention_quota(10, 4, Some(2)),
            4,
            "never more than the candidates"
        );
        assert_eq!(
            retention_quota(10, 4, Some(20)),
            0,
            "fewer than N remain anyway"
        );
    }

    #[test]
    fn staleness() {
        assert!(is_stale(100, 160, 60));
        assert!(!is_stale(101, 160, 60));
        assert!(is_stale(100, 100, 0));
    }
}
