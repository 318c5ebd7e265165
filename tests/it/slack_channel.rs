//! The Slack channels against a local HTTP server standing in for slack.com
//! (`common::http_sink`): `chat.postMessage` with a bearer token, the channel and Block Kit
//! blocks; incoming webhooks; how each answer is classified; Slack's limits; no secret in a
//! reason (DESIGN §7, issue 4 items 3 and 9).

use crate::common;

use std::fmt::Debug;
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use common::channel_fixtures::{self, builtin_event, target, user};
use common::http_sink::{HttpSink, Request, Response};
use common::silent_server::SilentServer;
use herald::channels::slack::{SlackApiChannel, SlackWebhookChannel};
use herald::channels::{Channel, Channels, Delivery};
use herald::config::Config;
use herald::model::{Action, DeliveryOutcome, Method};
use herald::render::{Overrides, Rendered, render_for};

const TOKEN: &str = "xoxb-1234-5678-SECRETTOKENvalue";
const WEBHOOK_PATH: &str = "/services/T0000/B0000/XXXXsecretXXXX";
const CHANNEL: &str = "C0123456789";
const WAIT: Duration = Duration::from_secs(10);

/// A global `slack_api` target `alerts` and a `slack_webhook` target `team`, and alice's own
/// `slack_api` target `dm`, all pointing at `base` (the sink).
fn config(base: &str) -> Config {
    let api = |name: &str, channel: &str| {
        let keys: [(&str, &dyn Debug); 3] = [
            ("token", &TOKEN),
            ("channel", &channel),
            ("api_base_url", &format!("{base}/api")),
        ];
        target("slack_api", name, &["apply_failure"], &keys)
    };
    let team = target(
        "slack_webhook",
        "team",
        &["apply_failure"],
        &[("url", &format!("{base}{WEBHOOK_PATH}"))],
    );
    let toml = [
        api("alerts", CHANNEL),
        team,
        user("alice", &[api("dm", "U0ALICE")]),
    ];
    channel_fixtures::config(&toml.concat())
}

/// What the dispatcher would hand over for `apply_failure`, built by hand.
struct Message {
    payload: Value,
    rendered: Rendered,
}

impl Message {
    fn apply_failure() -> Message {
        Message {
            payload: json!({
                "notification_name": "apply_failure",
                "labels": {"environment": "prod", "plan_id": "plan_7"},
                "data": {"error": "Error: model sales.orders failed\n  line 3: division by zero"},
                "targets": ["alerts"],
            }),
            rendered: Rendered {
                title: "Plan apply failed in \"prod\"".to_string(),
                body_markdown: "Plan application `plan_7` failed for environment **prod**."
                    .to_string(),
                body_text: "Plan application plan_7 failed for environment prod.".to_string(),
                actions: vec![
                    Action {
                        label: "View plan".to_string(),
                        url: "https://sqlmesh.example.com/plans/plan_7".to_string(),
                    },
                    Action {
                        label: "View logs".to_string(),
                        url: "https://sqlmesh.example.com/logs?plan=plan_7".to_string(),
                    },
                ],
            },
        }
    }

    fn delivery<'a>(&'a self, method: Method, target: Option<&'a str>) -> Delivery<'a> {
        Delivery {
            message_id: Uuid::now_v7(),
            event: "apply_failure",
            method,
            user_id: None,
            target,
            payload: &self.payload,
            rendered: &self.rendered,
        }
    }
}

fn api_ok() -> Response {
    Response::ok()
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(format!(
            r#"{{"ok":true,"channel":"{CHANNEL}","ts":"1715000000.000100"}}"#
        ))
}

fn api_error(status: u16, error: &str) -> Response {
    Response::new(status)
        .with_header("content-type", "application/json; charset=utf-8")
        .with_body(format!(r#"{{"ok":false,"error":"{error}"}}"#))
}

/// Delivers `message` by `method` to `target` on a sink answering with `behaviour`; returns
/// the outcome and the requests the sink saw.
async fn deliver_through(
    message: &Message,
    method: Method,
    target: &str,
    behaviour: impl Fn(&Request, u64) -> Response + Send + Sync + 'static,
) -> (DeliveryOutcome, Vec<Request>) {
    let sink = HttpSink::start(behaviour).await;
    let channels =
        Channels::from_settings(&config(&sink.url).channel_settings()).expect("slack channels");
    let channel = channels.get(method).expect("a channel for the method");
    assert_eq!(channel.method(), method);
    let outcome = channel
        .deliver(&message.delivery(method, Some(target)))
        .await;
    (outcome, sink.requests())
}

/// Delivers `message` through the `slack_api` target `target` (see [`deliver_through`]).
async fn deliver_api(
    message: &Message,
    target: &str,
    behaviour: impl Fn(&Request, u64) -> Response + Send + Sync + 'static,
) -> (DeliveryOutcome, Vec<Request>) {
    deliver_through(message, Method::SlackApi, target, behaviour).await
}

/// Delivers `message` through the `slack_webhook` target `team` (see [`deliver_through`]).
async fn deliver_webhook(
    message: &Message,
    behaviour: impl Fn(&Request, u64) -> Response + Send + Sync + 'static,
) -> (DeliveryOutcome, Vec<Request>) {
    deliver_through(message, Method::SlackWebhook, "team", behaviour).await
}

fn block_types(body: &Value) -> Vec<&str> {
    body["blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("no blocks: {body}"))
        .iter()
        .map(|b| b["type"].as_str().unwrap_or("?"))
        .collect()
}

fn reason(outcome: &DeliveryOutcome) -> &str {
    match outcome {
        DeliveryOutcome::Sent => "",
        DeliveryOutcome::Retryable { reason, .. } | DeliveryOutcome::Permanent { reason } => reason,
    }
}

#[tokio::test]
async fn slack_api_posts_chat_post_message_with_the_bearer_token_channel_and_blocks() {
    let message = Message::apply_failure();
    let (outcome, requests) = deliver_api(&message, "alerts", |_, _| api_ok()).await;
    assert_eq!(outcome, DeliveryOutcome::Sent);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/api/chat.postMessage");
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(request.header("authorization"), Some(bearer.as_str()));
    assert_eq!(
        request.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let body = request.json();
    assert_eq!(body["channel"], CHANNEL);
    assert_eq!(
        body["text"],
        ":x: Plan apply failed in \"prod\"\nPlan application plan_7 failed for environment prod."
    );
    assert_eq!(
        block_types(&body),
        ["header", "section", "section", "actions"],
        "{body:#}"
    );
    assert_eq!(
        body["blocks"][0]["text"],
        json!({"type": "plain_text", "text": ":x: Plan apply failed in \"prod\"", "emoji": true})
    );
    assert_eq!(
        body["blocks"][1]["text"],
        json!({"type": "mrkdwn", "text": "*Status:* Failed · *Event:* `apply_failure`\n\n\
            Plan application `plan_7` failed for environment *prod*.\n\n*Error:*"})
    );
    assert_eq!(
        body["blocks"][2]["text"]["text"],
        "```\nError: model sales.orders failed\n  line 3: division by zero\n```"
    );
    assert_eq!(
        body["blocks"][3]["elements"],
        json!([
            {"type": "button", "text": {"type": "plain_text", "text": "View plan", "emoji": true},
             "url": "https://sqlmesh.example.com/plans/plan_7"},
            {"type": "button", "text": {"type": "plain_text", "text": "View logs", "emoji": true},
             "url": "https://sqlmesh.example.com/logs?plan=plan_7"},
        ])
    );
}

#[tokio::test]
async fn a_users_own_target_posts_to_its_member_id() {
    let message = Message::apply_failure();
    let (outcome, requests) = deliver_api(&message, "alice/dm", |_, _| api_ok()).await;
    assert_eq!(outcome, DeliveryOutcome::Sent);
    assert_eq!(requests[0].json()["channel"], "U0ALICE");
}

#[tokio::test]
async fn slack_api_answers_are_classified() {
    let secs = |s| Some(Duration::from_secs(s));
    // (answer, permanent?, reason starts with, retry_after)
    let cases: Vec<(Response, bool, &str, Option<Duration>)> = vec![
        (
            api_error(200, "channel_not_found"),
            true,
            "slack chat.postMessage: channel_not_found (no channel `C0123456789`",
            None,
        ),
        (
            api_error(200, "not_in_channel"),
            true,
            "slack chat.postMessage: not_in_channel (invite the app to `C0123456789`",
            None,
        ),
        (
            api_error(200, "invalid_auth"),
            true,
            "slack chat.postMessage: invalid_auth (the token is not valid",
            None,
        ),
        (
            api_error(200, "ratelimited").with_header("Retry-After", "30"),
            false,
            "slack chat.postMessage: ratelimited",
            secs(30),
        ),
        (
            api_error(429, "ratelimited").with_header("Retry-After", "30"),
            false,
            "slack chat.postMessage: ratelimited",
            secs(30),
        ),
        (
            Response::new(429).with_header("Retry-After", "30"),
            false,
            "slack chat.postMessage: ratelimited (HTTP 429)",
            secs(30),
        ),
        (
            Response::new(500).with_body("upstream exploded"),
            false,
            "slack chat.postMessage: HTTP 500: upstream exploded",
            None,
        ),
        (
            api_error(200, "internal_error"),
            false,
            "slack chat.postMessage: internal_error",
            None,
        ),
        (
            Response::ok().with_body("<html>proxy login</html>"),
            false,
            "slack chat.postMessage: unexpected answer (HTTP 200): <html>proxy login</html>",
            None,
        ),
    ];
    let message = Message::apply_failure();
    for (answer, permanent, reason_start, retry_after) in cases {
        let described = format!("{} {}", answer.status, answer.body);
        let (outcome, requests) = deliver_api(&message, "alerts", move |_, _| answer.clone()).await;
        assert_eq!(requests.len(), 1, "{described}");
        match (&outcome, permanent) {
            (DeliveryOutcome::Permanent { reason }, true) => {
                assert!(reason.starts_with(reason_start), "{described}: {reason}");
            }
            (
                DeliveryOutcome::Retryable {
                    reason,
                    retry_after: after,
                },
                false,
            ) => {
                assert!(reason.starts_with(reason_start), "{described}: {reason}");
                assert_eq!(*after, retry_after, "{described}");
            }
            _ => panic!("{described}: unexpected {outcome:?}"),
        }
    }
}

#[tokio::test]
async fn an_unknown_or_missing_target_is_permanent_and_named() {
    let message = Message::apply_failure();
    let sink = HttpSink::ok().await;
    let config = config(&sink.url);
    let api =
        SlackApiChannel::new(&config.channel_settings().slack_api).expect("slack_api channel");
    let webhook = SlackWebhookChannel::new(&config.channel_settings().slack_webhook)
        .expect("slack_webhook channel");
    for (channel, method) in [
        (&api as &dyn Channel, Method::SlackApi),
        (&webhook as &dyn Channel, Method::SlackWebhook),
    ] {
        let outcome = channel
            .deliver(&message.delivery(method, Some("bob/nope")))
            .await;
        let DeliveryOutcome::Permanent { reason } = &outcome else {
            panic!("{method}: {outcome:?}");
        };
        assert!(
            reason.contains(&format!("no {method} target `bob/nope`")),
            "{reason}"
        );
        let outcome = channel.deliver(&message.delivery(method, None)).await;
        let DeliveryOutcome::Permanent { reason } = &outcome else {
            panic!("{method}: {outcome:?}");
        };
        assert!(reason.contains("needs a target"), "{reason}");
    }
    assert_eq!(sink.count(), 0, "nothing was sent");
}

#[tokio::test]
async fn slack_webhook_posts_the_blocks_to_the_target_url() {
    let message = Message::apply_failure();
    let (outcome, requests) =
        deliver_webhook(&message, |_, _| Response::ok().with_body("ok")).await;
    assert_eq!(outcome, DeliveryOutcome::Sent);
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, WEBHOOK_PATH);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), None);
    let body = request.json();
    assert_eq!(body.get("channel"), None, "a webhook's channel is fixed");
    assert_eq!(
        block_types(&body),
        ["header", "section", "section", "actions"]
    );
    assert_eq!(
        body["blocks"][0]["text"]["text"],
        ":x: Plan apply failed in \"prod\""
    );
    assert_eq!(
        body["blocks"][3]["elements"].as_array().map(Vec::len),
        Some(2)
    );
}

/// `workspace_deleted` from the built-in catalog, for the `team` webhook target, rendered as
/// the dispatcher renders it with `config`'s `base_url` (its action URLs are
/// `{{ base_url }}/workspaces` and `{{ base_url }}/templates`).
fn workspace_deleted_for_team(config: &Config) -> Message {
    let event = builtin_event("workspace_deleted");
    let labels = [("name".to_string(), "dev".to_string())].into();
    let payload =
        herald::routing::build_payload(&event, None, &labels, &json!({}), &["team".to_string()]);
    let overrides = Overrides::from_config(config).expect("overrides");
    let rendered = render_for(&event, &overrides, Some("team"), &payload).expect("rendered");
    Message { payload, rendered }
}

/// The URLs of the buttons in a Slack message's `actions` block.
fn button_urls(body: &Value) -> Vec<String> {
    body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|button| button["url"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn with_base_url_the_catalogs_relative_actions_become_buttons() {
    let sink = HttpSink::start(|_, _| Response::ok().with_body("ok")).await;
    let with_base_url = |base_url: &str| {
        let toml = format!(
            "{base_url}[[targets]]\ntype = \"slack_webhook\"\nname = \"team\"\n\
             notify_on = [\"workspace_deleted\"]\nurl = \"{}{WEBHOOK_PATH}\"\n",
            sink.url
        );
        Config::from_toml_str(&toml, "test.toml", &|_| None)
            .unwrap_or_else(|e| panic!("test config: {e}\n{toml}"))
    };
    for (config, buttons) in [
        // Relative URLs would make Slack refuse the message: no buttons at all.
        (with_base_url(""), vec![]),
        (
            with_base_url("base_url = \"https://coder.example.com/\"\n"),
            vec![
                "https://coder.example.com/workspaces".to_string(),
                "https://coder.example.com/templates".to_string(),
            ],
        ),
    ] {
        sink.clear();
        let message = workspace_deleted_for_team(&config);
        let channel = SlackWebhookChannel::new(&config.channel_settings().slack_webhook)
            .expect("slack_webhook channel");
        let outcome = channel
            .deliver(&message.delivery(Method::SlackWebhook, Some("team")))
            .await;
        assert_eq!(outcome, DeliveryOutcome::Sent);
        let requests = sink.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(button_urls(&requests[0].json()), buttons);
    }
}

#[tokio::test]
async fn slack_webhook_answers_are_classified() {
    let message = Message::apply_failure();
    let (outcome, _) =
        deliver_webhook(&message, |_, _| Response::new(404).with_body("no_service")).await;
    let DeliveryOutcome::Permanent { reason } = &outcome else {
        panic!("404 is permanent: {outcome:?}");
    };
    assert!(
        reason.starts_with("slack webhook 404: no_service (the webhook was disabled or removed"),
        "{reason}"
    );

    for (status, after) in [(503, 12), (429, 30)] {
        let (outcome, _) = deliver_webhook(&message, move |_, _| {
            Response::new(status).with_header("Retry-After", after.to_string())
        })
        .await;
        assert_eq!(
            outcome,
            DeliveryOutcome::Retryable {
                reason: format!("slack webhook {status}"),
                retry_after: Some(Duration::from_secs(after)),
            }
        );
    }
}

#[tokio::test]
async fn a_long_message_is_cut_to_slacks_limits() {
    let message = Message {
        payload: json!({"data": {"error": "e".repeat(10_000)}}),
        rendered: Rendered {
            title: "T".repeat(400),
            body_markdown: "Ünïcödé ".repeat(2_000),
            body_text: "Ünïcödé ".repeat(10_000),
            actions: (0..40)
                .map(|i| Action {
                    label: format!("Button {i} {}", "λ".repeat(100)),
                    url: format!("https://example.com/{i}"),
                })
                .collect(),
        },
    };
    let (outcome, requests) = deliver_api(&message, "alerts", |_, _| api_ok()).await;
    assert_eq!(outcome, DeliveryOutcome::Sent);
    let body = requests[0].json();
    let chars = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());

    let blocks = body["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50);
    assert_eq!(chars(&blocks[0]["text"]["text"]), 150);
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.ends_with("T…"))
    );
    let sections: Vec<&Value> = blocks.iter().filter(|b| b["type"] == "section").collect();
    assert!(!sections.is_empty());
    for section in &sections {
        assert!(chars(&section["text"]["text"]) <= 3000, "{section}");
    }
    assert!(
        sections.iter().any(|s| chars(&s["text"]["text"]) == 3000),
        "the long body fills one section to the limit"
    );
    let buttons = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .and_then(|b| b["elements"].as_array())
        .expect("buttons");
    assert_eq!(buttons.len(), 25);
    for button in buttons {
        assert_eq!(chars(&button["text"]["text"]), 75, "{button}");
    }
    assert_eq!(chars(&body["text"]), 40_000);
    assert!(body["text"].as_str().is_some_and(|t| t.ends_with('…')));
}

#[tokio::test]
async fn no_reason_contains_the_token_or_the_webhook_path() {
    let message = Message::apply_failure();
    // A peer that echoes everything it got: the path and every header.
    let echo = |status: u16| {
        move |req: &Request, _: u64| {
            let headers: Vec<String> = req
                .headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .collect();
            Response::new(status).with_body(format!("{} {}", req.path, headers.join(" ")))
        }
    };
    let secret_part = WEBHOOK_PATH.trim_start_matches('/');
    let mut reasons = Vec::new();
    for status in [200, 400, 404, 500] {
        let (outcome, requests) = deliver_api(&message, "alerts", echo(status)).await;
        assert!(requests[0].body_text().contains(CHANNEL));
        reasons.push(reason(&outcome).to_string());
        if status != 200 {
            let (outcome, _) = deliver_webhook(&message, echo(status)).await;
            reasons.push(reason(&outcome).to_string());
        }
    }
    // A secret straddling the end of the quoted 200 characters: no half of it either.
    let (outcome, _) = deliver_api(&message, "alerts", |_, _| {
        Response::new(400).with_body(format!("{} {TOKEN}", "x".repeat(185)))
    })
    .await;
    reasons.push(reason(&outcome).to_string());
    let (outcome, _) = deliver_webhook(&message, |_, _| {
        Response::new(400).with_body(format!("{} {WEBHOOK_PATH}", "x".repeat(175)))
    })
    .await;
    reasons.push(reason(&outcome).to_string());
    // Nobody listening: a transport error.
    let closed = {
        let sink = HttpSink::ok().await;
        sink.url.clone()
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let config = config(&closed);
    for (channel, method) in [
        (
            Box::new(SlackApiChannel::new(&config.channel_settings().slack_api).expect("api"))
                as Box<dyn Channel>,
            Method::SlackApi,
        ),
        (
            Box::new(
                SlackWebhookChannel::new(&config.channel_settings().slack_webhook)
                    .expect("webhook"),
            ),
            Method::SlackWebhook,
        ),
    ] {
        let target = if method == Method::SlackApi {
            "alerts"
        } else {
            "team"
        };
        let outcome = tokio::time::timeout(
            WAIT,
            channel.deliver(&message.delivery(method, Some(target))),
        )
        .await
        .expect("a refused connection fails fast");
        assert!(
            matches!(outcome, DeliveryOutcome::Retryable { .. }),
            "{outcome:?}"
        );
        reasons.push(reason(&outcome).to_string());
    }
    for reason in &reasons {
        assert!(!reason.is_empty(), "every case failed: {reasons:#?}");
        assert!(!reason.contains(TOKEN), "{reason}");
        assert!(!reason.contains("SECRETTOKEN"), "{reason}");
        assert!(!reason.contains(secret_part), "{reason}");
        assert!(!reason.contains("XXXXsecretXXXX"), "{reason}");
        assert!(!reason.contains("1234-5678"), "{reason}");
        assert!(!reason.contains("T0000/B0000"), "{reason}");
    }
    // The echoes did reach the reasons, redacted.
    assert!(
        reasons.iter().any(|r| r.contains("Bearer <redacted>")),
        "{reasons:#?}"
    );
}

#[tokio::test]
async fn doctor_checks_each_api_token_with_auth_test_without_posting() {
    let sink = HttpSink::start(|req: &Request, _| {
        if req.header("authorization") == Some(&format!("Bearer {TOKEN}")) {
            Response::ok().with_body(r#"{"ok":true,"user":"herald","team":"Acme"}"#)
        } else {
            Response::ok().with_body(r#"{"ok":false,"error":"invalid_auth"}"#)
        }
    })
    .await;
    let channel = SlackApiChannel::new(&config(&sink.url).channel_settings().slack_api).unwrap();
    let results = channel.check().await;
    assert_eq!(results.len(), 2, "{results:?}");
    for r in &results {
        assert!(r.ok, "{r:?}");
        assert!(r.detail.contains("auth.test ok as herald in Acme"), "{r:?}");
    }
    let requests = sink.requests();
    assert!(
        requests.iter().all(|r| r.path == "/api/auth.test"),
        "nothing posted"
    );

    let text = toml_of_bad_token(&sink.url);
    let bad_channel = SlackApiChannel::new(
        &Config::from_toml_str(&text, "t.toml", &|_| None)
            .unwrap()
            .channel_settings()
            .slack_api,
    )
    .unwrap();
    let results = bad_channel.check().await;
    assert_eq!(results.len(), 1);
    assert!(!results[0].ok);
    assert!(
        results[0].detail.contains("invalid_auth"),
        "{:?}",
        results[0]
    );
    assert!(!results[0].detail.contains("wrong-token"));
}

fn toml_of_bad_token(base: &str) -> String {
    format!(
        "[[targets]]\ntype = \"slack_api\"\nname = \"alerts\"\nnotify_on = [\"apply_failure\"]\ntoken = \"xoxb-wrong-token\"\nchannel = \"C1\"\napi_base_url = \"{base}/api\"\n"
    )
}

#[tokio::test]
async fn doctor_checks_a_slack_webhook_with_an_empty_post_that_slack_refuses() {
    // Slack answers an empty object with 400 invalid_payload; a revoked URL with 404.
    let live =
        HttpSink::start(|_req: &Request, _| Response::new(400).with_body("invalid_payload")).await;
    let channel =
        SlackWebhookChannel::new(&config(&live.url).channel_settings().slack_webhook).unwrap();
    let results = channel.check().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results[0].ok, "{:?}", results[0]);
    assert!(!results[0].detail.contains("secret"), "{:?}", results[0]);
    assert_eq!(
        live.requests()[0].body_text(),
        "{}",
        "only an empty object is posted"
    );

    let gone =
        HttpSink::start(|_req: &Request, _| Response::new(404).with_body("no_service")).await;
    let channel =
        SlackWebhookChannel::new(&config(&gone.url).channel_settings().slack_webhook).unwrap();
    let results = channel.check().await;
    assert!(!results[0].ok, "{:?}", results[0]);
    assert!(
        results[0].detail.contains("404 no_service"),
        "{:?}",
        results[0]
    );
    assert!(
        !results[0].detail.contains("XXXXsecretXXXX"),
        "{:?}",
        results[0]
    );
}

#[tokio::test]
async fn doctor_gives_up_on_a_slack_that_accepts_the_connection_and_never_answers() {
    let silent = SilentServer::start().await;
    let base = silent.url();
    // The checks wait as long as a delivery may (dispatch_timeout), here 1s.
    let config = Config::from_toml_str(
        &format!(
            "[notifications]\ndispatch_timeout = \"1s\"\n\
             [[targets]]\ntype = \"slack_api\"\nname = \"alerts\"\nnotify_on = [\"apply_failure\"]\n\
             token = \"{TOKEN}\"\nchannel = \"{CHANNEL}\"\napi_base_url = \"{base}/api\"\n\
             [[targets]]\ntype = \"slack_webhook\"\nname = \"team\"\nnotify_on = [\"apply_failure\"]\n\
             url = \"{base}{WEBHOOK_PATH}\"\n"
        ),
        "test.toml",
        &|_| None,
    )
    .expect("test config");
    let channels: [Box<dyn Channel>; 2] = [
        Box::new(SlackApiChannel::new(&config.channel_settings().slack_api).expect("api")),
        Box::new(
            SlackWebhookChannel::new(&config.channel_settings().slack_webhook).expect("webhook"),
        ),
    ];
    for channel in channels {
        let results = tokio::time::timeout(WAIT, channel.check())
            .await
            .unwrap_or_else(|_| panic!("{:?} doctor hung on a silent server", channel.method()));
        assert_eq!(results.len(), 1, "{results:?}");
        let result = &results[0];
        assert!(!result.ok, "{result:?}");
        assert!(
            result
                .detail
                .starts_with("no answer within 1s from http://"),
            "{result:?}"
        );
        assert!(!result.detail.contains(TOKEN), "{result:?}");
        assert!(
            !result.detail.contains(WEBHOOK_PATH.trim_start_matches('/')),
            "{result:?}"
        );
    }
    assert_eq!(silent.accepted(), 2, "each check reached the server");
}
