//! How long to wait after the endpoint refused to take a report now (429, 5xx, unreachable).

use std::time::Duration;

pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// A `Retry-After` longer than this is taken as this: a day's quota resets within a day.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(86_400);

/// Exponential backoff: 1 s, 2 s, 4 s ... up to an hour, reset by a success; never shorter than
/// the server's `Retry-After`.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Counts a failure and returns the wait before the next attempt.
    pub fn failed(&mut self, retry_after: Option<Duration>) -> Duration {
        let exp = BACKOFF_BASE
            .saturating_mul(1u32 << self.failures.min(16))
            .min(BACKOFF_CAP);
        self.failures = self.failures.saturating_add(1);
        exp.max(retry_after.unwrap_or_default().min(RETRY_AFTER_CAP))
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// `Retry-After` as delta-seconds (what AbuseIPDB sends); an HTTP date or garbage gives `None`, and
/// the exponential wait alone applies.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..14).map(|_| b.failed(None).as_secs()).collect();
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600]
        );
        b.succeeded();
        assert_eq!(b.failed(None), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_is_honoured_and_bounded() {
        let mut b = Backoff::default();
        assert_eq!(b.failed(Some(Duration::from_secs(30))).as_secs(), 30);
        assert_eq!(b.failed(Some(Duration::from_secs(1))).as_secs(), 2);
        assert_eq!(
            b.failed(Some(Duration::from_secs(10_000_000))),
            RETRY_AFTER_CAP
        );
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }
}
