//! The webhook channel against a real HTTP server (`common::http_sink`): Coder's body schema,
//! headers and signature, target URLs, and how each answer is classified (DESIGN §7).

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use common::channel_fixtures::{self, alice, builtin_event, target, user};
use common::http_sink::{HttpSink, Request, Response};
use herald::channels::{Channel, Delivery, WebhookChannel};
use herald::config::Config;
use herald::model::{DeliveryOutcome, Method, User};
use herald::render::{Rendered, render};
use herald::routing::build_payload;

const SECRET: &str = "signing-secret-for-tests";
const WAIT: Duration = Duration::from_secs(10);

/// A config whose endpoint is `endpoint`, signed when `signed`, with a global webhook target
/// `ops` and alice's own `ops` at the given URLs.
fn config(endpoint: Option<&str>, signed: bool, target_url: &str) -> Config {
    let mut toml = String::new();
    if endpoint.is_some() || signed {
        toml.push_str("[notifications.webhook]\n");
    }
    if let Some(endpoint) = endpoint {
        toml.push_str(&format!("endpoint = \"{endpoint}\"\n"));
    }
    if signed {
        toml.push_str(&format!("signing_secret = \"{SECRET}\"\n"));
    }
    let notify_on = ["run_failure", "workspace_deleted"];
    let ops = |url: String| target("webhook", "ops", &notify_on, &[("url", &url)]);
    toml.push_str(&ops(format!("{target_url}/global-ops")));
    toml.push_str(&user("alice", &[ops(format!("{target_url}/alice-ops"))]));
    channel_fixtures::config(&toml)
}

/// An unsigned config whose endpoint is `sink`'s `/hooks/s3cr3t`, its targets on `sink` too.
fn unsigned_config(sink: &HttpSink) -> Config {
    config(
        Some(&format!("{}/hooks/s3cr3t", sink.url)),
        false,
        &sink.url,
    )
}

fn channel(config: &Config) -> WebhookChannel {
    WebhookChannel::new(&config.channel_settings().webhook).expect("webhook channel")
}

/// A stored payload and its rendering, as the dispatcher would have them.
struct Message {
    id: Uuid,
    user: User,
    payload: Value,
    rendered: Rendered,
}

impl Message {
    /// `workspace_deleted` for alice, or for the target `target` when given.
    fn workspace_deleted(target: Option<&str>) -> Message {
        let event = builtin_event("workspace_deleted");
        let user = alice();
        let labels = BTreeMap::from([
            ("name".to_string(), "my-workspace".to_string()),
            ("reason".to_string(), "initiated by user".to_string()),
            ("initiator".to_string(), "danny".to_string()),
        ]);
        let data = serde_json::json!({"build": 7});
        let payload = match target {
            None => build_payload(&event, Some(&user), &labels, &data, &[]),
            Some(t) => build_payload(&event, None, &labels, &data, &[t.to_string()]),
        };
        let rendered = render(&event, &payload).expect("workspace_deleted renders");
        Message {
            id: Uuid::now_v7(),
            user,
            payload,
            rendered,
        }
    }

    fn delivery<'a>(&'a self, target: Option<&'a str>) -> Delivery<'a> {
        Delivery {
            message_id: self.id,
            event: "workspace_deleted",
            method: Method::Webhook,
            user_id: Some(self.user.id),
            target,
            payload: &self.payload,
            rendered: &self.rendered,
        }
    }
}

/// Delivers one user message to a sink answering with `behaviour`; returns the outcome and
/// the request the sink saw.
async fn deliver_to(
    behaviour: impl Fn(&Request, u64) -> Response + Send + Sync + 'static,
) -> (DeliveryOutcome, Request) {
    let sink = HttpSink::start(behaviour).await;
    let config = unsigned_config(&sink);
    let message = Message::workspace_deleted(None);
    let outcome = channel(&config).deliver(&message.delivery(None)).await;
    assert!(sink.wait_for(1, WAIT).await, "the sink got no request");
    let request = sink.requests().remove(0);
    (outcome, request)
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

#[tokio::test]
async fn body_has_exactly_coders_keys_and_the_rendered_content() {
    let sink = HttpSink::ok().await;
    let config = unsigned_config(&sink);
    let message = Message::workspace_deleted(None);
    let outcome = channel(&config).deliver(&message.delivery(None)).await;
    assert_eq!(outcome, DeliveryOutcome::Sent);

    let request = sink.requests().remove(0);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/s3cr3t");
    assert_eq!(request.header("content-type"), Some("application/json"));
    let message_id = message.id.to_string();
    assert_eq!(request.header("x-message-id"), Some(message_id.as_str()));

    let body = request.json();
    assert_eq!(
        keys(&body),
        BTreeSet::from([
            "_version",
            "msg_id",
            "payload",
            "title",
            "title_markdown",
            "body",
            "body_markdown"
        ])
    );
    assert_eq!(
        keys(&body["payload"]),
        BTreeSet::from([
            "_version",
            "notification_name",
            "notification_template_id",
            "user_id",
            "user_email",
            "user_name",
            "user_username",
            "actions",
            "labels",
            "data",
            "targets"
        ])
    );
    assert_eq!(body["_version"], "1.1");
    assert_eq!(body["msg_id"], message_id.as_str());
    assert_eq!(body["title"], "Workspace \"my-workspace\" deleted");
    assert_eq!(body["title_markdown"], body["title"]);
    assert_eq!(
        body["body_markdown"],
        message.rendered.body_markdown.as_str()
    );
    assert_eq!(body["body"], message.rendered.body_text.as_str());
    assert!(
        body["body_markdown"]
            .as_str()
            .is_some_and(|b| b.contains("**my-workspace**"))
    );
    assert!(
        body["body"]
            .as_str()
            .is_some_and(|b| b.contains("Your workspace my-workspace was deleted."))
    );

    let payload = &body["payload"];
    assert_eq!(payload["_version"], "1.2");
    assert_eq!(payload["notification_name"], "workspace_deleted");
    assert_eq!(
        payload["notification_template_id"],
        message.payload["notification_template_id"]
    );
    assert_eq!(payload["user_id"], message.user.id.to_string().as_str());
    assert_eq!(payload["user_email"], "alice@example.com");
    assert_eq!(payload["user_name"], "Alice Liddell");
    assert_eq!(payload["user_username"], "alice");
    assert_eq!(payload["labels"]["name"], "my-workspace");
    assert_eq!(payload["data"], serde_json::json!({"build": 7}));
    assert_eq!(payload["targets"], serde_json::json!([]));
    // The actions are rendered, not the templates stored in the payload.
    assert_eq!(
        payload["actions"],
        serde_json::json!([
            {"label": "View workspaces", "url": "/workspaces"},
            {"label": "View templates", "url": "/templates"},
        ])
    );
}

#[tokio::test]
async fn signature_verifies_over_the_raw_body_with_the_secret() {
    let sink = HttpSink::ok().await;
    let config = config(Some(&format!("{}/hook", sink.url)), true, &sink.url);
    let message = Message::workspace_deleted(None);
    assert_eq!(
        channel(&config).deliver(&message.delivery(None)).await,
        DeliveryOutcome::Sent
    );
    let request = sink.requests().remove(0);
    let signature = request
        .header("x-herald-signature")
        .expect("a signature header");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(signature, expected);

    let mut wrong = Hmac::<Sha256>::new_from_slice(b"another secret").unwrap();
    wrong.update(&request.body);
    assert_ne!(
        signature,
        format!("sha256={}", hex::encode(wrong.finalize().into_bytes()))
    );
}

#[tokio::test]
async fn without_a_secret_there_is_no_signature_header() {
    let (outcome, request) = deliver_to(|_, _| Response::ok()).await;
    assert_eq!(outcome, DeliveryOutcome::Sent);
    assert_eq!(request.header("x-herald-signature"), None);
    assert!(request.header("x-message-id").is_some());
}

#[tokio::test]
async fn answers_are_classified_as_the_design_says() {
    enum Expect {
        Sent,
        Retryable(&'static str, Option<u64>),
        Permanent(&'static str),
    }
    let cases = [
        (200, None, Expect::Sent),
        (201, None, Expect::Sent),
        (204, None, Expect::Sent),
        (404, None, Expect::Permanent("webhook 404 after ")),
        (400, None, Expect::Permanent("webhook 400 after ")),
        (410, None, Expect::Permanent("webhook 410 after ")),
        (408, None, Expect::Retryable("webhook 408 after ", None)),
        (
            429,
            Some("7"),
            Expect::Retryable("webhook 429 after ", Some(7)),
        ),
        (429, None, Expect::Retryable("webhook 429 after ", None)),
        (500, None, Expect::Retryable("webhook 500 after ", None)),
        (502, None, Expect::Retryable("webhook 502 after ", None)),
        (
            503,
            Some("3"),
            Expect::Retryable("webhook 503 after ", Some(3)),
        ),
        (503, None, Expect::Retryable("webhook 503 after ", None)),
    ];
    for (status, retry_after, expect) in cases {
        let (outcome, _) = deliver_to(move |_, _| {
            let response = Response::new(status).with_body("go away");
            match retry_after {
                Some(secs) => response.with_header("Retry-After", secs),
                None => response,
            }
        })
        .await;
        match (&outcome, expect) {
            (DeliveryOutcome::Sent, Expect::Sent) => {}
            (
                DeliveryOutcome::Retryable {
                    reason,
                    retry_after,
                },
                Expect::Retryable(prefix, secs),
            ) => {
                assert!(reason.starts_with(prefix), "{status}: {reason}");
                assert!(reason.ends_with('s'), "{status}: {reason}");
                assert_eq!(*retry_after, secs.map(Duration::from_secs), "{status}");
            }
            (DeliveryOutcome::Permanent { reason }, Expect::Permanent(prefix)) => {
                assert!(reason.starts_with(prefix), "{status}: {reason}");
                assert!(reason.ends_with("s: go away"), "{status}: {reason}");
            }
            _ => panic!("status {status} gave {outcome:?}"),
        }
    }
}

#[tokio::test]
async fn a_refused_connection_is_retryable_and_hides_the_url_path() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let closed = format!("http://127.0.0.1:{port}");
    let config = config(Some(&format!("{closed}/hooks/s3cr3t")), true, &closed);
    let message = Message::workspace_deleted(None);
    match channel(&config).deliver(&message.delivery(None)).await {
        DeliveryOutcome::Retryable {
            reason,
            retry_after,
        } => {
            assert!(reason.starts_with("webhook request failed: "), "{reason}");
            assert!(!reason.contains("s3cr3t"), "{reason}");
            assert!(!reason.contains(SECRET), "{reason}");
            assert_eq!(retry_after, None);
        }
        other => panic!("a refused connection gave {other:?}"),
    }
}

#[tokio::test]
async fn a_target_message_goes_to_the_targets_url_not_the_endpoint() {
    let sink = HttpSink::ok().await;
    let config = config(Some(&format!("{}/endpoint", sink.url)), false, &sink.url);
    let channel = channel(&config);
    for (target, path) in [("ops", "/global-ops"), ("alice/ops", "/alice-ops")] {
        sink.clear();
        let message = Message::workspace_deleted(Some(target));
        assert_eq!(
            channel.deliver(&message.delivery(Some(target))).await,
            DeliveryOutcome::Sent,
            "{target}"
        );
        let request = sink.requests().remove(0);
        assert_eq!(request.path, path, "{target}");
        let body = request.json();
        assert_eq!(body["payload"]["targets"], serde_json::json!([target]));
        assert_eq!(body["payload"]["user_username"], "");
    }
    let message = Message::workspace_deleted(None);
    assert_eq!(
        channel.deliver(&message.delivery(None)).await,
        DeliveryOutcome::Sent
    );
    assert_eq!(
        sink.requests().last().map(|r| r.path.clone()).as_deref(),
        Some("/endpoint")
    );
}

#[tokio::test]
async fn an_unknown_target_or_a_missing_endpoint_is_permanent_and_says_what_to_set() {
    let sink = HttpSink::ok().await;
    let config = config(None, false, &sink.url);
    let channel = channel(&config);
    let message = Message::workspace_deleted(None);
    match channel.deliver(&message.delivery(None)).await {
        DeliveryOutcome::Permanent { reason } => {
            assert!(
                reason.contains("notifications.webhook.endpoint"),
                "{reason}"
            )
        }
        other => panic!("no endpoint gave {other:?}"),
    }
    match channel.deliver(&message.delivery(Some("bob/ops"))).await {
        DeliveryOutcome::Permanent { reason } => {
            assert!(reason.contains("`bob/ops`"), "{reason}")
        }
        other => panic!("an unknown target gave {other:?}"),
    }
    assert_eq!(sink.count(), 0);
}

#[tokio::test]
async fn a_reason_never_contains_the_secret_part_of_the_url() {
    // A server that echoes the path it was called on, as some error pages do.
    for status in [404, 503] {
        let (outcome, request) = deliver_to(move |req, _| {
            Response::new(status).with_body(format!("no hook at {}", req.path))
        })
        .await;
        assert_eq!(request.path, "/hooks/s3cr3t");
        let reason = match outcome {
            DeliveryOutcome::Retryable { reason, .. } | DeliveryOutcome::Permanent { reason } => {
                reason
            }
            DeliveryOutcome::Sent => panic!("{status} was sent"),
        };
        assert!(!reason.contains("s3cr3t"), "{status}: {reason}");
        assert!(reason.starts_with(&format!("webhook {status}")), "{reason}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_all_arrive_once() {
    let sink = HttpSink::ok().await;
    let config = config(Some(&format!("{}/hook", sink.url)), true, &sink.url);
    let channel = std::sync::Arc::new(channel(&config));
    let messages: Vec<Message> = (0..200).map(|_| Message::workspace_deleted(None)).collect();
    let ids: BTreeSet<String> = messages.iter().map(|m| m.id.to_string()).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for message in messages {
        let channel = std::sync::Arc::clone(&channel);
        tasks.spawn(async move { channel.deliver(&message.delivery(None)).await });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert_eq!(outcome.unwrap(), DeliveryOutcome::Sent);
    }
    assert_eq!(sink.count(), 200);
    let received: BTreeSet<String> = sink
        .requests()
        .iter()
        .filter_map(|r| r.header("x-message-id").map(str::to_string))
        .collect();
    assert_eq!(received, ids);
}

#[tokio::test]
async fn the_channel_waits_for_a_slow_peer_the_dispatcher_bounds_it() {
    let sink = HttpSink::start(|_, _| Response::ok().with_delay(Duration::from_secs(30))).await;
    let config = config(Some(&format!("{}/hook", sink.url)), false, &sink.url);
    let message = Message::workspace_deleted(None);
    let channel = channel(&config);
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(
        Duration::from_millis(300),
        channel.deliver(&message.delivery(None)),
    )
    .await;
    assert!(result.is_err(), "no overall timeout of its own: {result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(sink.count(), 1);
}
