//! The inputs' reader threads: the FIFO in the database directory, standard input, and followed
//! files (the journal's is in `journal.rs`).
//!
//! Each input runs on its own thread and sends [`Event`]s to the daemon's single matching thread over
//! a bounded channel, so a flood on one input slows that input down instead of growing memory.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use crate::lines::{Line, Splitter};
use crate::metrics::Rotation;

/// How often a followed file is checked for growth, rotation and truncation.
pub const POLL: Duration = Duration::from_millis(200);
const CHUNK: usize = 64 * 1024;

/// Where a followed file has been read to: identity of the file and the offset past the last line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePos {
    pub dev: u64,
    pub ino: u64,
    pub offset: u64,
}

impl FilePos {
    pub fn encode(&self) -> Vec<u8> {
        [self.dev, self.ino, self.offset]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect()
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != 24 {
            return None;
        }
        let at = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().unwrap());
        Some(FilePos {
            dev: at(0),
            ino: at(8),
            offset: at(16),
        })
    }
}

#[derive(Debug)]
pub enum Event {
    /// Lines of `input` read in one go; `pos` is where the input's reading stands once they are
    /// handled (an encoded [`FilePos`] or journal cursor), for inputs that can resume.
    Lines {
        input: usize,
        lines: LineBatch,
        pos: Option<Vec<u8>>,
    },
    /// `input` ended (standard input at EOF).
    End { input: usize },
    /// A followed file was rotated.
    Rotated { input: usize, how: Rotation },
    /// `input` hit an error worth logging; it keeps trying where that makes sense.
    Error { input: usize, message: String },
}

/// The lines of one read, in one buffer: a channel message and an allocation per line cost more
/// than matching the line.
#[derive(Debug, Default)]
pub struct LineBatch {
    data: Vec<u8>,
    /// Each line: its end in `data` (it starts where the previous one ends), or the length of a
    /// line too long to keep.
    items: Vec<Result<usize, usize>>,
}

impl LineBatch {
    pub(crate) fn push(&mut self, line: Line<'_>) {
        match line {
            Line::Text(t) => {
                self.data.extend_from_slice(t);
                self.items.push(Ok(self.data.len()));
            }
            Line::TooLong(n) => self.items.push(Err(n)),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Each line (`Err(len)` for one too long to keep).
    pub fn iter(&self) -> impl Iterator<Item = Result<&[u8], usize>> {
        let mut start = 0;
        self.items.iter().map(move |item| match *item {
            Ok(end) => {
                let line = &self.data[start..end];
                start = end;
                Ok(line)
            }
            Err(n) => Err(n),
        })
    }
}

pub(crate) type Tx = SyncSender<Event>;

/// Sends the lines `produce` emits as one event; false when the receiver is gone.
fn send_batch(
    tx: &Tx,
    input: usize,
    id: Option<(u64, u64)>,
    produce: impl FnOnce(&mut dyn FnMut(Line<'_>, u64)),
) -> bool {
    let mut lines = LineBatch::default();
    let mut last_end = None;
    produce(&mut |line, end| {
        lines.push(line);
        last_end = Some(end);
    });
    let Some(end) = last_end else {
        return true;
    };
    tx.send(Event::Lines {
        input,
        lines,
        pos: id.map(|(dev, ino)| {
            FilePos {
                dev,
                ino,
                offset: end,
            }
            .encode()
        }),
    })
    .is_ok()
}

/// Sends every line of `data` (one event); false when the receiver is gone.
fn send_lines(
    tx: &Tx,
    input: usize,
    splitter: &mut Splitter,
    data: &[u8],
    id: Option<(u64, u64)>,
) -> bool {
    send_batch(tx, input, id, |emit| splitter.feed(data, emit))
}

/// Creates the FIFO (mode 0620: the daemon's user reads, its group, e.g. the syslog daemon's, writes),
/// or reuses an existing one. Anything else at that path is an error, never replaced.
pub fn make_fifo(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => return Ok(()),
        Ok(_) => {
            return Err(std::io::Error::new(
                ErrorKind::AlreadyExists,
                "exists and is not a FIFO; remove it or choose another database directory",
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: mkfifo with a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o620))
}

/// Reads the FIFO forever. It is opened read-write, so it never sees end-of-file when a writer
/// (`cat`, a syslog daemon restarting) closes its end: the next writer just continues.
pub fn spawn_fifo(path: PathBuf, input: usize, tx: Tx) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)?;
    std::thread::Builder::new()
        .name("fifo".into())
        .spawn(move || stream(&mut file, input, &tx, false))?;
    Ok(())
}

pub fn spawn_stdin(input: usize, tx: Tx) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || stream(&mut std::io::stdin().lock(), input, &tx, true))?;
    Ok(())
}

fn stream(r: &mut dyn Read, input: usize, tx: &Tx, report_end: bool) {
    let mut splitter = Splitter::default();
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !send_lines(tx, input, &mut splitter, &buf[..n], None) {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = tx.send(Event::Error {
                    input,
                    message: e.to_string(),
                });
                break;
            }
        }
    }
    send_batch(tx, input, None, |emit| splitter.finish(emit));
    if report_end {
        let _ = tx.send(Event::End { input });
    }
}

/// Where to start following a file.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// Resume from a saved position (a restart).
    Saved(FilePos),
    /// No saved position: from the end (old attacks are not banned again), or the beginning.
    End,
    Beginning,
}

/// Follows `path` like `tail -F`: across rename rotation (the old file is read to its end first) and
/// copytruncate (reading restarts at 0). A file that does not exist yet is waited for.
///
/// The file is opened and positioned here, before the thread starts: the caller reports the daemon
/// ready once this returns, and a line appended after that must be read, not taken for history.
pub fn spawn_follow(
    path: PathBuf,
    start: Start,
    input: usize,
    tx: Tx,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let follower = Follower {
        path,
        input,
        tx,
        stop,
    };
    let first = follower.position(start);
    std::thread::Builder::new()
        .name(format!("follow {}", follower.path.display()))
        .spawn(move || follower.run(first))?;
    Ok(())
}

struct Follower {
    path: PathBuf,
    input: usize,
    tx: Tx,
    stop: Arc<AtomicBool>,
}

/// Where following begins, decided before the reading thread starts.
struct First {
    /// A saved position in a file since rotated (`PATH.1`): that file, positioned there, is read to
    /// its end first.
    rotated: Option<(File, FilePos)>,
    /// The file at `path`, positioned; none when it does not exist yet.
    current: Option<Open>,
}

struct Open {
    file: File,
    dev: u64,
    ino: u64,
    splitter: Splitter,
    /// File position after the last read.
    pos: u64,
    /// The last bytes read, ending at `pos`: if the file no longer holds them there, it was truncated
    /// and rewritten (copytruncate), even when it has since grown back past `pos`.
    tail: Vec<u8>,
    /// Size and modification time when last checked.
    seen: (u64, i64, i64),
}

const TAIL: usize = 64;

impl Open {
    fn remember(&mut self, data: &[u8]) {
        self.pos += data.len() as u64;
        let keep = TAIL.min(data.len());
        let old = TAIL.saturating_sub(keep).min(self.tail.len());
        self.tail.drain(..self.tail.len() - old);
        self.tail.extend_from_slice(&data[data.len() - keep..]);
    }

    /// Whether the file was truncated (and maybe rewritten) since it was last read.
    fn truncated(&mut self) -> bool {
        let Ok(m) = self.file.metadata() else {
            return false;
        };
        let now = (m.len(), m.mtime(), m.mtime_nsec());
        if now == self.seen {
            return false;
        }
        self.seen = now;
        if m.len() < self.pos {
            return true;
        }
        let mut buf = vec![0u8; self.tail.len()];
        use std::os::unix::fs::FileExt;
        let start = self.pos - self.tail.len() as u64;
        match self.file.read_exact_at(&mut buf, start) {
            Ok(()) => buf != self.tail,
            Err(_) => true,
        }
    }

    fn restart(&mut self) {
        if self.file.seek(SeekFrom::Start(0)).is_ok() {
            self.splitter = Splitter::at(0);
            self.pos = 0;
            self.tail.clear();
        }
    }
}

impl Follower {
    fn run(self, first: First) {
        if let Some((file, pos)) = first.rotated {
            self.drain(file, pos);
        }
        let mut current = first.current;
        let mut buf = vec![0u8; CHUNK];
        let mut reported_missing = false;
        while !self.stop.load(Ordering::Relaxed) {
            let Some(open) = current.as_mut() else {
                match self.open_at(0) {
                    Ok(o) => {
                        current = Some(o);
                        reported_missing = false;
                        continue;
                    }
                    Err(e) => {
                        if !reported_missing {
                            self.error(format!("waiting for it: {e}"));
                            reported_missing = true;
                        }
                        std::thread::sleep(POLL);
                        continue;
                    }
                }
            };
            match open.file.read(&mut buf) {
                Ok(0) => {}
                Ok(n) => {
                    let id = Some((open.dev, open.ino));
                    open.remember(&buf[..n]);
                    if !send_lines(&self.tx, self.input, &mut open.splitter, &buf[..n], id) {
                        return;
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error(e.to_string());
                    current = None;
                    std::thread::sleep(POLL);
                    continue;
                }
            }
            // At the end of the file: has it been rotated or truncated?
            match std::fs::metadata(&self.path) {
                Ok(m) if (m.dev(), m.ino()) != (open.dev, open.ino) => {
                    // Renamed away and replaced: the old file was read to its end just now.
                    let id = Some((open.dev, open.ino));
                    send_batch(&self.tx, self.input, id, |emit| open.splitter.finish(emit));
                    self.rotated(Rotation::Renamed);
                    current = None;
                    continue;
                }
                _ => {}
            }
            std::thread::sleep(POLL);
            if open.truncated() {
                // Truncated in place (copytruncate): everything now in it is new.
                open.restart();
                self.rotated(Rotation::Truncated);
            }
        }
    }

    /// Positions the first file according to `start`; a saved position of a file since rotated
    /// keeps the rotated file (`PATH.1`) to drain first, so lines written while the daemon was down
    /// are read.
    fn position(&self, start: Start) -> First {
        let opened = open(&self.path).ok();
        let same = |m: &std::fs::Metadata, pos: &FilePos| (m.dev(), m.ino()) == (pos.dev, pos.ino);
        let offset = match (start, &opened) {
            (Start::Beginning, _) => 0,
            (Start::End, Some((_, m))) => m.len(),
            (Start::Saved(pos), Some((_, m))) if same(m, &pos) => {
                if m.len() < pos.offset {
                    0
                } else {
                    pos.offset
                }
            }
            _ => 0,
        };
        let mut rotated = None;
        if let Start::Saved(pos) = start {
            if !opened.as_ref().is_some_and(|(_, m)| same(m, &pos)) {
                let mut old_path = self.path.clone().into_os_string();
                old_path.push(".1");
                if let Ok((mut old, m)) = open(Path::new(&old_path)) {
                    if same(&m, &pos)
                        && m.len() >= pos.offset
                        && old.seek(SeekFrom::Start(pos.offset)).is_ok()
                    {
                        rotated = Some((old, pos));
                    }
                }
            }
        }
        First {
            rotated,
            current: opened.and_then(|(file, m)| positioned(file, &m, offset).ok()),
        }
    }

    fn drain(&self, mut file: File, pos: FilePos) {
        let mut splitter = Splitter::at(pos.offset);
        let mut buf = vec![0u8; CHUNK];
        let id = Some((pos.dev, pos.ino));
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 || !send_lines(&self.tx, self.input, &mut splitter, &buf[..n], id) {
                break;
            }
        }
        send_batch(&self.tx, self.input, id, |emit| splitter.finish(emit));
    }

    fn open_at(&self, offset: u64) -> std::io::Result<Open> {
        let (file, m) = open(&self.path)?;
        positioned(file, &m, offset)
    }

    fn rotated(&self, how: Rotation) {
        let _ = self.tx.send(Event::Rotated {
            input: self.input,
            how,
        });
    }

    fn error(&self, message: String) {
        let _ = self.tx.send(Event::Error {
            input: self.input,
            message,
        });
    }
}

fn open(path: &Path) -> std::io::Result<(File, std::fs::Metadata)> {
    let file = File::open(path)?;
    let m = file.metadata()?;
    Ok((file, m))
}

/// `file` (whose metadata is `m`) read from `offset` on.
fn positioned(mut file: File, m: &std::fs::Metadata, offset: u64) -> std::io::Result<Open> {
    file.seek(SeekFrom::Start(offset))?;
    Ok(Open {
        file,
        dev: m.dev(),
        ino: m.ino(),
        splitter: Splitter::at(offset),
        pos: offset,
        tail: Vec::new(),
        seen: (m.len(), m.mtime(), m.mtime_nsec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip() {
        let p = FilePos {
            dev: 1,
            ino: u64::MAX,
            offset: 77,
        };
        assert_eq!(FilePos::decode(&p.encode()), Some(p));
        assert_eq!(FilePos::decode(b"short"), None);
    }

    #[test]
    fn fifo_is_created_safely_and_never_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ibd-parse.sock");
        make_fifo(&fifo).unwrap();
        let m = std::fs::symlink_metadata(&fifo).unwrap();
        assert!(m.file_type().is_fifo());
        assert_eq!(m.permissions().mode() & 0o777, 0o620);
        make_fifo(&fifo).unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "keep me").unwrap();
        assert!(make_fifo(&file).is_err());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    }
}
