//! The block record and the reason record, with the byte layout every key-value backend stores.
//!
//! The layout starts with a version byte so that a future change, or a foreign file, is detected as such
//! instead of being misread as probabilities.

/// 100 %: probabilities are integers in `0..=P_MAX`.
pub const P_MAX: u32 = (1 << 31) - 1;

/// Identifier of a reason (description) record. 0 is never assigned.
pub type ReasonId = u32;

/// Seconds since the Unix epoch. Every function that needs "now" takes one of these from its caller,
/// so tests are exact and the daemons can reuse one clock read per batch.
pub type UnixTime = i64;

/// The state kept for one blocked address (or IPv6 prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Block probability at `last_update`, `0..=P_MAX`.
    pub probability: u32,
    /// Half-life of the probability, in seconds. 0 means never blocked.
    pub decay: u32,
    pub last_update: UnixTime,
    /// How many times the address was banned.
    pub caught: u64,
    /// How many packets the judge dropped (or marked).
    pub blocked: u64,
    pub reason: ReasonId,
}

const RECORD_VERSION: u8 = 1;

impl Record {
    pub const ENCODED_LEN: usize = 37;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0] = RECORD_VERSION;
        out[1..5].copy_from_slice(&self.probability.to_be_bytes());
        out[5..9].copy_from_slice(&self.decay.to_be_bytes());
        out[9..17].copy_from_slice(&self.last_update.to_be_bytes());
        out[17..25].copy_from_slice(&self.caught.to_be_bytes());
        out[25..33].copy_from_slice(&self.blocked.to_be_bytes());
        out[33..37].copy_from_slice(&self.reason.to_be_bytes());
        out
    }

    /// `None` when the bytes are not a record of this version: the caller reports corruption.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != Self::ENCODED_LEN || b[0] != RECORD_VERSION {
            return None;
        }
        let u32_at = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().unwrap());
        let u64_at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap());
        let probability = u32_at(1);
        if probability > P_MAX {
            return None;
        }
        Some(Record {
            probability,
            decay: u32_at(5),
            last_update: u64_at(9) as i64,
            caught: u64_at(17),
            blocked: u64_at(25),
            reason: u32_at(33),
        })
    }
}

/// A reason: the text a rule or command gives, its report category and the statistics of the block
/// records deleted while ascribed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub id: ReasonId,
    pub text: String,
    /// 0 = none, 1..=255 an external report category.
    pub category: u8,
    /// Sum of `caught` of deleted records.
    pub caught: u64,
    /// Sum of `blocked` of deleted records.
    pub blocked: u64,
}

impl Reason {
    /// Encodes everything but the id, which is the key.
    pub fn encode_value(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.text.len());
        out.push(RECORD_VERSION);
        out.push(self.category);
        out.extend_from_slice(&self.caught.to_be_bytes());
        out.extend_from_slice(&self.blocked.to_be_bytes());
        out.extend_from_slice(self.text.as_bytes());
        out
    }

    pub fn decode_value(id: ReasonId, b: &[u8]) -> Option<Self> {
        if b.len() < 18 || b[0] != RECORD_VERSION {
            return None;
        }
        Some(Reason {
            id,
            category: b[1],
            caught: u64::from_be_bytes(b[2..10].try_into().unwrap()),
            blocked: u64::from_be_bytes(b[10..18].try_into().unwrap()),
            text: String::from_utf8(b[18..].to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip() {
        let r = Record {
            probability: P_MAX,
            decay: 3600,
            last_update: -5,
            caught: u64::MAX,
            blocked: 7,
            reason: 42,
        };
        assert_eq!(Record::decode(&r.encode()), Some(r));
        let mut bad = r.encode();
        bad[0] = 9;
        assert_eq!(Record::decode(&bad), None);
        assert_eq!(Record::decode(&r.encode()[..36]), None);
        let mut too_big = r.encode();
        too_big[1] = 0xff;
        assert_eq!(Record::decode(&too_big), None);
    }

    #[test]
    fn reason_round_trip() {
        let r = Reason {
            id: 3,
            text: "sshd: invalid user ünïcode".into(),
            category: 18,
            caught: 5,
            blocked: 6,
        };
        assert_eq!(Reason::decode_value(3, &r.encode_value()), Some(r));
        assert_eq!(Reason::decode_value(3, &[1, 2]), None);
    }
}
