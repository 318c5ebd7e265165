//! Scoped pauses across replicas, on both backends: `herald notifications pause --target` (the
//! built binary) holds one Slack target's messages on two running replicas while webhook
//! messages keep being delivered, `status` lists the pause, and `resume --target` drains it.

use crate::common;
use crate::for_both_backends;

use std::time::{Duration, Instant};

use common::TestDb;
use common::deployment::Deployment;
use common::dispatcher::Running;
use common::http_sink::{HttpSink, Response};
use herald::model::{MessageState, Method};
use herald::store::{self, MessageFilter, OpenMode, PageRequest, Store};

/// How many messages of `method` are in `state`.
async fn count(store: &dyn Store, method: Method, state: MessageState) -> i64 {
    let filter = MessageFilter {
        statuses: vec![state],
        method: Some(method),
        ..MessageFilter::default()
    };
    let page = PageRequest {
        before: None,
        limit: 1000,
    };
    store
        .list_messages(&filter, page)
        .await
        .expect("list")
        .len() as i64
}

/// Waits up to `secs` for `sink` to have received `n` requests.
async fn received(sink: &HttpSink, n: u64, secs: u64) -> bool {
    sink.wait_for(n, Duration::from_secs(secs)).await
}

async fn a_paused_target_waits_on_every_replica_while_the_rest_delivers(db: TestDb) {
    let webhook = HttpSink::ok().await;
    let slack = HttpSink::start(|_, _| Response::ok().with_body("ok")).await;
    let d = Deployment::new(&db, &webhook.url, &slack.url, "300ms");
    let store = store::open(&db.url, OpenMode::Existing)
        .await
        .expect("store");
    let first = Running::start(&d.config).await;
    let second = Running::start(&d.config).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.list_replicas().await.expect("replicas").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the replicas never sent a heartbeat"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let paused = d.run(&["notifications", "pause", "--target", "team-slack"]);
    assert!(paused.ok().stdout.contains("target team-slack paused"));
    let status = d.run(&["notifications", "status", "--json"]).ok().json();
    let pauses = status["channel_pauses"].as_array().expect("pauses").clone();
    assert_eq!(pauses.len(), 1, "{status}");
    assert_eq!(pauses[0]["scope"], "target");
    assert_eq!(pauses[0]["name"], "team-slack");
    assert_eq!(pauses[0]["paused_by"], "alice");
    assert_eq!(status["notifier_paused"], false);
    let explain = [
        "explain",
        "workspace_deleted",
        "--user",
        "alice",
        "--label",
        "name=ws-x",
        "--json",
    ];
    let explanation = d.run(&explain).ok().json();
    let decisions = explanation["decisions"].as_array().expect("decisions");
    let target = decisions
        .iter()
        .find(|d| d["target"] == "team-slack")
        .expect("the target's decision");
    assert_eq!(target["decision"], "queued");
    let why = target["reason"].as_str().unwrap_or_default();
    assert!(
        why.starts_with("held: target team-slack is paused"),
        "{why}"
    );
    let user = decisions
        .iter()
        .find(|d| d["user"] == "alice")
        .expect("alice");
    assert_eq!(user["reason"], serde_json::Value::Null, "{user}");

    for n in 0..5 {
        d.enqueue(n);
    }
    assert!(
        received(&webhook, 5, 20).await,
        "webhook messages keep flowing"
    );
    // Both replicas leased again and again meanwhile; the Slack messages stayed put.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(slack.count(), 0, "a paused target receives nothing");
    let held = count(&*store, Method::SlackWebhook, MessageState::Pending).await;
    assert_eq!(held, 5);

    let started = Instant::now();
    let resumed = d.run(&["notifications", "resume", "--target", "team-slack"]);
    assert!(resumed.ok().stdout.contains("resumed"));
    // The fetch interval is 15 s: only the resume's wake-up explains a prompt drain.
    assert!(received(&slack, 5, 10).await, "resume drains the target");
    assert!(started.elapsed() < Duration::from_secs(10));
    let status = d.run(&["notifications", "status", "--json"]).ok().json();
    assert_eq!(status["channel_pauses"], serde_json::json!([]));
    first.stop().await;
    second.stop().await;
    assert_eq!(
        count(&*store, Method::SlackWebhook, MessageState::Sent).await,
        5
    );
}

async fn a_paused_method_holds_its_user_messages_and_its_targets(db: TestDb) {
    let webhook = HttpSink::ok().await;
    let slack = HttpSink::start(|_, _| Response::ok().with_body("ok")).await;
    let d = Deployment::new(&db, &webhook.url, &slack.url, "300ms");
    let first = Running::start(&d.config).await;
    d.run(&["notifications", "pause", "--method", "webhook"])
        .ok();
    d.run(&["notifications", "pause", "--method", "slack_webhook"])
        .ok();
    d.enqueue(0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!((webhook.count(), slack.count()), (0, 0));
    let text = d.run(&["notifications", "status"]).ok().stdout;
    assert!(
        text.contains("method slack_webhook paused by alice"),
        "{text}"
    );
    assert!(text.contains("method webhook paused by alice"), "{text}");
    d.run(&["notifications", "resume", "--method", "slack_webhook"])
        .ok();
    assert!(received(&slack, 1, 10).await);
    assert_eq!(webhook.count(), 0, "webhook is still paused");
    d.run(&["notifications", "resume", "--method", "webhook"])
        .ok();
    assert!(received(&webhook, 1, 10).await);
    first.stop().await;
}

async fn pausing_names_a_known_target_and_needs_on_call(db: TestDb) {
    let sink = HttpSink::ok().await;
    let d = Deployment::new(&db, &sink.url, &sink.url, "300ms");
    d.run(&["notifications", "pause", "--target", "team-slak"])
        .fails_with("did you mean `team-slack`");
    d.run(&["users", "add", "bob", "--email", "bob@example.com"])
        .ok();
    d.run_as(Some("bob"), &["notifications", "pause", "--method", "smtp"])
        .fails_with("permission denied");
    let again = d.run(&["notifications", "resume", "--target", "team-slack"]);
    assert!(again.ok().stdout.contains("was not paused"));
}

for_both_backends!(
    a_paused_target_waits_on_every_replica_while_the_rest_delivers,
    a_paused_method_holds_its_user_messages_and_its_targets,
    pausing_names_a_known_target_and_needs_on_call,
);
