//! The dispatcher end to end against a real HTTP endpoint on loopback, on both backends.

use crate::common;
use crate::for_both_backends;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::TestDb;
use common::dispatcher::Running;
use common::http_sink::{HttpSink, Response};
use common::store::{count, list, migrated, template_id, wait_for_totals, webhook_in};
use herald::config::Config;
use herald::model::{MessageState, Method};
use herald::store::{self, MessageFilter, NewMessage, OpenMode, Store};
use uuid::Uuid;

/// Fast settings for tests: short leases and retries; `tweak` adjusts them.
fn config(db: &TestDb, endpoint: &str, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config {
        database_url: db.url.clone(),
        ..Config::default()
    };
    c.notifications.method = Method::Webhook;
    c.notifications.webhook.endpoint = Some(endpoint.to_string());
    c.notifications.fetch_interval = Duration::from_millis(200);
    c.notifications.retry_interval = Duration::from_millis(300);
    c.notifications.store_sync_interval = Duration::from_millis(50);
    c.notifications.lease_period = Duration::from_secs(10);
    c.notifications.dispatch_timeout = Duration::from_secs(5);
    c.notifications.max_send_attempts = 3;
    tweak(&mut c);
    c
}

/// Runs a dispatcher while `n` webhook messages are queued, until they are all in `state`
/// (within `timeout_secs`); returns their ids.
async fn deliver(
    config: &Config,
    store: &dyn Store,
    n: usize,
    state: MessageState,
    timeout_secs: u64,
) -> Vec<Uuid> {
    let running = Running::start(config).await;
    let ids = common::seed::webhook_messages(store, n).await;
    let expected = i64::try_from(n).expect("a small count");
    wait_for_totals(store, &[(state, expected)], timeout_secs).await;
    running.stop().await;
    ids
}

fn message_ids(sink: &HttpSink) -> Vec<String> {
    sink.requests()
        .iter()
        .map(|r| r.header("x-message-id").expect("X-Message-Id").to_string())
        .collect()
}

async fn roundtrip_delivers_every_message_once(db: TestDb) {
    let store = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let config = config(&db, &sink.url, |_| {});
    let ids = deliver(&config, &*store, 1000, MessageState::Sent, 60).await;

    let mut delivered = message_ids(&sink);
    assert_eq!(delivered.len(), 1000, "each message delivered once");
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered.len(), 1000, "no message delivered twice");
    for id in ids.iter().step_by(97) {
        let (m, attempts) = store.message(*id).await.unwrap().unwrap();
        assert_eq!((m.status, m.attempt_count), (MessageState::Sent, 1));
        assert_eq!(attempts.len(), 1, "one attempt row");
        assert_eq!(attempts[0].outcome, MessageState::Sent);
        assert!(m.leased_until.is_none());
    }
}

async fn a_failing_endpoint_is_retried_until_it_succeeds(db: TestDb) {
    let store = migrated(&db).await;
    // Fails the first two requests, then succeeds.
    let sink = HttpSink::start(|_req, nth| {
        if nth < 2 {
            Response::new(503)
        } else {
            Response::new(200)
        }
    })
    .await;
    let config = config(&db, &sink.url, |_| {});
    let ids = deliver(&config, &*store, 1, MessageState::Sent, 20).await;
    let (m, attempts) = store.message(ids[0]).await.unwrap().unwrap();
    assert_eq!(m.attempt_count, 3);
    let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            MessageState::TemporaryFailure,
            MessageState::TemporaryFailure,
            MessageState::Sent
        ]
    );
    assert!(
        attempts[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("webhook 503")
    );
}

async fn an_always_failing_endpoint_ends_in_permanent_failure_respecting_retry_after(db: TestDb) {
    let store = migrated(&db).await;
    let sink = HttpSink::start(|_req, _nth| Response::new(500)).await;
    let config = config(&db, &sink.url, |_| {});
    let retry_interval = config.notifications.retry_interval;
    let ids = deliver(&config, &*store, 1, MessageState::PermanentFailure, 20).await;
    let (m, attempts) = store.message(ids[0]).await.unwrap().unwrap();
    assert_eq!(m.attempt_count, 3, "max_send_attempts");
    assert_eq!(attempts.len(), 3);
    assert!(
        m.status_reason.as_deref().unwrap().contains("webhook 500"),
        "{m:?}"
    );
    for pair in attempts.windows(2) {
        let gap = (pair[1].started_at - pair[0].started_at).to_std().unwrap();
        assert!(
            gap >= retry_interval,
            "attempt {} came {gap:?} after the previous one, before next_retry_after",
            pair[1].attempt_number
        );
    }
    assert_eq!(sink.count(), 3);
}

async fn a_hanging_endpoint_times_out_with_a_reason(db: TestDb) {
    let store = migrated(&db).await;
    let sink =
        HttpSink::start(|_req, _nth| Response::new(200).with_delay(Duration::from_secs(5))).await;
    let config = config(&db, &sink.url, |c| {
        c.notifications.dispatch_timeout = Duration::from_millis(300);
        c.notifications.retry_interval = Duration::from_secs(3600);
    });
    let ids = deliver(&config, &*store, 1, MessageState::TemporaryFailure, 20).await;
    let (m, _) = store.message(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        m.status_reason.as_deref(),
        Some("dispatch timeout after 300ms")
    );
    assert!(m.next_retry_after.unwrap() > Utc::now() + chrono::Duration::minutes(50));
}

/// A fetch interval so long that only a wake-up (or a resume) explains a prompt delivery.
fn fetch_rarely(c: &mut Config) {
    c.notifications.fetch_interval = Duration::from_secs(15);
}

async fn pause_stops_every_replica_and_resume_delivers_everything(db: TestDb) {
    let store = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let config = config(&db, &sink.url, fetch_rarely);
    let first = Running::start(&config).await;
    let second = Running::start(&config).await;
    // A third handle plays `herald notifications pause` in another process.
    let operator = store::open(&db.url, OpenMode::Existing).await.unwrap();
    operator.set_paused(true, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    common::seed::webhook_messages(&*store, 50).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.count(), 0, "nothing is delivered while paused");
    let counts = store.count_by_state().await.unwrap();
    assert_eq!(count(&counts, MessageState::Pending), 50);
    operator.set_paused(false, None).await.unwrap();
    wait_for_totals(&*store, &[(MessageState::Sent, 50)], 5).await;
    first.stop().await;
    second.stop().await;
    assert_eq!(sink.count(), 50);
}

async fn a_graceful_stop_with_a_tiny_buffer_flushes_every_outcome(db: TestDb) {
    let store = migrated(&db).await;
    let sink =
        HttpSink::start(|_req, _nth| Response::new(200).with_delay(Duration::from_millis(20)))
            .await;
    let config = config(&db, &sink.url, |c| {
        c.notifications.store_sync_buffer = 2;
        c.notifications.store_sync_interval = Duration::from_secs(3600);
        c.notifications.lease_count = 10;
    });
    let running = Running::start(&config).await;
    common::seed::webhook_messages(&*store, 300).await;
    while sink.count() < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    let counts = store.count_by_state().await.unwrap();
    assert_eq!(
        count(&counts, MessageState::Leased),
        0,
        "nothing left leased: {counts:?}"
    );
    assert_eq!(
        count(&counts, MessageState::Sent),
        sink.count() as i64,
        "every delivery's outcome was written"
    );
    assert!(
        count(&counts, MessageState::Pending) > 0,
        "the stop came mid-queue"
    );
}

async fn an_enqueue_elsewhere_wakes_an_idle_dispatcher_at_once(db: TestDb) {
    let _migrated = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let config = config(&db, &sink.url, fetch_rarely);
    let running = Running::start(&config).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let it go idle
    let producer = store::open(&db.url, OpenMode::Existing).await.unwrap();
    let started = Instant::now();
    common::seed::webhook_messages(&*producer, 1).await;
    assert!(
        sink.wait_for(1, Duration::from_secs(5)).await,
        "sink did not receive enough requests"
    );
    let latency = started.elapsed();
    running.stop().await;
    assert!(
        latency < Duration::from_millis(900),
        "delivered {latency:?} after the enqueue, with fetch_interval 15s"
    );
}

async fn retention_purges_old_messages_and_their_attempts(db: TestDb) {
    let store = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let config = config(&db, &sink.url, |_| {});
    let ids = deliver(&config, &*store, 5, MessageState::Sent, 10).await;
    let template = template_id(&*store, "test_notification").await;
    let old = NewMessage {
        created_at: Utc::now() - chrono::Duration::days(8),
        ..webhook_in(template, MessageState::Sent, None)
    };
    store.enqueue(std::slice::from_ref(&old)).await.unwrap();
    let purger = Uuid::now_v7();
    herald::dispatch::purge_old_messages(&*store, purger, Duration::from_secs(7 * 86400)).await;
    assert!(
        store.message(old.id).await.unwrap().is_none(),
        "old message purged"
    );
    for id in &ids {
        let (_, attempts) = store
            .message(*id)
            .await
            .unwrap()
            .expect("fresh message kept");
        assert_eq!(attempts.len(), 1, "fresh attempts kept");
    }
    let all = list(&*store, &MessageFilter::default(), 100).await;
    assert_eq!(all.len(), 5);
    // One replica at a time: another notifier cannot take the duty while the purger holds it.
    let other = Uuid::now_v7();
    assert!(
        !store
            .lead_retention(other, Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(
        store
            .lead_retention(purger, Duration::from_secs(60))
            .await
            .unwrap()
    );
    store.release_retention(purger).await.unwrap();
    assert!(
        store
            .lead_retention(other, Duration::from_secs(60))
            .await
            .unwrap()
    );
}

/// The purge deletes a message's attempts with it (on PostgreSQL no foreign key cascades it).
async fn the_purge_leaves_no_attempt_behind(db: TestDb) {
    let store = migrated(&db).await;
    let sink = HttpSink::ok().await;
    let config = config(&db, &sink.url, |_| {});
    let ids = deliver(&config, &*store, 5, MessageState::Sent, 10).await;
    let since = Utc::now() - chrono::Duration::hours(1);
    let sent_attempts = |counts: &herald::store::StateCounts| count(counts, MessageState::Sent);
    assert_eq!(
        sent_attempts(&store.attempts_since(since).await.unwrap()),
        5
    );
    let purged = store
        .purge_messages(Utc::now() + chrono::Duration::seconds(1), None)
        .await
        .unwrap();
    assert_eq!(purged, 5);
    for id in &ids {
        assert!(store.message(*id).await.unwrap().is_none());
    }
    assert_eq!(
        sent_attempts(&store.attempts_since(since).await.unwrap()),
        0,
        "every attempt went with its message"
    );
}

for_both_backends!(
    the_purge_leaves_no_attempt_behind,
    roundtrip_delivers_every_message_once,
    a_failing_endpoint_is_retried_until_it_succeeds,
    an_always_failing_endpoint_ends_in_permanent_failure_respecting_retry_after,
    a_hanging_endpoint_times_out_with_a_reason,
    pause_stops_every_replica_and_resume_delivers_everything,
    a_graceful_stop_with_a_tiny_buffer_flushes_every_outcome,
    an_enqueue_elsewhere_wakes_an_idle_dispatcher_at_once,
    retention_purges_old_messages_and_their_attempts,
);
