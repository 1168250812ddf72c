//! Batch verdicts, a thread per queue and the stop (issue 14), end to end: real packets between two
//! network namespaces, real iptables rules, the real binary, for every backend.
//!
//! The streams run unpaced (as fast as the sender can), so the judge receives bursts and answers
//! them in batches; each test checks that it did (fewer sends than packets).

use crate::common;

use std::cell::Cell;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::JudgeLab as Lab;
use ipqbdb_store::Engine;
use ipqbdb_tests::root_test;
use ipqbdb_tests::scrape::{logged_addr, must_value, scrape};
use ipqbdb_tests::traffic::{
    assert_all_judged, judge_counters, logged_number, queue_counters, Stream,
};
use ipqbdb_tests::wait_until;

const DST: &str = "10.99.0.1:7000";
const FULL: &str = "10.99.0.3";
const QUARTER: &str = "10.99.0.4";
const UNKNOWN: &str = "10.99.0.5";
const SENTINEL: &str = "10.99.0.2";
/// A destination of the judge's namespace banned at 100 %: queue 1 marks what goes to it.
const MARKED_DST: &str = "10.99.0.10";
/// As fast as the sender goes: bursts.
const UNPACED: u32 = 10_000_000;
/// See netns.rs: a 100 % ban with a 30-day half-life lets a packet pass with probability 3e-7 per
/// second elapsed.
const LONG: &str = "30d";

/// Client addresses for flows spread over queues by address hash.
fn spread_sources() -> Vec<String> {
    (20..36).map(|i| format!("10.99.0.{i}")).collect()
}

impl Lab {
    fn new(backend: Engine) -> Lab {
        let mut client: Vec<String> = ["10.99.0.2/24", "10.99.0.3/24", "10.99.0.4/24"]
            .into_iter()
            .chain(["10.99.0.5/24"])
            .map(String::from)
            .collect();
        client.extend(spread_sources().iter().map(|s| format!("{s}/24")));
        let client: Vec<&str> = client.iter().map(String::as_str).collect();
        Lab::pair(
            "batch",
            backend,
            &["10.99.0.1/24", "10.99.0.10/24"],
            &client,
        )
    }

    fn log(&self) -> String {
        self.judge.as_ref().expect("a judge").log()
    }

    /// Queues UDP packets to port 7000 with the NFQUEUE options `target`.
    fn queue_7000(&self, target: &[&str]) {
        self.j.queue_port("iptables", "filter", "udp", 7000, target);
    }

    fn stream(&self, port: u16, sources: &[&str], rate: u32, max: u64) -> Stream {
        let rx = self.j.udp(&format!("0.0.0.0:{port}"));
        let dst: SocketAddr = format!("10.99.0.1:{port}").parse().unwrap();
        Stream::start(&self.c, rx, dst, sources, SENTINEL, rate, max)
    }

    /// The judge's counters of `queue` after a SIGUSR1 (or at exit, once stopped) that shows at
    /// least `packets` packets.
    fn counters_reaching(&self, queue: u16, packets: u64) -> [u64; 5] {
        let last = Cell::new(None);
        wait_until(
            || {
                format!(
                    "queue {queue} counters reaching {packets}: {:?}",
                    last.get()
                )
            },
            Duration::from_secs(10),
            || {
                if let Some(j) = &self.judge {
                    j.signal(libc::SIGUSR1);
                }
                last.set(judge_counters(&self.log(), queue));
                last.get().is_some_and(|c| c[0] >= packets)
            },
        );
        last.get().unwrap()
    }

    /// Checks from the judge's log that a send answered more than one packet on average.
    fn assert_batched(&self, what: &str) {
        let log = self.log();
        let sends = logged_number(&log, "verdict sends:").expect("verdict sends logged");
        let packets: u64 = (0..2)
            .filter_map(|q| judge_counters(&log, q))
            .map(|c| c[0])
            .sum();
        assert!(
            sends > 0 && sends < packets,
            "{what}: {sends} sends for {packets} packets: no batching\n{log}"
        );
        eprintln!(
            "{what}: {packets} packets in {sends} sends ({:.1} each)",
            packets as f64 / sends as f64
        );
    }
}

/// The report of `stream` once it has sent all it was to send.
fn all_sent(stream: Stream) -> ipqbdb_tests::traffic::Report {
    wait_until(
        || "the stream's packets sent".into(),
        Duration::from_secs(60),
        || stream.sender_done(),
    );
    stream.finish()
}

#[root_test("network namespaces, iptables")]
fn interleaved_sources_and_marks_through_the_batch_path() {
    common::every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.j.queue_udp("iptables", 7000, 0);
        // Queue 1, in the mangle table, judges destinations and marks; the filter table then
        // rejects marked packets.
        lab.j.queue_and_reject_marked(7001, 1, 4);
        // Banned before the judge starts: its first snapshot sees them.
        lab.ban(&["-c", "0", "-t", LONG, FULL, MARKED_DST]);
        lab.ban(&["-c", "2", "-t", "1w", QUARTER]);
        lab.start_judge(&["Q0", "Q1DM4"], "listening on");

        let per_source = 2000u64;
        let report = all_sent(lab.stream(7000, &[FULL, QUARTER, UNKNOWN], UNPACED, 3 * per_source));
        assert_eq!(report.sent_from(QUARTER), per_source);
        assert!(
            report.received_from(FULL) <= 1,
            "{b}: the 100 % source lost {} of {per_source}, not all",
            per_source - report.received_from(FULL)
        );
        assert_eq!(
            report.received_from(UNKNOWN),
            per_source,
            "{b}: the unknown source lost packets"
        );
        let dropped = per_source - report.received_from(QUARTER);
        // Binomial(2000, 1/4): mean 500, standard deviation 19.4; six of them either side.
        eprintln!("{b}: 25 % dropped {dropped} of {per_source}");
        assert!(
            (384..=616).contains(&dropped),
            "{b}: {dropped} of {per_source} dropped at 25 %"
        );
        let [packets, accepted, dropped_j, marked, errors] =
            lab.counters_reaching(0, report.total_sent() + 1);
        assert_eq!(marked, 0);
        assert_eq!(
            accepted + dropped_j,
            packets,
            "{b}: every packet got one verdict"
        );
        let q = queue_counters(&lab.j, 0).expect("queue 0 bound");
        assert_eq!(q.waiting, 0, "{b}: packets left waiting: {q:?}");
        assert_all_judged(&format!("{b} queue 0"), &q, packets, errors, &report);

        // Marks: packets to the banned destination and to another, interleaved in one burst.
        let rx = lab.j.udp("0.0.0.0:7001");
        rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let before = lab.reject_count();
        let n = 500;
        lab.c.enter(|| {
            let s = UdpSocket::bind("10.99.0.5:0").unwrap();
            for _ in 0..n {
                s.send_to(b"m", format!("{MARKED_DST}:7001")).unwrap();
                s.send_to(b"p", "10.99.0.1:7001").unwrap();
            }
            s.send_to(b"end", "10.99.0.1:7001").unwrap();
        });
        let (mut marked_in, mut passed) = (0, 0);
        let mut buf = [0u8; 8];
        loop {
            let len = rx
                .recv(&mut buf)
                .expect("the end of the mark burst never arrived");
            match &buf[..len] {
                b"end" => break,
                b"m" => marked_in += 1,
                b"p" => passed += 1,
                _ => {}
            }
        }
        assert_eq!(passed, n, "{b}: unmarked destinations pass");
        assert!(marked_in <= 1, "{b}: {marked_in} marked packets arrived");
        assert_eq!(
            lab.reject_count() - before,
            (n - marked_in) as u64,
            "{b}: every marked packet met the REJECT rule"
        );
        let c1 = lab.counters_reaching(1, 2 * n as u64 + 1);
        assert_eq!(c1[3], (n - marked_in) as u64, "{b}: the judge's marks");
        lab.assert_batched(&format!("{b}"));
        lab.judge.as_mut().unwrap().stop(Duration::from_secs(20));
    });
}

#[root_test("network namespaces, iptables")]
fn two_balanced_queues_both_serve() {
    common::every_backend(|b| {
        let mut lab = Lab::new(b);
        // Flows spread over queues 0 and 1 by a hash of their addresses: 16 sources all landing
        // on one queue has a chance of 2^-15.
        lab.queue_7000(&["--queue-balance", "0:1"]);
        lab.start_judge(
            &["Q0", "Q1", "--metrics-listen", "127.0.0.1:0"],
            "listening on",
        );
        let sources = spread_sources();
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        let per_source = 500u64;
        let n = per_source * sources.len() as u64;
        let stream = lab.stream(7000, &sources, UNPACED, n);
        // The sentinel goes to one of the queues: the other's packets may still be on their way.
        wait_until(
            || format!("{b}: the stream's {n} packets sent"),
            Duration::from_secs(30),
            || stream.sender_done(),
        );
        let judged = Cell::new([0u64; 2]);
        wait_until(
            || format!("{b}: judged {:?} of {n} and the sentinel", judged.get()),
            Duration::from_secs(10),
            || {
                lab.judge.as_ref().unwrap().signal(libc::SIGUSR1);
                let log = lab.log();
                let counts = [0, 1].map(|q| judge_counters(&log, q).map_or(0, |c| c[0]));
                judged.set(counts);
                counts.iter().sum::<u64>() == n + 1
            },
        );
        let judged = judged.get();
        let report = stream.finish();
        eprintln!("{b}: queue 0 judged {}, queue 1 {}", judged[0], judged[1]);
        assert!(
            judged.iter().all(|&j| j > 0),
            "{b}: one queue served everything: {judged:?}"
        );
        for q in 0..2 {
            let k = queue_counters(&lab.j, q).expect("queue bound");
            assert_eq!(
                (k.queue_dropped, k.user_dropped, k.waiting),
                (0, 0, 0),
                "{b}: queue {q}: {k:?}"
            );
            let c = judge_counters(&lab.log(), q).unwrap();
            assert_eq!(
                (c[0], c[4]),
                (c[1], 0),
                "{b}: queue {q} accepted all: {c:?}"
            );
        }
        assert_eq!(report.total_sent(), n);
        lab.assert_batched(&format!("{b}"));
        assert_metrics_of_two_queues(&lab, judged);
        lab.judge.as_mut().unwrap().stop(Duration::from_secs(20));
    });
}

/// The metrics both packet threads count into agree with what each queue logged: each queue's
/// own counters, the shared cache and batch counts summed over both.
fn assert_metrics_of_two_queues(lab: &Lab, judged: [u64; 2]) {
    let addr = logged_addr(&lab.log()).expect("the judge logged its metrics address");
    let page = lab.j.enter(|| scrape(addr));
    let all = judged[0] + judged[1];
    for (q, &packets) in judged.iter().enumerate() {
        let accepted = format!("ipqbdb_judge_packets_total{{queue=\"{q}\",verdict=\"accept\"}}");
        assert_eq!(must_value(&page, &accepted), packets as f64, "{page}");
        for cause in ["lookup_error", "no_snapshot", "not_ip", "unknown_queue"] {
            let s =
                format!("ipqbdb_judge_unjudged_packets_total{{cause=\"{cause}\",queue=\"{q}\"}}");
            assert_eq!(must_value(&page, &s), 0.0, "{s}");
        }
    }
    let lookups = must_value(&page, "ipqbdb_judge_cache_lookups_total{result=\"hit\"}")
        + must_value(&page, "ipqbdb_judge_cache_lookups_total{result=\"miss\"}");
    assert_eq!(
        lookups, all as f64,
        "one lookup per packet, both threads\n{page}"
    );
    let sum = must_value(&page, "ipqbdb_judge_verdict_batch_packets_sum");
    let sends = must_value(&page, "ipqbdb_judge_verdict_batch_packets_count");
    assert_eq!(sum, all as f64, "every packet in one send\n{page}");
    assert!(
        sends > 0.0 && sends < sum,
        "{sends} sends for {sum} packets\n{page}"
    );
    assert!(
        must_value(&page, "ipqbdb_judge_snapshots_total") >= 2.0,
        "a snapshot per thread"
    );
    assert_eq!(must_value(&page, "ipqbdb_judge_receive_errors_total"), 0.0);
    assert_eq!(must_value(&page, "ipqbdb_judge_verdict_errors_total"), 0.0);
}

/// A second judge on a queue that has one: refused in one line naming the queue and why, exit 1;
/// the first goes on.
#[root_test("network namespaces, iptables")]
fn a_second_judge_on_a_queue_is_refused_in_one_line() {
    let b = Engine::compiled_local()[0];
    let mut lab = Lab::new(b);
    lab.start_judge(&["Q0"], "listening on");
    let mut cmd = lab.j.command(env!("CARGO_BIN_EXE_ibd-judge"));
    ipqbdb_tests::daemon_options(&mut cmd, b, &lab.db()).arg("Q0");
    let out = cmd.output().expect("run a second ibd-judge");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("queue 0: bind (another program listens on this queue"),
        "{err}"
    );
    assert!(
        queue_counters(&lab.j, 0).is_some(),
        "the first judge still listens"
    );
}

/// The queue is set up as the options say, in the binding's one message: copy range and mode
/// (the kernel's own view of the queue), length and fail-open, by what overflowing a queue of one
/// packet does with and without `--fail-open`. The queue setup does not depend on the engine: one
/// is enough.
#[root_test("network namespaces, iptables")]
fn queue_length_and_fail_open_are_what_the_options_say() {
    let b = Engine::compiled_local()[0];
    for fail_open in [true, false] {
        // A lab each: the judge's log of a second start would still hold the first's lines.
        let mut lab = Lab::new(b);
        // Only the banned source is queued: the stream's sentinel must not meet the full queue.
        lab.j.must(&[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "udp",
            "--dport",
            "7001",
            "-s",
            FULL,
            "-j",
            "NFQUEUE",
            "--queue-num",
            "0",
        ]);
        lab.ban(&["-c", "0", "-t", LONG, FULL]);
        let mut args = vec!["--queue-maxlen", "1", "--copy-range", "40", "Q0"];
        if fail_open {
            args.insert(0, "--fail-open");
        }
        lab.start_judge(&args, "listening on");
        let setup = queue_counters(&lab.j, 0).expect("the judge's queue");
        assert_eq!((setup.copy_mode, setup.copy_range), (2, 40), "{setup:?}");
        let report = all_sent(lab.stream(7001, &[FULL], UNPACED, 20_000));
        // Judged to the last before the stop, which would accept what is still queued.
        wait_until(
            || "the queue empty".into(),
            Duration::from_secs(10),
            || queue_counters(&lab.j, 0).is_some_and(|q| q.waiting == 0),
        );
        let kernel = queue_counters(&lab.j, 0).expect("the judge's queue");
        lab.judge.as_mut().unwrap().stop(Duration::from_secs(20));
        let [packets, _, dropped, ..] = judge_counters(&lab.log(), 0).expect("exit counters");
        let (sent, passed) = (report.sent_from(FULL), report.received_from(FULL));
        if fail_open {
            // What did not fit in the one-packet queue passed unjudged; what did was dropped.
            assert_eq!(
                kernel.queue_dropped, 0,
                "fail-open drops nothing: {kernel:?}"
            );
            assert!(passed > 0, "nothing passed the full queue: {sent} sent");
            assert_eq!(passed + dropped, sent, "{packets} judged");
        } else {
            assert!(
                kernel.queue_dropped > 0,
                "the full queue dropped: {kernel:?}"
            );
            assert_eq!(passed, 0, "a banned packet passed a fail-closed queue");
            assert_eq!(dropped, packets, "every judged packet dropped");
        }
        assert!(
            packets < sent,
            "the queue of one overflowed: {packets} of {sent} judged"
        );
    }
}

#[root_test("network namespaces, iptables")]
fn sigterm_during_a_burst_leaves_no_packet_queued() {
    common::every_backend(|b| {
        let mut lab = Lab::new(b);
        // --queue-bypass: once the judge is gone, packets pass unjudged. Any packet still queued
        // when its socket closes would be dropped by the kernel instead, and missing here.
        lab.queue_7000(&["--queue-num", "0", "--queue-bypass"]);
        lab.start_judge(&["Q0"], "listening on");
        // Paced fast enough to keep the queue busy, for long enough to stop the judge within.
        let rate = 20_000;
        let stream = lab.stream(7000, &[UNKNOWN, QUARTER], rate, u64::from(rate) * 3);
        wait_until(
            || format!("{b}: traffic through the judge"),
            Duration::from_secs(10),
            || stream.received() > u64::from(rate) / 2,
        );
        let stop = Instant::now();
        lab.judge.as_mut().unwrap().stop(Duration::from_secs(20));
        eprintln!("{b}: stopped in {:?}", stop.elapsed());
        assert!(
            queue_counters(&lab.j, 0).is_none(),
            "{b}: the queue still has a listener"
        );
        // Traffic goes on past the stop, through the bypass.
        let report = all_sent(stream);
        for src in [UNKNOWN, QUARTER] {
            assert_eq!(
                report.received_from(src),
                report.sent_from(src),
                "{b}: packets from {src} lost across the stop"
            );
        }
        let log = lab.log();
        let [packets, accepted, ..] = judge_counters(&log, 0).expect("exit counters");
        assert!(
            packets > 0 && packets == accepted,
            "{b}: {packets} {accepted}\n{log}"
        );
        assert!(
            packets < report.total_sent(),
            "{b}: the judge was stopped during the stream"
        );
    });
}

#[root_test("network namespaces, iptables")]
fn a_large_offloaded_segment_is_one_verdict() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    common::every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.j
            .queue_port("iptables", "filter", "tcp", 7100, &["--queue-num", "0"]);
        lab.start_judge(&["Q0"], "listening on");
        let listener = lab.j.enter(|| TcpListener::bind("10.99.0.1:7100").unwrap());
        let reader = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got.len()
        });
        // veth offloads segmentation: the sender's TCP hands it segments of up to 64 KB.
        let bytes = 4 << 20;
        lab.c.enter(|| {
            let mut s = TcpStream::connect("10.99.0.1:7100").unwrap();
            s.write_all(&vec![7u8; bytes]).unwrap();
        });
        assert_eq!(reader.join().unwrap(), bytes, "{b}: everything arrived");
        let [packets, accepted, ..] = lab.counters_reaching(0, 1);
        // Segmented first (without GSO), 4 MB would be about 2,900 packets of 1,448 bytes.
        let mss_packets = bytes as u64 / 1448;
        eprintln!("{b}: 4 MB over TCP in {packets} verdicts ({mss_packets} MSS-sized segments)");
        assert_eq!(packets, accepted);
        assert!(
            packets < mss_packets / 4,
            "{b}: {packets} verdicts for {mss_packets} segments: GSO packets were segmented"
        );
        lab.judge.as_mut().unwrap().stop(Duration::from_secs(20));
    });
}

#[root_test("network namespaces, iptables")]
fn a_receive_buffer_overflow_is_counted_and_survived() {
    common::every_backend(|b| {
        let mut lab = Lab::new(b);
        lab.queue_7000(&["--queue-num", "0"]);
        // Room for about a hundred packets: an unpaced burst of 20,000 overflows it (ENOBUFS),
        // a paced stream does not.
        lab.start_judge(
            &["--rcvbuf", "64K", "Q0", "--metrics-listen", "127.0.0.1:0"],
            "listening on",
        );
        // On a loaded machine the judge may keep up with one flood: flood again (at most 5
        // times) until the kernel has seen the socket overflow.
        for _ in 0..5 {
            lab.c.enter(|| {
                let s = UdpSocket::bind(format!("{UNKNOWN}:0")).unwrap();
                for _ in 0..20_000 {
                    s.send_to(b"x", DST).unwrap();
                }
            });
            if queue_counters(&lab.j, 0).is_some_and(|k| k.user_dropped > 0) {
                break;
            }
        }
        let enobufs = Cell::new(None);
        wait_until(
            || format!("{b}: ENOBUFS counted: {:?}\n{}", enobufs.get(), lab.log()),
            Duration::from_secs(10),
            || {
                lab.judge.as_ref().unwrap().signal(libc::SIGUSR1);
                enobufs.set(logged_number(&lab.log(), "of which ENOBUFS:"));
                enobufs.get().is_some_and(|n| n > 0)
            },
        );
        let k = queue_counters(&lab.j, 0).expect("queue bound");
        assert!(k.user_dropped > 0, "{b}: the kernel saw no overflow: {k:?}");
        // The judge goes on: a paced stream afterwards is judged whole.
        let report = all_sent(lab.stream(7000, &[UNKNOWN], 500, 500));
        assert_eq!(
            report.received_from(UNKNOWN),
            500,
            "{b}: after the overflow"
        );
        let after = queue_counters(&lab.j, 0).expect("queue bound");
        assert_eq!(
            (after.user_dropped, after.waiting),
            (k.user_dropped, 0),
            "{b}: nothing lost or left after the overflow"
        );
        let logged = enobufs.get().unwrap();
        eprintln!("{b}: {logged} ENOBUFS, kernel {k:?}");
        // The packet thread counts them into the metrics too (the log's figure is an earlier one).
        let addr = logged_addr(&lab.log()).expect("the judge logged its metrics address");
        let page = lab.j.enter(|| scrape(addr));
        let counted = must_value(&page, "ipqbdb_judge_enobufs_total");
        assert!(
            counted >= logged as f64,
            "{b}: {counted} ENOBUFS counted, {logged} logged"
        );
        assert!(must_value(&page, "ipqbdb_judge_receive_errors_total") >= counted);
        lab.judge.as_mut().unwrap().stop(Duration::from_secs(20));
    });
}
