//! Splitting a byte stream into lines, with a bound on line length.
//!
//! A log line longer than [`MAX_LINE`] is reported as such and skipped to its end, never buffered
//! whole: a writer to the FIFO must not be able to make the parser allocate without bound.

/// Longest line matched. Real log lines are far shorter; syslog's own limit is usually 8 KiB.
pub const MAX_LINE: usize = 64 * 1024;

/// One line, or the fact that a line was too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Text(&'a [u8]),
    /// A line of this many bytes (or more) was skipped.
    TooLong(usize),
}

/// Incremental splitter: feed bytes, get complete lines with the stream offset just past each.
#[derive(Debug, Default)]
pub struct Splitter {
    pending: Vec<u8>,
    /// Bytes of the current over-long line seen so far, when discarding one.
    discarding: Option<usize>,
    /// Stream offset of the first byte not yet fed.
    offset: u64,
}

impl Splitter {
    /// A splitter whose stream starts at `offset` (a followed file resumed mid-way).
    pub fn at(offset: u64) -> Self {
        Splitter {
            offset,
            ..Splitter::default()
        }
    }

    /// Offset just past the last complete line: where a restart must resume.
    pub fn line_end(&self) -> u64 {
        self.offset - self.pending.len() as u64 - self.discarding.unwrap_or(0) as u64
    }

    pub fn feed(&mut self, mut data: &[u8], emit: &mut dyn FnMut(Line<'_>, u64)) {
        while !data.is_empty() {
            let nl = memchr::memchr(b'\n', data);
            let take = nl.map_or(data.len(), |i| i + 1);
            let (chunk, rest) = data.split_at(take);
            self.offset += take as u64;
            data = rest;
            let body = &chunk[..chunk.len() - usize::from(nl.is_some())];
            if let Some(seen) = self.discarding.as_mut() {
                *seen += body.len();
                if nl.is_some() {
                    let total = *seen;
                    self.discarding = None;
                    emit(Line::TooLong(total), self.offset);
                }
                continue;
            }
            if self.pending.len() + body.len() > MAX_LINE {
                let seen = self.pending.len() + body.len();
                self.pending.clear();
                if nl.is_some() {
                    emit(Line::TooLong(seen), self.offset);
                } else {
                    self.discarding = Some(seen);
                }
                continue;
            }
            if nl.is_none() {
                self.pending.extend_from_slice(body);
                continue;
            }
            let line = if self.pending.is_empty() {
                body
            } else {
                self.pending.extend_from_slice(body);
                &self.pending[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            emit(Line::Text(line), self.offset);
            self.pending.clear();
        }
    }

    /// Ends the stream: a last line without a newline is emitted (a rotated file gets no more).
    pub fn finish(&mut self, emit: &mut dyn FnMut(Line<'_>, u64)) {
        if let Some(total) = self.discarding.take() {
            emit(Line::TooLong(total), self.offset);
        } else if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            emit(
                Line::Text(line.strip_suffix(b"\r").unwrap_or(&line)),
                self.offset,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(String, u64)> {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        let mut emit = |l: Line<'_>, end: u64| {
            let text = match l {
                Line::Text(t) => String::from_utf8_lossy(t).into_owned(),
                Line::TooLong(n) => format!("<{n}>"),
            };
            out.push((text, end));
        };
        for c in chunks {
            s.feed(c, &mut emit);
        }
        s.finish(&mut emit);
        out
    }

    #[test]
    fn lines_across_chunks_with_offsets() {
        let out = split(&[b"ab", b"c\r\nde\n\nf\r"]);
        assert_eq!(
            out,
            [
                ("abc".into(), 5),
                ("de".into(), 8),
                ("".into(), 9),
                ("f".into(), 11)
            ]
        );
    }

    #[test]
    fn overlong_lines_are_skipped_in_bounded_memory() {
        let big = vec![b'x'; MAX_LINE + 10];
        let out = split(&[b"ok\n", &big, &big, b"\nnext\n"]);
        assert_eq!(out[0], ("ok".into(), 3));
        assert_eq!(out[1].0, format!("<{}>", 2 * (MAX_LINE + 10)));
        assert_eq!(
            out[2],
            ("next".into(), 3 + 2 * (MAX_LINE as u64 + 10) + 1 + 5)
        );
        let mut s = Splitter::default();
        s.feed(&big, &mut |_, _| {});
        assert!(s.pending.capacity() <= MAX_LINE, "never buffered whole");
    }

    #[test]
    fn resume_offset_excludes_partial_lines() {
        let mut s = Splitter::at(100);
        s.feed(b"one\ntw", &mut |_, _| {});
        assert_eq!(s.line_end(), 104);
        let big = vec![b'x'; MAX_LINE + 1];
        s.feed(b"o\n", &mut |_, _| {});
        s.feed(&big, &mut |_, _| {});
        assert_eq!(
            s.line_end(),
            108,
            "past \"two\\n\", before the long partial line"
        );
    }
}
