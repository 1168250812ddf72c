//! Sends UDP packets for the judge benchmark, with sendmmsg, optionally paced.
//! Usage: ipqbdb-udp-flood [--raw IFACE DST-MAC] SRC[,SRC...] DST:PORT COUNT [PPS]
//! Sources take turns per batch. Prints the number sent and the rate achieved.
//!
//! `--raw` writes whole Ethernet frames to IFACE through a packet socket that bypasses the qdisc:
//! no routing, no UDP socket and no neighbour lookup on the sending side, so one sending core
//! leaves more of itself to the receiving stack (on a veth pair both run on the sender's core).
//! The benchmark needs that to load a receiver faster than the sender's own stack allows.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const BATCH: usize = 64;
const PAYLOAD: usize = 16;
/// Ethernet (14) + IPv4 (20) + UDP (8) + payload.
const FRAME: usize = 14 + 20 + 8 + PAYLOAD;

/// Where the packets go out.
enum Sender {
    /// One UDP socket per source address.
    Udp {
        socks: Vec<UdpSocket>,
        dst: SocketAddrV4,
    },
    /// A packet socket and one ready-made frame per source address.
    Raw {
        fd: OwnedFd,
        ifindex: i32,
        frames: Vec<[u8; FRAME]>,
    },
}

fn sockaddr_in(a: &SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// Sends up to `n` copies of `payload` to `name` (an address of `name_len` bytes, or none for a
/// connected or bound socket) in one sendmmsg; returns how many went.
fn sendmmsg(fd: i32, name: *const libc::c_void, name_len: u32, payload: &[u8], n: usize) -> usize {
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
            h.msg_hdr.msg_name = name as *mut _;
            h.msg_hdr.msg_namelen = name_len;
            h.msg_hdr.msg_iov = io;
            h.msg_hdr.msg_iovlen = 1;
            h
        })
        .collect();
    // SAFETY: msgs points at n valid headers whose buffers outlive the call.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), n as u32, 0) };
    sent.max(0) as usize
}

impl Sender {
    fn sources(&self) -> usize {
        match self {
            Sender::Udp { socks, .. } => socks.len(),
            Sender::Raw { frames, .. } => frames.len(),
        }
    }

    fn send_batch(&self, source: usize, n: usize) -> usize {
        match self {
            Sender::Udp { socks, dst } => {
                let addr = sockaddr_in(dst);
                sendmmsg(
                    socks[source].as_raw_fd(),
                    (&addr as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                    &[0u8; PAYLOAD],
                    n,
                )
            }
            Sender::Raw {
                fd,
                ifindex,
                frames,
            } => {
                let ll = sockaddr_ll(*ifindex);
                sendmmsg(
                    fd.as_raw_fd(),
                    (&ll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                    &frames[source],
                    n,
                )
            }
        }
    }
}

fn sockaddr_ll(ifindex: i32) -> libc::sockaddr_ll {
    // SAFETY: a zeroed sockaddr_ll is valid; fields set below.
    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    ll.sll_ifindex = ifindex;
    ll.sll_halen = 6;
    ll
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("a MAC address like 02:00:00:00:00:01"))
        .collect();
    v.try_into().expect("a MAC address of six bytes")
}

/// The frame one source sends: UDP without a checksum (allowed over IPv4), IP checksum computed.
fn frame(src_mac: [u8; 6], dst_mac: [u8; 6], src: SocketAddrV4, dst: SocketAddrV4) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + 8 + PAYLOAD) as u16).to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&src.port().to_be_bytes());
    udp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + PAYLOAD) as u16).to_be_bytes());
    f
}

fn raw_sender(iface: &str, dst_mac: &str, sources: &[Ipv4Addr], dst: SocketAddrV4) -> Sender {
    let src_mac = parse_mac(
        std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
            .expect("the interface's MAC address in /sys/class/net")
            .trim(),
    );
    let dst_mac = parse_mac(dst_mac);
    let name = std::ffi::CString::new(iface).expect("interface name");
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    assert!(ifindex > 0, "no interface {iface}");
    // Protocol 0: the socket sends only, it receives nothing.
    // SAFETY: plain socket call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(
        raw >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new descriptor, owned from here on.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid int.
    unsafe {
        libc::setsockopt(
            raw,
            libc::SOL_PACKET,
            20, // PACKET_QDISC_BYPASS
            (&one as *const libc::c_int).cast(),
            4,
        );
    }
    let frames = sources
        .iter()
        .enumerate()
        .map(|(i, &ip)| {
            frame(
                src_mac,
                dst_mac,
                SocketAddrV4::new(ip, 40000 + i as u16),
                dst,
            )
        })
        .collect();
    Sender::Raw {
        fd,
        ifindex,
        frames,
    }
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let raw = if args.first().map(String::as_str) == Some("--raw") {
        assert!(args.len() >= 3, "--raw IFACE DST-MAC");
        let r = (args[1].clone(), args[2].clone());
        args.drain(..3);
        Some(r)
    } else {
        None
    };
    if args.len() < 3 {
        panic!("usage: ipqbdb-udp-flood [--raw IFACE DST-MAC] SRC[,SRC...] DST:PORT COUNT [PPS]");
    }
    let sources: Vec<Ipv4Addr> = args[0]
        .split(',')
        .map(|s| s.parse().expect("an IPv4 source address"))
        .collect();
    let dst = match args[1].parse::<SocketAddr>().expect("destination") {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("IPv4 only"),
    };
    let count: usize = args[2].parse().expect("count");
    let pps: Option<f64> = args.get(3).map(|p| p.parse().expect("pps"));
    let sender = match raw {
        Some((iface, mac)) => raw_sender(&iface, &mac, &sources, dst),
        None => Sender::Udp {
            socks: sources
                .iter()
                .map(|&s| UdpSocket::bind((s, 0)).expect("bind"))
                .collect(),
            dst,
        },
    };
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
        let s = sender.send_batch(turn % sender.sources(), n);
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
