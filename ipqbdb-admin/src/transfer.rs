//! `ibd export` and `ibd import`: a database moved between engines (see
//! `ipqbdb_store::transfer`).

use std::io::{BufReader, Write};
use std::path::Path;

use crate::cli::{ExportArgs, ImportArgs};
use crate::context::Context;
use crate::error::{AdminError, Result};

pub fn export(ctx: &Context, args: &ExportArgs) -> Result<()> {
    let store = ctx.open_any_prefix(false)?;
    let n = match &args.file {
        Some(path) => {
            let io = |e| AdminError::Io {
                path: path.display().to_string(),
                source: e,
            };
            let file = std::fs::File::create(path).map_err(io)?;
            let mut out = std::io::BufWriter::new(file);
            let n = ipqbdb_store::transfer::export(&store, &mut out, path)?;
            out.into_inner()
                .map_err(|e| io(e.into_error()))?
                .sync_all()
                .map_err(io)?;
            n
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            ipqbdb_store::transfer::export(&store, &mut out, Path::new("standard output"))?
        }
    };
    let _ = writeln!(std::io::stderr(), "{}: {n} entries exported", ctx.program);
    Ok(())
}

pub fn import(ctx: &Context, args: &ImportArgs) -> Result<()> {
    let Some(file) = &args.file else {
        return crate::import_2x::run(ctx, args);
    };
    let store = ctx.open_any_prefix(true)?;
    let n = if file.as_os_str() == "-" {
        let mut input = std::io::stdin().lock();
        ipqbdb_store::transfer::import(&store, &mut input, Path::new("standard input"))?
    } else {
        let input = std::fs::File::open(file).map_err(|e| AdminError::Io {
            path: file.display().to_string(),
            source: e,
        })?;
        ipqbdb_store::transfer::import(&store, &mut BufReader::new(input), file)?
    };
    let _ = writeln!(std::io::stderr(), "{}: {n} entries imported", ctx.program);
    Ok(())
}
