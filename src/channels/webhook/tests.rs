//! The webhook channel's tests: signing, Retry-After, classification, the body schema,
//! scrubbing and routing by target.

use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::channels::test_support::{
    assert_debug_hides, delivery, named, now, permanent, rendered, retry,
};

#[test]
fn signature_is_hmac_sha256_hex_of_the_body() {
    // RFC 4231, test case 2.
    let signer = Signer::new(b"Jefe").unwrap();
    assert_eq!(
        signer.sign(b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // Keyed once, each body signed from scratch.
    assert_eq!(signer.sign(b"x"), signer.clone().sign(b"x"));
    assert_ne!(signer.sign(b"x"), signer.sign(b"y"));
}

#[test]
fn retry_after_takes_seconds_and_http_dates() {
    let cases = [
        ("7", Some(7)),
        (" 120 ", Some(120)),
        ("0", Some(0)),
        ("Wed, 01 May 2024 12:00:30 GMT", Some(30)),
        ("Wednesday, 01-May-24 12:01:00 GMT", Some(60)),
        ("Wed May  1 12:00:05 2024", Some(5)),
        ("Wed, 01 May 2024 11:00:00 GMT", Some(0)),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
    ];
    for (value, secs) in cases {
        assert_eq!(
            parse_retry_after(value, now()),
            secs.map(Duration::from_secs),
            "Retry-After: {value:?}"
        );
    }
}

#[test]
fn statuses_are_classified_as_the_design_says() {
    let secs = Duration::from_millis(1234);
    let cases = [
        (200, None, "", DeliveryOutcome::Sent),
        (204, None, "", DeliveryOutcome::Sent),
        (299, None, "", DeliveryOutcome::Sent),
        (408, Some("7"), "", retry("webhook 408 after 1.2s", None)),
        (429, Some("7"), "", retry("webhook 429 after 1.2s", Some(7))),
        (429, None, "", retry("webhook 429 after 1.2s", None)),
        (500, Some("7"), "", retry("webhook 500 after 1.2s", None)),
        (503, Some("7"), "", retry("webhook 503 after 1.2s", Some(7))),
        (599, None, "", retry("webhook 599 after 1.2s", None)),
        (
            404,
            None,
            "no such\nhook",
            permanent("webhook 404 after 1.2s: no such hook"),
        ),
        (400, None, "", permanent("webhook 400 after 1.2s")),
        (301, None, "", permanent("webhook 301 after 1.2s")),
    ];
    for (status, retry_after, body, expected) in cases {
        assert_eq!(
            classify(status, secs, retry_after, body.as_bytes(), now()),
            expected,
            "status {status}"
        );
    }
}

#[test]
fn a_rejecting_body_is_quoted_on_one_line_up_to_200_chars() {
    let body = format!("{}\r\n{}", "é".repeat(150), "x".repeat(150));
    let DeliveryOutcome::Permanent { reason } =
        classify(422, Duration::ZERO, None, body.as_bytes(), now())
    else {
        panic!("422 is permanent");
    };
    let quoted = reason
        .strip_prefix("webhook 422 after 0.0s: ")
        .expect(&reason);
    assert_eq!(quoted.chars().count(), 200);
    assert_eq!(quoted, format!("{} {}", "é".repeat(150), "x".repeat(49)));
    assert_eq!(body_excerpt(&[0xff, b'a']), "\u{fffd}a");
}

#[test]
fn body_follows_coders_schema_with_rendered_actions() {
    let message_id = Uuid::now_v7();
    let payload = json!({
        "_version": "1.2",
        "notification_name": "workspace_deleted",
        "notification_template_id": "0190a3b4-0000-7000-8000-000000000001",
        "user_id": "0190a3b4-0000-7000-8000-000000000002",
        "user_email": "alice@example.com",
        "user_name": "Alice",
        "user_username": "alice",
        "actions": [{"label": "View {{ labels.name }}", "url": "{{ base_url }}/w"}],
        "labels": {"name": "ws"},
        "data": {"n": 1},
        "targets": [],
    });
    let rendered = rendered(
        "Workspace \"ws\" deleted",
        "Your workspace **ws** was deleted.",
        &[("View ws", "/w")],
    );
    let delivery = Delivery {
        message_id,
        event: "workspace_deleted",
        ..delivery(None, Method::Webhook, &payload, &rendered)
    };
    let body = serde_json::to_string(&WebhookBody::new(&delivery)).unwrap();
    // The payload as stored, but for its actions, which are rendered.
    let mut sent_payload = payload.clone();
    sent_payload["actions"] = json!([{"label": "View ws", "url": "/w"}]);
    let expected = json!({
        "_version": "1.1",
        "msg_id": message_id.to_string(),
        "payload": sent_payload,
        "title": "Workspace \"ws\" deleted",
        "title_markdown": "Workspace \"ws\" deleted",
        "body": "Your workspace ws was deleted.",
        "body_markdown": "Your workspace **ws** was deleted.",
    });
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), expected);
    // Keys in the schema's order, as Coder sends them.
    assert!(
        body.starts_with("{\"_version\":\"1.1\",\"msg_id\":"),
        "{body}"
    );
    assert!(body.ends_with(",\"body_markdown\":\"Your workspace **ws** was deleted.\"}"));
}

#[test]
fn a_sparse_payload_still_gives_every_key() {
    let user_id = Uuid::now_v7();
    let rendered = rendered("t", "b", &[]);
    let payload = json!({"data": null});
    let delivery = Delivery {
        user_id: Some(user_id),
        ..delivery(None, Method::Webhook, &payload, &rendered)
    };
    let body = serde_json::to_value(WebhookBody::new(&delivery)).unwrap();
    assert_eq!(
        body["payload"],
        json!({
            "_version": "1.2",
            "notification_name": "run_failure",
            "notification_template_id": "",
            "user_id": user_id.to_string(),
            "user_email": "",
            "user_name": "",
            "user_username": "",
            "actions": [],
            "labels": {},
            "data": {},
            "targets": [],
        })
    );
}

#[test]
fn scrub_hides_the_path_query_and_password_of_the_url() {
    let url = "https://bot:hunter2@hooks.example.com/services/T0/B0/s3cr3t?token=abc";
    let reason =
        format!("error for url ({url}): path /services/T0/B0/s3cr3t?token=abc, pw bot:hunter2");
    let scrubbed = scrub(&reason, url);
    for secret in ["s3cr3t", "token=abc", "hunter2"] {
        assert!(!scrubbed.contains(secret), "{scrubbed}");
    }
    assert!(
        scrubbed.contains("https://hooks.example.com/<redacted>"),
        "{scrubbed}"
    );
    assert_eq!(
        scrub("webhook 503 after 0.1s", "http://h:1/"),
        "webhook 503 after 0.1s"
    );
}

#[test]
fn error_chain_quotes_each_cause_once() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let error = Outer(std::io::Error::other("connection refused"));
    assert_eq!(
        error_chain(&error),
        "error sending request: connection refused"
    );
}

#[test]
fn targets_are_found_by_qualified_name() {
    let url = |url: &str| Some(Secret::new(url));
    let channel = WebhookChannel::new(&WebhookSettings {
        endpoint: Some("http://127.0.0.1:9/endpoint".to_string()),
        signing_secret: None,
        targets: vec![
            named("ops", url("http://127.0.0.1:9/ops")),
            named("alice/ops", url("http://127.0.0.1:9/alice-ops")),
        ],
    })
    .unwrap();
    let (payload, rendered) = (json!({}), rendered("", "", &[]));
    let url_for = |target| channel.url_for(&delivery(target, Method::Webhook, &payload, &rendered));
    assert_eq!(url_for(None), Ok("http://127.0.0.1:9/endpoint"));
    assert_eq!(url_for(Some("ops")), Ok("http://127.0.0.1:9/ops"));
    assert_eq!(
        url_for(Some("alice/ops")),
        Ok("http://127.0.0.1:9/alice-ops")
    );
    let unknown = url_for(Some("bob/ops")).unwrap_err();
    assert!(unknown.contains("no webhook target `bob/ops`"), "{unknown}");
    assert_debug_hides(&channel, "9/endpoint", "http://127.0.0.1:9/<redacted>");
}

#[test]
fn without_an_endpoint_the_reason_names_the_setting() {
    let channel = WebhookChannel::new(&WebhookSettings::default()).unwrap();
    let (payload, rendered) = (json!({}), rendered("", "", &[]));
    let reason = channel
        .url_for(&delivery(None, Method::Webhook, &payload, &rendered))
        .unwrap_err();
    assert!(
        reason.contains("notifications.webhook.endpoint"),
        "{reason}"
    );
}
