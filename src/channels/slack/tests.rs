//! The Slack channels' tests: classification, Block Kit limits, mrkdwn, and both channels
//! against a local HTTP server.

use uuid::Uuid;

use super::*;
use crate::channels::settings::SlackApiTarget;
use crate::channels::test_support::{
    assert_debug_hides, delivery, named, now, permanent, rendered, retry,
};

fn blocks(message: &Value) -> &Vec<Value> {
    message["blocks"].as_array().expect("blocks")
}

fn texts_of(message: &Value, block_type: &str) -> Vec<String> {
    blocks(message)
        .iter()
        .filter(|b| b["type"] == block_type)
        .map(|b| b["text"]["text"].as_str().expect("text").to_string())
        .collect()
}

#[test]
fn the_status_emoji_follows_the_event_name() {
    let statuses: [(&str, &str, &[&str]); 5] = [
        (
            ":x:",
            "Failed",
            &[
                "apply_failure",
                "run_failure",
                "audit_failure",
                "workspace_autobuild_failed",
                "template_workspace_builds_failed_report",
            ],
        ),
        (
            ":red_circle:",
            "Alert",
            &["workspace_out_of_memory", "workspace_out_of_disk"],
        ),
        (
            ":arrow_forward:",
            "Started",
            &["apply_start", "migration_start"],
        ),
        (
            ":white_check_mark:",
            "Succeeded",
            &["run_end", "deploy_success"],
        ),
        (
            ":bell:",
            "Notice",
            &["workspace_deleted", "test_notification"],
        ),
    ];
    for (emoji, label, events) in statuses {
        for event in events {
            let message = slack_message(event, &rendered("Title", "Body", &[]), &json!({}));
            let header = &blocks(&message)[0];
            assert_eq!(header["type"], "header", "{event}");
            assert_eq!(header["text"]["type"], "plain_text", "{event}");
            assert_eq!(header["text"]["text"], format!("{emoji} Title"), "{event}");
            let section = &texts_of(&message, "section")[0];
            assert!(
                section.starts_with(&format!("*Status:* {label} · *Event:* `{event}`")),
                "{event}: {section}"
            );
        }
    }
}

#[test]
fn the_message_has_a_header_the_status_and_body_buttons_and_a_fallback() {
    let message = slack_message(
        "workspace_deleted",
        &rendered(
            "Workspace \"ws\" deleted",
            "Your workspace **ws** was deleted.",
            &[
                ("View workspaces", "https://coder.example.com/workspaces"),
                ("Relative", "/templates"),
            ],
        ),
        &json!({"data": {}}),
    );
    assert_eq!(
        message,
        json!({
            "text": ":bell: Workspace \"ws\" deleted\nYour workspace ws was deleted.",
            "blocks": [
                {"type": "header", "text": {
                    "type": "plain_text", "text": ":bell: Workspace \"ws\" deleted", "emoji": true}},
                {"type": "section", "text": {"type": "mrkdwn", "text":
                    "*Status:* Notice · *Event:* `workspace_deleted`\n\nYour workspace *ws* was deleted."}},
                {"type": "actions", "elements": [
                    {"type": "button",
                     "text": {"type": "plain_text", "text": "View workspaces", "emoji": true},
                     "url": "https://coder.example.com/workspaces"},
                ]},
            ],
        })
    );
}

#[test]
fn without_absolute_action_urls_there_is_no_actions_block() {
    let message = slack_message(
        "run_start",
        &rendered("t", "b", &[("Open", "/relative"), ("Mail", "mailto:x@y")]),
        &json!({}),
    );
    assert!(blocks(&message).iter().all(|b| b["type"] != "actions"));
}

#[test]
fn markdown_becomes_slack_mrkdwn() {
    let cases = [
        ("**bold** and __strong__", "*bold* and *strong*"),
        ("*em* and _em_ and ~~gone~~", "_em_ and _em_ and ~gone~"),
        ("# Title\n\nText", "*Title*\n\nText"),
        ("## **Bold** title", "*Bold title*"),
        ("`a < b && c`", "`a &lt; b &amp;&amp; c`"),
        ("1 < 2 & 3 > 2", "1 &lt; 2 &amp; 3 &gt; 2"),
        (
            "[the docs](https://x.io/a?b=1&c=2)",
            "<https://x.io/a?b=1&amp;c=2|the docs>",
        ),
        ("[https://x.io](https://x.io)", "<https://x.io>"),
        ("<https://x.io>", "<https://x.io>"),
        ("[relative](/w/1)", "relative"),
        ("[a|b](https://x.io/a|b)", "<https://x.io/a%7Cb|a|b>"),
        ("- one\n- **two**", "• one\n• *two*"),
        ("3. three\n4. four", "3. three\n4. four"),
        ("- a\n  - b\n- c", "• a\n    • b\n• c"),
        ("> quoted\n> more", "> quoted\n> more"),
        ("line one\nline two", "line one\nline two"),
        ("para one\n\npara two", "para one\n\npara two"),
    ];
    for (markdown, mrkdwn) in cases {
        assert_eq!(
            markdown_segments(markdown),
            vec![Segment::Text(mrkdwn.to_string())],
            "from {markdown:?}"
        );
    }
}

#[test]
fn fenced_code_is_its_own_preformatted_section_in_place() {
    let body = "Plan failed.\n\n```text\nError: <boom> & more\n```\n\nAfter.";
    assert_eq!(
        markdown_segments(body),
        vec![
            Segment::Text("Plan failed.".to_string()),
            Segment::Code("Error: <boom> & more".to_string()),
            Segment::Text("After.".to_string()),
        ]
    );
    let message = slack_message("apply_failure", &rendered("t", body, &[]), &json!({}));
    assert_eq!(
        texts_of(&message, "section"),
        vec![
            "*Status:* Failed · *Event:* `apply_failure`\n\nPlan failed.".to_string(),
            "```\nError: &lt;boom&gt; &amp; more\n```".to_string(),
            "After.".to_string(),
        ]
    );
}

#[test]
fn failure_detail_from_the_payload_is_preformatted_once() {
    let payload = json!({"data": {
        "error": "Error: terraform apply failed\n  exit status 1",
        "sql": "SELECT * FROM t WHERE id IS NULL",
    }});
    // A body that does not show them: both are appended, the query first.
    let message = slack_message("audit_failure", &rendered("t", "Failed.", &[]), &payload);
    assert_eq!(
        texts_of(&message, "section"),
        vec![
            "*Status:* Failed · *Event:* `audit_failure`\n\nFailed.\n\n*Query:*".to_string(),
            "```\nSELECT * FROM t WHERE id IS NULL\n```".to_string(),
            "*Error:*".to_string(),
            "```\nError: terraform apply failed\n  exit status 1\n```".to_string(),
        ]
    );
    // The catalog's templates already show them in code blocks: not twice.
    let body = "Failed.\n\n```sql\nSELECT * FROM t WHERE id IS NULL\n```\n\n\
                ```text\nError: terraform apply failed\n  exit status 1\n```";
    let message = slack_message("audit_failure", &rendered("t", body, &[]), &payload);
    let sections = texts_of(&message, "section");
    assert_eq!(sections.len(), 3, "{sections:#?}");
    // Structured detail is shown as JSON; null or blank detail not at all.
    let message = slack_message(
        "run_failure",
        &rendered("t", "b", &[]),
        &json!({"data": {"error": {"code": 7}, "sql": "  "}}),
    );
    assert_eq!(
        texts_of(&message, "section")[1..],
        ["```\n{\n  \"code\": 7\n}\n```".to_string()]
    );
}

#[test]
fn every_text_is_cut_to_slacks_limits_on_char_boundaries() {
    let title = "é".repeat(200);
    let body = format!("{}\n\n```\n{}\n```", "ü".repeat(5000), "x".repeat(5000));
    let actions: Vec<(String, String)> = (0..30)
        .map(|i| ("🦀".repeat(100), format!("https://x.io/{i}")))
        .collect();
    let actions: Vec<(&str, &str)> = actions
        .iter()
        .map(|(l, u)| (l.as_str(), u.as_str()))
        .collect();
    let mut r = rendered(&title, &body, &actions);
    r.body_text = "ß".repeat(50_000);
    let message = slack_message("run_failure", &r, &json!({}));

    let header = blocks(&message)[0]["text"]["text"].as_str().unwrap();
    assert_eq!(header.chars().count(), 150);
    assert!(
        header.starts_with(":x: éé") && header.ends_with("é…"),
        "{header}"
    );
    for section in texts_of(&message, "section") {
        assert!(section.chars().count() <= 3000, "{}", section.len());
    }
    let sections = texts_of(&message, "section");
    assert_eq!(sections[0].chars().count(), 3000);
    assert!(sections[0].ends_with("ü…"));
    assert_eq!(sections[1].chars().count(), 3000);
    assert!(sections[1].ends_with("x…\n```"), "code stays fenced");
    let actions = blocks(&message).last().unwrap();
    let elements = actions["elements"].as_array().unwrap();
    assert_eq!(elements.len(), 25);
    for button in elements {
        let text = button["text"]["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), 75);
        assert!(text.ends_with("🦀…"));
    }
    let text = message["text"].as_str().unwrap();
    assert_eq!(text.chars().count(), 40_000);
    assert!(text.ends_with("ß…"));
}

#[test]
fn every_catalog_event_makes_a_valid_message_showing_its_error_once() {
    use std::collections::BTreeMap;

    let labels: BTreeMap<String, String> = [
        ("name", "ws"),
        ("task", "fix-build"),
        ("account_name", "carol"),
        ("audit", "not_null_id"),
        ("one_time_passcode", "123456"),
        ("custom_title", "Hello"),
        ("custom_message", "A **custom** message"),
        ("environment", "prod"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let error = "Error: boom <at> line 3 & more";
    let data = json!({"error": error, "sql": "SELECT 1 WHERE a < b"});
    for spec in crate::catalog::builtin() {
        let event = crate::model::EventTemplate {
            id: Uuid::now_v7(),
            spec: spec.clone(),
            method: None,
        };
        let payload =
            crate::routing::build_payload(&event, None, &labels, &data, &["team".to_string()]);
        let rendered = crate::render::render(&event, &payload).unwrap();
        let message = slack_message(&spec.name, &rendered, &payload);
        let blocks = blocks(&message);
        assert_eq!(blocks[0]["type"], "header", "{}", spec.name);
        let sections = texts_of(&message, "section");
        for section in &sections {
            assert!(!section.trim().is_empty(), "{}: empty section", spec.name);
            assert_eq!(section.matches("```").count() % 2, 0, "{}", spec.name);
            assert!(!section.contains(['<', '>']), "{}: {section}", spec.name);
        }
        let errors = sections
            .iter()
            .filter(|s| s.contains("Error: boom &lt;at&gt; line 3 &amp; more"))
            .count();
        assert_eq!(errors, 1, "{}: {sections:#?}", spec.name);
    }
}

#[test]
fn at_most_fifty_blocks() {
    let body: Vec<String> = (0..80).map(|i| format!("p{i}\n\n```\nc{i}\n```")).collect();
    let message = slack_message(
        "run_failure",
        &rendered("t", &body.join("\n\n"), &[("Open", "https://x.io")]),
        &json!({}),
    );
    let blocks = blocks(&message);
    assert_eq!(blocks.len(), 50);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[48]["text"]["text"], "…");
    assert_eq!(blocks[49]["type"], "actions");
}

#[test]
fn cutting_mrkdwn_never_leaves_half_an_entity_or_link() {
    assert_eq!(cut_mrkdwn("abc", 3), "abc");
    assert_eq!(cut_mrkdwn("abcd", 3), "ab…");
    assert_eq!(cut_mrkdwn("ab&amp;cd", 5), "ab…");
    assert_eq!(cut_mrkdwn("ab&amp;cd", 8), "ab&amp;…");
    assert_eq!(cut_mrkdwn("see <https://x.io|docs> now", 12), "see …");
    assert_eq!(
        cut_mrkdwn("see <https://x.io|docs> now", 25),
        "see <https://x.io|docs> …"
    );
    assert_eq!(cut("ééé", 2), "é…");
    assert_eq!(cut("ééé", 3), "ééé");
}

#[test]
fn webhook_answers_are_classified() {
    let cases = [
        (200, None, "ok", DeliveryOutcome::Sent),
        (429, Some("30"), "", retry("slack webhook 429", Some(30))),
        (503, Some("5"), "", retry("slack webhook 503", Some(5))),
        (
            500,
            None,
            "rollup_error",
            retry("slack webhook 500: rollup_error", None),
        ),
        (
            404,
            None,
            "no_service",
            permanent(
                "slack webhook 404: no_service (the webhook was disabled or removed: create \
                 a new incoming webhook and update the target's url)",
            ),
        ),
        (
            410,
            None,
            "channel_is_archived",
            permanent(
                "slack webhook 410: channel_is_archived (the webhook's channel is archived: \
                 unarchive it or create a webhook for another channel)",
            ),
        ),
        (
            403,
            None,
            "action_prohibited",
            permanent(
                "slack webhook 403: action_prohibited (the workspace restricts who may post \
                 in the webhook's channel)",
            ),
        ),
        (
            400,
            None,
            "invalid_payload\n",
            permanent("slack webhook 400: invalid_payload"),
        ),
        (302, None, "", permanent("slack webhook 302")),
    ];
    for (status, retry_after, body, expected) in cases {
        assert_eq!(
            classify_webhook(status, retry_after, body.as_bytes(), now()),
            expected,
            "status {status} {body:?}"
        );
    }
}

#[test]
fn api_answers_are_classified() {
    let cases = [
        (
            200,
            None,
            r#"{"ok":true,"ts":"1.2"}"#,
            DeliveryOutcome::Sent,
        ),
        (
            200,
            None,
            r#"{"ok":false,"error":"channel_not_found"}"#,
            permanent(
                "slack chat.postMessage: channel_not_found (no channel `C1` the app can see: \
                 check the target's channel (a channel id like C0123456789, or a member id \
                 like U0123456789) and invite the app to private channels)",
            ),
        ),
        (
            200,
            None,
            r#"{"ok":false,"error":"not_in_channel"}"#,
            permanent(
                "slack chat.postMessage: not_in_channel (invite the app to `C1` \
                 (/invite @your-app) or give it the chat:write.public scope)",
            ),
        ),
        (
            200,
            None,
            r#"{"ok":false,"error":"invalid_auth"}"#,
            permanent(
                "slack chat.postMessage: invalid_auth (the token is not valid: check the \
                 target's token)",
            ),
        ),
        (
            200,
            None,
            r#"{"ok":false,"error":"invalid_blocks","response_metadata":{"messages":["[ERROR] must be more than 0 characters [json-pointer:/blocks/0/text/text]"]}}"#,
            permanent(
                "slack chat.postMessage: invalid_blocks (Slack rejected the message's \
                 blocks: [ERROR] must be more than 0 characters \
                 [json-pointer:/blocks/0/text/text])",
            ),
        ),
        (
            200,
            None,
            r#"{"ok":false,"error":"some_new_error"}"#,
            permanent("slack chat.postMessage: some_new_error"),
        ),
        (
            429,
            Some("30"),
            r#"{"ok":false,"error":"ratelimited"}"#,
            retry("slack chat.postMessage: ratelimited", Some(30)),
        ),
        (
            200,
            Some("30"),
            r#"{"ok":false,"error":"ratelimited"}"#,
            retry("slack chat.postMessage: ratelimited", Some(30)),
        ),
        (
            429,
            Some("7"),
            "",
            retry("slack chat.postMessage: ratelimited (HTTP 429)", Some(7)),
        ),
        (
            200,
            None,
            r#"{"ok":false,"error":"internal_error"}"#,
            retry("slack chat.postMessage: internal_error", None),
        ),
        (
            200,
            None,
            r#"{"ok":false,"error":"fatal_error"}"#,
            retry("slack chat.postMessage: fatal_error", None),
        ),
        (
            503,
            Some("9"),
            r#"{"ok":false,"error":"service_unavailable"}"#,
            retry("slack chat.postMessage: service_unavailable", Some(9)),
        ),
        (
            500,
            None,
            "<html>\n<b>oops</b>\n</html>",
            retry(
                "slack chat.postMessage: HTTP 500: <html> <b>oops</b> </html>",
                None,
            ),
        ),
        (
            200,
            None,
            "<html>captive portal</html>",
            retry(
                "slack chat.postMessage: unexpected answer (HTTP 200): <html>captive \
                 portal</html>",
                None,
            ),
        ),
        (
            200,
            None,
            r#"{"hello":"world"}"#,
            retry(
                "slack chat.postMessage: unexpected answer (HTTP 200): {\"hello\":\"world\"}",
                None,
            ),
        ),
        (
            404,
            None,
            "Not Found",
            retry(
                "slack chat.postMessage: unexpected answer (HTTP 404): Not Found",
                None,
            ),
        ),
        // An echo cut at the read limit is still Slack saying yes.
        (
            200,
            None,
            r#"{"ok":true,"channel":"C1","message":{"#,
            DeliveryOutcome::Sent,
        ),
    ];
    for (status, retry_after, body, expected) in cases {
        assert_eq!(
            classify_api(status, retry_after, body.as_bytes(), "C1", now()),
            expected,
            "status {status} {body:?}"
        );
    }
}

#[test]
fn scrubbing_hides_the_webhook_path_credentials_and_the_token() {
    let url = "https://bot:hunter2@hooks.slack.com/services/T0/B0/s3cr3t?x=1";
    let outcome = DeliveryOutcome::Permanent {
        reason: format!("slack webhook 404: no service at {url}, path /services/T0/B0/s3cr3t?x=1"),
    };
    let DeliveryOutcome::Permanent { reason } = scrub_outcome(outcome, &url_secrets(url)) else {
        panic!("stays permanent");
    };
    for secret in ["s3cr3t", "hunter2"] {
        assert!(!reason.contains(secret), "{reason}");
    }
    let outcome = DeliveryOutcome::Retryable {
        reason: "echo: Bearer xoxb-1-2-secret".to_string(),
        retry_after: Some(Duration::from_secs(3)),
    };
    assert_eq!(
        scrub_outcome(outcome, &["xoxb-1-2-secret"]),
        DeliveryOutcome::Retryable {
            reason: "echo: Bearer <redacted>".to_string(),
            retry_after: Some(Duration::from_secs(3)),
        }
    );
}

fn webhook_settings() -> SlackWebhookSettings {
    let url = "https://hooks.slack.com/services/T0/B0/global-secret";
    SlackWebhookSettings {
        dispatch_timeout: Duration::from_secs(60),
        targets: vec![named("team", Some(Secret::new(url)))],
    }
}

fn api_settings() -> SlackApiSettings {
    let target = |token: &str, channel: &str, api_base_url: &str| SlackApiTarget {
        token: Some(Secret::new(token)),
        channel: Some(channel.to_string()),
        api_base_url: api_base_url.to_string(),
    };
    SlackApiSettings {
        dispatch_timeout: Duration::from_secs(60),
        targets: vec![
            named(
                "team-api",
                target("xoxb-global-token", "C0GLOBAL", "http://127.0.0.1:9/api/"),
            ),
            named(
                "alice/me",
                target("xoxb-alice-token", "U0ALICE", "https://slack.com/api"),
            ),
        ],
    }
}

#[test]
fn api_targets_are_found_by_qualified_name() {
    let channel = SlackApiChannel::new(&api_settings()).unwrap();
    assert_eq!(channel.method(), Method::SlackApi);
    let (payload, rendered) = (json!({}), rendered("t", "b", &[]));
    let found = |target| {
        channel
            .target_for(&delivery(target, Method::SlackApi, &payload, &rendered))
            .map(|(t, token, channel)| (t.endpoint.clone(), token, channel))
    };
    assert_eq!(
        found(Some("team-api")),
        Ok((
            "http://127.0.0.1:9/api/chat.postMessage".to_string(),
            "xoxb-global-token",
            "C0GLOBAL"
        ))
    );
    assert_eq!(
        found(Some("alice/me")),
        Ok((
            "https://slack.com/api/chat.postMessage".to_string(),
            "xoxb-alice-token",
            "U0ALICE"
        ))
    );
    let unknown = found(Some("bob/me")).unwrap_err();
    assert!(
        unknown.contains("no slack_api target `bob/me`"),
        "{unknown}"
    );
    let none = found(None).unwrap_err();
    assert!(none.contains("needs a target"), "{none}");
    assert_debug_hides(&channel, "xoxb", "alice/me → U0ALICE");
}

#[test]
fn webhook_targets_are_found_by_qualified_name() {
    let channel = SlackWebhookChannel::new(&webhook_settings()).unwrap();
    assert_eq!(channel.method(), Method::SlackWebhook);
    let (payload, rendered) = (json!({}), rendered("t", "b", &[]));
    let url_for =
        |target| channel.url_for(&delivery(target, Method::SlackWebhook, &payload, &rendered));
    assert_eq!(
        url_for(Some("team")),
        Ok("https://hooks.slack.com/services/T0/B0/global-secret")
    );
    // A slack_api target is not a webhook.
    for name in ["team-api", "alice/me"] {
        let unknown = url_for(Some(name)).unwrap_err();
        assert!(
            unknown.contains(&format!("no slack_webhook target `{name}`")),
            "{unknown}"
        );
    }
    assert_debug_hides(
        &channel,
        "global-secret",
        "team → https://hooks.slack.com/<redacted>",
    );
}

#[test]
fn a_target_without_its_secret_is_a_permanent_failure_naming_the_key() {
    let mut webhook_settings = webhook_settings();
    webhook_settings.targets[0].1 = None;
    let mut api_settings = api_settings();
    api_settings.targets[0].1.token = None;
    let (payload, rendered) = (json!({}), rendered("t", "b", &[]));
    let webhook = SlackWebhookChannel::new(&webhook_settings).unwrap();
    let reason = webhook
        .url_for(&delivery(
            Some("team"),
            Method::SlackWebhook,
            &payload,
            &rendered,
        ))
        .unwrap_err();
    assert!(reason.contains("has no url"), "{reason}");
    let api = SlackApiChannel::new(&api_settings).unwrap();
    let Err(reason) = api.target_for(&delivery(
        Some("team-api"),
        Method::SlackApi,
        &payload,
        &rendered,
    )) else {
        panic!("no token");
    };
    assert!(reason.contains("has no token: set `token`"), "{reason}");
}
