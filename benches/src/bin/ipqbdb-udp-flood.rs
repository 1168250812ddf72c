//! Sends UDP packets for the judge benchmark, with sendmmsg, optionally paced.
//! Usage: ipqbdb-udp-flood SRC[,SRC...] DST:PORT COUNT [PPS]
//! Sources take turns per batch. Prints the number sent and the rate achieved.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const BATCH: usize = 64;

fn send_batch(sock: &UdpSocket, dst: &SocketAddr, n: usize) -> usize {
    let payload = [0u8; 16];
    let addr: libc::sockaddr_in = match dst {
        SocketAddr::V4(a) => libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*a.ip()).to_be(),
            },
            sin_zero: [0; 8],
        },
        SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let mut iov = vec![
        libc::iovec {
            iov_base: payload.as_ptr() as *mut _,
            iov_len: payload.len()
        };
        n
    ];
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|io| {
            // SAFETY: a zeroed mmsghdr is a valid empty header; fields set below.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_name = &addr as *const _ as *mut _;
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            h.msg_hdr.msg_iov = io;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: msgs points at n valid headers whose buffers outlive the call.
    let sent = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
    sent.max(0) as usize
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        panic!("usage: ipqbdb-udp-flood SRC[,SRC...] DST:PORT COUNT [PPS]");
    }
    let socks: Vec<UdpSocket> = args[1]
        .split(',')
        .map(|s| {
            UdpSocket::bind((s.parse::<std::net::IpAddr>().expect("source"), 0)).expect("bind")
        })
        .collect();
    let dst: SocketAddr = args[2].parse().expect("destination");
    let count: usize = args[3].parse().expect("count");
    let pps: Option<f64> = args.get(4).map(|p| p.parse().expect("pps"));
    let start = Instant::now();
    let mut sent = 0;
    let mut turn = 0;
    while sent < count {
        if let Some(pps) = pps {
            let due = start + Duration::from_secs_f64(sent as f64 / pps);
            while Instant::now() < due {
                std::hint::spin_loop();
            }
        }
        let n = BATCH.min(count - sent);
        let s = send_batch(&socks[turn % socks.len()], &dst, n);
        turn += 1;
        if s == 0 {
            std::thread::yield_now();
        }
        sent += s;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} in {secs:.3} s, {:.0} packets/s",
        sent as f64 / secs
    );
}
