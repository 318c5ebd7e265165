//! Fixtures the channels' unit tests share: a fixed clock, rendered messages, deliveries and
//! named targets, and the check that a channel's `Debug` hides its secrets.

use std::fmt::Debug;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::Delivery;
use crate::model::{Action, DeliveryOutcome, Method};
use crate::render::Rendered;

/// 2024-05-01 12:00:00 UTC, the "now" of Retry-After dates.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap()
}

/// A message rendered from `body_markdown`, with `(label, url)` actions.
pub(crate) fn rendered(title: &str, body_markdown: &str, actions: &[(&str, &str)]) -> Rendered {
    let action = |&(label, url): &(&str, &str)| Action {
        label: label.into(),
        url: url.into(),
    };
    Rendered {
        title: title.to_string(),
        body_markdown: body_markdown.to_string(),
        body_text: crate::render::markdown_to_text(body_markdown),
        actions: actions.iter().map(action).collect(),
    }
}

/// A fresh `run_failure` message of `method` for no user, to `target` when given.
pub(crate) fn delivery<'a>(
    target: Option<&'a str>,
    method: Method,
    payload: &'a Value,
    rendered: &'a Rendered,
) -> Delivery<'a> {
    Delivery {
        message_id: Uuid::now_v7(),
        event: "run_failure",
        method,
        user_id: None,
        target,
        payload,
        rendered,
    }
}

/// A target's settings under its qualified name.
pub(crate) fn named<T>(name: &str, settings: T) -> (String, T) {
    (name.to_string(), settings)
}

/// A retryable outcome for `reason`, after `after` seconds when given.
pub(crate) fn retry(reason: &str, after: Option<u64>) -> DeliveryOutcome {
    DeliveryOutcome::Retryable {
        reason: reason.to_string(),
        retry_after: after.map(Duration::from_secs),
    }
}

/// A permanent outcome for `reason`.
pub(crate) fn permanent(reason: &str) -> DeliveryOutcome {
    DeliveryOutcome::Permanent {
        reason: reason.to_string(),
    }
}

/// Asserts that `channel`'s `Debug` shows `shown` and nothing of `secret`.
pub(crate) fn assert_debug_hides(channel: &impl Debug, secret: &str, shown: &str) {
    let debug = format!("{channel:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains(shown), "{debug}");
}
