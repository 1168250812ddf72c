//! The bookkeeping of abuse reports: candidates, attempts started and finished, the daily quota.

use std::collections::HashMap;
use std::path::Path;

use ipqbdb_core::report::{utc_day, ReportState};
use ipqbdb_core::{AddrKey, Reason, ReasonId, UnixTime};

use super::engine::Writes;
use super::format::REPORT_DAY_KEY;
use super::reasons::get_reason;
use super::records::{get_record, scan_records};
use super::values::{corrupt, ReportBegin, ReportCandidate};
use super::white::white_lookup_in;
use crate::error::Result;
use crate::kv::{Direction, ReadTx, Table};

pub(super) fn report_candidates<S: Writes>(s: &S, since: UnixTime) -> Result<Vec<ReportCandidate>> {
    let path = s.place_path();
    s.read_tx(&mut |tx| {
        let mut reasons: HashMap<ReasonId, Option<Reason>> = HashMap::new();
        let mut found = Vec::new();
        scan_records(tx, path, None, &mut |key, rec| {
            if rec.last_update < since {
                return Ok(true);
            }
            let reason = match reasons.get(&rec.reason) {
                Some(r) => r.clone(),
                None => {
                    let r = get_reason(tx, path, rec.reason)?.filter(|r| r.category != 0);
                    reasons.insert(rec.reason, r.clone());
                    r
                }
            };
            if let Some(reason) = reason {
                found.push((key, *rec, reason));
            }
            Ok(true)
        })?;
        let mut out = Vec::with_capacity(found.len());
        for (key, record, reason) in found {
            out.push(ReportCandidate {
                key,
                record,
                reason,
                state: get_report_state(tx, path, key)?,
                whitelisted: white_lookup_in(tx, path, key)?.is_some(),
            });
        }
        Ok(out)
    })
}

pub(super) fn report_begin<S: Writes>(
    s: &S,
    key: AddrKey,
    expected: Option<ReportState>,
    started: ReportState,
    quota: Option<u32>,
) -> Result<ReportBegin> {
    let path = s.place_path();
    s.write_tx(&mut |tx| {
        // A pass reads its candidates once and reports them one by one: what an operator did
        // meanwhile (`ibd white`, `ibd del`) must still stop the report, so it is read again
        // in the transaction that decides.
        let same_ban =
            get_record(tx, path, key)?.is_some_and(|r| r.last_update == started.ban_time);
        if get_report_state(tx, path, key)? != expected
            || !same_ban
            || white_lookup_in(tx, path, key)?.is_some()
        {
            return Ok(ReportBegin::Changed);
        }
        let day = utc_day(started.at);
        let used = report_day_count(tx, path, day)?;
        if quota.is_some_and(|q| used >= q) {
            return Ok(ReportBegin::QuotaExhausted { used });
        }
        let mut count = [0u8; 12];
        count[..8].copy_from_slice(&day.to_be_bytes());
        count[8..].copy_from_slice(&used.saturating_add(1).to_be_bytes());
        tx.put(Table::Meta, REPORT_DAY_KEY, &count)?;
        tx.put(Table::Report, &key.to_bytes(), &started.encode())?;
        Ok(ReportBegin::Started)
    })
}

pub(super) fn report_finish<S: Writes>(
    s: &S,
    key: AddrKey,
    state: Option<ReportState>,
) -> Result<()> {
    s.write_tx(&mut |tx| {
        match state {
            Some(s) => tx.put(Table::Report, &key.to_bytes(), &s.encode())?,
            None => {
                tx.delete(Table::Report, &key.to_bytes())?;
            }
        }
        Ok(())
    })
}

pub(super) fn report_states<S: Writes>(s: &S) -> Result<Vec<(AddrKey, ReportState)>> {
    let path = s.place_path();
    s.read_tx(&mut |tx| {
        let mut out = Vec::new();
        tx.scan(Table::Report, &[], Direction::Forward, &mut |k, v| {
            out.push(decode_report_state(path, k, v)?);
            Ok(true)
        })?;
        Ok(out)
    })
}

pub(super) fn report_quota_used<S: Writes>(s: &S, now: UnixTime) -> Result<u32> {
    let path = s.place_path();
    s.read_tx(&mut |tx| report_day_count(tx, path, utc_day(now)))
}

pub(super) fn report_prune<S: Writes>(s: &S, before: UnixTime) -> Result<u64> {
    let path = s.place_path();
    let old = |tx: &dyn ReadTx| -> Result<Vec<AddrKey>> {
        let mut old = Vec::new();
        tx.scan(Table::Report, &[], Direction::Forward, &mut |k, v| {
            let (key, state) = decode_report_state(path, k, v)?;
            if state.at < before {
                old.push(key);
            }
            Ok(true)
        })?;
        Ok(old)
    };
    if s.read_tx(&mut |tx| old(tx))?.is_empty() {
        return Ok(0);
    }
    s.write_tx(&mut |tx| {
        let old = old(&*tx)?;
        for key in &old {
            tx.delete(Table::Report, &key.to_bytes())?;
        }
        Ok(old.len() as u64)
    })
}

fn decode_report_state(path: &Path, k: &[u8], v: &[u8]) -> Result<(AddrKey, ReportState)> {
    let key = AddrKey::from_bytes(k).ok_or_else(|| corrupt(path, "a report key of bad length"))?;
    let state = ReportState::decode(v)
        .ok_or_else(|| corrupt(path, format!("an unreadable report state for {key}")))?;
    Ok((key, state))
}

fn get_report_state(tx: &dyn ReadTx, path: &Path, key: AddrKey) -> Result<Option<ReportState>> {
    let bytes = key.to_bytes();
    match tx.get(Table::Report, &bytes)? {
        Some(v) => Ok(Some(decode_report_state(path, &bytes, &v)?.1)),
        None => Ok(None),
    }
}

/// Reports started on UTC day `day` (0 when the stored count is of another day).
fn report_day_count(tx: &dyn ReadTx, path: &Path, day: i64) -> Result<u32> {
    let Some(v) = tx.get(Table::Meta, REPORT_DAY_KEY)? else {
        return Ok(0);
    };
    if v.len() != 12 {
        return Err(corrupt(path, "a report day count of bad length"));
    }
    let stored = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
    Ok(if stored == day {
        u32::from_be_bytes(v[8..].try_into().expect("4 bytes"))
    } else {
        0
    })
}
