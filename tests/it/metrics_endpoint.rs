//! The `/metrics` endpoint over real TCP: what a Prometheus scrape sees.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use herald::telemetry::{Metrics, TelemetryError, serve_metrics};

/// A running endpoint; dropping `stop` (or sending on it) shuts it down.
struct Endpoint {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
}

async fn start(metrics: Arc<Metrics>) -> Endpoint {
    let (stop, stopped) = oneshot::channel::<()>();
    let addr = serve_metrics("127.0.0.1:0".parse().unwrap(), metrics, async move {
        let _ = stopped.await;
    })
    .await
    .expect("the metrics endpoint starts on a free port");
    assert_ne!(addr.port(), 0, "the bound port is returned");
    Endpoint { addr, stop }
}

/// Sends `request` as is and reads until the server closes the connection.
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

async fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let response = exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: test\r\n\r\n"),
    )
    .await;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn metrics_endpoint_serves_recorded_attempts_as_prometheus_text() {
    let metrics = Arc::new(Metrics::new());
    let endpoint = start(metrics.clone()).await;
    metrics.record_attempt("webhook", "run_failure", "sent", 0.02);
    metrics.record_attempt("webhook", "run_failure", "sent", 0.2);
    metrics.record_attempt("smtp", "workspace_deleted", "temporary_failure", 3.0);
    metrics.record_retry("smtp");
    metrics.record_lease(3);
    metrics.inflight_add(1);

    let (status, headers, body) = get(endpoint.addr, "/metrics").await;
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
    assert_eq!(header(&headers, "connection"), Some("close"));

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

    // A later scrape sees later records.
    metrics.record_attempt("webhook", "run_failure", "sent", 0.02);
    let (_, _, body) = get(endpoint.addr, "/metrics?fresh=1").await;
    assert!(
        body.lines().any(|l| l
            == r#"herald_dispatch_attempts_total{event="run_failure",method="webhook",result="sent"} 3"#),
        "{body}"
    );
    drop(endpoint.stop);
}

#[tokio::test]
async fn other_paths_are_not_found_and_other_methods_not_allowed() {
    let endpoint = start(Arc::new(Metrics::new())).await;
    for path in ["/", "/metric", "/metrics/extra", "/healthz"] {
        let (status, _, body) = get(endpoint.addr, path).await;
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
        assert!(!body.contains("herald_"), "{path}: {body}");
    }
    let response = exchange(
        endpoint.addr,
        "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert!(
        response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{response}"
    );
    let response = exchange(endpoint.addr, "garbage\r\n\r\n").await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    drop(endpoint.stop);
}

#[tokio::test]
async fn listening_on_a_busy_address_is_an_error_naming_it() {
    let endpoint = start(Arc::new(Metrics::new())).await;
    let err = serve_metrics(endpoint.addr, Arc::new(Metrics::new()), async {})
        .await
        .expect_err("the port is taken");
    assert!(
        matches!(err, TelemetryError::MetricsListen { addr, .. } if addr == endpoint.addr),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "cannot listen on {} for metrics: address in use",
            endpoint.addr
        )
    );
    drop(endpoint.stop);
}

#[tokio::test]
async fn the_endpoint_stops_accepting_on_shutdown() {
    let endpoint = start(Arc::new(Metrics::new())).await;
    let (status, _, _) = get(endpoint.addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");

    endpoint.stop.send(()).unwrap();
    // The server task shares this test's single-threaded runtime, so it runs during the sleep;
    // no connection is needed to make it notice the shutdown.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connected = TcpStream::connect(endpoint.addr).await;
    assert!(
        connected.is_err(),
        "still accepting connections after shutdown"
    );
}
