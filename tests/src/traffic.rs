//! UDP traffic through a judge (`ibd-judge` or `ibd-xdp`): a sender in one namespace, a receiver
//! in the other.
//!
//! A [`Stream`] is paced, with counts per source and the time each packet took to arrive, for tests
//! that must show packets were judged (and how fast) while something else happens. Each packet
//! carries its sequence number and its send time on a clock both ends share (the test process's
//! own). A [`burst`] is a number of packets from one source, sent at once, for tests of verdicts.
//!
//! Both end with a sentinel from an innocent source on the same path: packets from one namespace
//! cross to the other in order and a queue is verdicted in order, so once the sentinel arrives every
//! earlier packet has been judged and the counts are final, not read after a guessed sleep.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::netns::Netns;

const SENTINEL: u64 = u64::MAX;
/// How long the receiver waits for the sentinel once the sender has stopped: a hang detector.
const SENTINEL_WAIT: Duration = Duration::from_secs(30);

/// What a stream sent and what arrived.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Packets sent, per source (the sentinel not included).
    pub sent: HashMap<IpAddr, u64>,
    /// Packets that arrived, per source (the sentinel not included).
    pub received: HashMap<IpAddr, u64>,
    /// The longest time from send to arrival of any packet that arrived.
    pub max_latency: Duration,
    /// Arrival latencies at the 99th percentile.
    pub p99_latency: Duration,
    /// How long the stream ran.
    pub elapsed: Duration,
}

impl Report {
    pub fn sent_from(&self, src: &str) -> u64 {
        self.sent.get(&src.parse().unwrap()).copied().unwrap_or(0)
    }

    pub fn received_from(&self, src: &str) -> u64 {
        self.received
            .get(&src.parse().unwrap())
            .copied()
            .unwrap_or(0)
    }

    pub fn total_sent(&self) -> u64 {
        self.sent.values().sum()
    }
}

/// A stream in progress.
pub struct Stream {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    sender: JoinHandle<(HashMap<IpAddr, u64>, Duration)>,
    receiver: JoinHandle<(HashMap<IpAddr, u64>, Vec<Duration>)>,
}

impl Stream {
    /// Starts sending `rate` packets per second to `dst`, from `sources` in turn (each an address
    /// of `client`), until [`Stream::finish`] or `max` packets. `rx` is the receiving socket in
    /// the judge's namespace; `innocent` (an address of `client` the judge accepts) sends the
    /// sentinel.
    pub fn start(
        client: &Netns,
        rx: UdpSocket,
        dst: SocketAddr,
        sources: &[&str],
        innocent: &str,
        rate: u32,
        max: u64,
    ) -> Stream {
        let base = Instant::now();
        let sockets: Vec<(IpAddr, UdpSocket)> = client.enter(|| {
            sources
                .iter()
                .chain(std::iter::once(&innocent))
                .map(|s| {
                    let ip: IpAddr = s.parse().expect("source address");
                    let sock = UdpSocket::bind(SocketAddr::new(ip, 0))
                        .unwrap_or_else(|e| panic!("bind {ip}: {e}"));
                    (ip, sock)
                })
                .collect()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let sender = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (sentinel, senders) = sockets.split_last().expect("sockets");
                let mut sent: HashMap<IpAddr, u64> = HashMap::new();
                let start = Instant::now();
                let mut i = 0u64;
                while i < max && !stop.load(Ordering::Relaxed) {
                    // Catch up with the schedule, then sleep until the next packet is due.
                    let due = (start.elapsed().as_secs_f64() * f64::from(rate)) as u64 + 1;
                    while i < due.min(max) {
                        let (ip, sock) = &senders[(i % senders.len() as u64) as usize];
                        let now = base.elapsed().as_nanos() as u64;
                        let mut buf = [0u8; 16];
                        buf[..8].copy_from_slice(&i.to_be_bytes());
                        buf[8..].copy_from_slice(&now.to_be_bytes());
                        sock.send_to(&buf, dst).expect("send");
                        *sent.entry(*ip).or_default() += 1;
                        i += 1;
                    }
                    let next = Duration::from_secs_f64(i as f64 / f64::from(rate));
                    if let Some(wait) = next.checked_sub(start.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
                let mut buf = [0u8; 16];
                buf[..8].copy_from_slice(&SENTINEL.to_be_bytes());
                sentinel.1.send_to(&buf, dst).expect("send sentinel");
                (sent, start.elapsed())
            })
        };
        let receiver = {
            let (stop, received) = (stop.clone(), received.clone());
            rx.set_read_timeout(Some(Duration::from_millis(200)))
                .expect("read timeout");
            std::thread::spawn(move || {
                let mut got: HashMap<IpAddr, u64> = HashMap::new();
                let mut latencies = Vec::new();
                let mut buf = [0u8; 64];
                let mut stopped_at: Option<Instant> = None;
                loop {
                    match rx.recv_from(&mut buf) {
                        Ok((16, from)) => {
                            let seq = u64::from_be_bytes(buf[..8].try_into().unwrap());
                            if seq == SENTINEL {
                                return (got, latencies);
                            }
                            let sent = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                            let now = base.elapsed().as_nanos() as u64;
                            latencies.push(Duration::from_nanos(now.saturating_sub(sent)));
                            *got.entry(from.ip()).or_default() += 1;
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => panic!("receive: {e}"),
                    }
                    if stop.load(Ordering::Relaxed) {
                        let at = *stopped_at.get_or_insert_with(Instant::now);
                        assert!(
                            at.elapsed() < SENTINEL_WAIT,
                            "the stream's sentinel did not arrive within {SENTINEL_WAIT:?}"
                        );
                    }
                }
            })
        };
        Stream {
            stop,
            received,
            sender,
            receiver,
        }
    }

    /// Packets that have arrived so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Whether the sender has sent all it was allowed to.
    pub fn sender_done(&self) -> bool {
        self.sender.is_finished()
    }

    /// Stops sending (if still under way), waits for the sentinel and reports.
    pub fn finish(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let (sent, elapsed) = self.sender.join().expect("sender thread");
        let (received, mut latencies) = self.receiver.join().expect("receiver thread");
        latencies.sort();
        let pick = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Report {
            sent,
            received,
            max_latency: latencies.last().copied().unwrap_or_default(),
            p99_latency: pick(0.99),
            elapsed,
        }
    }
}

/// Sends `n` packets from `src` (an address of `client`) to `dst`, then a sentinel from `innocent`
/// (another address of `client`, one the verdicts let through) to `sentinel_dst`, and returns how
/// many of the `n` arrived at `rx` before the sentinel. `rx` has a read timeout: a sentinel that
/// never arrives fails the test.
pub fn burst(
    client: &Netns,
    rx: &UdpSocket,
    src: &str,
    dst: SocketAddr,
    n: usize,
    innocent: &str,
    sentinel_dst: SocketAddr,
) -> usize {
    static BURSTS: AtomicU64 = AtomicU64::new(0);
    let src: IpAddr = src.parse().expect("source address");
    let innocent: IpAddr = innocent.parse().expect("sentinel address");
    // Unique, so a sentinel is never taken for another burst's.
    let tag = format!(
        "end {} {}",
        std::process::id(),
        BURSTS.fetch_add(1, Ordering::Relaxed)
    );
    client.enter(|| {
        let s = UdpSocket::bind(SocketAddr::new(src, 0)).unwrap();
        for _ in 0..n {
            s.send_to(b"data", dst).unwrap();
        }
        let sentinel = UdpSocket::bind(SocketAddr::new(innocent, 0)).unwrap();
        sentinel.send_to(tag.as_bytes(), sentinel_dst).unwrap();
    });
    let mut got = 0;
    let mut buf = [0u8; 128];
    loop {
        let (len, from) = rx
            .recv_from(&mut buf)
            .expect("the innocent sentinel never arrived");
        if &buf[..len] == tag.as_bytes() {
            return got;
        }
        if from.ip() == src && &buf[..len] == b"data" {
            got += 1;
        }
    }
}

/// Probes every 20 ms with `probe` (a [`burst`] of one: whether its packet passed) until a probe is
/// dropped (or passes, when `dropped` is false), and returns how long that took: how long a new
/// verdict took to apply. Fails the test after `limit`, naming the probe's path `what`.
pub fn await_probe(
    what: &str,
    dropped: bool,
    limit: Duration,
    mut probe: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if probe() != dropped {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "{what} still {} after {limit:?}",
            if dropped { "passes" } else { "dropped" }
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The kernel's counters of one NFQUEUE queue in `ns` (`/proc/net/netfilter/nfnetlink_queue`):
/// packets waiting, dropped because the queue was full, dropped because the listener's socket
/// buffer was. `None` while no program is bound to the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounters {
    /// The copy mode (1 metadata, 2 packet) and how many bytes of each packet are copied: the
    /// queue's setup, as the kernel holds it.
    pub copy_mode: u64,
    pub copy_range: u64,
    pub waiting: u64,
    pub queue_dropped: u64,
    pub user_dropped: u64,
}

pub fn queue_counters(ns: &Netns, queue: u16) -> Option<QueueCounters> {
    QueueCounters::read(
        &ns.must(&["cat", "/proc/net/netfilter/nfnetlink_queue"]),
        queue,
    )
}

impl QueueCounters {
    /// The counters of `queue` in `text`, the contents of `/proc/net/netfilter/nfnetlink_queue`
    /// (a thread inside the namespace reads it cheaply as `/proc/thread-self/net/...`).
    pub fn read(text: &str, queue: u16) -> Option<QueueCounters> {
        text.lines().find_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .map(|w| w.parse().expect("nfnetlink_queue field"))
                .collect();
            (f.first() == Some(&u64::from(queue))).then(|| QueueCounters {
                copy_mode: f[3],
                copy_range: f[4],
                waiting: f[2],
                queue_dropped: f[5],
                user_dropped: f[6],
            })
        })
    }
}

/// The counters `ibd-judge` logs for `queue` (at SIGUSR1 and exit), from the last such line of
/// `log`: packets, accepted, dropped, marked, errors.
pub fn judge_counters(log: &str, queue: u16) -> Option<[u64; 5]> {
    let prefix = format!("queue {queue}: ");
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.find(&prefix).map(|at| l[at + prefix.len()..].to_string()))?;
    let nums: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    nums.try_into().ok()
}

/// What every test that sends traffic through a judge requires: the kernel dropped nothing from
/// queue `q`, and the judge (its `packets` and `errors` counters) judged every packet of `report`
/// and the sentinel, without an error.
pub fn assert_all_judged(
    what: &str,
    q: &QueueCounters,
    packets: u64,
    errors: u64,
    report: &Report,
) {
    assert_eq!(
        (q.queue_dropped, q.user_dropped),
        (0, 0),
        "{what}: the kernel dropped queued packets: {q:?}"
    );
    assert_eq!(
        packets,
        report.total_sent() + 1,
        "{what}: every packet (and the sentinel) was judged"
    );
    assert_eq!(errors, 0, "{what}: judgement errors");
}

/// The first number following `label` in the last line of `log` containing it.
pub fn logged_number(log: &str, label: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(label))?;
    let rest = &line[line.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// A client namespace joined to a judge's namespace `j`, whose UDP packets to port 7000 go through
/// NFQUEUE queue 0: for tests of other things that want a judge with real traffic to judge.
pub struct Link {
    pub client: Netns,
    rx: Option<UdpSocket>,
}

impl Link {
    /// The address traffic goes to, in the judge's namespace.
    pub const DST: &'static str = "10.66.0.1:7000";
    /// Client addresses: two the tests leave unbanned, one test address they may ban.
    pub const INNOCENT: &'static str = "10.66.0.2";
    pub const SENTINEL: &'static str = "10.66.0.3";
    pub const TEST_NET: &'static str = "192.0.2.1";

    pub fn new(j: &Netns) -> Link {
        let client = Netns::new("client");
        // The judge's side has an address in each client network, so no reverse-path filter
        // stands between the packets and the queue.
        crate::netns::pair(
            j,
            &["10.66.0.1/24", "192.0.2.254/24"],
            &client,
            &["10.66.0.2/24", "10.66.0.3/24", "192.0.2.1/24"],
        );
        j.queue_udp("iptables", 7000, 0);
        let rx = j.udp("0.0.0.0:7000");
        Link {
            client,
            rx: Some(rx),
        }
    }

    /// Starts the one stream of this link (see [`Stream::start`]).
    pub fn stream(&mut self, sources: &[&str], rate: u32, max: u64) -> Stream {
        let rx = self.rx.take().expect("one stream per link");
        Stream::start(
            &self.client,
            rx,
            Self::DST.parse().unwrap(),
            sources,
            Self::SENTINEL,
            rate,
            max,
        )
    }
}
