//! Clients that would hold the API's server: one that never finishes its request head is
//! dropped after the header-read timeout, and connections beyond the bound wait for a slot —
//! while everyone else is answered.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use herald::api::ConnectionLimits;

use crate::common;
use common::api::RunningApi;

/// A connection that sent half a request head and stalls, as a slowloris client does.
async fn stalled_connection(api: &RunningApi) -> TcpStream {
    let mut stream = TcpStream::connect(api.addr).await.expect("connect");
    stream
        .write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: herald\r\nContent-Le")
        .await
        .expect("half a head");
    stream
}

/// Reads until the server closes `stream`, or fails after `within`; what it sent before.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut answer = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut answer))
        .await
        .unwrap_or_else(|_| panic!("the connection was still open after {within:?}"))
        .map(|_| answer)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_its_request_head_is_dropped_while_others_are_answered() {
    let db = common::sqlite_db();
    let timeout = Duration::from_millis(1500);
    let api = RunningApi::start_with(
        &db,
        ConnectionLimits {
            header_read_timeout: timeout,
            ..ConnectionLimits::default()
        },
    )
    .await;
    let started = Instant::now();
    let mut slow = stalled_connection(&api).await;

    let health = reqwest::get(api.at("/healthz")).await.expect("answered");
    assert_eq!(health.status(), StatusCode::OK);
    assert!(
        started.elapsed() < timeout,
        "answered while the slow client waits"
    );

    let answer = closed_within(&mut slow, timeout + Duration::from_secs(3)).await;
    let held = started.elapsed();
    assert!(
        held >= timeout - Duration::from_millis(100),
        "closed for its late head, not before: {held:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "no answer but a timeout: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_bound_wait_until_a_slot_is_free() {
    let db = common::sqlite_db();
    let api = RunningApi::start_with(
        &db,
        ConnectionLimits {
            max_connections: 2,
            header_read_timeout: Duration::from_secs(30),
        },
    )
    .await;
    let first = stalled_connection(&api).await;
    let _second = stalled_connection(&api).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let waiting = client.get(api.at("/healthz")).send().await;
    assert!(
        waiting.as_ref().is_err_and(reqwest::Error::is_timeout),
        "a third connection is not served while two hold the slots: {waiting:?}"
    );

    drop(first);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let served = client.get(api.at("/healthz")).send().await.expect("served");
    assert_eq!(served.status(), StatusCode::OK, "a freed slot is used");
}

/// A client that declares a body over the limit and sends it slowly reads the 413 once it is
/// done, instead of a connection closed under it (a write into a closed socket, then a reset
/// that can drop the answer before the client reads it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_sent_slowly_still_gets_its_413() {
    let db = common::sqlite_db();
    let api = RunningApi::start(&db).await;
    let length = 3 * 1024 * 1024;
    let mut stream = TcpStream::connect(api.addr).await.expect("connect");
    let head = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("the head");
    // The server has the head and could answer now; it waits for the body instead.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..length / chunk.len() {
        stream
            .write_all(&chunk)
            .await
            .expect("the server reads the refused body instead of closing under it");
    }
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("answered")
        .expect("the answer is readable");
    let text = String::from_utf8_lossy(&answer[..read]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains("over the 1048576-byte (1 MiB) limit"),
        "{text}"
    );
}
