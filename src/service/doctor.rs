//! `herald doctor`: checks the configuration, the store, the catalog and every configured
//! channel for real, without sending a notification.

use chrono::Utc;

use super::Service;
use crate::channels::{Channels, CheckResult};
use crate::model::Method;

/// Every check, in the order an operator reads them. Front ends call [`Service::doctor`],
/// which checks the caller's role first.
pub(super) async fn diagnose(service: &Service) -> Vec<CheckResult> {
    let config = service.config();
    let store = service.store();
    let mut results = vec![CheckResult::pass(
        format!("store {}", store.display_url()),
        format!("{} store reachable and migrated", store.backend()),
    )];

    let overrides = crate::render::Overrides::from_config(config);
    match (store.list_templates().await, overrides) {
        (Ok(events), Ok(overrides)) => {
            results.push(match crate::render::validate_catalog(&events, &overrides) {
                Ok(()) => CheckResult::pass(
                    "event catalog",
                    format!(
                        "{} events and the config's overrides: every template renders",
                        events.len()
                    ),
                ),
                Err(errors) => CheckResult::fail(
                    "event catalog",
                    errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            });
        }
        (Err(e), _) => results.push(CheckResult::fail("event catalog", e.to_string())),
        (_, Err(e)) => results.push(CheckResult::fail("template overrides", e.to_string())),
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

    results.push(match crate::dispatch::undeliverable_now(&**store).await {
        Ok(waiting) if waiting.is_empty() => CheckResult::pass(
            "waiting messages",
            "every waiting message has a running replica that can deliver it",
        ),
        Ok(waiting) => CheckResult::fail(
            "waiting messages",
            format!(
                "{}; start a replica configured for it (or configure this one)",
                waiting
                    .iter()
                    .map(|w| w.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Err(e) => CheckResult::fail("waiting messages", e.to_string()),
    });

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

    match Channels::for_replica(&config.channel_settings(), store.clone()) {
        Ok(channels) => results.extend(channels.check_all().await),
        Err(e) => results.push(CheckResult::fail("channels", e.to_string())),
    }
    results
}
