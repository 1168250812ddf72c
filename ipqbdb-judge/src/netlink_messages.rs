//! The NFQUEUE messages the judge sends itself, because `nfq` 0.2.5 sends one verdict per `sendto`
//! and has no batch verdict: single verdicts (with an optional mark), `NFQNL_MSG_VERDICT_BATCH`
//! (every queued packet of the queue up to an id), the binding with its whole configuration in one
//! message, and the queue configuration a stop needs.
//! Several messages go into one buffer, which the kernel reads as one datagram: one system call
//! answers a whole receive burst.
//!
//! Layouts are those of `linux/netlink.h` and `linux/netfilter/nfnetlink_queue.h`: netlink headers
//! and attribute headers in host byte order, nfnetlink payloads (queue number, verdict, id, mark,
//! configuration values) in network byte order, everything padded to four bytes.

/// `NFNL_SUBSYS_QUEUE`, in the high byte of every message type.
const SUBSYS_QUEUE: u16 = 3;
const MSG_VERDICT: u16 = 1;
const MSG_CONFIG: u16 = 2;
const MSG_VERDICT_BATCH: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NFQA_VERDICT_HDR: u16 = 2;
const NFQA_MARK: u16 = 3;
const NFQA_CFG_CMD: u16 = 1;
const NFQA_CFG_PARAMS: u16 = 2;
const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
const NFQA_CFG_MASK: u16 = 4;
const NFQA_CFG_FLAGS: u16 = 5;
const NFQA_CFG_F_FAIL_OPEN: u32 = 1;
const NFQA_CFG_F_GSO: u32 = 4;
const NFQNL_CFG_CMD_BIND: u8 = 1;
const NFQNL_COPY_META: u8 = 1;
const NFQNL_COPY_PACKET: u8 = 2;
/// The sequence number of a binding, to tell its answer from the kernel's answers to verdicts
/// (which go out with 0).
pub const BIND_SEQ: u32 = 1;
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;
/// `nlmsghdr` (16 bytes) and `nfgenmsg` (4).
const HEADERS: usize = 20;

/// What the kernel is told to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    /// Accept with this mark, for a later rule to act on.
    Mark(u32),
}

impl Verdict {
    fn code_and_mark(self) -> (u32, Option<u32>) {
        match self {
            Verdict::Accept => (NF_ACCEPT, None),
            Verdict::Drop => (NF_DROP, None),
            Verdict::Mark(m) => (NF_ACCEPT, Some(m)),
        }
    }
}

/// How a queue is set up when it is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSetup {
    /// Bytes of each packet copied to the judge (0: metadata only).
    pub copy_range: u16,
    pub max_len: u32,
    /// Accept what does not fit in the queue, instead of dropping it.
    pub fail_open: bool,
    /// Queue large offloaded (GSO) packets whole.
    pub gso: bool,
}

/// Netlink messages waiting to be sent together.
#[derive(Debug, Default)]
pub struct Messages {
    buf: Vec<u8>,
}

impl Messages {
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The verdict for the one packet `id` of `queue`.
    pub fn verdict(&mut self, queue: u16, id: u32, verdict: Verdict) {
        self.verdict_message(MSG_VERDICT, queue, id, verdict);
    }

    /// The verdict for every packet of `queue` still waiting with an id up to `max_id` (in the
    /// kernel's wrapping order): one message for a run of packets.
    pub fn batch(&mut self, queue: u16, max_id: u32, verdict: Verdict) {
        self.verdict_message(MSG_VERDICT_BATCH, queue, max_id, verdict);
    }

    /// Binds `queue` to the sending socket and sets it up, in one message that asks for the
    /// kernel's answer (sequence number [`BIND_SEQ`]). One message, because until a new binding
    /// has its copy mode the kernel drops every packet that arrives for it, even under a rule with
    /// `--queue-bypass`: set in the same message, the copy mode follows the binding within the
    /// kernel's handling of that message, not a system call later.
    pub fn bind(&mut self, queue: u16, setup: &QueueSetup) {
        let start = self.header_with(MSG_CONFIG, queue, NLM_F_REQUEST | NLM_F_ACK, BIND_SEQ);
        // nfqnl_msg_config_cmd: command, padding, protocol family (0: any).
        self.attr_header(NFQA_CFG_CMD, 4);
        self.buf.extend_from_slice(&[NFQNL_CFG_CMD_BIND, 0, 0, 0]);
        // nfqnl_msg_config_params, packed: the copy range, the copy mode; padded to four bytes.
        self.attr_header(NFQA_CFG_PARAMS, 5);
        self.buf
            .extend_from_slice(&u32::from(setup.copy_range).to_be_bytes());
        self.buf.push(if setup.copy_range == 0 {
            NFQNL_COPY_META
        } else {
            NFQNL_COPY_PACKET
        });
        self.buf.extend_from_slice(&[0; 3]);
        self.attr_u32(NFQA_CFG_QUEUE_MAXLEN, setup.max_len);
        let flags = if setup.fail_open {
            NFQA_CFG_F_FAIL_OPEN
        } else {
            0
        } | if setup.gso { NFQA_CFG_F_GSO } else { 0 };
        self.attr_u32(NFQA_CFG_FLAGS, flags);
        self.attr_u32(NFQA_CFG_MASK, NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO);
        self.finish(start);
    }

    /// Makes `queue` take no new packet (length 0) and accept what it cannot take (fail-open):
    /// sent just before a stop's last batch, so nothing is still queued when the socket closes,
    /// which would make the kernel drop it.
    ///
    /// Two messages, fail-open first: the kernel applies a message's length before its flags, each
    /// under its own lock, so one message would leave an instant in which the queue is full and
    /// still fail-closed, and a packet arriving then would be dropped.
    pub fn refuse_new_packets(&mut self, queue: u16) {
        let start = self.header(MSG_CONFIG, queue);
        self.attr_u32(NFQA_CFG_FLAGS, NFQA_CFG_F_FAIL_OPEN);
        self.attr_u32(NFQA_CFG_MASK, NFQA_CFG_F_FAIL_OPEN);
        self.finish(start);
        let start = self.header(MSG_CONFIG, queue);
        self.attr_u32(NFQA_CFG_QUEUE_MAXLEN, 0);
        self.finish(start);
    }

    fn verdict_message(&mut self, kind: u16, queue: u16, id: u32, verdict: Verdict) {
        let (code, mark) = verdict.code_and_mark();
        let start = self.header(kind, queue);
        // nfqnl_msg_verdict_hdr: verdict, id.
        self.attr_header(NFQA_VERDICT_HDR, 8);
        self.buf.extend_from_slice(&code.to_be_bytes());
        self.buf.extend_from_slice(&id.to_be_bytes());
        if let Some(m) = mark {
            self.attr_u32(NFQA_MARK, m);
        }
        self.finish(start);
    }

    /// Starts a message; its length is written by [`Messages::finish`].
    fn header(&mut self, kind: u16, queue: u16) -> usize {
        self.header_with(kind, queue, NLM_F_REQUEST, 0)
    }

    fn header_with(&mut self, kind: u16, queue: u16, flags: u16, seq: u32) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len
        self.buf
            .extend_from_slice(&((SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
                                                         // nfgenmsg: AF_UNSPEC, NFNETLINK_V0, the queue number.
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&queue.to_be_bytes());
        debug_assert_eq!(self.buf.len() - start, HEADERS);
        start
    }

    fn attr_header(&mut self, kind: u16, payload: u16) {
        self.buf.extend_from_slice(&(4 + payload).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
    }

    fn attr_u32(&mut self, kind: u16, value: u32) {
        self.attr_header(kind, 4);
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    fn finish(&mut self, start: usize) {
        // Every attribute here is padded to four bytes as it is written.
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of a message: headers in host order, payloads in network order.
    fn header(len: u32, kind: u16, queue: u16) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&(0x0300 | kind).to_ne_bytes());
        v.extend_from_slice(&1u16.to_ne_bytes());
        v.extend_from_slice(&[0; 8]);
        v.extend_from_slice(&[0, 0]);
        v.extend_from_slice(&queue.to_be_bytes());
        v
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&(4 + payload.len() as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn a_single_drop() {
        let mut m = Messages::default();
        m.verdict(7, 0x0102_0304, Verdict::Drop);
        let mut want = header(32, 1, 7);
        want.extend(attr(2, &[0, 0, 0, 0, 1, 2, 3, 4]));
        assert_eq!(m.as_bytes(), &want[..]);
        // Spelled out on a little-endian host, as the kernel reads it.
        #[cfg(target_endian = "little")]
        assert_eq!(
            m.as_bytes(),
            &[
                32, 0, 0, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, // nlmsghdr
                0, 0, 0, 7, // nfgenmsg: AF_UNSPEC, v0, queue 7 (big endian)
                12, 0, 2, 0, // NFQA_VERDICT_HDR, 12 bytes
                0, 0, 0, 0, // NF_DROP
                1, 2, 3, 4, // packet id
            ][..]
        );
    }

    #[test]
    fn a_marked_accept_carries_the_mark() {
        let mut m = Messages::default();
        m.verdict(1, 9, Verdict::Mark(0xdead_beef));
        let mut want = header(40, 1, 1);
        want.extend(attr(2, &[0, 0, 0, 1, 0, 0, 0, 9]));
        want.extend(attr(3, &[0xde, 0xad, 0xbe, 0xef]));
        assert_eq!(m.as_bytes(), &want[..]);
    }

    #[test]
    fn messages_share_a_buffer_in_order() {
        let mut m = Messages::default();
        m.verdict(0, 5, Verdict::Drop);
        m.batch(0, 8, Verdict::Accept);
        let mut want = header(32, 1, 0);
        want.extend(attr(2, &[0, 0, 0, 0, 0, 0, 0, 5]));
        want.extend(header(32, 3, 0));
        want.extend(attr(2, &[0, 0, 0, 1, 0, 0, 0, 8]));
        assert_eq!(m.as_bytes(), &want[..]);
        m.clear();
        assert!(m.is_empty());
    }

    #[test]
    fn a_binding_carries_its_whole_setup_and_asks_for_an_answer() {
        let mut m = Messages::default();
        m.bind(
            0x0102,
            &QueueSetup {
                copy_range: 64,
                max_len: 8192,
                fail_open: false,
                gso: true,
            },
        );
        let mut want = Vec::new();
        want.extend_from_slice(&64u32.to_ne_bytes());
        want.extend_from_slice(&0x0302u16.to_ne_bytes()); // subsystem queue, config
        want.extend_from_slice(&5u16.to_ne_bytes()); // request, ack
        want.extend_from_slice(&BIND_SEQ.to_ne_bytes());
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(&[0, 0, 1, 2]);
        want.extend(attr(1, &[1, 0, 0, 0])); // bind, any family
        want.extend(attr(2, &[0, 0, 0, 64, 2])); // copy 64 bytes of the packet
        want.extend_from_slice(&[0; 3]); // padding of the packed params
        want.extend(attr(3, &8192u32.to_be_bytes()));
        want.extend(attr(5, &[0, 0, 0, 4])); // GSO, not fail-open
        want.extend(attr(4, &[0, 0, 0, 5])); // the two flags it sets or clears
        assert_eq!(m.as_bytes(), &want[..]);
        m.clear();
        m.bind(
            0,
            &QueueSetup {
                copy_range: 0,
                max_len: 1,
                fail_open: true,
                gso: false,
            },
        );
        assert_eq!(m.as_bytes()[32..37], [0, 0, 0, 0, 1], "metadata only");
        assert_eq!(m.as_bytes()[52..56], [0, 0, 0, 1], "fail-open");
    }

    #[test]
    fn refusing_new_packets_sets_length_zero_and_fail_open() {
        let mut m = Messages::default();
        m.refuse_new_packets(0x1234);
        // Fail-open in a message before the length: never full and fail-closed at once.
        let mut want = header(36, 2, 0x1234);
        want.extend(attr(5, &[0, 0, 0, 1]));
        want.extend(attr(4, &[0, 0, 0, 1]));
        want.extend(header(28, 2, 0x1234));
        want.extend(attr(3, &[0, 0, 0, 0]));
        assert_eq!(m.as_bytes(), &want[..]);
    }
}
