//! A scripted HTTP/1.1 server on loopback for tests of programs that talk HTTP (`ibd report`): it
//! records every request it gets (method, path, headers, body, arrival time) and answers each with
//! the next [`Reply`] of its script, or the default one when the script is used up.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Largest request head or body the server reads; more fails the test's request.
const MAX_REQUEST: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub enum Reply {
    /// Answers with this status, extra headers and body, then closes the connection.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Reads the request, answers nothing, and closes the connection after this long (or when the
    /// server is dropped): a server that went silent.
    Stall(Duration),
    /// Runs `argv` (a real program, to completion) once the request is read, then answers with
    /// `then`: something that happens while the client waits for its answer.
    RunFirst { argv: Vec<String>, then: Box<Reply> },
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::status(200, &[], "{\"data\":{}}")
    }

    pub fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        Reply::Status {
            code,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        }
    }
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body's form fields, decoded, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The value of one form field.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

struct Inner {
    requests: Vec<Request>,
    script: VecDeque<Reply>,
    default: Reply,
}

/// The server; it stops (and its connections close) when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedServer {
    /// Starts on an ephemeral loopback port with `script`, then `default` for every later request.
    pub fn start(script: Vec<Reply>, default: Reply) -> ScriptedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let inner = Arc::new(Mutex::new(Inner {
            requests: Vec::new(),
            script: script.into(),
            default,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (i, s) = (inner.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (i, s) = (i.clone(), s.clone());
                        thread::spawn(move || serve(conn, &i, &s));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("test HTTP server: accept: {e}"),
                }
            }
        });
        ScriptedServer { addr, inner, stop }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Replaces what is left of the script and the default reply.
    pub fn rescript(&self, script: Vec<Reply>, default: Reply) {
        let mut i = self.inner.lock().unwrap();
        i.script = script.into();
        i.default = default;
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: TcpStream, inner: &Mutex<Inner>, stop: &AtomicBool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(req) = read_request(&mut conn) else {
        return;
    };
    let reply = {
        let mut i = inner.lock().unwrap();
        i.requests.push(req);
        let default = i.default.clone();
        i.script.pop_front().unwrap_or(default)
    };
    answer(conn, reply, stop);
}

fn answer(mut conn: TcpStream, reply: Reply, stop: &AtomicBool) {
    match reply {
        Reply::RunFirst { argv, then } => {
            let status = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .status();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "test HTTP server: {argv:?}: {status:?}"
            );
            answer(conn, *then, stop);
        }
        Reply::Status {
            code,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {code} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(body.as_bytes());
        }
        Reply::Stall(d) => {
            let end = Instant::now() + d;
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_REQUEST {
            return None;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let at = Instant::now();
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(MAX_REQUEST);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at,
    })
}
