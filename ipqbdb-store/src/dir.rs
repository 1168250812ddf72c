//! The database directory and its backend marker.
//!
//! Each directory records the engine that created it in a one-line file, so that opening it with another
//! engine is a clear error instead of a second, empty database beside the first (or worse, an engine
//! reading another's file). The marker is written to a temporary name and hard-linked into place, which
//! fails if it exists: two processes creating the same directory at once agree on one backend.

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use crate::engines::Engine;
use crate::error::{Result, StoreError};

/// Name of the marker file inside the database directory.
pub const MARKER: &str = "ipqbdb-backend";

/// The file that identifies an engine's directory made without a marker (or by hand): the first of
/// its files; `None` for an engine that keeps no data in the directory.
fn identifying_file(backend: Engine) -> Option<&'static str> {
    backend.files().first().copied()
}

/// The files ipqbdb 2.x kept in its database directory (Berkeley DB tables and environment).
const LEGACY_TABLES: [&str; 3] = ["block.db", "white.db", "descr.db"];

/// Which of ipqbdb 2.x's files `dir` holds: its three tables and its Berkeley DB environment
/// (`__db.001`...). They are never read; a program that finds them says so, because the whitelist
/// they hold (decay 0: never block) is not applied until it is imported.
pub fn legacy_files(dir: &Path) -> Vec<String> {
    let mut found: Vec<String> = LEGACY_TABLES
        .iter()
        .filter(|f| dir.join(f).exists())
        .map(|f| f.to_string())
        .collect();
    if let Ok(entries) = fs::read_dir(dir) {
        let mut env: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| {
                n.strip_prefix("__db.")
                    .is_some_and(|d| d.len() == 3 && d.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        env.sort();
        found.extend(env);
    }
    found
}

/// The one-line notice for [`legacy_files`], `None` when there are none.
pub fn legacy_notice(dir: &Path) -> Option<String> {
    let found = legacy_files(dir);
    (!found.is_empty()).then(|| {
        format!(
            "{} holds files of ipqbdb 2.x ({}), which are not read: its whitelist is not applied \
             until imported (then move them away); see UPGRADING.md (in /usr/share/doc/ipqbdb-* \
             as packaged, docs/ in the sources)",
            dir.display(),
            found.join(", ")
        )
    })
}

/// Reads the marker: `Ok(None)` when the directory (or the marker) does not exist yet.
pub fn detect(dir: &Path) -> Result<Option<Engine>> {
    let marker = dir.join(MARKER);
    match fs::read_to_string(&marker) {
        Ok(text) => {
            let name = text.lines().next().unwrap_or("").trim().to_string();
            match name.parse::<Engine>() {
                Ok(b) => Ok(Some(b)),
                Err(_) => Err(StoreError::Foreign {
                    dir: dir.to_path_buf(),
                    why: format!("{MARKER} names an unknown backend {name:?}"),
                }),
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(&marker, e)),
    }
}

/// Makes sure `dir` exists and belongs to `wanted`, creating both when `create` is set.
pub(crate) fn prepare(dir: &Path, wanted: Engine, create: bool) -> Result<()> {
    if let Some(found) = detect(dir)? {
        return check(dir, found, wanted);
    }
    if !create {
        return Err(StoreError::Missing {
            dir: dir.to_path_buf(),
        });
    }
    create_dir(dir)?;
    for other in Engine::ALL {
        if let Some(f) = identifying_file(other).filter(|f| dir.join(f).exists()) {
            return Err(StoreError::Foreign {
                dir: dir.to_path_buf(),
                why: format!("it holds {f} of the {other} backend but no {MARKER} file"),
            });
        }
    }
    let marker = dir.join(MARKER);
    // Unique per process and per call: threads of one process creating the directory together
    // must not write, link and remove each other's file.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{MARKER}.{}.{call}", std::process::id()));
    let write_tmp = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{}", wanted.name())?;
        f.sync_all()
    };
    write_tmp().map_err(|e| StoreError::io(&tmp, e))?;
    let linked = fs::hard_link(&tmp, &marker);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(dir);
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let found = detect(dir)?.ok_or_else(|| StoreError::io(&marker, e))?;
            check(dir, found, wanted)
        }
        Err(e) => Err(StoreError::io(&marker, e)),
    }
}

fn check(dir: &Path, found: Engine, wanted: Engine) -> Result<()> {
    if found == wanted {
        Ok(())
    } else {
        Err(StoreError::EngineMismatch {
            dir: dir.to_path_buf(),
            found,
            wanted,
        })
    }
}

pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| StoreError::io(dir, e))
}

/// Shares the engine's files with the directory's group when the directory lets its group write
/// (systemd's `StateDirectoryMode=2770`): a web application whose user is in that group can then
/// run `ibd ban`, whichever program created the files first and whatever its umask (LMDB creates
/// its files 0600). Only what lacks group access is changed; files this process does not own are
/// left to their owner (whose own open shares them). A directory without group write is private
/// and stays so.
pub fn share_with_group(dir: &Path, backend: Engine) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = fs::metadata(dir) else {
        return;
    };
    if meta.permissions().mode() & 0o020 == 0 {
        return;
    }
    // Each file, after the directories that hold it inside `dir` (LMDB's `lmdb/`), each once.
    let mut paths: Vec<&Path> = Vec::new();
    for f in backend.files() {
        let inner: Vec<&Path> = Path::new(f)
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        for p in inner.into_iter().rev() {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    for f in paths {
        let path = dir.join(f);
        let Ok(m) = fs::metadata(&path) else {
            continue;
        };
        let mode = m.permissions().mode() & 0o7777;
        let want = if m.is_dir() {
            mode | 0o2070
        } else {
            mode | 0o060
        };
        if want != mode {
            let _ = fs::set_permissions(&path, fs::Permissions::from_mode(want));
        }
    }
}

/// Makes a new directory entry durable; failure only weakens durability, so it is not an error.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Path of a backend's main file or directory, for error messages and size reports.
pub fn engine_path(dir: &Path, backend: Engine) -> PathBuf {
    let Some(first) = identifying_file(backend) else {
        return dir.join(MARKER);
    };
    dir.join(first.split('/').next().unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_files_are_named_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(legacy_notice(dir.path()), None);
        for f in [
            "white.db", "__db.002", "block.db", "__db.001", "__db.1", "x.db",
        ] {
            fs::write(dir.path().join(f), b"").unwrap();
        }
        assert_eq!(
            legacy_files(dir.path()),
            ["block.db", "white.db", "__db.001", "__db.002"]
        );
        let notice = legacy_notice(dir.path()).unwrap();
        assert!(!notice.contains('\n'));
        assert!(
            notice.contains("block.db, white.db, __db.001, __db.002"),
            "{notice}"
        );
        assert!(notice.contains("UPGRADING.md"), "{notice}");
    }
}
