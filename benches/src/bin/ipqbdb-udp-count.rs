//! Counts UDP packets for the judge benchmark until COUNT arrive or none arrives for IDLE_MS.
//! Prints `received N rate R` where R is packets per second between the first and last arrival.
//! Usage: ipqbdb-udp-count BIND:PORT COUNT IDLE_MS   (prints "ready" once bound)

use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sock = UdpSocket::bind(&args[1]).expect("bind");
    let count: u64 = args[2].parse().expect("count");
    let idle = Duration::from_millis(args[3].parse().expect("idle ms"));
    let size: libc::c_int = 64 << 20;
    // SAFETY: SO_RCVBUFFORCE with a valid int.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&size as *const libc::c_int).cast(),
            4,
        );
    }
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    println!("ready");
    // recvmmsg: the receiver shares the machine's cores with the sender and the judge, so it
    // takes what has arrived in one call rather than one packet per call.
    const BATCH: usize = 64;
    let mut bufs = [[0u8; 64]; BATCH];
    let mut iov: Vec<libc::iovec> = bufs
        .iter_mut()
        .map(|b| libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|io| {
            // SAFETY: a zeroed mmsghdr is a valid empty header; the buffer is set below.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = io;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    let (mut n, mut first, mut last) = (0u64, None, Instant::now());
    while n < count {
        let want = BATCH.min((count - n) as usize) as u32;
        // SAFETY: msgs holds `want` or more valid headers whose buffers outlive the call. The
        // socket's receive timeout bounds the wait for the first packet.
        let got = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                want,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if got <= 0 {
            break;
        }
        n += got as u64;
        last = Instant::now();
        if first.is_none() {
            first = Some(last);
            sock.set_read_timeout(Some(idle)).unwrap();
        }
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!(
        "received {n} rate {:.0}",
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    );
}
