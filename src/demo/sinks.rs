//! The demo's local HTTP sinks: one minimal HTTP/1.1 responder on `127.0.0.1:0` whose paths
//! behave like the peers a real deployment meets — a healthy webhook, a flaky one, a retired
//! one, a hung one, and a Slack Web API with one working and one missing channel.
//!
//! Just enough HTTP for Herald's own client: a request head, a `Content-Length` body,
//! keep-alive. Each connection is a task; stopping the sinks aborts them all.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::traffic::Dice;

/// Answers 200 to every POST.
pub const HEALTHY: &str = "/hooks/ops-feed";
/// Answers 503 with `Retry-After` to [`FLAKY_PERCENT`] of POSTs, 200 to the rest.
pub const FLAKY: &str = "/hooks/user-bridge";
/// Answers 404 to every POST: a hook that was deleted on the other side.
pub const GONE: &str = "/hooks/incident-bridge";
/// Answers only after [`HANG`], long past the demo's dispatch timeout.
pub const SLOW: &str = "/hooks/pager";
/// The fake Slack Web API's base URL path (`chat.postMessage`, `auth.test` below it).
pub const SLACK_API: &str = "/slack/api";
/// The one Slack channel the fake does not know: posts to it fail with `channel_not_found`.
pub const MISSING_CHANNEL: &str = "#data-legacy";

/// Share of flaky POSTs that fail.
const FLAKY_PERCENT: u64 = 30;
/// How long the slow sink keeps a POST waiting.
const HANG: Duration = Duration::from_secs(120);
/// Largest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body read.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The running sinks. [`Sinks::stop`] ends them; dropping them leaves the task to the runtime.
pub struct Sinks {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl Sinks {
    /// Binds `127.0.0.1:0` and starts answering.
    pub async fn start(dice: Arc<Dice>) -> io::Result<Sinks> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopping) = watch::channel(false);
        let server = tokio::spawn(serve(listener, stopping, dice));
        Ok(Sinks { addr, stop, server })
    }

    /// `http://127.0.0.1:PORT`, to which the paths above are appended.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting and aborts every open connection (the hung ones included).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.server.await {
            tracing::warn!("the demo sinks did not stop cleanly: {e}");
        }
    }
}

async fn serve(listener: TcpListener, mut stopping: watch::Receiver<bool>, dice: Arc<Dice>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopping.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, dice.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::debug!("demo sinks: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// One request as far as the sinks care.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
    close: bool,
}

/// What a sink answers, and how long it makes the client wait first.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: String,
    delay: Option<Duration>,
}

impl Answer {
    fn new(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: body.into(),
            delay: None,
        }
    }
}

async fn serve_connection(mut stream: TcpStream, dice: Arc<Dice>) {
    let mut buf = Vec::with_capacity(8192);
    // A read or write error only ends this connection; the client sees it as a failure.
    while let Ok(Some(request)) = read_request(&mut stream, &mut buf).await {
        let answer = answer(&request, &dice);
        if let Some(delay) = answer.delay {
            tokio::time::sleep(delay).await;
        }
        let head_only = request.method == "HEAD";
        if write_answer(&mut stream, &answer, head_only).await.is_err() || request.close {
            return;
        }
    }
}

/// Reads one request; `None` when the client closed the connection between requests.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(invalid("request head too large"));
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let path = request_line.next().unwrap_or_default().to_string();
    let (mut length, mut close) = (0, false);
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| invalid("bad Content-Length"))?;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(invalid("chunked bodies are not supported"));
        }
    }
    if length > MAX_BODY {
        return Err(invalid("request body too large"));
    }
    while buf.len() < head_end + length {
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

/// The behaviour behind each path.
fn answer(request: &Request, dice: &Dice) -> Answer {
    if request.method == "HEAD" {
        // `herald doctor` checks reachability with HEAD; every sink is reachable.
        return Answer::new(200, "");
    }
    let slack = |method: &str| format!("{SLACK_API}/{method}");
    match request.path.as_str() {
        HEALTHY => Answer::new(200, "{\"received\":true}"),
        FLAKY if dice.chance(FLAKY_PERCENT) => Answer {
            retry_after: Some(5),
            ..Answer::new(503, "upstream busy, try again later")
        },
        FLAKY => Answer::new(200, "{\"received\":true}"),
        GONE => Answer::new(404, "{\"error\":\"no such hook: it was deleted\"}"),
        SLOW => Answer {
            delay: Some(HANG),
            ..Answer::new(200, "{\"received\":true}")
        },
        path if path == slack("chat.postMessage") => slack_post(&request.body),
        path if path == slack("auth.test") => Answer::new(
            200,
            json!({"ok": true, "user": "herald-demo", "team": "Herald demo"}).to_string(),
        ),
        _ => Answer::new(404, "{\"error\":\"unknown path\"}"),
    }
}

/// `chat.postMessage`: fine for every channel but [`MISSING_CHANNEL`], Slack-style (HTTP 200).
fn slack_post(body: &[u8]) -> Answer {
    let channel = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("channel").and_then(Value::as_str).map(str::to_owned));
    let answer = match channel.as_deref() {
        None => json!({"ok": false, "error": "invalid_arguments"}),
        Some(MISSING_CHANNEL) => json!({"ok": false, "error": "channel_not_found"}),
        Some(channel) => json!({"ok": true, "channel": channel, "ts": "1700000000.000100"}),
    };
    Answer::new(200, answer.to_string())
}

async fn write_answer(stream: &mut TcpStream, answer: &Answer, head_only: bool) -> io::Result<()> {
    let reason = match answer.status {
        200 => "OK",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "",
    };
    let retry_after = answer
        .retry_after
        .map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         {retry_after}Connection: keep-alive\r\n\r\n",
        answer.status,
        answer.body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if !head_only {
        stream.write_all(answer.body.as_bytes()).await?;
    }
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, body: Value) -> Request {
        Request {
            method: "POST".into(),
            path: path.into(),
            body: body.to_string().into_bytes(),
            close: false,
        }
    }

    #[test]
    fn each_path_behaves_as_its_name_says() {
        let dice = Dice::seeded();
        assert_eq!(answer(&post(HEALTHY, json!({})), &dice).status, 200);
        assert_eq!(answer(&post(GONE, json!({})), &dice).status, 404);
        assert!(answer(&post(SLOW, json!({})), &dice).delay >= Some(Duration::from_secs(60)));
        let flaky: Vec<u16> = (0..400)
            .map(|_| answer(&post(FLAKY, json!({})), &dice).status)
            .collect();
        assert!(flaky.contains(&503) && flaky.contains(&200), "{flaky:?}");
        let head = Request {
            method: "HEAD".into(),
            ..post(SLOW, json!({}))
        };
        assert_eq!(answer(&head, &dice), Answer::new(200, ""));
    }

    #[test]
    fn the_fake_slack_knows_every_channel_but_one() {
        let dice = Dice::seeded();
        let path = format!("{SLACK_API}/chat.postMessage");
        let ok = answer(&post(&path, json!({"channel": "C0DATATEAM"})), &dice);
        assert!(ok.body.contains("\"ok\":true"), "{ok:?}");
        let missing = answer(&post(&path, json!({"channel": MISSING_CHANNEL})), &dice);
        assert!(missing.body.contains("channel_not_found"), "{missing:?}");
    }

    #[tokio::test]
    async fn the_sinks_speak_http_over_keep_alive_connections() {
        let sinks = Sinks::start(Arc::new(Dice::seeded())).await.unwrap();
        let client = reqwest::Client::new();
        for (path, status) in [(HEALTHY, 200), (GONE, 404), (HEALTHY, 200)] {
            let response = client
                .post(format!("{}{path}", sinks.base_url()))
                .body("{\"x\":1}")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status().as_u16(), status, "{path}");
        }
        let slow = client
            .post(format!("{}{SLOW}", sinks.base_url()))
            .timeout(Duration::from_millis(200))
            .send()
            .await;
        assert!(slow.unwrap_err().is_timeout());
        tokio::time::timeout(Duration::from_secs(5), sinks.stop())
            .await
            .expect("stopping does not wait for hung connections");
    }
}
