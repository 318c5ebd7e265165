//! A local HTTP/1.1 server for tests of the HTTP channels (webhook, Slack) and the dispatcher.
//!
//! Built on tokio alone: it reads a request line, headers and a `Content-Length` body, keeps
//! connections alive, serves any number of them concurrently, and answers with whatever the
//! test's behaviour says — status, headers, body and an optional delay for timeout tests.
//! It is meant to be fast enough for the dispatcher benchmark (no locks held across awaits,
//! buffers reused per connection, recording can be switched off).
//!
//! ```ignore
//! let sink = HttpSink::start(|req, n| {
//!     if n == 0 { Response::new(503).with_header("Retry-After", "1") } else { Response::ok() }
//! })
//! .await;
//! // POST to format!("{}/hook", sink.url) …
//! assert!(sink.wait_for(2, Duration::from_secs(5)).await);
//! assert_eq!(sink.requests()[1].header("x-message-id"), Some("…"));
//! ```
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest request head (request line and headers) accepted; more is answered with 431.
const MAX_HEAD: usize = 64 * 1024;

/// Largest request body accepted; more is answered with 413.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, …
    pub method: String,
    /// The request target as sent, e.g. `/hooks/abc?x=1`.
    pub path: String,
    /// Headers in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("request body is not JSON ({e}): {}", self.body_text()))
    }
}

/// What the sink answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Extra headers; `Content-Length` and `Connection` are added by the sink.
    pub headers: Vec<(String, String)>,
    /// The body (not sent for 204 and 304).
    pub body: String,
    /// Wait this long before answering, for timeout tests.
    pub delay: Option<Duration>,
}

impl Response {
    /// An empty answer with `status`.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: None,
        }
    }

    /// `200 OK`, empty.
    pub fn ok() -> Self {
        Self::new(200)
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Answers only after `delay`.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
}

type Behaviour = dyn Fn(&Request, u64) -> Response + Send + Sync;

struct Shared {
    behaviour: Box<Behaviour>,
    /// Requests numbered so far (the `n` given to the behaviour).
    numbered: AtomicU64,
    /// Requests fully received and recorded (if recording).
    received: AtomicU64,
    recording: AtomicBool,
    requests: Mutex<Vec<Request>>,
}

/// A running sink; dropping it stops the server and closes its connections.
pub struct HttpSink {
    /// `http://127.0.0.1:PORT` (no trailing slash); append a path.
    pub url: String,
    /// The address it listens on.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
}

/// A listener on `127.0.0.1:0` and its address; `what` names it if that fails.
pub async fn listen_locally(what: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("binding {what} on 127.0.0.1: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("{what}'s address: {e}"));
    (listener, addr)
}

impl HttpSink {
    /// Starts a sink on `127.0.0.1:0` on the current tokio runtime. `behaviour` decides each
    /// answer from the request and its number `n` across all connections (0 for the first).
    pub async fn start(
        behaviour: impl Fn(&Request, u64) -> Response + Send + Sync + 'static,
    ) -> HttpSink {
        let (listener, addr) = listen_locally("the HTTP sink").await;
        let shared = Arc::new(Shared {
            behaviour: Box::new(behaviour),
            numbered: AtomicU64::new(0),
            received: AtomicU64::new(0),
            recording: AtomicBool::new(true),
            requests: Mutex::new(Vec::new()),
        });
        let (shutdown, stopped) = watch::channel(false);
        tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped));
        HttpSink {
            url: format!("http://{addr}"),
            addr,
            shared,
            shutdown,
        }
    }

    /// A sink that answers every request with `200 OK`.
    pub async fn ok() -> HttpSink {
        Self::start(|_, _| Response::ok()).await
    }

    /// A sink that answers every request with `status`.
    pub async fn always(status: u16) -> HttpSink {
        Self::start(move |_, _| Response::new(status)).await
    }

    /// Whether received requests are kept for [`HttpSink::requests`] (on by default; turn it
    /// off for benchmarks — [`HttpSink::count`] still counts).
    pub fn set_recording(&self, on: bool) {
        self.shared.recording.store(on, Ordering::Relaxed);
    }

    /// The requests received so far, in arrival order (while recording).
    pub fn requests(&self) -> Vec<Request> {
        self.lock_requests().clone()
    }

    /// Forgets the recorded requests (the count goes on).
    pub fn clear(&self) {
        self.lock_requests().clear();
    }

    /// Requests fully received so far, recorded or not.
    pub fn count(&self) -> u64 {
        self.shared.received.load(Ordering::Acquire)
    }

    /// Waits until at least `n` requests have been received; false if `timeout` passed first.
    pub async fn wait_for(&self, n: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.count() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops accepting and closes every connection (also done on drop).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    fn lock_requests(&self) -> std::sync::MutexGuard<'_, Vec<Request>> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for HttpSink {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl std::fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSink")
            .field("url", &self.url)
            .field("count", &self.count())
            .finish()
    }
}

/// Resolves when the sink is shut down or dropped.
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let accept = async {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                // Out of file descriptors and the like: back off rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&shared);
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = serve_connection(stream, shared) => {}
                    _ = stopped(stop) => {}
                }
            });
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = stopped(stop.clone()) => {}
    }
}

/// Serves requests on one connection until the peer closes it, asks to, or errs.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    loop {
        // The head: everything up to the blank line.
        let mut scanned = 0;
        let head_end = loop {
            if let Some(pos) = find_blank_line(&buf, scanned) {
                break pos;
            }
            scanned = buf.len().saturating_sub(3);
            if buf.len() > MAX_HEAD {
                return reject(&mut stream, 431).await;
            }
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        let Some(head) = parse_head(&buf[..head_end]) else {
            return reject(&mut stream, 400).await;
        };
        if head.chunked {
            return reject(&mut stream, 501).await;
        }
        if head.content_length > MAX_BODY {
            return reject(&mut stream, 413).await;
        }
        let total = head_end + head.content_length;
        if buf.len() < total && head.expect_continue {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        while buf.len() < total {
            if stream.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let request = Request {
            method: head.method,
            path: head.path,
            headers: head.headers,
            body: buf[head_end..total].to_vec(),
        };
        buf.drain(..total);

        let n = shared.numbered.fetch_add(1, Ordering::AcqRel);
        let response = (shared.behaviour)(&request, n);
        let keep_alive = head.keep_alive;
        if shared.recording.load(Ordering::Relaxed) {
            shared
                .requests
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push(request);
        }
        shared.received.fetch_add(1, Ordering::AcqRel);

        if let Some(delay) = response.delay {
            tokio::time::sleep(delay).await;
        }
        out.clear();
        write_response(&response, keep_alive, &mut out);
        stream.write_all(&out).await?;
        if !keep_alive {
            return stream.shutdown().await;
        }
    }
}

/// The index just past the first `\r\n\r\n` at or after `from`.
fn find_blank_line(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|pos| from + pos + 4)
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    content_length: usize,
    chunked: bool,
    keep_alive: bool,
    expect_continue: bool,
}

fn parse_head(head: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let version = request_line.next()?;
    let mut parsed = Head {
        method,
        path,
        headers: Vec::with_capacity(8),
        content_length: 0,
        chunked: false,
        keep_alive: version == "HTTP/1.1",
        expect_continue: false,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            parsed.content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            parsed.chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                parsed.keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                parsed.keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("expect") {
            parsed.expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
        parsed.headers.push((name.to_string(), value.to_string()));
    }
    Some(parsed)
}

fn write_response(response: &Response, keep_alive: bool, out: &mut Vec<u8>) {
    use std::io::Write;
    let status = response.status;
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    if !no_body {
        let _ = write!(out, "content-length: {}\r\n", response.body.len());
    }
    for (name, value) in &response.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !no_body {
        out.extend_from_slice(response.body.as_bytes());
    }
}

/// Answers a request the sink cannot take and closes the connection.
async fn reject(stream: &mut TcpStream, status: u16) -> io::Result<()> {
    let mut out = Vec::new();
    write_response(&Response::new(status), false, &mut out);
    stream.write_all(&out).await?;
    stream.shutdown().await
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
