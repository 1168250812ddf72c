//! The judge's last view of a postgres database, kept in the database directory, so that a judge
//! started while the server does not answer (a reboot during a database outage) judges from what
//! it knew rather than not at all (with an NFQUEUE rule and no `--queue-bypass`, no judge drops
//! every new connection).
//!
//! The file holds the view's tables and the change position ([`crate::postgres::ChangeSet::next`])
//! they reflect, so the view catches up from there through the normal change feed once the server
//! answers (or reloads, if the position is behind the tombstone horizon). It also names the server
//! and database it came from: a view of another database is refused, not used.
//!
//! Layout (integers big-endian): the magic, the format version (u32), the position (u64), the
//! time it was saved (i64, Unix seconds), the source's length (u32) and text, the entry count
//! (u64), each entry as table index (u8), key length (u32), key, value length (u32), value; and a
//! CRC-32 of everything before it. It is written to a temporary file, synced and renamed over the
//! old one, so a crash leaves either the old file or the new one, never half of one.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::kv::Table;

/// The file's name in the database directory.
pub const FILE: &str = "postgres-view";
const MAGIC: &[u8; 12] = b"ipqbdb-view\n";
const VERSION: u32 = 1;

/// Why a saved view cannot be used; the judge says it in one line and goes on without it.
#[derive(Debug, thiserror::Error)]
pub enum SavedError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a saved view of ipqbdb")]
    Foreign { path: PathBuf },
    #[error("{path}: saved view format {found}, this program reads {VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("{path}: damaged saved view: {what}")]
    Damaged { path: PathBuf, what: &'static str },
    #[error("{path}: a view of {found}, not of {wanted}")]
    OtherSource {
        path: PathBuf,
        found: String,
        wanted: String,
    },
}

/// A view as read back.
#[derive(Debug, Default)]
pub struct SavedView {
    pub position: u64,
    /// Unix seconds.
    pub saved_at: i64,
    pub entries: Vec<(Table, Vec<u8>, Vec<u8>)>,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Whether `dir` has a saved view (whatever its state): what lets a postgres store open without
/// its server, for the view to start from.
pub fn exists(dir: &Path) -> bool {
    path(dir).exists()
}

/// Writes the view atomically: temporary file, fsync, rename, fsync of the directory.
pub fn save<'a>(
    dir: &Path,
    source: &str,
    position: u64,
    saved_at: i64,
    entries: impl Iterator<Item = (Table, &'a [u8], &'a [u8])>,
) -> Result<(), SavedError> {
    let target = path(dir);
    // Unique per process and thread: views of one process saving at once never share a file.
    let tmp = dir.join(format!(
        ".{FILE}.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let io = |source| SavedError::Io {
        path: tmp.clone(),
        source,
    };
    let written = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 16, Crc::new(file));
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_be_bytes())?;
        w.write_all(&position.to_be_bytes())?;
        w.write_all(&saved_at.to_be_bytes())?;
        w.write_all(&(source.len() as u32).to_be_bytes())?;
        w.write_all(source.as_bytes())?;
        let entries: Vec<_> = entries.collect();
        w.write_all(&(entries.len() as u64).to_be_bytes())?;
        for (table, k, v) in entries {
            w.write_all(&[table.index() as u8])?;
            w.write_all(&(k.len() as u32).to_be_bytes())?;
            w.write_all(k)?;
            w.write_all(&(v.len() as u32).to_be_bytes())?;
            w.write_all(v)?;
        }
        let crc = w.into_inner().map_err(|e| e.into_error())?;
        let sum = crc.hasher.finalize();
        let mut file = crc.inner;
        file.write_all(&sum.to_be_bytes())?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, &target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })?;
    crate::dir::sync_dir(dir);
    Ok(())
}

/// Reads the saved view of `dir`, made from `source` (see [`crate::postgres`]'s `describe`).
pub fn load(dir: &Path, source: &str) -> Result<SavedView, SavedError> {
    let path = path(dir);
    let bytes = std::fs::read(&path).map_err(|e| SavedError::Io {
        path: path.clone(),
        source: e,
    })?;
    let damaged = |what| SavedError::Damaged {
        path: path.clone(),
        what,
    };
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(SavedError::Foreign { path });
    }
    let mut r = Reader {
        bytes: &bytes[MAGIC.len()..],
    };
    let version = r.u32().ok_or_else(|| damaged("truncated header"))?;
    if version != VERSION {
        return Err(SavedError::Version {
            path,
            found: version,
        });
    }
    if bytes.len() < MAGIC.len() + 8 {
        return Err(damaged("truncated"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    let sum: [u8; 4] = sum.try_into().map_err(|_| damaged("truncated"))?;
    if crc32fast::hash(body) != u32::from_be_bytes(sum) {
        return Err(damaged("checksum mismatch"));
    }
    let mut r = Reader {
        bytes: &body[MAGIC.len() + 4..],
    };
    let bad = || damaged("truncated or malformed entries");
    let position = r.u64().ok_or_else(bad)?;
    let saved_at = r.u64().ok_or_else(bad)? as i64;
    let n = r.u32().ok_or_else(bad)? as usize;
    let found = String::from_utf8_lossy(r.take(n).ok_or_else(bad)?).into_owned();
    if found != source {
        return Err(SavedError::OtherSource {
            path,
            found,
            wanted: source.to_string(),
        });
    }
    let count = r.u64().ok_or_else(bad)?;
    // Each entry takes at least 9 bytes: a count beyond that is damage, not an allocation to try.
    if count > (r.bytes.len() / 9) as u64 {
        return Err(bad());
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let t = r.take(1).ok_or_else(bad)?[0];
        let table = *Table::ALL
            .get(usize::from(t))
            .ok_or_else(|| damaged("unknown table"))?;
        let n = r.u32().ok_or_else(bad)? as usize;
        let k = r.take(n).ok_or_else(bad)?.to_vec();
        let n = r.u32().ok_or_else(bad)? as usize;
        let v = r.take(n).ok_or_else(bad)?.to_vec();
        entries.push((table, k, v));
    }
    if !r.bytes.is_empty() {
        return Err(damaged("bytes after the last entry"));
    }
    Ok(SavedView {
        position,
        saved_at,
        entries,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// A writer that sums what passes through it.
struct Crc<W> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W> Crc<W> {
    fn new(inner: W) -> Self {
        Crc {
            inner,
            hasher: crc32fast::Hasher::new(),
        }
    }
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "postgresql://u@h:5432/db";

    fn saved(dir: &Path) {
        let entries = [
            (Table::Block, &b"k1"[..], &b"v1"[..]),
            (Table::Meta, &b"format"[..], &b"ipqbdb-2"[..]),
        ];
        save(dir, SRC, 42, 1_700_000_000, entries.into_iter()).unwrap();
    }

    #[test]
    fn a_saved_view_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path());
        let v = load(dir.path(), SRC).unwrap();
        assert_eq!((v.position, v.saved_at), (42, 1_700_000_000));
        assert_eq!(
            v.entries,
            vec![
                (Table::Block, b"k1".to_vec(), b"v1".to_vec()),
                (Table::Meta, b"format".to_vec(), b"ipqbdb-2".to_vec()),
            ]
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![FILE], "no temporary file left");
    }

    #[test]
    fn damaged_foreign_and_other_sources_are_refused_without_panic() {
        let dir = tempfile::tempdir().unwrap();
        saved(dir.path());
        let good = std::fs::read(path(dir.path())).unwrap();
        let err = load(dir.path(), "postgresql://u@other:5432/db").unwrap_err();
        assert!(matches!(err, SavedError::OtherSource { .. }), "{err}");
        // Every truncation, and every single flipped byte, is an error, never a panic.
        for n in 0..good.len() {
            std::fs::write(path(dir.path()), &good[..n]).unwrap();
            assert!(load(dir.path(), SRC).is_err(), "truncated to {n}");
            let mut bad = good.clone();
            bad[n] ^= 0x40;
            std::fs::write(path(dir.path()), &bad).unwrap();
            assert!(load(dir.path(), SRC).is_err(), "byte {n} flipped");
        }
        std::fs::write(path(dir.path()), b"something else entirely").unwrap();
        let err = load(dir.path(), SRC).unwrap_err();
        assert!(matches!(err, SavedError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains(FILE), "names the file: {err}");
        let mut v2 = good.clone();
        v2[MAGIC.len() + 3] = 2;
        std::fs::write(path(dir.path()), &v2).unwrap();
        let err = load(dir.path(), SRC).unwrap_err();
        assert!(matches!(err, SavedError::Version { found: 2, .. }), "{err}");
    }
}
