//! Latency at light load: one message every 20 ms, enqueue call to receipt at the sink.

use super::*;

/// Who enqueues in the latency scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProducerKind {
    /// Its own store handle, like `herald enqueue` in another process: the dispatcher learns
    /// of the message through `LISTEN/NOTIFY` or SQLite's `PRAGMA data_version` check.
    OtherProcess,
    /// The dispatcher's own store handle, like an enqueue made by the console or service in
    /// the same process: the in-process signal wakes it.
    SameProcess,
}

impl ProducerKind {
    pub(super) fn label(self) -> &'static str {
        match self {
            ProducerKind::OtherProcess => "other process",
            ProducerKind::SameProcess => "same process",
        }
    }
}

pub(super) async fn latency_run(
    backend: Backend,
    n: usize,
    producer_kind: ProducerKind,
) -> anyhow::Result<LatencyRun> {
    let db = backend.fresh_db();
    let (observer, template) = migrated_store(&db.url).await?;
    let receipts: Arc<Mutex<HashMap<Uuid, Instant>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(n)));
    let sink = {
        let receipts = receipts.clone();
        HttpSink::start(move |request, _| {
            let at = Instant::now();
            if let Some(id) = request
                .header("x-message-id")
                .and_then(|v| Uuid::parse_str(v).ok())
            {
                lock(&receipts).entry(id).or_insert(at);
            }
            Response::ok()
        })
        .await
    };
    sink.set_recording(false);
    let config = default_config(&db.url, &sink.url);
    if config.notifications.fetch_interval != Duration::from_secs(15) {
        bail!(
            "the default fetch_interval is {:?}; this scenario is defined at 15s",
            config.notifications.fetch_interval
        );
    }
    let replica = Replica::start(&config).await?;
    let producer = Producer {
        store: match producer_kind {
            ProducerKind::OtherProcess => store::open(&db.url, OpenMode::Existing).await?,
            ProducerKind::SameProcess => replica.store.clone(),
        },
        template_id: template.id,
        payload: payload(&template),
    };
    // Let the dispatcher go idle: from here on only a wake-up (not the 15 s poll) is fast.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut enqueued = Vec::with_capacity(n);
    let mut ticker = tokio::time::interval(LATENCY_GAP);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..n {
        ticker.tick().await;
        let message = producer.message();
        let id = message.id;
        let at = Instant::now();
        producer
            .store
            .enqueue(std::slice::from_ref(&message))
            .await?;
        enqueued.push((id, at, at.elapsed()));
    }
    if !sink.wait_for(n as u64, Duration::from_secs(30)).await {
        bail!("the sink got {} of {n} messages within 30 s", sink.count());
    }
    replica.stop().await?;
    drop(producer);
    drop(observer);

    let receipts = lock(&receipts).clone();
    let mut latencies = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for (id, at, call) in &enqueued {
        let received = receipts
            .get(id)
            .with_context(|| format!("message {id} never reached the sink"))?;
        latencies.push(received.saturating_duration_since(*at));
        calls.push(*call);
    }
    latencies.sort();
    calls.sort();
    drop(sink);
    discard(db);
    Ok(LatencyRun {
        backend,
        producer: producer_kind,
        samples: n,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        enqueue_p50: percentile(&calls, 0.50),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
