//! Receiving a burst of queued packets with one system call, which `nfq` 0.2.5 cannot: it reads one
//! datagram (one packet) per `recv`. `recvmmsg` with `MSG_WAITFORONE` waits for the first packet
//! (up to the socket's receive timeout) and takes whatever else is already there without waiting;
//! fewer datagrams than asked for means the burst is over, and the verdicts go out at once.
//!
//! The parser reads only what the judge needs from each `NFQNL_MSG_PACKET`: the queue number
//! (`nfgenmsg.res_id`), the packet id (`NFQA_PACKET_HDR`) and the payload (`NFQA_PAYLOAD`). A
//! netlink error message (the kernel's answer to a verdict it refused) is reported as such.

use std::io;
use std::os::fd::RawFd;

/// Datagrams per `recvmmsg`: the batch bound (`batch::MAX_HELD`) too.
pub const BURST: usize = 64;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// `NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET`.
const NFQ_PACKET: u16 = 3 << 8;
const NFQA_PACKET_HDR: u16 = 1;
const NFQA_PAYLOAD: u16 = 10;
/// `NLA_TYPE_MASK`: the type without the nested and byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;

/// One item of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Packet {
        queue: u16,
        id: u32,
        payload: &'a [u8],
    },
    /// A netlink error message with this (positive) errno.
    Error(i32),
    /// A message that cannot be read (too short, a length past the datagram's end, a packet
    /// without its header): the rest of the datagram is skipped. A packet lost this way is
    /// accepted by the next batch verdict.
    Malformed,
}

fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

/// The netlink messages of `datagram`, in order; `Err` for a length that cannot be right, after
/// which the rest of the datagram cannot be read.
fn messages(datagram: &[u8]) -> impl Iterator<Item = Result<&[u8], ()>> {
    let mut rest = datagram;
    std::iter::from_fn(move || {
        if rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32_ne(rest, 0) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            rest = &[];
            return Some(Err(()));
        }
        let msg = &rest[..len];
        rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
        Some(Ok(msg))
    })
}

/// The errno of an `NLMSG_ERROR` message (0: an acknowledgement), if it is one.
fn error_code(msg: &[u8]) -> Option<Result<i32, ()>> {
    (u16_ne(msg, 4) == NLMSG_ERROR).then(|| {
        msg.get(16..20)
            .map(|e| i32::from_ne_bytes(e.try_into().unwrap()).saturating_abs())
            .ok_or(())
    })
}

/// Calls `f` with every item of `datagram`, in order.
pub fn parse<'a>(datagram: &'a [u8], mut f: impl FnMut(Item<'a>)) {
    for msg in messages(datagram) {
        let Ok(msg) = msg else {
            f(Item::Malformed);
            return;
        };
        match u16_ne(msg, 4) {
            NLMSG_NOOP | NLMSG_DONE => {}
            // 0 is an acknowledgement: not an error.
            NLMSG_ERROR => match error_code(msg) {
                Some(Ok(0)) => {}
                Some(Ok(e)) => f(Item::Error(e)),
                _ => f(Item::Malformed),
            },
            NFQ_PACKET => f(packet(msg).unwrap_or(Item::Malformed)),
            _ => {}
        }
    }
}

/// The kernel's answer in `datagram` to the request sent with sequence number `seq`: `Some(0)`
/// for an acknowledgement, `Some(errno)` for a refusal, `None` if the datagram holds neither.
pub fn answer(datagram: &[u8], seq: u32) -> Option<i32> {
    messages(datagram).find_map(|msg| {
        let msg = msg.ok()?;
        // nlmsghdr: length, type, flags, then the sequence number at 8.
        (u32_ne(msg, 8) == seq).then(|| error_code(msg)?.ok())?
    })
}

fn packet(msg: &[u8]) -> Option<Item<'_>> {
    // nfgenmsg: family, version, res_id (the queue, big endian).
    let queue = u16::from_be_bytes(msg.get(18..20)?.try_into().ok()?);
    let mut attrs = msg.get(20..)?;
    let (mut id, mut payload) = (None, &[][..]);
    while attrs.len() >= 4 {
        let len = u16_ne(attrs, 0) as usize;
        if len < 4 || len > attrs.len() {
            return None;
        }
        let value = &attrs[4..len];
        match u16_ne(attrs, 2) & NLA_TYPE_MASK {
            NFQA_PACKET_HDR => id = Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?)),
            NFQA_PAYLOAD => payload = value,
            _ => {}
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Some(Item::Packet {
        queue,
        id: id?,
        payload,
    })
}

/// Buffers for one `recvmmsg`.
pub struct Burst {
    buf: Vec<u8>,
    size: usize,
    lens: [usize; BURST],
    count: usize,
}

impl Burst {
    /// Room for [`BURST`] datagrams of a packet copied up to `copy_range` bytes, with its
    /// metadata.
    pub fn new(copy_range: u16) -> Self {
        let size = 8192 + usize::from(copy_range).next_multiple_of(8);
        Burst {
            buf: vec![0; size * BURST],
            size,
            lens: [0; BURST],
            count: 0,
        }
    }

    /// The datagrams of the last receive.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.count).map(|i| &self.buf[i * self.size..i * self.size + self.lens[i]])
    }

    /// Receives up to [`BURST`] datagrams from `fd`: waits for the first (up to the socket's
    /// receive timeout) when `wait`, else returns `WouldBlock` at once when none is there.
    pub fn recv(&mut self, fd: RawFd, wait: bool) -> io::Result<usize> {
        self.count = 0;
        let mut iov: [libc::iovec; BURST] = std::array::from_fn(|i| libc::iovec {
            iov_base: self.buf[i * self.size..].as_mut_ptr().cast(),
            iov_len: self.size,
        });
        // SAFETY: an all-zero mmsghdr is valid (no name, no control data).
        let mut msgs: [libc::mmsghdr; BURST] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        let flags = if wait {
            libc::MSG_WAITFORONE
        } else {
            libc::MSG_DONTWAIT
        };
        let n = loop {
            // SAFETY: every iovec points into `self.buf` for `self.size` bytes, which outlive
            // the call; `msgs` holds BURST entries.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
                    BURST as libc::c_uint,
                    flags,
                    std::ptr::null_mut(),
                )
            };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        for (len, m) in self.lens.iter_mut().zip(&msgs[..n]) {
            // A datagram larger than its buffer (it cannot be: the kernel's messages are at most
            // a page plus the copy range) would be cut, and parse as malformed.
            *len = (m.msg_len as usize).min(self.size);
        }
        self.count = n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet message as the kernel builds it: headers in host order, payloads in network order.
    fn packet_msg(queue: u16, id: u32, payload: &[u8]) -> Vec<u8> {
        let mut attrs = Vec::new();
        let mut attr = |kind: u16, value: &[u8]| {
            attrs.extend_from_slice(&(4 + value.len() as u16).to_ne_bytes());
            attrs.extend_from_slice(&kind.to_ne_bytes());
            attrs.extend_from_slice(value);
            while attrs.len() % 4 != 0 {
                attrs.push(0);
            }
        };
        // nfqnl_msg_packet_hdr: id, hw_protocol 0x0800, hook 1 (7 bytes, padded).
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[8, 0, 1]);
        attr(NFQA_PACKET_HDR, &hdr);
        attr(5, &3u32.to_be_bytes()); // NFQA_IFINDEX_INDEV, skipped
        attr(NFQA_PAYLOAD | 0x4000, payload); // with the byte-order flag set
        let mut m = Vec::new();
        m.extend_from_slice(&(20 + attrs.len() as u32).to_ne_bytes());
        m.extend_from_slice(&NFQ_PACKET.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[2, 0]); // AF_INET, version 0
        m.extend_from_slice(&queue.to_be_bytes());
        m.extend(attrs);
        m
    }

    /// The kernel's `NLMSG_ERROR` answer to the request `seq`: errno negated, 0 for an
    /// acknowledgement, then the header of the request it answers.
    fn error_msg(seq: u32, errno: i32) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend_from_slice(&36u32.to_ne_bytes());
        e.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        e.extend_from_slice(&[0; 2]); // flags
        e.extend_from_slice(&seq.to_ne_bytes());
        e.extend_from_slice(&[0; 4]); // pid
        e.extend_from_slice(&(-errno).to_ne_bytes());
        e.extend_from_slice(&[0; 16]);
        e
    }

    fn items(d: &[u8]) -> Vec<Item<'_>> {
        let mut v = Vec::new();
        parse(d, |i| v.push(i));
        v
    }

    #[test]
    fn a_packet_message() {
        let payload = [0x45, 0, 0, 28, 1, 2, 3];
        let m = packet_msg(513, 0xdead_beef, &payload);
        #[cfg(target_endian = "little")]
        assert_eq!(
            &m[..32],
            &[
                52, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr
                2, 0, 2, 1, // nfgenmsg: queue 513
                11, 0, 1, 0, 0xde, 0xad, 0xbe, 0xef, 8, 0, 1, 0, // NFQA_PACKET_HDR
            ][..],
            "the layout the parser is tested against"
        );
        assert_eq!(
            items(&m),
            [Item::Packet {
                queue: 513,
                id: 0xdead_beef,
                payload: &payload
            }]
        );
    }

    #[test]
    fn several_messages_errors_and_acks() {
        let mut d = packet_msg(0, 1, &[0x45]);
        d.extend(error_msg(0, libc::ENOENT));
        d.extend(error_msg(0, 0)); // an acknowledgement
        d.extend(packet_msg(0, 2, &[]));
        assert_eq!(
            items(&d),
            [
                Item::Packet {
                    queue: 0,
                    id: 1,
                    payload: &[0x45]
                },
                Item::Error(libc::ENOENT),
                Item::Packet {
                    queue: 0,
                    id: 2,
                    payload: &[]
                },
            ]
        );
    }

    #[test]
    fn the_answer_to_a_request_is_found_among_packets() {
        let mut d = packet_msg(0, 1, &[0x45]);
        d.extend(error_msg(0, libc::ENOENT)); // the answer to another message
        assert_eq!(answer(&d, 7), None);
        d.extend(error_msg(7, 0));
        assert_eq!(answer(&d, 7), Some(0), "acknowledged");
        let mut refused = packet_msg(0, 2, &[]);
        refused.extend(error_msg(7, libc::EBUSY));
        assert_eq!(answer(&refused, 7), Some(libc::EBUSY));
        assert_eq!(answer(&refused[..20], 7), None, "cut short");
    }

    #[test]
    fn malformed_input_is_reported_not_trusted() {
        let m = packet_msg(0, 7, &[1, 2, 3, 4]);
        // A length past the end of the datagram.
        let mut long = m.clone();
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(items(&long), [Item::Malformed]);
        // An attribute past the end of its message.
        let mut bad_attr = m.clone();
        bad_attr[20..22].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(items(&bad_attr), [Item::Malformed]);
        // A packet without its header.
        let mut no_hdr = m.clone();
        no_hdr[22..24].copy_from_slice(&6u16.to_ne_bytes());
        assert_eq!(items(&no_hdr), [Item::Malformed]);
        // Too short for a header: nothing.
        assert_eq!(items(&m[..10]), []);
        assert_eq!(items(&[]), []);
        // A truncated datagram: the header fits, the payload attribute does not.
        assert_eq!(items(&m[..m.len() - 4]), [Item::Malformed]);
    }
}
