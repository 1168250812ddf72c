//! The HTTP client (ureq, rustls with ring) and what an answer means for the report.
//!
//! The one distinction that matters for exactly-once: did the request possibly reach the server?
//! A failure to resolve or connect (or a TLS handshake that failed, before any request byte) means
//! it did not, and the report may be retried. Anything after the request started to go out (a
//! timeout waiting for the answer, a connection reset) leaves it in doubt, and it is not sent again.

use std::time::Duration;

use ureq::{Agent, Error, Timeout};

use crate::backoff::parse_retry_after;
use crate::request::{ReportRequest, CONTENT_TYPE};

/// At most this much of an error answer's body is kept, for the log line.
const DETAIL_MAX: u64 = 300;

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Accepted { status: u16 },
    /// 429: rate-limited (or the day's limit reached at the server).
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 5xx.
    ServerError {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// 401 (the key is wrong) or a redirection (report-url is not the endpoint): nothing is wrong
    /// with the report, which stays due, but the configuration needs fixing.
    Misconfigured { status: u16, detail: String },
    /// Any other status: the server refuses this report; sending it again would not help.
    Refused { status: u16, detail: String },
    /// The request never left (resolution, connection or TLS handshake failed): retry later.
    NotSent(String),
    /// The request may have reached the server, but no answer came.
    NoAnswer(String),
}

pub struct Client {
    agent: Agent,
    url: String,
    key: String,
}

impl Client {
    /// `timeout` bounds each phase: resolution, connection, sending, waiting for the answer.
    pub fn new(url: &str, key: String, timeout: Duration) -> Self {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            // One connection per report: a pooled connection the server closed meanwhile would
            // fail after the request was written, and leave the report in doubt for nothing.
            .max_idle_connections(0)
            .timeout_resolve(Some(timeout))
            .timeout_connect(Some(timeout))
            .timeout_send_request(Some(timeout))
            .timeout_send_body(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .user_agent(concat!("ipqbdb/", env!("CARGO_PKG_VERSION")))
            .build();
        Client {
            agent: config.into(),
            url: url.to_string(),
            key,
        }
    }

    pub fn send(&self, req: &ReportRequest) -> Answer {
        let result = self
            .agent
            .post(&self.url)
            .header("Key", &self.key)
            .header("Accept", "application/json")
            .content_type(CONTENT_TYPE)
            .send(req.form());
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => return failed(e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        match status {
            200..=299 => Answer::Accepted { status },
            429 => Answer::RateLimited {
                status,
                retry_after,
            },
            500..=599 => Answer::ServerError {
                status,
                retry_after,
            },
            300..=399 => Answer::Misconfigured {
                status,
                detail: format!(
                    "redirected to {:?}: set report-url to the endpoint itself",
                    resp.headers()
                        .get("location")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                ),
            },
            _ => {
                let detail = resp
                    .body_mut()
                    .with_config()
                    .limit(DETAIL_MAX)
                    .read_to_string()
                    .unwrap_or_default();
                let detail: String = detail
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                if status == 401 {
                    Answer::Misconfigured { status, detail }
                } else {
                    Answer::Refused { status, detail }
                }
            }
        }
    }
}

fn failed(e: Error) -> Answer {
    let text = e.to_string();
    let not_sent = match &e {
        Error::Timeout(t) => matches!(t, Timeout::Resolve | Timeout::Connect),
        Error::HostNotFound | Error::ConnectionFailed | Error::Tls(_) | Error::Rustls(_) => true,
        Error::Io(io) => matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::NetworkUnreachable
                | std::io::ErrorKind::HostUnreachable
        ),
        _ => false,
    };
    if not_sent {
        Answer::NotSent(text)
    } else {
        Answer::NoAnswer(text)
    }
}
