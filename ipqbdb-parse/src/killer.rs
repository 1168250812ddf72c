//! Connection kills run off the matching thread, by one worker fed through a bounded queue: a slow
//! conntrack must not stall parsing, and a flood of addresses reaching 100 % must not start a thread
//! (and a process) per address. What does not fit in the queue is dropped and counted: the ban
//! stands, only the kill of existing connections is skipped.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ipqbdb_runtime::connkill::ConnKill;

/// Kills waiting at most; more are dropped (and counted).
pub const QUEUE: usize = 256;

pub struct Killer {
    tx: Option<SyncSender<IpAddr>>,
    worker: Option<JoinHandle<()>>,
    dropped: u64,
    failed: Arc<AtomicU64>,
}

impl Killer {
    /// Starts the worker; `on_error` reports a failed kill (it runs on the worker).
    pub fn start(
        ck: ConnKill,
        queue: usize,
        on_error: impl Fn(IpAddr, String) + Send + 'static,
    ) -> std::io::Result<Killer> {
        let (tx, rx) = sync_channel::<IpAddr>(queue);
        let failed = Arc::new(AtomicU64::new(0));
        let f = failed.clone();
        let worker = std::thread::Builder::new()
            .name("connkill".into())
            .spawn(move || {
                for ip in rx {
                    if let Err(e) = ck.run(ip) {
                        f.fetch_add(1, Ordering::Relaxed);
                        on_error(ip, e.to_string());
                    }
                }
            })?;
        Ok(Killer {
            tx: Some(tx),
            worker: Some(worker),
            dropped: 0,
            failed,
        })
    }

    /// Queues a kill for `ip`; false (and counted) when the queue is full.
    pub fn kill(&mut self, ip: IpAddr) -> bool {
        let Some(tx) = &self.tx else {
            return false;
        };
        match tx.try_send(ip) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped += 1;
                false
            }
        }
    }

    /// Kills dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Kills that ran and failed.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Lets the queued kills finish within `grace`; true when they all did.
    pub fn finish(&mut self, grace: Duration) -> bool {
        self.tx = None;
        let Some(worker) = self.worker.take() else {
            return true;
        };
        let deadline = Instant::now() + grace;
        while !worker.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = worker.join();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn connkill(cmd: &str) -> (tempfile::TempDir, ConnKill) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ck.cmd");
        writeln!(std::fs::File::create(&path).unwrap(), "{cmd}").unwrap();
        let ck = ConnKill::load(&path).unwrap();
        (dir, ck)
    }

    #[test]
    fn a_flood_is_bounded_and_counted() {
        // Each kill takes a while: the queue fills, the rest are dropped, none waits.
        let (dir, ck) = connkill("sh -c 'sleep 0.2' sh ADDRESS");
        let _ = dir;
        let mut k = Killer::start(ck, 4, |_, _| {}).unwrap();
        let started = Instant::now();
        let queued = (0..100u8)
            .filter(|i| k.kill(IpAddr::from([192, 0, 2, *i])))
            .count();
        assert!(
            started.elapsed() < Duration::from_millis(150),
            "kill() waited"
        );
        // The worker may have taken one off the queue already.
        assert!((4..=5).contains(&queued), "queued {queued}");
        assert_eq!(k.dropped() as usize, 100 - queued);
        assert!(
            !k.finish(Duration::from_millis(50)),
            "four slow kills cannot end in 50 ms"
        );
    }

    #[test]
    fn failures_are_counted_and_reported() {
        let (dir, ck) = connkill("false ADDRESS");
        let _ = dir;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut k = Killer::start(ck, 8, move |ip, _| s.lock().unwrap().push(ip)).unwrap();
        assert!(k.kill(IpAddr::from([192, 0, 2, 9])));
        assert!(k.finish(Duration::from_secs(10)));
        assert_eq!(k.failed(), 1);
        assert_eq!(*seen.lock().unwrap(), [IpAddr::from([192, 0, 2, 9])]);
    }
}
