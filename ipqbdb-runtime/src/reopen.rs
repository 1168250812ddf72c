//! Reopening database handles on request (SIGUSR2), thread by thread.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Opens a database handle again when asked (SIGUSR2), for each thread that owns one: the thread
/// checks [`Reopener::due`] where it can swap its handle, so no handle is replaced under a reader.
/// Clones share the asking, each keeps its own progress; [`Reopener::with_open`] makes one that
/// opens another kind of handle on the same asking.
pub struct Reopener<S> {
    open: Arc<dyn Fn() -> Result<S, String> + Send + Sync>,
    asked: Arc<AtomicU64>,
    done: u64,
}

impl<S> Clone for Reopener<S> {
    fn clone(&self) -> Self {
        Reopener {
            open: self.open.clone(),
            asked: self.asked.clone(),
            done: self.done,
        }
    }
}

impl<S> Reopener<S> {
    pub fn new(open: impl Fn() -> Result<S, String> + Send + Sync + 'static) -> Self {
        Reopener {
            open: Arc::new(open),
            asked: Arc::default(),
            done: 0,
        }
    }

    /// A reopener of other handles, asked together with this one.
    pub fn with_open<T>(
        &self,
        open: impl Fn() -> Result<T, String> + Send + Sync + 'static,
    ) -> Reopener<T> {
        Reopener {
            open: Arc::new(open),
            asked: self.asked.clone(),
            done: self.done,
        }
    }

    /// Asks every reopener sharing this one's asking to reopen at its next check.
    pub fn ask(&self) {
        self.asked.fetch_add(1, Ordering::Relaxed);
    }

    /// A new handle when a reopen was asked since the last check (several asks make one).
    pub fn due(&mut self) -> Option<Result<S, String>> {
        let asked = self.asked.load(Ordering::Relaxed);
        (asked != self.done).then(|| {
            self.done = asked;
            (self.open)()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopeners_reopen_once_per_asking() {
        let opened = Arc::new(AtomicU64::new(0));
        let counter = opened.clone();
        let mut a = Reopener::new(move || Ok(counter.fetch_add(1, Ordering::Relaxed) + 1));
        let mut b = a.clone();
        let mut c = a.with_open(|| Err::<(), _>("no database".to_string()));
        assert!(a.due().is_none() && b.due().is_none() && c.due().is_none());
        a.ask();
        a.ask();
        assert_eq!(a.due(), Some(Ok(1)));
        assert_eq!(a.due(), None);
        assert_eq!(b.due(), Some(Ok(2)));
        assert_eq!(c.due(), Some(Err("no database".into())));
        assert_eq!(c.due(), None);
        b.ask();
        assert_eq!(a.due(), Some(Ok(3)));
    }
}
