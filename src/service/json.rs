//! The JSON shapes both front ends send — the CLI's `--json` and the HTTP API's bodies — so an
//! event, a message or an opt-out reads the same whichever way it was asked for.

use serde_json::{Value, json};

use super::OptOutEntry;
use crate::model::{Attempt, EventTemplate, Message, Method, User};

/// An event of the catalog with its label schema, as `events list|show --json` print it and
/// `GET /api/v1/events` sends it; `default` is the deployment's method.
pub fn event_json(e: &EventTemplate, default: Method) -> Value {
    json!({
        "id": e.id,
        "name": e.spec.name,
        "group": e.spec.group,
        "title_template": e.spec.title_template,
        "body_template": e.spec.body_template,
        "actions": e.spec.actions,
        "audience_roles": e.spec.audience_roles,
        "enabled_by_default": e.spec.enabled_by_default,
        "method": e.method,
        "effective_method": e.method.unwrap_or(default),
        "kind": e.spec.kind,
        "inbox": e.spec.inbox,
        "reaches_suspended": e.spec.reaches_suspended,
        "labels": e.spec.labels,
    })
}

/// A message with its delivery attempts, as `messages show --json` prints it.
pub fn message_json(message: &Message, attempts: &[Attempt]) -> Value {
    let mut value = json!(message);
    value["attempts"] = json!(attempts);
    value
}

/// Whether `subject` receives one event, as `optout list --json` prints each row.
pub fn opt_out_json(subject: &User, entry: &OptOutEntry) -> Value {
    json!({
        "username": subject.username,
        "event": entry.event.spec.name,
        "group": entry.event.spec.group,
        "enabled": entry.enabled,
        "disabled": entry.preference,
        "enabled_by_default": entry.event.spec.enabled_by_default,
    })
}
