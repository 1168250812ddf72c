//! Reasons: the text index, report categories and the counters credited by deleted records.

use std::path::Path;

use ipqbdb_core::{Reason, ReasonId};

use super::engine::Writes;
use super::values::{corrupt, MAX_REASON_LEN};
use crate::error::{Result, StoreError};
use crate::kv::{Direction, ReadTx, Table, WriteTx};

pub(super) fn reason_id<S: Writes>(s: &S, text: &str) -> Result<ReasonId> {
    let path = s.place_path();
    s.write_tx(&mut |tx| reason_id_in(tx, path, text))
}

pub(super) fn find_reason<S: Writes>(s: &S, text: &str) -> Result<Option<Reason>> {
    let path = s.place_path();
    s.read_tx(
        &mut |tx| match tx.get(Table::ReasonText, text.as_bytes())? {
            Some(v) => get_reason(tx, path, decode_id(path, &v)?),
            None => Ok(None),
        },
    )
}

pub(super) fn reason<S: Writes>(s: &S, id: ReasonId) -> Result<Option<Reason>> {
    let path = s.place_path();
    s.read_tx(&mut |tx| get_reason(tx, path, id))
}

pub(super) fn set_category<S: Writes>(s: &S, id: ReasonId, category: u8) -> Result<Reason> {
    let path = s.place_path();
    s.write_tx(&mut |tx| {
        let mut reason = get_reason(tx, path, id)?.ok_or(StoreError::NoSuchReason(id))?;
        reason.category = category;
        tx.put(Table::Reason, &id.to_be_bytes(), &reason.encode_value())?;
        Ok(reason)
    })
}

pub(super) fn reasons<S: Writes>(s: &S) -> Result<Vec<Reason>> {
    let path = s.place_path();
    s.read_tx(&mut |tx| all_reasons(tx, path))
}

pub(super) fn decode_id(path: &Path, v: &[u8]) -> Result<ReasonId> {
    let arr: [u8; 4] = v
        .try_into()
        .map_err(|_| corrupt(path, "a reason id of bad length"))?;
    Ok(u32::from_be_bytes(arr))
}

pub(super) fn get_reason(tx: &dyn ReadTx, path: &Path, id: ReasonId) -> Result<Option<Reason>> {
    match tx.get(Table::Reason, &id.to_be_bytes())? {
        Some(v) => Reason::decode_value(id, &v)
            .map(Some)
            .ok_or_else(|| corrupt(path, format!("an unreadable reason {id}"))),
        None => Ok(None),
    }
}

pub(super) fn all_reasons(tx: &dyn ReadTx, path: &Path) -> Result<Vec<Reason>> {
    let mut out = Vec::new();
    tx.scan(Table::Reason, &[], Direction::Forward, &mut |k, v| {
        let id = decode_id(path, k)?;
        out.push(
            Reason::decode_value(id, v)
                .ok_or_else(|| corrupt(path, format!("an unreadable reason {id}")))?,
        );
        Ok(true)
    })?;
    Ok(out)
}

/// A reason text too long is refused before it is looked up (LMDB bounds key lengths).
pub(super) fn check_reason_len(text: &str) -> Result<()> {
    if text.len() > MAX_REASON_LEN {
        return Err(StoreError::ReasonTooLong {
            len: text.len(),
            max: MAX_REASON_LEN,
        });
    }
    Ok(())
}

pub(super) fn reason_id_in(tx: &mut dyn WriteTx, path: &Path, text: &str) -> Result<ReasonId> {
    check_reason_len(text)?;
    if let Some(v) = tx.get(Table::ReasonText, text.as_bytes())? {
        return decode_id(path, &v);
    }
    new_reason_in(tx, path, text)
}

/// Gives `text`, known to have no id yet, the next one.
pub(super) fn new_reason_in(tx: &mut dyn WriteTx, path: &Path, text: &str) -> Result<ReasonId> {
    let mut last = 0;
    tx.scan(
        Table::Reason,
        &[0xff; 4],
        Direction::Backward,
        &mut |k, _| {
            last = decode_id(path, k)?;
            Ok(false)
        },
    )?;
    let id = last
        .checked_add(1)
        .ok_or_else(|| corrupt(path, "reason ids exhausted"))?;
    let reason = Reason {
        id,
        text: text.to_string(),
        category: 0,
        caught: 0,
        blocked: 0,
    };
    tx.put(Table::Reason, &id.to_be_bytes(), &reason.encode_value())?;
    tx.put(Table::ReasonText, text.as_bytes(), &id.to_be_bytes())?;
    Ok(id)
}
