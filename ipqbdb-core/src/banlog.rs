//! The line every ban is logged as, in ipqbdb 2.x's shape, so that scripts reading the system log
//! for bans (2.x's READMEreportcategory recipe) keep working:
//!
//! ```text
//! new record for 192.0.2.1, 3.125%, decay 1h, sshd: failed password, 22
//! old record for 192.0.2.1, 6.250%, decay 1h, sshd: failed password
//! ```
//!
//! `new` when the ban inserted the record, `old` when it raised an existing one; then three fields:
//! the block probability after the ban, the record's decay (half-life), and the reason of the ban; then, with `--log-category`, the reason's report category (0: none). The
//! fields are separated by `, ` and never contain a comma: a comma in a reason is written as `;`,
//! as the recipe splits on commas (2.x asked for reasons without commas instead).

use std::fmt;
use std::net::IpAddr;

use crate::model::{BanKind, BanOutcome};
use crate::units::format_duration;

/// One ban's line; `None` from [`BanLine::new`] for a whitelisted address (nothing was written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanLine<'a> {
    address: IpAddr,
    new: bool,
    probability: u32,
    decay: u32,
    reason: &'a str,
    category: Option<u8>,
}

impl<'a> BanLine<'a> {
    /// The line for the ban of `address` that had `outcome` under `reason`, with the reason's
    /// `category` when the program logs categories.
    pub fn new(
        address: IpAddr,
        outcome: &BanOutcome,
        reason: &'a str,
        category: Option<u8>,
    ) -> Option<BanLine<'a>> {
        let record = outcome.record?;
        Some(BanLine {
            address,
            new: outcome.kind == BanKind::New,
            probability: record.probability,
            decay: record.decay,
            reason,
            category,
        })
    }
}

impl fmt::Display for BanLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} record for {}, {:.3}%, decay {}, ",
            if self.new { "new" } else { "old" },
            self.address,
            crate::percent(self.probability),
            format_duration(self.decay),
        )?;
        f.write_str(&self.reason.replace(',', ";"))?;
        if let Some(c) = self.category {
            write!(f, ", {c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::P_MAX;
    use crate::Record;

    fn outcome(kind: BanKind, probability: u32) -> BanOutcome {
        BanOutcome {
            kind,
            before: 0,
            record: (kind != BanKind::Whitelisted).then_some(Record {
                probability,
                decay: 3600,
                last_update: 0,
                caught: 1,
                blocked: 0,
                reason: 1,
            }),
            reached_max: false,
            decay_grew: false,
            reason_replaced: false,
        }
    }

    #[test]
    fn the_2x_shape() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let new = outcome(BanKind::New, P_MAX / 32);
        let line = BanLine::new(ip, &new, "sshd: failed password", Some(22)).unwrap();
        assert_eq!(
            line.to_string(),
            "new record for 192.0.2.1, 3.125%, decay 1h, sshd: failed password, 22"
        );
        let old = outcome(BanKind::Raised, P_MAX / 16);
        let line = BanLine::new(ip, &old, "web, login, admin", None).unwrap();
        assert_eq!(
            line.to_string(),
            "old record for 192.0.2.1, 6.250%, decay 1h, web; login; admin"
        );
        assert_eq!(
            BanLine::new(ip, &outcome(BanKind::Whitelisted, 0), "r", None),
            None
        );
    }
}
