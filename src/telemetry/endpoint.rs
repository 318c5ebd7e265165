//! A minimal HTTP/1.1 server for `GET /metrics` (and 404 for anything else), bounded in
//! connections, head size and time.

use super::*;

/// At most this many scrapes are answered at once; further connections wait to be accepted.
pub(super) const MAX_CONNECTIONS: usize = 32;
/// A connection that has not been answered by then is dropped.
pub(super) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request head read.
pub(super) const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Serves `GET /metrics` on `addr` until `shutdown` completes, from a spawned task. Returns the
/// bound address (useful with port 0). Every response closes its connection; other paths get
/// 404, other methods on `/metrics` 405.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, TelemetryError> {
    let listen_error = |err: std::io::Error| TelemetryError::MetricsListen {
        addr,
        reason: listen_reason(&err),
    };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    tokio::spawn(accept_scrapes(listener, metrics, shutdown));
    tracing::info!(addr = %bound, "serving metrics at /metrics");
    Ok(bound)
}

pub(super) fn listen_reason(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::AddrInUse => "address in use".to_owned(),
        ErrorKind::AddrNotAvailable => "address not available on this machine".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}

pub(super) async fn accept_scrapes(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "metrics endpoint cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(CONNECTION_TIMEOUT, answer_scrape(stream, &metrics)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(error = %err, "metrics connection failed"),
                Err(_) => tracing::debug!("metrics connection timed out"),
            }
        });
    }
    tracing::debug!("metrics endpoint stopped");
}

pub(super) async fn answer_scrape(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() >= MAX_REQUEST_HEAD {
            break false;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break false;
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let response = if complete {
        route(&head, metrics)
    } else if head.is_empty() {
        return Ok(());
    } else {
        http_response("400 Bad Request", "text/plain", b"bad request\n", true, "")
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// The response to one request head.
pub(super) fn route(head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let request_line = head
        .split(|b| *b == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return http_response("400 Bad Request", "text/plain", b"bad request\n", true, "");
    };
    if !version.starts_with("HTTP/1.") {
        return http_response("400 Bad Request", "text/plain", b"bad request\n", true, "");
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return http_response(
            "404 Not Found",
            "text/plain",
            b"not found; metrics are at /metrics\n",
            true,
            "",
        );
    }
    match method {
        "GET" | "HEAD" => http_response(
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render().as_bytes(),
            method == "GET",
            "",
        ),
        _ => http_response(
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            true,
            "Allow: GET, HEAD\r\n",
        ),
    }
}

pub(super) fn http_response(
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    extra_headers: &str,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}
