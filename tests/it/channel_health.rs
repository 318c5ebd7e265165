//! Channel health on both backends: with the Slack target failing, `herald channels status`
//! (the built binary) shows its failures, backlog and last error beside the healthy webhook;
//! `pause --target` marks it paused; a `herald serve` replica's `/metrics` has the message and
//! backlog gauges.

use crate::common;
use crate::for_both_backends;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::TestDb;
use common::deployment::Deployment;
use common::http_sink::{HttpSink, Response};
use common::serve::Serve;
use common::store::{every_method, lease_with, list, message, migrated, outcome, template_id};
use herald::model::{MessageState, Method, PauseScope};
use herald::store::{MessageFilter, Store};
use serde_json::Value;
use uuid::Uuid;

/// The row of `channels status --json` for `target` (None: the webhook method's user messages).
fn channel(report: &Value, method: &str, target: Option<&str>) -> Value {
    report["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .find(|c| c["method"] == method && c["target"].as_str() == target)
        .unwrap_or_else(|| panic!("no {method} {target:?} row in {report}"))
        .clone()
}

/// A free loopback address for `--metrics-addr`.
fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").to_string()
}

/// Polls `channels status --json` until `done` holds (within 20 s).
fn status_until(d: &Deployment, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = d.run(&["channels", "status", "--json"]).ok().json();
        if done(&report) {
            return report;
        }
        assert!(Instant::now() < deadline, "not reached: {report}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls `/metrics` at `addr` until it holds every line in `expected` (within 20 s).
async fn metrics_until(addr: &str, expected: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = match reqwest::get(format!("http://{addr}/metrics")).await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if expected.iter().all(|line| text.lines().any(|l| l == *line)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "missing {expected:?} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_failing_slack_target_shows_its_failures_and_last_error(db: TestDb) {
    let webhook = HttpSink::ok().await;
    let slack = HttpSink::start(|_, _| Response::new(500).with_body("slack is down")).await;
    let d = Deployment::new(&db, &webhook.url, &slack.url, "1h");
    let addr = free_addr();
    let replica = Serve::start(
        d.dir.path(),
        &d.config_path,
        "replica",
        &["--metrics-addr", &addr],
    );
    for n in 0..3 {
        d.enqueue(n);
    }
    let report = status_until(&d, |r| {
        channel(r, "slack_webhook", Some("team-slack"))["temporary_failure"] == 3
            && channel(r, "webhook", None)["sent"] == 3
    });
    let hook = channel(&report, "webhook", None);
    assert_eq!(hook["backlog"], 0, "{hook}");
    assert_eq!(hook["last_error"], Value::Null, "{hook}");
    assert!(hook["p50_ms"].as_i64().is_some(), "{hook}");
    assert!(hook["p95_ms"].as_i64() >= hook["p50_ms"].as_i64(), "{hook}");
    let team = channel(&report, "slack_webhook", Some("team-slack"));
    // Failed once each and waiting an hour for the retry: still the backlog.
    assert_eq!(team["backlog"], 3, "{team}");
    assert_eq!(team["sent"], 0, "{team}");
    let last_error = team["last_error"].as_str().unwrap_or_default();
    assert!(last_error.contains("500"), "{team}");
    assert_eq!(team["paused"], false);
    // One row per channel the deployment has: webhook, inbox (always there) and the target.
    assert_eq!(report["channels"].as_array().unwrap().len(), 3, "{report}");

    d.run(&["notifications", "pause", "--target", "team-slack"])
        .ok();
    let report = d.run(&["channels", "status", "--json"]).ok().json();
    assert_eq!(
        channel(&report, "slack_webhook", Some("team-slack"))["paused"],
        true
    );
    let text = d.run(&["channels", "status"]).ok().stdout;
    let line = text
        .lines()
        .find(|l| l.starts_with("target:team-slack"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("PAUSED") && line.contains("500"), "{line}");

    let metrics = metrics_until(
        &addr,
        &[
            "herald_messages{status=\"sent\"} 3",
            "herald_messages{status=\"temporary_failure\"} 3",
            "herald_backlog_messages{method=\"slack_webhook\"} 3",
            "herald_backlog_messages{method=\"webhook\"} 0",
        ],
    )
    .await;
    assert!(
        metrics.contains("# TYPE herald_messages gauge"),
        "{metrics}"
    );
    assert_eq!(replica.terminate(), 0);
}

async fn channel_health_is_for_owners_and_on_call(db: TestDb) {
    let sink = HttpSink::ok().await;
    let d = Deployment::new(&db, &sink.url, &sink.url, "1h");
    d.run(&[
        "users",
        "add",
        "olive",
        "--email",
        "o@example.com",
        "--role",
        "oncall",
    ])
    .ok();
    d.run(&["users", "add", "mia", "--email", "m@example.com"])
        .ok();
    d.run_as(Some("olive"), &["channels", "status"]).ok();
    d.run_as(Some("mia"), &["channels", "status"])
        .fails_with("permission denied");
}

async fn the_store_reads_backlog_and_window_attempts_per_channel(db: TestDb) {
    let store = migrated(&db).await;
    let event = template_id(&*store, "workspace_deleted").await;
    let mut slack = message(event, None, Method::SlackWebhook, None);
    slack.planned.target = Some("team-slack".into());
    let queued = [
        message(event, None, Method::Webhook, None),
        message(event, None, Method::Webhook, None),
        slack,
    ];
    store.enqueue(&queued).await.expect("enqueue");
    let notifier = Uuid::now_v7();
    let mut everything = every_method();
    everything.targets.push("team-slack".into());
    let period = Duration::from_secs(60);
    let leased = lease_with(&*store, notifier, 10, period, 5, &everything)
        .await
        .expect("lease");
    assert_eq!(leased.len(), 3);
    let (slack, hooks): (Vec<_>, Vec<_>) = leased.iter().partition(|m| m.target.is_some());
    let outcomes = [
        outcome(hooks[0], notifier, MessageState::Sent, None),
        outcome(
            hooks[1],
            notifier,
            MessageState::TemporaryFailure,
            Some("webhook 503"),
        ),
        outcome(
            slack[0],
            notifier,
            MessageState::PermanentFailure,
            Some("slack 404"),
        ),
    ];
    store.record_attempts(&outcomes).await.expect("record");

    // The retry waits: one webhook message is still the backlog; the final ones are not.
    let backlog = store.backlog_by_channel().await.expect("backlog");
    let backlog: Vec<_> = backlog
        .iter()
        .map(|b| (b.method, b.target.as_deref(), b.count))
        .collect();
    assert_eq!(backlog, [(Method::Webhook, None, 1)]);

    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let attempts = attempts_per_channel(&*store, since).await;
    assert_eq!(
        attempts,
        [
            (Method::Webhook, None, MessageState::Sent, 1),
            (Method::Webhook, None, MessageState::TemporaryFailure, 1),
            (
                Method::SlackWebhook,
                Some("team-slack".to_string()),
                MessageState::PermanentFailure,
                1
            ),
        ]
    );
    let recent = store.recent_attempts(since, 2).await.expect("recent");
    assert_eq!(recent.len(), 2, "the limit holds");
    let all = store.recent_attempts(since, 10).await.expect("recent");
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].started_at >= w[1].started_at));
    let slack = all.iter().find(|a| a.target.is_some()).expect("slack");
    assert_eq!(slack.reason.as_deref(), Some("slack 404"));
    assert_eq!(slack.duration_ms, 3);
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    assert!(store.attempts_by_channel(later).await.unwrap().is_empty());
    assert!(store.recent_attempts(later, 10).await.unwrap().is_empty());

    // The retention duty drops old minute counts, and only those; the attempts stay.
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    assert_eq!(store.purge_attempt_minutes(hour_ago).await.unwrap(), 0);
    assert_eq!(store.attempts_by_channel(since).await.unwrap().len(), 3);
    assert_eq!(store.purge_attempt_minutes(later).await.unwrap(), 3);
    assert!(store.attempts_by_channel(since).await.unwrap().is_empty());
    assert_eq!(store.recent_attempts(since, 10).await.unwrap().len(), 3);
}

async fn the_store_keeps_one_pause_per_channel_until_it_is_resumed(db: TestDb) {
    let store = migrated(&db).await;
    let pause = |scope, name: &'static str, by: &'static str| {
        let store = store.clone();
        async move {
            store
                .pause_channel(scope, name, by, None)
                .await
                .expect("pause")
        }
    };
    assert!(pause(PauseScope::Target, "team-slack", "olive").await);
    assert!(
        !pause(PauseScope::Target, "team-slack", "alice").await,
        "paused already"
    );
    assert!(pause(PauseScope::Method, "smtp", "alice").await);
    let pauses = store.channel_pauses().await.expect("pauses");
    let listed: Vec<_> = pauses
        .iter()
        .map(|p| (p.scope, p.name.as_str(), p.paused_by.as_str()))
        .collect();
    // By scope, then name; the first pause's row is kept.
    assert_eq!(
        listed,
        [
            (PauseScope::Method, "smtp", "alice"),
            (PauseScope::Target, "team-slack", "olive")
        ]
    );
    assert!(pauses[0].paused_at <= chrono::Utc::now());
    let resume = |scope, name: &'static str| {
        let store = store.clone();
        async move {
            store
                .resume_channel(scope, name, None)
                .await
                .expect("resume")
        }
    };
    assert!(resume(PauseScope::Target, "team-slack").await);
    assert!(
        !resume(PauseScope::Target, "team-slack").await,
        "not paused any more"
    );
    assert!(
        !resume(PauseScope::Target, "smtp").await,
        "scope and name both match"
    );
    assert_eq!(store.channel_pauses().await.unwrap().len(), 1);
}

/// Waiting messages per (method, target), counted from the rows themselves: the oracle the
/// store's kept counts must match.
async fn waiting_rows(store: &dyn Store) -> BTreeMap<(Method, Option<String>), i64> {
    let mut waiting = BTreeMap::new();
    for m in list(store, &MessageFilter::default(), 1_000).await {
        if matches!(
            m.status,
            MessageState::Pending | MessageState::TemporaryFailure | MessageState::Leased
        ) {
            *waiting.entry((m.method, m.target.clone())).or_default() += 1;
        }
    }
    waiting
}

/// The attempts the store counted per channel and outcome since `since`, in key order.
async fn attempts_per_channel(
    store: &dyn Store,
    since: chrono::DateTime<chrono::Utc>,
) -> Vec<(Method, Option<String>, MessageState, i64)> {
    let mut counted: Vec<_> = store
        .attempts_by_channel(since)
        .await
        .expect("attempts")
        .into_iter()
        .map(|a| (a.method, a.target, a.outcome, a.count))
        .collect();
    counted.sort_by(|a, b| (a.0, &a.1, a.2).cmp(&(b.0, &b.1, b.2)));
    counted
}

/// The backlog the store keeps must agree with the rows; returns it.
async fn assert_backlog_exact(
    store: &dyn Store,
    when: &str,
) -> BTreeMap<(Method, Option<String>), i64> {
    let kept: BTreeMap<_, _> = store
        .backlog_by_channel()
        .await
        .expect("backlog")
        .into_iter()
        .map(|b| ((b.method, b.target), b.count))
        .collect();
    assert_eq!(kept, waiting_rows(store).await, "{when}");
    kept
}

async fn channel_counts_follow_every_change_and_migrations_11_and_12_backfill_them(db: TestDb) {
    let store = migrated(&db).await;
    let event = template_id(&*store, "run_failure").await;
    let to = |method, target: Option<&str>| {
        let mut m = message(event, None, method, None);
        m.planned.target = target.map(str::to_string);
        m
    };
    let mut batch = vec![
        to(Method::Webhook, None),
        to(Method::Webhook, None),
        to(Method::Smtp, None),
        to(Method::SlackWebhook, Some("ops")),
        to(Method::SlackWebhook, Some("ops")),
        to(Method::SlackWebhook, Some("elsewhere")),
    ];
    batch[1].planned.status = MessageState::Sent;
    store.enqueue(&batch).await.expect("enqueue");
    let kept = assert_backlog_exact(&*store, "after enqueue").await;
    assert_eq!(kept[&(Method::SlackWebhook, Some("ops".into()))], 2);
    assert!(!kept.contains_key(&(Method::Webhook, Some(String::new()))));
    let to_ops = MessageFilter {
        target: Some("ops".into()),
        ..MessageFilter::default()
    };
    let ops = list(&*store, &to_ops, 10).await;
    assert_eq!(ops.len(), 2, "the Queue's target=ops");
    assert!(ops.iter().all(|m| m.target.as_deref() == Some("ops")));

    let notifier = Uuid::now_v7();
    let mut covered = every_method();
    covered.targets.push("ops".into());
    let period = Duration::from_secs(60);
    let leased = lease_with(&*store, notifier, 10, period, 5, &covered)
        .await
        .expect("lease");
    assert_eq!(leased.len(), 4, "webhook, smtp and the two `ops` messages");
    assert_backlog_exact(&*store, "after lease").await;
    let records: Vec<_> = leased
        .iter()
        .map(|m| {
            let status = match m.method {
                Method::Webhook => MessageState::Sent,
                Method::Smtp => MessageState::PermanentFailure,
                _ => MessageState::TemporaryFailure,
            };
            let mut record = outcome(m, notifier, status, Some("failed"));
            record.result.next_retry_after = Some(chrono::Utc::now() + chrono::Duration::hours(1));
            record
        })
        .collect();
    store.record_attempts(&records).await.expect("record");
    let kept = assert_backlog_exact(&*store, "after ack").await;
    assert_eq!(
        kept.keys().cloned().collect::<Vec<_>>(),
        [
            (Method::SlackWebhook, Some("elsewhere".to_string())),
            (Method::SlackWebhook, Some("ops".to_string())),
        ],
        "sent and permanent failures leave the backlog"
    );
    let smtp = leased.iter().find(|m| m.method == Method::Smtp).unwrap().id;
    store
        .retry_messages(&[smtp], false, "retried", None)
        .await
        .expect("retry");
    assert_backlog_exact(&*store, "after retry").await;

    // Undeliverable reads the same counts: waiting messages nobody covers.
    let partial = herald::model::Capabilities {
        methods: vec![Method::Webhook],
        targets: vec!["ops".into()],
    };
    let waiting: Vec<_> = store
        .undeliverable(&partial)
        .await
        .expect("undeliverable")
        .into_iter()
        .map(|w| (w.method, w.target, w.count))
        .collect();
    assert_eq!(
        waiting,
        [
            (Method::SlackWebhook, Some("elsewhere".to_string()), 1),
            (Method::Smtp, None, 1),
        ]
    );

    // The attempts, counted per minute as they were written.
    let since = chrono::Utc::now() - chrono::Duration::minutes(15);
    let counted = attempts_per_channel(&*store, since).await;
    assert_eq!(
        counted,
        [
            (Method::Smtp, None, MessageState::PermanentFailure, 1),
            (Method::Webhook, None, MessageState::Sent, 1),
            (
                Method::SlackWebhook,
                Some("ops".to_string()),
                MessageState::TemporaryFailure,
                2
            ),
        ]
    );

    // Migrations 11 and 12 again over counts gone wrong: their backfills make them exact
    // from the rows.
    drop(store);
    let wreck = [
        "UPDATE notification_counts SET n = n + 7",
        "DROP INDEX notification_messages_target",
        "DROP TABLE notification_attempt_minutes",
        "DELETE FROM herald_schema_migrations WHERE version >= 11",
    ];
    raw_execute(&db, &wreck).await;
    let store = herald::store::open(&db.url, herald::store::OpenMode::Migrate)
        .await
        .expect("migrate again");
    assert_backlog_exact(&*store, "after the backfill").await;
    assert_eq!(
        attempts_per_channel(&*store, since).await,
        counted,
        "the minutes backfilled"
    );
    let total: i64 = store
        .count_by_state()
        .await
        .expect("counts")
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(total, 6);
    store
        .enqueue(&[to(Method::Inbox, None)])
        .await
        .expect("enqueue");
    assert_backlog_exact(&*store, "the triggers run after the backfill").await;
}

/// Runs `statements` on a connection of the test's own, outside the store.
async fn raw_execute(db: &TestDb, statements: &[&str]) {
    use sqlx::Connection;
    if db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&db.url)
            .await
            .expect("connect");
        for sql in statements {
            sqlx::query(sql).execute(&mut conn).await.expect(sql);
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        for sql in statements {
            sqlx::query(sql).execute(&mut conn).await.expect(sql);
        }
    }
}

for_both_backends!(
    channel_counts_follow_every_change_and_migrations_11_and_12_backfill_them,
    the_store_reads_backlog_and_window_attempts_per_channel,
    the_store_keeps_one_pause_per_channel_until_it_is_resumed,
    a_failing_slack_target_shows_its_failures_and_last_error,
    channel_health_is_for_owners_and_on_call,
);
