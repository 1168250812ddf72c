//! Prometheus pages over real HTTP: fetched with a plain `TcpStream` (what a scraper sends),
//! checked with `promtool check metrics` (Debian package `prometheus`), and read by series.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long one fetch may take: a hang detector, far above the server's own deadline.
const FETCH_LIMIT: Duration = Duration::from_secs(10);

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// `GET path` at `addr`, as a scraper sends it.
pub fn get(addr: SocketAddr, path: &str) -> Answer {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n").as_bytes(),
    )
}

/// Sends `raw` to `addr` and reads the answer to its end; fails the test without one.
pub fn request(addr: SocketAddr, raw: &[u8]) -> Answer {
    try_request(addr, raw).unwrap_or_else(|e| panic!("{e}"))
}

/// Sends `raw` to `addr` (then closes the sending side) and reads the answer to its end.
pub fn try_request(addr: SocketAddr, raw: &[u8]) -> Result<Answer, String> {
    let mut s = TcpStream::connect_timeout(&addr, FETCH_LIMIT)
        .map_err(|e| format!("connect to {addr}: {e}"))?;
    s.set_read_timeout(Some(FETCH_LIMIT)).unwrap();
    s.set_write_timeout(Some(FETCH_LIMIT)).unwrap();
    s.write_all(raw)
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    parse_answer(&all).ok_or_else(|| {
        format!(
            "{addr}: not an HTTP answer: {:?}",
            String::from_utf8_lossy(&all)
        )
    })
}

fn parse_answer(all: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(all);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// `GET /metrics`, which must answer 200 with the text format's content type.
pub fn scrape(addr: SocketAddr) -> String {
    let a = get(addr, "/metrics");
    assert_eq!(a.status, 200, "{addr}/metrics: {}", a.head);
    assert!(
        a.head
            .contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{addr}/metrics: {}",
        a.head
    );
    a.body
}

/// The value of `series`, written as the page writes it (`name{label="v",...}`, labels sorted).
pub fn value(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
        rest.split(' ').next()?.parse().ok()
    })
}

/// Like [`value`], failing the test when the series is missing.
pub fn must_value(page: &str, series: &str) -> f64 {
    value(page, series).unwrap_or_else(|| panic!("no {series} in:\n{page}"))
}

/// Fails the test unless `promtool check metrics` accepts `page` (its lint included). A missing
/// promtool is a failure too: it is how the format is checked.
pub fn promtool_check(what: &str, page: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool: {e} (install the Debian package `prometheus`, as .ci/run does)")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refuses {what}: {}{}\n{page}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The address a daemon logged it serves metrics at (`metrics at http://ADDR/metrics`).
pub fn logged_addr(log: &str) -> Option<SocketAddr> {
    let at = log.find("metrics at http://")? + "metrics at http://".len();
    log[at..].split('/').next()?.parse().ok()
}
