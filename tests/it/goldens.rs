//! Golden files (insta) of every catalog event as each channel sends it: the email's text and
//! HTML parts, the webhook body and the Slack Block Kit message. A change to a template, a
//! layout or a channel's format shows up here as a diff to review; an event without goldens
//! fails `every_catalog_event_has_goldens`.
//!
//! Each event renders a fixed, realistic payload: fixed ids, a value for every label its
//! templates mention, and the data its templates show (errors, audit SQL, volumes, reports).
//! Each also renders as the least a producer may send: only its required labels and no data
//! (`{event}__required_labels`), the message enqueue admits without asking for more.
//! Email and webhook messages go to a user (`alice`); Slack messages to a target, as SQLMesh
//! sends them. Update after a deliberate change with `cargo insta review`, or
//! `INSTA_UPDATE=always cargo test --test it goldens::` and a read of
//! `git diff tests/it/snapshots/goldens`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::common::http_sink::HttpSink;
use chrono::{TimeZone, Utc};
use herald::channels::email_layout::render_email;
use herald::channels::slack::slack_message;
use herald::channels::{Channel, Delivery, WebhookChannel};
use herald::config::Config;
use herald::model::{DeliveryOutcome, EventSpec, EventTemplate, Method, Role, User, UserStatus};
use herald::render::{Rendered, render, sample_payload};
use serde_json::{Value, json};
use uuid::Uuid;

/// What each event is snapshotted as: `tests/it/snapshots/goldens/{event}__{kind}.snap`.
const KINDS: [&str; 5] = [
    "email_text",
    "email_html",
    "webhook",
    "slack",
    "required_labels",
];

const SNAPSHOTS: &str = "tests/it/snapshots/goldens";

/// The qualified name of the target Slack messages are rendered for.
const SLACK_TARGET: &str = "data-alerts";

fn catalog() -> &'static [EventSpec] {
    herald::catalog::builtin()
}

/// Snapshots named `{event}__{kind}`, stored in `tests/it/snapshots/goldens/` without a module
/// prefix.
fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_snapshot_path("snapshots/goldens");
    settings.set_omit_expression(true);
    settings
}

/// A stable, well-formed (version 4) id per name, from its FNV-1a hash, so snapshots do not
/// change between runs.
fn fixed_id(name: &str) -> Uuid {
    let mut hash: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for byte in name.bytes() {
        hash ^= u128::from(byte);
        hash = hash.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    uuid::Builder::from_random_bytes(hash.to_be_bytes()).into_uuid()
}

fn event(spec: &EventSpec) -> EventTemplate {
    EventTemplate {
        id: fixed_id(&format!("event/{}", spec.name)),
        spec: spec.clone(),
        method: None,
    }
}

fn alice() -> User {
    let created = Utc.with_ymd_and_hms(2024, 3, 1, 9, 30, 0).unwrap();
    User {
        id: fixed_id("user/alice"),
        username: "alice".to_string(),
        email: "alice@example.com".to_string(),
        name: "Alice Liddell".to_string(),
        roles: vec![Role::Member],
        status: UserStatus::Active,
        created_at: created,
        updated_at: created,
    }
}

/// A realistic value for `label` in `event`; `None` for a label nobody wrote a value for.
fn label_value(event: &str, label: &str) -> Option<&'static str> {
    let template_event = event.starts_with("template_");
    Some(match label {
        "name" if template_event => "docker-ubuntu",
        "name" => "alice-dev",
        "workspace" => "alice-dev",
        "workspace_owner_username" => "alice",
        "template_name" => "docker-ubuntu",
        "template_version_name" => "v2.4.1",
        "template_version_message" => "Upgrade the base image to Ubuntu 24.04",
        "message" => "Use docker-ubuntu-noble instead; this template stops receiving updates.",
        "initiator" => match event {
            "workspace_autobuild_failed"
            | "workspace_autoupdated"
            | "workspace_marked_dormant"
            | "workspace_marked_for_deletion" => "autobuild",
            e if e.starts_with("apply_")
                || e.starts_with("run_")
                || e.starts_with("migration_") =>
            {
                "ci-pipeline"
            }
            _ => "bob",
        },
        "reason" => match event {
            "workspace_autobuild_failed" => "autostart",
            "your_account_suspended" => "Repeated failed sign-in attempts",
            "workspace_deleted" => "requested by the owner",
            _ => "30 days of inactivity",
        },
        "workspace_build_number" => "42",
        "time_til_deletion" => "7 days",
        "threshold" => "90%",
        "volume" => "/home/coder",
        "task" => "fix-flaky-login-test",
        "account_name" => "carol",
        "account_display_name" => "Carol Danvers",
        "one_time_passcode" => "482913",
        "expires_in" => "15 minutes",
        "custom_title" => "Maintenance window tonight",
        "custom_message" => {
            "The **database** is read-only from 22:00 to 23:00 UTC.\n\nPlan long jobs around it."
        }
        "environment" => "prod",
        "plan_id" => "plan_20240301_0930",
        "audit" => "assert_not_null_customer_id",
        "model" => "sales.orders",
        "owner" => "bob",
        _ => return None,
    })
}

/// The data `event`'s templates show: build and run errors, audit SQL, volumes, the report.
fn data_for(event: &str) -> Value {
    match event {
        "workspace_autobuild_failed" | "workspace_manual_build_failed" => json!({
            "error": "terraform apply: exit status 1\nError: creating container \"coder-alice-dev\": \
                      image \"codercom/enterprise-base:ubuntu\" not found"
        }),
        "workspace_out_of_disk" => json!({
            "volumes": [
                {"path": "/home/coder", "threshold": "90%"},
                {"path": "/var/lib/docker", "threshold": "95%"}
            ]
        }),
        "template_workspace_builds_failed_report" => json!({
            "report_frequency": "week",
            "templates": [{
                "name": "docker-ubuntu",
                "display_name": "Docker (Ubuntu)",
                "failed_builds": 3,
                "total_builds": 25,
                "versions": [{
                    "template_version_name": "v2.4.1",
                    "failed_count": 2,
                    "failed_builds": [
                        {"workspace_owner_username": "alice", "workspace_name": "alice-dev", "build_number": 41},
                        {"workspace_owner_username": "bob", "workspace_name": "bob-ml", "build_number": 7}
                    ]
                }, {
                    "template_version_name": "v2.4.0",
                    "failed_count": 1,
                    "failed_builds": [
                        {"workspace_owner_username": "carol", "workspace_name": "carol-web", "build_number": 12}
                    ]
                }]
            }]
        }),
        "apply_failure" | "run_failure" | "migration_failure" => json!({
            "error": "Traceback (most recent call last):\n  File \"sqlmesh/core/scheduler.py\", \
                      line 412, in run\n    raise NodeExecutionFailedError(node)\n\
                      sqlmesh.utils.errors.NodeExecutionFailedError: Execution failed for node \
                      sales.orders"
        }),
        "audit_failure" => json!({
            "count": 3,
            "sql": "SELECT *\nFROM sales.orders\nWHERE customer_id IS NULL"
        }),
        _ => json!({}),
    }
}

/// The labels `event`'s templates mention, with realistic values.
fn labels_for(event: &EventTemplate) -> BTreeMap<String, String> {
    let sample = sample_payload(event);
    let mentioned = sample["labels"].as_object().cloned().unwrap_or_default();
    mentioned
        .keys()
        .map(|label| {
            let value = label_value(&event.spec.name, label).unwrap_or_else(|| {
                panic!(
                    "event `{}` mentions labels.{label}, which has no golden value: add one to \
                     label_value in tests/it/goldens.rs",
                    event.spec.name
                )
            });
            (label.clone(), value.to_string())
        })
        .collect()
}

/// The stored payloads of `event`'s message to alice and to the Slack target.
fn payloads(event: &EventTemplate) -> (Value, Value) {
    let labels = labels_for(event);
    let data = data_for(&event.spec.name);
    let for_user = herald::routing::build_payload(event, Some(&alice()), &labels, &data, &[]);
    let for_target =
        herald::routing::build_payload(event, None, &labels, &data, &[SLACK_TARGET.to_string()]);
    (for_user, for_target)
}

/// Only the labels `event` requires, with the same realistic values.
fn required_labels_for(event: &EventTemplate) -> BTreeMap<String, String> {
    labels_for(event)
        .into_iter()
        .filter(|(name, _)| event.spec.label(name).is_some_and(|label| label.required))
        .collect()
}

fn rendered(event: &EventTemplate, payload: &Value) -> Rendered {
    render(event, payload).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `golden` on every catalog event, the snapshot settings bound.
fn for_every_event(mut golden: impl FnMut(&EventSpec, &EventTemplate)) {
    let _guard = settings().bind_to_scope();
    for spec in catalog() {
        golden(spec, &event(spec));
    }
}

#[test]
fn every_label_the_catalog_mentions_has_a_golden_value() {
    for spec in catalog() {
        labels_for(&event(spec));
    }
}

#[test]
fn email_goldens() {
    for_every_event(|spec, event| {
        let (payload, _) = payloads(event);
        let (text, html) =
            render_email(&rendered(event, &payload), None).unwrap_or_else(|e| panic!("{e}"));
        insta::assert_snapshot!(format!("{}__email_text", spec.name), text);
        insta::assert_snapshot!(format!("{}__email_html", spec.name), html);
    });
}

/// The message to alice (its email text) and to the Slack target (title, Markdown body and
/// actions) when the producer sent only the required labels and no data.
#[test]
fn required_labels_goldens() {
    for_every_event(|spec, event| {
        let labels = required_labels_for(event);
        let data = json!({});
        let to_alice = herald::routing::build_payload(event, Some(&alice()), &labels, &data, &[]);
        let to_target = herald::routing::build_payload(
            event,
            None,
            &labels,
            &data,
            &[SLACK_TARGET.to_string()],
        );
        let given: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        let (email_text, _) =
            render_email(&rendered(event, &to_alice), None).unwrap_or_else(|e| panic!("{e}"));
        let target = rendered(event, &to_target);
        let mut text = format!(
            "labels: {}\n\n── to alice, the email's text ──\n{email_text}\n\n── to the target \
             {SLACK_TARGET}, title and Markdown ──\n{}\n\n{}\n",
            if given.is_empty() {
                "none".to_string()
            } else {
                given.join(" ")
            },
            target.title,
            target.body_markdown,
        );
        for action in &target.actions {
            text.push_str(&format!("\n→ {}: {}", action.label, action.url));
        }
        insta::assert_snapshot!(format!("{}__required_labels", spec.name), text);
    });
}

#[test]
fn slack_goldens() {
    for_every_event(|spec, event| {
        let (_, payload) = payloads(event);
        let message = slack_message(&spec.name, &rendered(event, &payload), &payload);
        insta::assert_json_snapshot!(format!("{}__slack", spec.name), message);
    });
}

/// The body as the webhook channel really posts it, caught by a local HTTP server.
#[tokio::test]
async fn webhook_goldens() {
    let sink = HttpSink::ok().await;
    let config = Config::from_toml_str(
        &format!(
            "[notifications.webhook]\nendpoint = \"{}/hook\"\n",
            sink.url
        ),
        "goldens.toml",
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let channel =
        WebhookChannel::new(&config.channel_settings().webhook).unwrap_or_else(|e| panic!("{e}"));
    let user = alice();
    let _guard = settings().bind_to_scope();
    for spec in catalog() {
        let event = event(spec);
        let (payload, _) = payloads(&event);
        let rendered = rendered(&event, &payload);
        sink.clear();
        let delivery = Delivery {
            message_id: fixed_id(&format!("message/{}", spec.name)),
            event: &spec.name,
            method: Method::Webhook,
            user_id: Some(user.id),
            target: None,
            payload: &payload,
            rendered: &rendered,
        };
        let outcome = channel.deliver(&delivery).await;
        assert_eq!(outcome, DeliveryOutcome::Sent, "{}", spec.name);
        let requests = sink.requests();
        assert_eq!(requests.len(), 1, "{}", spec.name);
        insta::assert_json_snapshot!(format!("{}__webhook", spec.name), requests[0].json());
    }
}

#[test]
fn every_catalog_event_has_goldens() {
    if std::env::var("INSTA_UPDATE").is_ok_and(|mode| mode == "always") {
        // The other tests of this run are writing the goldens right now: checking would race
        // them. The next plain run checks.
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(SNAPSHOTS);
    let missing: Vec<String> = catalog()
        .iter()
        .filter_map(|spec| {
            let kinds: Vec<&str> = KINDS
                .iter()
                .copied()
                .filter(|kind| !dir.join(format!("{}__{kind}.snap", spec.name)).is_file())
                .collect();
            (!kinds.is_empty()).then(|| format!("{} ({})", spec.name, kinds.join(", ")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} event(s) without golden files in {SNAPSHOTS}/: {}\nCreate them with \
         `INSTA_UPDATE=always cargo test --test it goldens::` (or `cargo insta test --review`), \
         read them, and commit them with the event.",
        missing.len(),
        missing.join("; ")
    );

    // And no goldens of events that are gone.
    let names: Vec<&str> = catalog().iter().map(|spec| spec.name.as_str()).collect();
    let stale: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|file| {
                    file.strip_suffix(".snap")
                        .and_then(|stem| stem.rsplit_once("__"))
                        .is_some_and(|(event, kind)| {
                            KINDS.contains(&kind) && !names.contains(&event)
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(
        stale.is_empty(),
        "golden files of events no longer in the catalog: {}; delete them",
        stale.join(", ")
    );
}
