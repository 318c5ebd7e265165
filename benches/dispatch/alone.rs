//! The `store` diagnostic: the store's own lease and ack calls, one after the other on one
//! handle, with no delivery in between — what the dispatcher's store work costs by itself.

use super::*;
use herald::queue::AttemptResult;
use herald::store::{AttemptRecord, LeaseRequest};
use hyper::header::CONTENT_TYPE;

/// What the store alone did for `n` queued messages.
pub(super) struct StoreAlone {
    pub leases: Vec<Duration>,
    pub flushes: Vec<Duration>,
    pub total: Duration,
    /// This process's CPU (user + system) over the lease and ack calls.
    pub cpu: Duration,
}

impl std::fmt::Display for StoreAlone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mean_ms = |calls: &[Duration]| {
            1000.0 * calls.iter().map(Duration::as_secs_f64).sum::<f64>()
                / calls.len().max(1) as f64
        };
        write!(
            f,
            "{} leases of up to {LEASE} at {:.2} ms, {} acks of {ACK} at {:.2} ms",
            self.leases.len(),
            mean_ms(&self.leases),
            self.flushes.len(),
            mean_ms(&self.flushes),
        )
    }
}

/// Messages per lease (Herald's default `lease_count`).
const LEASE: u32 = 100;
/// Outcomes per ack (Herald's default `store_sync_buffer`).
const ACK: usize = 500;

/// Queues `n` messages, then leases them all and acks them `sent`, through [`Store`].
pub(super) async fn store_alone(backend: Backend, n: usize) -> anyhow::Result<StoreAlone> {
    let (rig, producer) = Rig::new(backend).await?;
    producer.enqueue_all(n).await?;
    drop(producer);
    let store = store::open(&rig.db.url, OpenMode::Existing).await?;
    let capabilities = rig.config.capabilities();
    let notifier_id = Uuid::now_v7();
    let request = LeaseRequest {
        notifier_id,
        limit: LEASE,
        lease_period: rig.config.notifications.lease_period,
        max_send_attempts: rig.config.notifications.max_send_attempts,
        capabilities: &capabilities,
    };
    let (mut leases, mut flushes) = (Vec::new(), Vec::new());
    let mut outcomes = Vec::with_capacity(ACK);
    let cpu_before = process_cpu();
    let started = Instant::now();
    loop {
        let clock = Instant::now();
        let batch = store.lease_batch(&request).await?;
        leases.push(clock.elapsed());
        let done = batch.is_empty();
        outcomes.extend(batch.into_iter().map(|m| AttemptRecord {
            message_id: m.id,
            method: m.method,
            target: m.target.clone(),
            lease_token: m.lease_token,
            notifier_id,
            started_at: Utc::now(),
            duration_ms: 1,
            result: AttemptResult {
                status: MessageState::Sent,
                status_reason: None,
                attempt_count: m.attempt_count + 1,
                next_retry_after: None,
            },
        }));
        if outcomes.len() >= ACK || (done && !outcomes.is_empty()) {
            let clock = Instant::now();
            store.record_attempts(&outcomes).await?;
            flushes.push(clock.elapsed());
            outcomes.clear();
        }
        if done {
            break;
        }
    }
    let total = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    drop(store);
    rig.close(n).await?;
    Ok(StoreAlone {
        leases,
        flushes,
        total,
        cpu,
    })
}

/// This process's CPU time so far (user + system), from getrusage through `/proc/self/stat`.
fn process_cpu() -> Duration {
    usage_of(std::process::id())
        .map(|(cpu, _)| cpu)
        .unwrap_or_default()
}

/// What the `http` diagnostic measured: `n` POSTs of a webhook-sized body through Herald's own
/// HTTP client settings to the bench's sink, at the dispatcher's concurrency, nothing else.
pub(super) struct HttpAlone {
    pub total: Duration,
    pub cpu: Duration,
}

/// Concurrent requests in the `http` diagnostic: the dispatcher's in-flight bound
/// (2 × the default `lease_count`).
const HTTP_CONCURRENCY: usize = 200;

/// Which HTTP client the `http` diagnostic drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HttpClientKind {
    /// Herald's own ([`herald::channels::http::Client`]).
    Herald,
    /// reqwest with the settings Herald used before issue 10: the baseline of the same run.
    Reqwest,
}

impl HttpClientKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            HttpClientKind::Herald => "herald",
            HttpClientKind::Reqwest => "reqwest (baseline)",
        }
    }
}

/// Posts `n` webhook-sized bodies to a fresh sink with `kind`'s client, 200 at a time: the HTTP
/// client's share of a delivery, for comparison with `serve`. The process CPU includes the
/// sink's (both run here), as `serve`'s does not.
pub(super) async fn http_alone(n: usize, kind: HttpClientKind) -> anyhow::Result<HttpAlone> {
    let sink = HttpSink::ok().await;
    sink.set_recording(false);
    let herald = herald::channels::http::Client::new(Method::Webhook)?;
    let reqwest = reqwest::Client::builder()
        .user_agent("herald-bench")
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let body = bytes::Bytes::from(serde_json::to_vec(&serde_json::json!({
        "_version": "1.1",
        "msg_id": Uuid::now_v7(),
        "payload": {"notification_name": EVENT, "labels": {"name": "bench"}, "data": {}},
        "title": "Test notification",
        "body": "This is a test notification.",
    }))?);
    let cpu_before = process_cpu();
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..HTTP_CONCURRENCY {
        let (herald, reqwest, url, body, next) = (
            herald.clone(),
            reqwest.clone(),
            sink.url.clone(),
            body.clone(),
            next.clone(),
        );
        workers.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                match kind {
                    HttpClientKind::Herald => {
                        herald
                            .post(url.as_str())
                            .header(CONTENT_TYPE, "application/json")
                            .body(body.clone())
                            .fetch(64 * 1024)
                            .await?;
                    }
                    HttpClientKind::Reqwest => {
                        let response = reqwest
                            .post(url.as_str())
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .await?;
                        response.bytes().await?;
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    let total = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    if sink.count() < n as u64 {
        bail!("the sink got {} of {n} requests", sink.count());
    }
    Ok(HttpAlone { total, cpu })
}
