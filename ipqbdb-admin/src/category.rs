//! `ibd category`: show, set or clear the report category of a reason.

use std::io::Write;

use ipqbdb_store::{Store, StoreError};

use crate::cli::CategoryArgs;
use crate::context::Context;
use crate::error::{AdminError, Result};

pub fn run(ctx: &Context, args: &CategoryArgs) -> Result<()> {
    let store = ctx.open(false)?;
    let reason = if args.id {
        let id: u32 = args.reason.parse().map_err(|_| {
            AdminError::Usage(format!("--id needs a reason number, not {:?}", args.reason))
        })?;
        store.reason(id)?.ok_or(StoreError::NoSuchReason(id))?
    } else {
        store
            .find_reason(&args.reason)?
            .ok_or_else(|| StoreError::NoSuchReasonText(args.reason.clone()))?
    };
    let new = if args.clear { Some(0) } else { args.category };
    let reason = match new {
        Some(c) => store.set_category(reason.id, c)?,
        None => reason,
    };
    let _ = writeln!(
        std::io::stdout().lock(),
        "{} {} {}",
        reason.id,
        reason.category,
        reason.text
    );
    Ok(())
}
