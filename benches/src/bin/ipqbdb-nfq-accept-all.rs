//! The baseline of the judge benchmark: an NFQUEUE loop that accepts every packet, on a socket set up
//! exactly as ibd-judge sets up its own (receive buffer, copy range, queue length, timeout).
//! Usage: ipqbdb-nfq-accept-all QUEUE   (SIGTERM ends it and prints the packet count)

use std::sync::atomic::Ordering;
use std::time::Duration;

use ipqbdb_judge::netlink::NfqSocket;

fn main() {
    let q: u16 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: ipqbdb-nfq-accept-all QUEUE");
    let mut sock = NfqSocket::open().expect("socket");
    sock.set_rcvbuf(16_000_000).expect("rcvbuf");
    sock.set_timeout(Duration::from_millis(100))
        .expect("timeout");
    sock.queue.set_recv_enobufs(true).expect("enobufs");
    sock.queue.bind(q).expect("bind");
    sock.queue
        .set_copy_range(q, ipqbdb_judge::packet::COPY_RANGE)
        .expect("copy range");
    sock.queue.set_queue_max_len(q, 8192).expect("max len");
    let signals = ipqbdb_core::process::Signals::register().expect("signals");
    eprintln!("accept-all: listening on queue {q}");
    let (mut n, mut errors) = (0u64, 0u64);
    while !signals.terminate.load(Ordering::Relaxed) {
        match sock.queue.recv() {
            Ok(mut msg) => {
                msg.set_verdict(nfq::Verdict::Accept);
                if sock.queue.verdict(msg).is_err() {
                    errors += 1;
                }
                n += 1;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => errors += 1,
        }
    }
    println!("{n} packets {errors} errors");
}
