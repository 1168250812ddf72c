//! Verdicts held until the end of a receive burst, then answered with as few messages as the
//! kernel allows.
//!
//! Every guilty packet gets its own verdict (drop, or accept with a mark); the innocent ones are
//! answered together by one `NFQNL_MSG_VERDICT_BATCH` up to the highest innocent id, placed after
//! the guilty verdicts in the same send so it cannot reach a guilty packet first. The kernel
//! delivers a queue's packets in id order, so every id up to that one has been received and judged.
//!
//! The caller bounds the wait: it sends after each receive burst (`receive.rs`: what the socket
//! held, at most [`MAX_HELD`] packets), and before anything that takes it away from its socket.

use crate::netlink_messages::{Messages, Verdict};

/// Packets held at most before a send: bounds what a packet waits for during a long flood (at a few
/// microseconds a packet, well under a millisecond) and the size of one send (under 3 KB). One
/// receive burst at most, so the judge sends once per burst.
pub const MAX_HELD: usize = crate::receive::BURST;

/// How far past the last received id a stop's final batch reaches: every id the kernel can have
/// handed out since, in its wrapping comparison (`nfq_id_after`).
const REACH: u32 = i32::MAX as u32;

#[derive(Debug)]
pub struct VerdictBatch {
    queue: u16,
    msgs: Messages,
    /// Highest id of an innocent packet not yet answered.
    innocent_max: Option<u32>,
    held: usize,
    /// The last id received, for the final batch of a stop.
    last_id: u32,
    /// `msgs` were handed out to be sent: emptied before anything new is written.
    taken: bool,
}

impl VerdictBatch {
    pub fn new(queue: u16) -> Self {
        VerdictBatch {
            queue,
            msgs: Messages::default(),
            innocent_max: None,
            held: 0,
            last_id: 0,
            taken: false,
        }
    }

    /// Records the verdict of packet `id`.
    pub fn add(&mut self, id: u32, verdict: Verdict) {
        self.reset_if_taken();
        self.last_id = id;
        self.held += 1;
        match verdict {
            Verdict::Accept => self.innocent_max = Some(id),
            v => self.msgs.verdict(self.queue, id, v),
        }
    }

    /// Packets are waiting for their verdict to be sent.
    pub fn pending(&self) -> bool {
        self.held > 0
    }

    pub fn full(&self) -> bool {
        self.held >= MAX_HELD
    }

    /// How many packets the next [`VerdictBatch::take`] answers.
    pub fn held(&self) -> usize {
        self.held
    }

    /// The messages answering every held packet, for one send; empty when none is held. The batch
    /// is empty again afterwards, whether or not the send succeeds: a later batch accepts innocent
    /// packets a failed send left queued.
    pub fn take(&mut self) -> &[u8] {
        self.reset_if_taken();
        if let Some(max) = self.innocent_max.take() {
            self.msgs.batch(self.queue, max, Verdict::Accept);
        }
        self.held = 0;
        self.taken = true;
        self.msgs.as_bytes()
    }

    /// The messages of a stop, after the last [`VerdictBatch::take`]: no new packet enters the queue,
    /// and every packet still queued (received by the socket but not read) is accepted, so the
    /// kernel drops none when the socket closes.
    pub fn closing(&mut self) -> &[u8] {
        self.reset_if_taken();
        self.msgs.refuse_new_packets(self.queue);
        // Ids up to the last received first: the kernel's batch walks the queue in order and stops
        // at the first id past its bound, so one packet still queued from before (a verdict that
        // never took effect) would stop the forward batch there, and it and every packet after it
        // would be dropped when the socket closes.
        self.msgs.batch(self.queue, self.last_id, Verdict::Accept);
        self.msgs.batch(
            self.queue,
            self.last_id.wrapping_add(REACH),
            Verdict::Accept,
        );
        self.held = 0;
        self.taken = true;
        self.msgs.as_bytes()
    }

    fn reset_if_taken(&mut self) {
        if std::mem::take(&mut self.taken) {
            self.msgs.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect(f: impl FnOnce(&mut Messages)) -> Vec<u8> {
        let mut m = Messages::default();
        f(&mut m);
        m.as_bytes().to_vec()
    }

    #[test]
    fn guilty_verdicts_go_first_and_innocents_share_one_batch() {
        let mut b = VerdictBatch::new(3);
        assert!(!b.pending());
        assert!(b.take().is_empty(), "nothing held, nothing sent");
        b.add(10, Verdict::Accept);
        b.add(11, Verdict::Drop);
        b.add(12, Verdict::Accept);
        b.add(13, Verdict::Mark(4));
        assert!(b.pending());
        assert_eq!(b.held(), 4);
        let want = expect(|m| {
            m.verdict(3, 11, Verdict::Drop);
            m.verdict(3, 13, Verdict::Mark(4));
            m.batch(3, 12, Verdict::Accept);
        });
        assert_eq!(b.take(), &want[..]);
        assert!(!b.pending());
        // The next burst starts from an empty buffer.
        b.add(14, Verdict::Accept);
        assert_eq!(b.take(), &expect(|m| m.batch(3, 14, Verdict::Accept))[..]);
        b.add(15, Verdict::Drop);
        assert_eq!(b.take(), &expect(|m| m.verdict(3, 15, Verdict::Drop))[..]);
    }

    #[test]
    fn full_at_the_bound() {
        let mut b = VerdictBatch::new(0);
        for id in 1..MAX_HELD as u32 {
            b.add(id, Verdict::Accept);
            assert!(!b.full());
        }
        b.add(MAX_HELD as u32, Verdict::Drop);
        assert!(b.full());
        b.take();
        assert!(!b.full());
    }

    #[test]
    fn closing_accepts_everything_the_kernel_may_still_hold() {
        let mut b = VerdictBatch::new(2);
        assert_eq!(
            b.closing(),
            &expect(|m| {
                m.refuse_new_packets(2);
                m.batch(2, 0, Verdict::Accept);
                m.batch(2, i32::MAX as u32, Verdict::Accept);
            })[..],
            "before any packet, ids from 1 on"
        );
        b.add(u32::MAX - 1, Verdict::Drop);
        b.take();
        assert_eq!(
            b.closing(),
            &expect(|m| {
                m.refuse_new_packets(2);
                m.batch(2, u32::MAX - 1, Verdict::Accept);
                m.batch(
                    2,
                    (u32::MAX - 1).wrapping_add(i32::MAX as u32),
                    Verdict::Accept,
                );
            })[..],
            "ids wrap"
        );
    }
}
