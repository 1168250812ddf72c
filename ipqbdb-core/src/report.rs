//! What an abuse-database reporter remembers about one address, with its byte layout.
//!
//! `ibd report` keeps one [`ReportState`] per banned key in the store's `report` table, written in
//! the transaction that starts an attempt and again in the one that records its outcome, so that a
//! crash between the two is visible afterwards (the state stays [`ReportKind::Sent`]).

use crate::record::UnixTime;

/// Where an address's latest report attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The request is being sent (or was, by a process that died before recording the answer): the
    /// abuse database may or may not have it. It is never sent again.
    Sent,
    /// The abuse database accepted it (2xx).
    Accepted,
    /// The abuse database refused it for good (a 4xx other than 429): sending it again would be
    /// refused again.
    Refused,
    /// The request went out but no answer came (a timeout while waiting for it): like `Sent`, the
    /// abuse database may have it, so it is not sent again.
    InDoubt,
}

impl ReportKind {
    fn code(self) -> u8 {
        match self {
            ReportKind::Sent => 1,
            ReportKind::Accepted => 2,
            ReportKind::Refused => 3,
            ReportKind::InDoubt => 4,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => ReportKind::Sent,
            2 => ReportKind::Accepted,
            3 => ReportKind::Refused,
            4 => ReportKind::InDoubt,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ReportKind::Sent => "sent",
            ReportKind::Accepted => "accepted",
            ReportKind::Refused => "refused",
            ReportKind::InDoubt => "in-doubt",
        }
    }
}

/// The latest report attempt for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportState {
    pub kind: ReportKind,
    /// The record's `last_update` (its latest ban) that this attempt reported: a later ban is news.
    pub ban_time: UnixTime,
    /// When the attempt started; the cooldown runs from here.
    pub at: UnixTime,
    /// The HTTP status of the answer, 0 while none is known.
    pub status: u16,
}

const STATE_VERSION: u8 = 1;

impl ReportState {
    pub const ENCODED_LEN: usize = 20;

    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut out = [0u8; Self::ENCODED_LEN];
        out[0] = STATE_VERSION;
        out[1] = self.kind.code();
        out[2..10].copy_from_slice(&self.ban_time.to_be_bytes());
        out[10..18].copy_from_slice(&self.at.to_be_bytes());
        out[18..20].copy_from_slice(&self.status.to_be_bytes());
        out
    }

    /// `None` when the bytes are not a state of this version: the caller reports corruption.
    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != Self::ENCODED_LEN || b[0] != STATE_VERSION {
            return None;
        }
        let i64_at = |i: usize| i64::from_be_bytes(b[i..i + 8].try_into().unwrap());
        Some(ReportState {
            kind: ReportKind::from_code(b[1])?,
            ban_time: i64_at(2),
            at: i64_at(10),
            status: u16::from_be_bytes([b[18], b[19]]),
        })
    }
}

/// The UTC day of `t` (days since the epoch): AbuseIPDB's daily limits reset at midnight UTC.
pub fn utc_day(t: UnixTime) -> i64 {
    t.div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        for kind in [
            ReportKind::Sent,
            ReportKind::Accepted,
            ReportKind::Refused,
            ReportKind::InDoubt,
        ] {
            let s = ReportState {
                kind,
                ban_time: -5,
                at: 1_700_000_000,
                status: 429,
            };
            assert_eq!(ReportState::decode(&s.encode()), Some(s));
        }
        let mut bad = ReportState {
            kind: ReportKind::Sent,
            ban_time: 1,
            at: 2,
            status: 0,
        }
        .encode();
        bad[1] = 9;
        assert_eq!(ReportState::decode(&bad), None);
        bad[1] = 1;
        bad[0] = 2;
        assert_eq!(ReportState::decode(&bad), None);
        assert_eq!(ReportState::decode(&bad[..19]), None);
    }

    #[test]
    fn days_are_utc() {
        assert_eq!(utc_day(0), 0);
        assert_eq!(utc_day(86_399), 0);
        assert_eq!(utc_day(86_400), 1);
        assert_eq!(utc_day(-1), -1);
    }
}
