//! The `GET /metrics` endpoint: std's `TcpListener` with a thread per connection, because the
//! small blocking servers on crates.io (tiny_http, for one) set no read deadline and start a thread
//! for every connection, so a slow client holds a thread for as long as it likes and many hold
//! many. Here:
//!
//! - a connection has [`DEADLINE`] in all to send its request and take the answer (a slowloris
//!   client trickling bytes is cut off then, whatever its pace);
//! - a request is at most [`MAX_REQUEST`] bytes (then 431 and close);
//! - at most [`MAX_CONNECTIONS`] are served at once; more are closed at once, so clients cannot
//!   make the daemon start threads without bound;
//! - only `GET /metrics` is answered (200); other paths get 404, other methods 405;
//! - every answer closes the connection (no keep-alive to hold).
//!
//! The daemon's own threads never wait on any of this: the page is rendered from atomics on the
//! connection's thread.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{MetricsError, Render, CONTENT_TYPE};

/// The whole time one connection may take.
pub const DEADLINE: Duration = Duration::from_secs(2);
/// The longest request accepted, headers included: a scraper's is a few hundred bytes.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// A connection's thread needs little.
const STACK: usize = 128 * 1024;

pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start(addr: SocketAddr, render: Render) -> Result<Server, MetricsError> {
        let listen_err = |source| MetricsError::Listen {
            addr: addr.to_string(),
            source,
        };
        let listener = TcpListener::bind(addr).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("metrics-http".into())
                .spawn(move || accept_loop(&listener, &render, &stop))
                .map_err(MetricsError::Thread)?;
        }
        Ok(Server { addr, stop })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting; connections being served end within [`DEADLINE`] on their own. Never
    /// waits for the server's thread: a daemon's stop must not depend on its listening address
    /// still being reachable (the thread ends with the process, or at its next connection).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the blocking accept, when the address can still be reached.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn accept_loop(listener: &TcpListener, render: &Render, stop: &AtomicBool) {
    let busy = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(conn) = conn else {
            // Out of descriptors, say: do not spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        if busy.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            busy.fetch_sub(1, Ordering::AcqRel);
            continue; // Dropping it closes it.
        }
        let (render, slot) = (render.clone(), busy.clone());
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .stack_size(STACK)
            .spawn(move || {
                let _ = serve(conn, &render);
                slot.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// What a request asked for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Metrics,
    NotFound,
    BadMethod,
    TooLarge,
    Malformed,
}

fn serve(mut conn: TcpStream, render: &Render) -> std::io::Result<()> {
    let until = Instant::now() + DEADLINE;
    let asked = match read_request(&mut conn, until)? {
        Some(a) => a,
        None => return Ok(()), // Closed, or out of time: nothing worth answering.
    };
    let (status, body) = match asked {
        Asked::Metrics => ("200 OK", render()),
        Asked::NotFound => ("404 Not Found", b"only /metrics is served\n".to_vec()),
        Asked::BadMethod => ("405 Method Not Allowed", b"only GET\n".to_vec()),
        Asked::TooLarge => (
            "431 Request Header Fields Too Large",
            b"request too large\n".to_vec(),
        ),
        Asked::Malformed => ("400 Bad Request", b"bad request\n".to_vec()),
    };
    let allow = if asked == Asked::BadMethod {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
        if asked == Asked::Metrics {
            CONTENT_TYPE
        } else {
            "text/plain; charset=utf-8"
        },
        body.len()
    );
    write_all_until(&mut conn, head.as_bytes(), until)?;
    write_all_until(&mut conn, &body, until)?;
    let _ = conn.shutdown(Shutdown::Write);
    // Closing with unread input makes the kernel reset the connection, and a reset can destroy
    // the answer before the client reads it (a refused, oversized request's 431): read what the
    // client still sends until it closes, within the same deadline.
    let mut scratch = [0u8; 1024];
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        conn.set_read_timeout(Some(left))?;
        match conn.read(&mut scratch) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
    }
}

/// Reads up to the end of the headers; `None` when the client closed or ran out of time.
fn read_request(conn: &mut TcpStream, until: Instant) -> std::io::Result<Option<Asked>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_end(&buf) {
            return Ok(Some(parse(&buf[..end])));
        }
        if buf.len() >= MAX_REQUEST {
            return Ok(Some(Asked::TooLarge));
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        conn.set_read_timeout(Some(left))?;
        let want = chunk.len().min(MAX_REQUEST + 1 - buf.len());
        match conn.read(&mut chunk[..want]) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    }
}

fn find_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Bare line feeds, as some hand-typed clients send.
        buf.windows(2).position(|w| w == b"\n\n")
    })
}

fn parse(head: &[u8]) -> Asked {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::Malformed;
    };
    if !version.starts_with(b"HTTP/1.") {
        return Asked::Malformed;
    }
    if method != b"GET" {
        return Asked::BadMethod;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if path == b"/metrics" {
        Asked::Metrics
    } else {
        Asked::NotFound
    }
}

fn write_all_until(conn: &mut TcpStream, mut data: &[u8], until: Instant) -> std::io::Result<()> {
    while !data.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        conn.set_write_timeout(Some(left))?;
        match conn.write(data) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_sorted_out() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x"), Asked::Metrics);
        assert_eq!(parse(b"GET /metrics?x=1 HTTP/1.0"), Asked::Metrics);
        assert_eq!(parse(b"GET / HTTP/1.1"), Asked::NotFound);
        assert_eq!(parse(b"GET /metrics/../x HTTP/1.1"), Asked::NotFound);
        assert_eq!(parse(b"POST /metrics HTTP/1.1"), Asked::BadMethod);
        assert_eq!(parse(b"HEAD /metrics HTTP/1.1"), Asked::BadMethod);
        assert_eq!(parse(b"GET /metrics"), Asked::Malformed);
        assert_eq!(parse(b"GET /metrics SPDY/3"), Asked::Malformed);
        assert_eq!(parse(b"\x00\xff garbage"), Asked::Malformed);
    }
}
