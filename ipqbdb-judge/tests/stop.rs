//! The stop's closing messages (`Batch::closing`), thousands of times under a flood, on one queue
//! binding: the kernel drops no packet at any of them, and every packet sent arrives.
//!
//! A stop tells the kernel to take no new packet and to accept what it cannot take (queue length 0,
//! fail-open), then accepts everything still queued, then closes the socket. The kernel applies a
//! configuration message's length before its flags, each under its own lock: sent as one message,
//! a packet arriving between the two found the queue full and still fail-closed and was dropped.
//! That happened at about one stop in thirty here at 200,000 packets/s; the SIGTERM test of
//! `batching.rs` caught it once in many runs.
//!
//! Here the judge's own socket, receive and batch code serve the queue, send the closing messages,
//! and then take the queue back (length and flags as before, in one message: the length first, so
//! never full and fail-closed either), again and again without closing the socket. Binding anew
//! each time would test the kernel's binding instead: until a new binding has its copy mode, the
//! kernel drops what arrives for it, even with `--queue-bypass`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ipqbdb_judge::batch::Batch;
use ipqbdb_judge::netlink::NfqSocket;
use ipqbdb_judge::receive::{parse, Burst, Item};
use ipqbdb_judge::verdicts::Verdict;
use ipqbdb_tests::netns::{pair, Netns};
use ipqbdb_tests::traffic::Stream;

const QUEUE: u16 = 0;
/// Stops for this long, at this rate of packets: thousands of stops.
const FOR: Duration = Duration::from_secs(3);
const RATE: u32 = 100_000;

/// The kernel's drop counters of `QUEUE` (full queue, full socket buffer), read by this thread,
/// which must be in the namespace: `/proc/self/net` would show the main thread's namespace.
fn kernel_drops() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/net/netfilter/nfnetlink_queue")
        .expect("nfnetlink_queue (is the nfnetlink_queue module loaded?)");
    text.lines()
        .filter_map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .map(|w| w.parse().expect("nfnetlink_queue field"))
                .collect();
            (f[0] == u64::from(QUEUE)).then(|| f[5] + f[6])
        })
        .sum()
}

/// Serves a few receive bursts as the judge does, then stops as the judge does, and returns what
/// the kernel dropped during the stop (its counters of full queues and full socket buffers); then
/// takes the queue back.
fn serve_then_stop(sock: &mut NfqSocket, batch: &mut Batch, burst: &mut Burst) -> u64 {
    for _ in 0..3 {
        if burst.recv(sock.fd(), true).is_ok() {
            for d in burst.datagrams() {
                parse(d, |item| {
                    if let Item::Packet { id, .. } = item {
                        batch.add(id, Verdict::Accept);
                    }
                });
            }
            sock.send(batch.take()).expect("send verdicts");
        }
    }
    let before = kernel_drops();
    sock.send(batch.closing())
        .expect("send the closing messages");
    // The configuration took effect in the send: what the stop dropped is counted by now.
    let dropped = kernel_drops() - before;
    // The kernel answers a batch verdict that found nothing queued with an error message (ENOENT),
    // which nfq would take for the answer to its next request: read those, and the packets the
    // closing messages accepted unread, first. No packet enters the queue now.
    while burst.recv(sock.fd(), false).is_ok() {}
    // Back in service: the length first, then fail-closed again (nfq sends one message each).
    sock.queue
        .set_queue_max_len(QUEUE, 8192)
        .expect("queue length");
    sock.queue.set_fail_open(QUEUE, false).expect("fail-closed");
    dropped
}

fn bound_socket() -> NfqSocket {
    let mut sock = NfqSocket::open().expect("netlink socket");
    sock.set_rcvbuf(8 << 20).expect("receive buffer");
    sock.set_timeout(Duration::from_millis(100))
        .expect("timeout");
    sock.queue.bind(QUEUE).expect("bind the queue");
    sock.queue
        .set_copy_range(QUEUE, ipqbdb_judge::packet::COPY_RANGE)
        .expect("copy range");
    sock.queue
        .set_queue_max_len(QUEUE, 8192)
        .expect("queue length");
    sock
}

#[test]
#[cfg_attr(
    not(feature = "root-tests"),
    ignore = "needs root (network namespaces, iptables): run with --features root-tests or --all-features"
)]
fn thousands_of_stops_under_a_flood_drop_nothing() {
    let j = Netns::new("stop-j");
    let c = Netns::new("stop-c");
    pair(&j, &["10.98.0.1/24"], &c, &["10.98.0.2/24", "10.98.0.3/24"]);
    // --queue-bypass: between two stops no socket listens, and the packets pass.
    j.must(&[
        "iptables",
        "-A",
        "INPUT",
        "-p",
        "udp",
        "--dport",
        "7100",
        "-j",
        "NFQUEUE",
        "--queue-num",
        "0",
        "--queue-bypass",
    ]);
    let rx = j.udp("10.98.0.1:7100");
    let dst: SocketAddr = "10.98.0.1:7100".parse().unwrap();
    // Bound before the flood starts (see the module's comment), in a thread inside the namespace,
    // which serves the queue while the stream runs.
    let (mut sock, mut batch, mut burst) = j.enter(|| {
        (
            bound_socket(),
            Batch::new(QUEUE),
            Burst::new(ipqbdb_judge::packet::COPY_RANGE),
        )
    });
    // Paced at what the receiving socket takes with room to spare, so a packet missing was lost in
    // the queue; bounded, the stops end it long before.
    let stream = Stream::start(&c, rx, dst, &["10.98.0.3"], "10.98.0.2", RATE, 50_000_000);
    let dropped: Vec<u64> = j.enter(|| {
        let started = Instant::now();
        let mut dropped = Vec::new();
        while started.elapsed() < FOR {
            dropped.push(serve_then_stop(&mut sock, &mut batch, &mut burst));
        }
        // The last stop for real: the closing messages, then the socket closes.
        sock.send(batch.closing())
            .expect("send the closing messages");
        drop(sock);
        dropped
    });
    let report = stream.finish();
    let stops = dropped.len();
    let stops_that_dropped = dropped.iter().filter(|&&d| d > 0).count();
    assert_eq!(
        dropped.iter().sum::<u64>(),
        0,
        "{stops_that_dropped} of {stops} stops dropped packets (the kernel's queue counters)"
    );
    assert!(stops >= 1000, "only {stops} stops in {FOR:?}");
    let sent = report.sent_from("10.98.0.3");
    assert!(
        sent > u64::from(RATE),
        "the flood was too thin to test anything: {sent} packets in {:?}",
        report.elapsed
    );
    assert_eq!(
        report.received_from("10.98.0.3"),
        sent,
        "every packet sent across {stops} stops arrives"
    );
}
