//! Logging an event that may repeat (per packet, per line, per retry) without flooding the log: the
//! one way the daemons hold back repeats, whichever kind of repeat they face.

use std::time::{Duration, Instant};

/// When a repeat of an event is logged again. The first occurrence is always logged at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// When its message differs from the last one logged: a database retried every second says
    /// each new failure once, and [`RateLimit::clear`] tells when it works again.
    WhenChanged,
    /// At the 2nd, 4th, 8th... occurrence: a count in the message says how bad a flood got, in
    /// logarithmically few lines.
    AtPowersOfTwo,
    /// At most once per `every`, as one line counting what was held back, with the latest
    /// message; `named` says `every` in that line ("minute").
    Summarised {
        every: Duration,
        named: &'static str,
    },
}

/// The state of one event's limiting; the caller logs the lines it returns, at its own level and
/// with its own context around them.
#[derive(Debug, Clone)]
pub struct RateLimit {
    repeat: Repeat,
    occurrences: u64,
    last_message: Option<String>,
    last_line: Option<Instant>,
    held: u64,
    latest: String,
}

impl RateLimit {
    pub fn new(repeat: Repeat) -> Self {
        RateLimit {
            repeat,
            occurrences: 0,
            last_message: None,
            last_line: None,
            held: 0,
            latest: String::new(),
        }
    }

    /// Counts one occurrence and returns the line to log now, if any. `message` is given the
    /// number of occurrences so far, this one included; it is not called when the count alone
    /// decides the line is held back.
    pub fn hit(&mut self, message: impl FnOnce(u64) -> String) -> Option<String> {
        self.occurrences += 1;
        let n = self.occurrences;
        match self.repeat {
            Repeat::WhenChanged => {
                let m = message(n);
                if self.last_message.as_deref() == Some(m.as_str()) {
                    return None;
                }
                self.last_message = Some(m.clone());
                Some(m)
            }
            Repeat::AtPowersOfTwo => n.is_power_of_two().then(|| message(n)),
            Repeat::Summarised { every, .. } => {
                let quiet = self.last_line.is_none_or(|t| t.elapsed() >= every);
                if quiet && self.held == 0 {
                    self.last_line = Some(Instant::now());
                    Some(message(n))
                } else {
                    self.held += 1;
                    self.latest = message(n);
                    self.tick()
                }
            }
        }
    }

    /// The summary of what was held back once it is due ([`Repeat::Summarised`] only), also when
    /// no new occurrence comes to call [`RateLimit::hit`].
    pub fn tick(&mut self) -> Option<String> {
        let Repeat::Summarised { every, named } = self.repeat else {
            return None;
        };
        if self.held == 0 || self.last_line.is_some_and(|t| t.elapsed() < every) {
            return None;
        }
        let line = format!(
            "{} more in the last {named}, the latest: {}",
            self.held, self.latest
        );
        self.held = 0;
        self.last_line = Some(Instant::now());
        Some(line)
    }

    /// The event has ended (the database answers again); its next occurrence is logged as a
    /// first. Whether a [`Repeat::WhenChanged`] line was logged since the last clear, so the caller
    /// can say it ended.
    pub fn clear(&mut self) -> bool {
        self.occurrences = 0;
        self.last_message.take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(limit: &mut RateLimit, messages: &[&str]) -> Vec<Option<String>> {
        messages
            .iter()
            .map(|m| limit.hit(|n| format!("{m} #{n}")))
            .collect()
    }

    #[test]
    fn when_changed_logs_each_new_message_once_until_cleared() {
        let mut limit = RateLimit::new(Repeat::WhenChanged);
        let logged: Vec<_> = ["disk full", "disk full", "locked", "locked", "disk full"]
            .iter()
            .map(|m| limit.hit(|_| m.to_string()))
            .collect();
        assert_eq!(
            logged,
            [
                Some("disk full".into()),
                None,
                Some("locked".into()),
                None,
                Some("disk full".into())
            ]
        );
        assert!(limit.clear());
        assert!(!limit.clear(), "nothing logged since the last clear");
        assert_eq!(limit.hit(|_| "disk full".into()), Some("disk full".into()));
    }

    #[test]
    fn powers_of_two_count_every_occurrence() {
        let mut limit = RateLimit::new(Repeat::AtPowersOfTwo);
        let logged: Vec<u64> = (1..=20)
            .filter_map(|_| limit.hit(|n| n.to_string()))
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(logged, [1, 2, 4, 8, 16]);
        limit.clear();
        assert_eq!(limit.hit(|n| n.to_string()), Some("1".into()));
    }

    #[test]
    fn summarised_holds_repeats_until_the_period_ends() {
        let every = Duration::from_millis(200);
        let mut limit = RateLimit::new(Repeat::Summarised {
            every,
            named: "moment",
        });
        let logged = lines(&mut limit, &["a", "b", "c"]);
        assert_eq!(logged, [Some("a #1".into()), None, None]);
        assert_eq!(limit.tick(), None, "the period has not ended");
        let start = Instant::now();
        let summary = loop {
            if let Some(s) = limit.tick() {
                break s;
            }
            assert!(start.elapsed() < every * 10, "no summary after the period");
            std::thread::yield_now();
        };
        assert_eq!(summary, "2 more in the last moment, the latest: c #3");
        assert_eq!(limit.tick(), None, "nothing held back since");
        // Within the new period, a repeat is held back again.
        assert_eq!(limit.hit(|n| n.to_string()), None);
    }

    #[test]
    fn other_kinds_have_no_summary() {
        for repeat in [Repeat::WhenChanged, Repeat::AtPowersOfTwo] {
            let mut limit = RateLimit::new(repeat);
            lines(&mut limit, &["x", "x", "x"]);
            assert_eq!(limit.tick(), None);
        }
    }
}
