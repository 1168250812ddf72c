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
    let mut buf = [0u8; 64];
    let (mut n, mut first, mut last) = (0u64, None, Instant::now());
    while n < count {
        match sock.recv(&mut buf) {
            Ok(_) => {
                n += 1;
                last = Instant::now();
                first.get_or_insert(last);
                sock.set_read_timeout(Some(idle)).unwrap();
            }
            Err(_) => break,
        }
    }
    let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    println!(
        "received {n} rate {:.0}",
        if secs > 0.0 { n as f64 / secs } else { 0.0 }
    );
}
