//! The baselines of the judge benchmark: NFQUEUE loops that accept every packet, on a socket set up
//! exactly as ibd-judge sets up its own (receive buffer, copy range, queue length, timeout, GSO).
//! `per-packet` answers each packet with its own message and send (what `nfq` alone does);
//! `batch` receives bursts with one `recvmmsg` and answers each with one batch verdict, as the judge
//! does (`ipqbdb_judge::receive`, `ipqbdb_judge::batch`): the judge's loop without the judging.
//! Usage: ipqbdb-nfq-accept-all QUEUE per-packet|batch   (SIGTERM ends it and prints the count)

use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipqbdb_judge::batch::VerdictBatch;
use ipqbdb_judge::netlink::NfqSocket;
use ipqbdb_judge::netlink_messages::{QueueSetup, Verdict};
use ipqbdb_judge::receive::{parse, Burst, Item};

fn main() {
    let mut args = std::env::args().skip(1);
    let q: u16 = args.next().and_then(|a| a.parse().ok()).expect(USAGE);
    let batched = match args.next().as_deref() {
        Some("per-packet") => false,
        Some("batch") => true,
        _ => panic!("{USAGE}"),
    };
    let mut sock = NfqSocket::open().expect("socket");
    sock.set_rcvbuf(16_000_000).expect("rcvbuf");
    sock.set_timeout(Duration::from_millis(100))
        .expect("timeout");
    sock.queue.set_recv_enobufs(true).expect("enobufs");
    sock.bind(
        q,
        &QueueSetup {
            copy_range: ipqbdb_judge::packet::COPY_RANGE,
            max_len: 8192,
            fail_open: false,
            gso: true,
        },
    )
    .expect("bind");
    let signals = ipqbdb_runtime::signals::Signals::register().expect("signals");
    eprintln!(
        "accept-all ({}): listening on queue {q}",
        if batched { "batch" } else { "per-packet" }
    );
    let (mut n, mut errors) = (0u64, 0u64);
    let mut batch = VerdictBatch::new(q);
    let mut burst = Burst::new(ipqbdb_judge::packet::COPY_RANGE);
    while !signals.terminate.load(Ordering::Relaxed) {
        if !batched {
            match sock.queue.recv() {
                Ok(mut msg) => {
                    msg.set_verdict(nfq::Verdict::Accept);
                    if sock.queue.verdict(msg).is_err() {
                        errors += 1;
                    }
                    n += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => errors += 1,
            }
            continue;
        }
        match burst.recv(sock.fd(), true) {
            Ok(_) => {
                for d in burst.datagrams() {
                    parse(d, |item| match item {
                        Item::Packet { id, .. } => {
                            batch.add(id, Verdict::Accept);
                            n += 1;
                        }
                        _ => errors += 1,
                    });
                }
                if sock.send(batch.take()).is_err() {
                    errors += 1;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => errors += 1,
        }
    }
    println!("{n} packets {errors} errors");
}

const USAGE: &str = "usage: ipqbdb-nfq-accept-all QUEUE per-packet|batch";
