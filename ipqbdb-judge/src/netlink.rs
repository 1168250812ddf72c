//! The NFQUEUE netlink socket, with the settings the `nfq` crate does not expose.
//!
//! `nfq::Queue` keeps its socket descriptor private. The receive buffer matters (with the default,
//! packets are lost in 100,000 packet/s bursts) and so does a receive timeout (the loop must wake up
//! to renew its snapshot and see signals). The descriptor is found soundly: the set of open
//! descriptors is compared before and after `Queue::open()` while no other thread runs, and the one
//! new descriptor must be an `AF_NETLINK` socket of protocol `NETLINK_NETFILTER`, checked with
//! `getsockopt(SO_DOMAIN / SO_PROTOCOL)`, before any option is set on it.

use std::collections::BTreeSet;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::netlink_messages::{Messages, QueueSetup, BIND_SEQ};
use crate::receive::answer;

pub struct NfqSocket {
    pub queue: nfq::Queue,
    fd: RawFd,
}

fn open_fds() -> io::Result<BTreeSet<RawFd>> {
    let mut fds = BTreeSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        if let Some(fd) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) {
            fds.insert(fd);
        }
    }
    // The listing's own directory descriptor is closed by now; its number may be reused next.
    // SAFETY: F_GETFD only queries a descriptor number.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1);
    Ok(fds)
}

fn sockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(v)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set_sockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: passes a valid pointer and the exact size of `value`.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl NfqSocket {
    /// Opens the queue socket. Must be called before the process starts threads that open files.
    pub fn open() -> io::Result<Self> {
        let before = open_fds()?;
        let queue = nfq::Queue::open()?;
        let after = open_fds()?;
        let mut new: Vec<RawFd> = after
            .difference(&before)
            .copied()
            .filter(|&fd| {
                sockopt_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN).ok() == Some(libc::AF_NETLINK)
                    && sockopt_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL).ok()
                        == Some(libc::NETLINK_NETFILTER)
            })
            .collect();
        match (new.pop(), new.is_empty()) {
            (Some(fd), true) => Ok(NfqSocket { queue, fd }),
            _ => Err(io::Error::other(
                "cannot identify the NFQUEUE socket among the open descriptors",
            )),
        }
    }

    /// Sets the receive buffer, beyond `net.core.rmem_max` when the process has CAP_NET_ADMIN
    /// (`SO_RCVBUFFORCE`), and returns the size the kernel reports (twice the request, for its own
    /// bookkeeping).
    pub fn set_rcvbuf(&self, bytes: usize) -> io::Result<usize> {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        if set_sockopt(self.fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v).is_err() {
            set_sockopt(self.fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &v)?;
        }
        Ok(sockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_RCVBUF)? as usize)
    }

    /// Makes `recv` return `WouldBlock` after `timeout` without a packet.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        set_sockopt(self.fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// Binds `queue` with its whole setup in one message and waits for the kernel's answer (see
    /// `Messages::bind` for why one message). Packets may arrive before the answer; their
    /// messages are read here and the packets stay queued, to be accepted by the first batch
    /// verdict, which covers every id below its own.
    pub fn bind(&self, queue: u16, setup: &QueueSetup) -> io::Result<()> {
        let mut m = Messages::default();
        m.bind(queue, setup);
        self.send(m.as_bytes())?;
        // The answer is queued during the send; a few reads at most pass over packets first.
        let mut buf = vec![0u8; 1 << 16];
        loop {
            // SAFETY: reads at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the kernel did not answer the binding",
                        ))
                    }
                    _ => return Err(e),
                }
            }
            match answer(&buf[..n as usize], BIND_SEQ) {
                Some(0) => return Ok(()),
                Some(errno) => return Err(io::Error::from_raw_os_error(errno)),
                None => {}
            }
        }
    }

    /// The descriptor, for `receive::Burst`.
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// Sends netlink messages (see `netlink_messages.rs`) to the kernel in one datagram, on the socket
    /// `nfq` receives from: the kernel knows a queue's listener by its socket.
    pub fn send(&self, msgs: &[u8]) -> io::Result<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        // SAFETY: a zeroed sockaddr_nl with the family set addresses the kernel (pid 0).
        let mut to: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: `msgs` and `to` are valid for the lengths given.
            let rc = unsafe {
                libc::sendto(
                    self.fd,
                    msgs.as_ptr().cast(),
                    msgs.len(),
                    0,
                    (&to as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}
