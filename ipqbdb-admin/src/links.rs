//! `ibd install-links`: the original program names as symbolic links to `ibd`.

use std::path::Path;

use crate::cli::{InstallLinksArgs, LINKS};
use crate::error::{AdminError, Result};

pub fn run(args: &InstallLinksArgs) -> Result<()> {
    let io = |path: &Path, source| AdminError::Io {
        path: path.display().to_string(),
        source,
    };
    let exe = std::env::current_exe().map_err(|e| io(Path::new("ibd"), e))?;
    // A link beside the binary points at its name, so the pair can move together (packages, DESTDIR).
    let target = match (exe.parent(), exe.file_name()) {
        (Some(parent), Some(name)) if same_dir(parent, &args.dir) => Path::new(name).to_path_buf(),
        _ => exe.clone(),
    };
    std::fs::create_dir_all(&args.dir).map_err(|e| io(&args.dir, e))?;
    for (name, _) in LINKS {
        let link = args.dir.join(name);
        if args.force && link.symlink_metadata().is_ok() {
            std::fs::remove_file(&link).map_err(|e| io(&link, e))?;
        }
        std::os::unix::fs::symlink(&target, &link).map_err(|e| io(&link, e))?;
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
