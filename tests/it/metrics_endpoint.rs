//! `/metrics` on the HTTP API's server over real TCP: what a Prometheus scrape sees.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use herald::api::ApiListener;

use crate::common;
use common::api::RunningApi;

/// Sends `request` as is and reads until the server closes the connection (requests ask for
/// that with `Connection: close` or HTTP/1.0).
async fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("the server closes the connection after the response")
        .unwrap();
    String::from_utf8(response).unwrap()
}

/// The status line, the headers and the body of one request.
async fn request(addr: SocketAddr, method: &str, path: &str) -> (String, String, String) {
    let response = exchange(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

async fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    request(addr, "GET", path).await
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn metrics_endpoint_serves_recorded_attempts_as_prometheus_text() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let metrics = &api.metrics;
    metrics.record_attempt("webhook", "run_failure", "sent", 0.02);
    metrics.record_attempt("webhook", "run_failure", "sent", 0.2);
    metrics.record_attempt("smtp", "workspace_deleted", "temporary_failure", 3.0);
    metrics.record_retry("smtp");
    metrics.record_lease(3);
    metrics.inflight_add(1);

    let (status, headers, body) = get(api.addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let content_type = header(&headers, "content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert_eq!(
        header(&headers, "content-length"),
        Some(body.len().to_string().as_str())
    );

    let lines: Vec<&str> = body.lines().collect();
    for expected in [
        "# TYPE herald_dispatch_attempts_total counter",
        r#"herald_dispatch_attempts_total{event="run_failure",method="webhook",result="sent"} 2"#,
        r#"herald_dispatch_attempts_total{event="workspace_deleted",method="smtp",result="temporary_failure"} 1"#,
        "# TYPE herald_send_seconds histogram",
        r#"herald_send_seconds_bucket{method="webhook",le="0.025"} 1"#,
        r#"herald_send_seconds_bucket{method="webhook",le="0.25"} 2"#,
        r#"herald_send_seconds_bucket{method="webhook",le="+Inf"} 2"#,
        r#"herald_send_seconds_count{method="webhook"} 2"#,
        r#"herald_retries_total{method="smtp"} 1"#,
        "herald_leased_total 3",
        "herald_inflight 1",
        "herald_pending_updates 0",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{body}");
    }

    // A later scrape sees later records, and a query string does not change the path.
    metrics.record_attempt("webhook", "run_failure", "sent", 0.02);
    let (_, _, body) = get(api.addr, "/metrics?fresh=1").await;
    assert!(
        body.lines().any(|l| l
            == r#"herald_dispatch_attempts_total{event="run_failure",method="webhook",result="sent"} 3"#),
        "{body}"
    );
    assert!(api.stop(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn metrics_answer_head_and_http_1_0_and_refuse_a_malformed_request() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let response = exchange(api.addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
    assert!(response.starts_with("HTTP/1.0 200 OK\r\n"), "{response}");
    assert!(response.contains("herald_inflight"), "{response}");

    let (status, headers, body) = request(api.addr, "HEAD", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.is_empty(), "HEAD has no body: {body:?}");
    assert!(
        header(&headers, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{headers}"
    );

    let response = exchange(api.addr, "garbage\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn other_paths_are_not_found_and_other_methods_not_allowed() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    // `/healthz` is no longer among them: the API's server answers it (tests/it/api_server.rs).
    for path in ["/", "/metric", "/metrics/extra"] {
        let (status, headers, body) = get(api.addr, path).await;
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
        assert_eq!(
            header(&headers, "content-type"),
            Some("application/json"),
            "{path}"
        );
        assert!(!body.contains("herald_"), "{path}: {body}");
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            error["error"],
            format!(
                "no endpoint at {path}; herald serves /healthz, /readyz, /metrics and the API under /api/v1"
            ),
        );
    }
    let response = exchange(
        api.addr,
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{response}"
    );
    assert!(!response.contains("herald_"), "{response}");
}

#[tokio::test]
async fn listening_on_a_busy_address_is_an_error_naming_it_and_the_setting() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let err = match ApiListener::bind(api.addr, "--metrics-addr").await {
        Ok(_) => panic!("{} is taken, yet bound again", api.addr),
        Err(err) => err,
    };
    assert_eq!(err.addr, api.addr);
    assert_eq!(
        err.to_string(),
        format!(
            "cannot listen on {} for the HTTP API (--metrics-addr): address in use; stop what is using it or choose another address",
            api.addr
        )
    );
}

#[tokio::test]
async fn the_endpoint_stops_accepting_on_shutdown() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let addr = api.addr;
    let (status, _, _) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");

    assert!(
        api.stop(Duration::from_secs(5)).await,
        "an idle server stops at once"
    );
    let connected = TcpStream::connect(addr).await;
    assert!(
        connected.is_err(),
        "still accepting connections after shutdown"
    );
}
