//! Rows into the model's types, the same for both backends (a [`StoredRow`] hides how each
//! stores ids and times), and the text encodings the schema uses (roles, JSON, enums).

use super::backend::StoredRow;
use super::{
    InboxEntry, LeasedMessage, ReasonCount, Replica, SshKeyInfo, StateCounts, StoreError,
    StoreResult, TokenInfo, Undeliverable,
};
use crate::model::{
    Action, Attempt, EventKind, EventSpec, EventTemplate, Message, MessageState, Method,
    Preference, Role, User,
};

pub(super) fn user_from_row(row: &impl StoredRow) -> StoreResult<User> {
    const T: &str = "users";
    Ok(User {
        id: row.id(T, "id")?,
        username: row.text("username")?,
        email: row.text("email")?,
        name: row.text("name")?,
        roles: split_roles(T, row.str("roles")?)?,
        status: parse_enum(T, row.str("status")?)?,
        created_at: row.time(T, "created_at")?,
        updated_at: row.time(T, "updated_at")?,
    })
}

pub(super) fn template_from_row(row: &impl StoredRow) -> StoreResult<EventTemplate> {
    const T: &str = "notification_templates";
    let name = row.text("name")?;
    Ok(EventTemplate {
        id: row.id(T, "id")?,
        method: row
            .opt_str("method")?
            .map(|m| parse_enum::<Method>(T, m))
            .transpose()?,
        spec: EventSpec {
            // Not a column: labels come from the binary's catalog (DESIGN §3).
            labels: crate::catalog::declared_labels(&name),
            name,
            group: row.text("group")?,
            title_template: row.text("title_template")?,
            body_template: row.text("body_template")?,
            actions: parse_json::<Vec<Action>>(T, row.str("actions")?)?,
            audience_roles: split_roles(T, row.str("audience_roles")?)?,
            enabled_by_default: row.flag("enabled_by_default")?,
            kind: parse_enum::<EventKind>(T, row.str("kind")?)?,
            inbox: row.flag("inbox")?,
            reaches_suspended: row.flag("reaches_suspended")?,
        },
    })
}

pub(super) fn message_from_row(row: &impl StoredRow) -> StoreResult<Message> {
    const T: &str = "notification_messages";
    Ok(Message {
        id: row.id(T, "id")?,
        notification_template_id: row.id(T, "notification_template_id")?,
        event: row.text("event")?,
        user_id: row.opt_id(T, "user_id")?,
        username: row.opt_text("username")?,
        target: row.opt_text("target")?,
        method: parse_enum(T, row.str("method")?)?,
        status: parse_enum(T, row.str("status")?)?,
        status_reason: row.opt_text("status_reason")?,
        created_by: row.text("created_by")?,
        payload: parse_json(T, row.str("payload")?)?,
        attempt_count: row.int("attempt_count")?,
        created_at: row.time(T, "created_at")?,
        updated_at: row.time(T, "updated_at")?,
        leased_until: row.opt_time(T, "leased_until")?,
        next_retry_after: row.opt_time(T, "next_retry_after")?,
        queued_seconds: row.opt_float("queued_seconds")?,
        dedupe_hash: row.opt_text("dedupe_hash")?,
    })
}

pub(super) fn leased_from_row(row: &impl StoredRow) -> StoreResult<LeasedMessage> {
    const T: &str = "notification_messages";
    Ok(LeasedMessage {
        id: row.id(T, "id")?,
        template_id: row.id(T, "notification_template_id")?,
        user_id: row.opt_id(T, "user_id")?,
        target: row.opt_text("target")?,
        method: parse_enum(T, row.str("method")?)?,
        payload: parse_json(T, row.str("payload")?)?,
        attempt_count: row.int("attempt_count")?,
        created_at: row.time(T, "created_at")?,
        queued_seconds: row.opt_float("queued_seconds")?.unwrap_or(0.0),
        lease_token: row.id(T, "lease_token")?,
    })
}

pub(super) fn attempt_from_row(row: &impl StoredRow) -> StoreResult<Attempt> {
    const T: &str = "notification_attempts";
    Ok(Attempt {
        message_id: row.id(T, "message_id")?,
        attempt_number: row.int("attempt_number")?,
        notifier_id: row.id(T, "notifier_id")?,
        started_at: row.time(T, "started_at")?,
        duration_ms: row.big("duration_ms")?,
        outcome: parse_enum(T, row.str("outcome")?)?,
        reason: row.opt_text("reason")?,
    })
}

pub(super) fn preference_from_row(row: &impl StoredRow) -> StoreResult<Preference> {
    const T: &str = "notification_preferences";
    Ok(Preference {
        user_id: row.id(T, "user_id")?,
        template_id: row.id(T, "template_id")?,
        disabled: row.flag("disabled")?,
    })
}

pub(super) fn replica_from_row(row: &impl StoredRow) -> StoreResult<Replica> {
    const T: &str = "notification_replicas";
    Ok(Replica {
        id: row.id(T, "id")?,
        hostname: row.text("hostname")?,
        pid: row.int("pid")?,
        started_at: row.time(T, "started_at")?,
        last_seen_at: row.time(T, "last_seen_at")?,
        in_flight: row.int("in_flight")?,
        capabilities: parse_json(T, row.str("capabilities")?)?,
    })
}

pub(super) fn inbox_from_row(row: &impl StoredRow) -> StoreResult<InboxEntry> {
    const T: &str = "inbox_notifications";
    Ok(InboxEntry {
        id: row.id(T, "id")?,
        user_id: row.id(T, "user_id")?,
        template_id: row.id(T, "template_id")?,
        event: row.text("event")?,
        message_id: row.opt_id(T, "message_id")?,
        title: row.text("title")?,
        content: row.text("content")?,
        actions: parse_json(T, row.str("actions")?)?,
        read_at: row.opt_time(T, "read_at")?,
        created_at: row.time(T, "created_at")?,
    })
}

pub(super) fn token_from_row(row: &impl StoredRow) -> StoreResult<TokenInfo> {
    const T: &str = "api_tokens";
    Ok(TokenInfo {
        id: row.id(T, "id")?,
        name: row.text("name")?,
        user_id: row.id(T, "user_id")?,
        username: row.text("username")?,
        created_at: row.time(T, "created_at")?,
        last_used_at: row.opt_time(T, "last_used_at")?,
        revoked_at: row.opt_time(T, "revoked_at")?,
    })
}

pub(super) fn ssh_key_from_row(row: &impl StoredRow) -> StoreResult<SshKeyInfo> {
    const T: &str = "user_ssh_keys";
    Ok(SshKeyInfo {
        id: row.id(T, "id")?,
        user_id: row.id(T, "user_id")?,
        username: row.text("username")?,
        public_key: row.text("public_key")?,
        fingerprint: row.text("fingerprint")?,
        comment: row.text("comment")?,
        created_at: row.time(T, "created_at")?,
        last_used_at: row.opt_time(T, "last_used_at")?,
    })
}

pub(super) fn reason_count_from_row(row: &impl StoredRow) -> StoreResult<ReasonCount> {
    Ok(ReasonCount {
        status: parse_enum("notification_messages", row.str("status")?)?,
        reason: row.text("status_reason")?,
        count: row.big("n")?,
    })
}

pub(super) fn undeliverable_from_row(row: &impl StoredRow) -> StoreResult<Undeliverable> {
    Ok(Undeliverable {
        method: parse_enum("notification_messages", row.str("method")?)?,
        target: row.opt_text("target")?,
        count: row.big("n")?,
    })
}

/// Counts per state from `(status, n)` rows; every state is present, zero when absent.
pub(super) fn tally(table: &'static str, rows: &[impl StoredRow]) -> StoreResult<StateCounts> {
    let mut counts: StateCounts = MessageState::ALL.iter().map(|s| (*s, 0)).collect();
    for row in rows {
        let state: MessageState = parse_enum(table, row.str("status")?)?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
            slot.1 += row.big("n")?;
        }
    }
    Ok(counts)
}

pub(super) fn join_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn split_roles(table: &'static str, text: &str) -> StoreResult<Vec<Role>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| parse_enum(table, s))
        .collect()
}

pub(super) fn parse_enum<T: std::str::FromStr<Err = crate::model::UnknownValue>>(
    table: &'static str,
    text: &str,
) -> StoreResult<T> {
    text.parse()
        .map_err(|e: crate::model::UnknownValue| StoreError::Corrupt {
            table,
            detail: e.to_string(),
        })
}

fn parse_json<T: serde::de::DeserializeOwned>(table: &'static str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("invalid JSON: {e}"),
    })
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain data (strings, maps, vectors) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// The `status_reason` of a message whose row could not be read at lease time.
pub(super) fn unreadable_reason(error: &StoreError) -> String {
    crate::queue::clean_text(
        &format!("the stored message cannot be read ({error}); it was not delivered"),
        crate::queue::MAX_REASON_CHARS,
    )
}
