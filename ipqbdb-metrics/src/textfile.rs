//! The metrics file for node_exporter's textfile collector (`--collector.textfile.directory`):
//! rewritten every few seconds, atomically (a temporary file in the same directory, renamed over the
//! old one), so the collector never reads half a file. Its name should end in `.prom`; the temporary
//! one starts with a dot and does not, so the collector skips it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use ipqbdb_core::log::{log, Level};
use ipqbdb_runtime::rate_limit::{RateLimit, Repeat};

use crate::{MetricsError, Render};

/// How often the file is rewritten: node_exporter reads it at each of its own scrapes.
pub const INTERVAL: Duration = Duration::from_secs(5);

pub struct TextFile {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl TextFile {
    /// Writes the file once now (so a path that cannot be written stops the daemon at start), then
    /// every `every` on a thread of its own.
    pub fn start(
        program: &'static str,
        path: PathBuf,
        every: Duration,
        render: Render,
    ) -> Result<TextFile, MetricsError> {
        write(&path, &render()).map_err(|source| MetricsError::File {
            path: path.clone(),
            source,
        })?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("metrics-file".into())
            .spawn(move || {
                let mut errors = RateLimit::new(Repeat::WhenChanged);
                loop {
                    let last = matches!(
                        stopped.recv_timeout(every),
                        Ok(()) | Err(RecvTimeoutError::Disconnected)
                    );
                    match write(&path, &render()) {
                        Ok(()) => {
                            errors.clear();
                        }
                        Err(e) => {
                            if let Some(msg) =
                                errors.hit(|_| format!("metrics file {}: {e}", path.display()))
                            {
                                log(program, Level::Error, &msg);
                            }
                        }
                    }
                    if last {
                        return;
                    }
                }
            })
            .map_err(MetricsError::Thread)?;
        Ok(TextFile { stop, thread })
    }

    /// Writes the file a last time, with the final counts, and stops.
    pub fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Replaces `path` with `data` atomically. Mode 0644 whatever the umask (the daemons run with 0007):
/// the collector runs as another user, and the file holds counts, never addresses.
pub fn write(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("not a file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_file_is_replaced_and_holds_the_last_counts_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.prom");
        let n = Arc::new(AtomicU64::new(1));
        let render: Render = {
            let n = n.clone();
            Arc::new(move || format!("x {}\n", n.load(Ordering::Relaxed)).into_bytes())
        };
        let f = TextFile::start("test", path.clone(), Duration::from_millis(20), render).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x 1\n");
        n.store(7, Ordering::Relaxed);
        f.finish();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x 7\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["t.prom"], "no temporary file left");
    }

    #[test]
    fn an_unwritable_path_is_refused_at_start_naming_it() {
        let render: Render = Arc::new(Vec::new);
        let e = TextFile::start(
            "test",
            PathBuf::from("/nonexistent-dir/x.prom"),
            INTERVAL,
            render,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.starts_with("metrics file /nonexistent-dir/x.prom: "),
            "{e}"
        );
    }
}
