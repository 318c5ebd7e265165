//! Channel health on both backends: with the Slack target failing, `herald channels status`
//! (the built binary) shows its failures, backlog and last error beside the healthy webhook;
//! `pause --target` marks it paused; a `herald serve` replica's `/metrics` has the message and
//! backlog gauges.

use crate::common;
use crate::for_both_backends;

use std::time::{Duration, Instant};

use common::TestDb;
use common::deployment::Deployment;
use common::http_sink::{HttpSink, Response};
use common::serve::Serve;
use serde_json::Value;

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

for_both_backends!(
    a_failing_slack_target_shows_its_failures_and_last_error,
    channel_health_is_for_owners_and_on_call,
);
