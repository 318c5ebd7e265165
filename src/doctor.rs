//! `herald doctor`: checks the configuration, the store, the catalog and every configured
//! channel for real, without sending a notification.

use chrono::Utc;

use crate::channels::{Channels, CheckResult};
use crate::model::Method;
use crate::service::Service;

/// Every check, in the order an operator reads them.
pub async fn diagnose(service: &Service) -> Vec<CheckResult> {
    let config = service.config();
    let store = service.store();
    let mut results = vec![CheckResult::pass(
        format!("store {}", store.display_url()),
        format!("{} store reachable and migrated", store.backend()),
    )];

    match store.list_templates().await {
        Ok(events) => {
            let broken: Vec<String> = events
                .iter()
                .filter_map(|e| {
                    crate::render::render(e, &sample_payload(e))
                        .err()
                        .map(|err| err.to_string())
                })
                .collect();
            results.push(if broken.is_empty() {
                CheckResult::pass(
                    "event catalog",
                    format!("{} events, every template renders", events.len()),
                )
            } else {
                CheckResult::fail("event catalog", broken.join("; "))
            });
        }
        Err(e) => results.push(CheckResult::fail("event catalog", e.to_string())),
    }

    match store.settings().await {
        Ok(s) if s.notifier_paused => results.push(CheckResult::fail(
            "delivery",
            "PAUSED: nothing is delivered; `herald notifications resume` restarts every replica",
        )),
        Ok(_) => results.push(CheckResult::pass("delivery", "not paused")),
        Err(e) => results.push(CheckResult::fail("delivery", e.to_string())),
    }

    match store.list_replicas().await {
        Ok(replicas) => {
            let fresh = replicas
                .iter()
                .filter(|r| Utc::now() - r.last_seen_at < chrono::Duration::seconds(60))
                .count();
            results.push(if fresh > 0 {
                CheckResult::pass("dispatchers", format!("{fresh} replica(s) alive"))
            } else {
                CheckResult::fail(
                    "dispatchers",
                    "no replica has sent a heartbeat in the last minute: start `herald serve` (or the console)",
                )
            });
        }
        Err(e) => results.push(CheckResult::fail("dispatchers", e.to_string())),
    }

    let default = config.notifications.method;
    let configured = config.configured_methods();
    results.push(if configured.contains(&default) {
        CheckResult::pass(
            format!("default method {default}"),
            "configured".to_string(),
        )
    } else {
        CheckResult::fail(
            format!("default method {default}"),
            match default {
                Method::Smtp => "email.smarthost is not set: users receive inbox copies only",
                _ => "notifications.webhook.endpoint is not set: users receive inbox copies only",
            },
        )
    });

    match Channels::for_replica(config, store.clone()) {
        Ok(channels) => results.extend(channels.check_all().await),
        Err(e) => results.push(CheckResult::fail("channels", e.to_string())),
    }
    results
}

/// A payload with every label the event's templates mention (`labels.NAME`).
fn sample_payload(event: &crate::model::EventTemplate) -> serde_json::Value {
    let spec = &event.spec;
    let texts = [&spec.title_template, &spec.body_template]
        .into_iter()
        .chain(spec.actions.iter().flat_map(|a| [&a.label, &a.url]));
    let mut labels = std::collections::BTreeMap::new();
    for text in texts {
        for (at, _) in text.match_indices("labels.") {
            let name: String = text[at + "labels.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                labels.insert(name.clone(), format!("sample-{name}"));
            }
        }
    }
    crate::routing::build_payload(
        event,
        None,
        &labels,
        &serde_json::json!({"error": "sample error"}),
        &[],
    )
}
