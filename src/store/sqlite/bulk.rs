//! SQLite's bulk statements: a batch travels as one JSON array read with `json_each`.

use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::sync::Arc;

use super::connections::{Connections, Leased};
use super::direct::Direct;
use uuid::Uuid;

use super::text::{parse_id, ts};
use crate::store::backend::StoredRow;
use crate::store::rows::to_json;
use crate::store::sql::Param;
use crate::store::{AttemptRecord, NewMessage, StoreResult};

/// Inserts the batch in one statement; `WHERE true` keeps SQLite from reading ON CONFLICT as
/// part of the SELECT. Returns the ids inserted.
pub(super) async fn insert_messages(
    conn: &mut Leased,
    messages: &[NewMessage],
) -> StoreResult<Vec<Uuid>> {
    let rows: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "id": m.id.to_string(),
                "template": m.template_id.to_string(),
                "user": m.planned.user_id.map(|u| u.to_string()),
                "target": m.planned.target,
                "method": m.planned.method.as_str(),
                "status": m.planned.status.as_str(),
                "reason": m.planned.status_reason,
                "by": m.created_by,
                "payload": to_json(&m.planned.payload),
                "created": ts(m.created_at),
                "hash": m.planned.dedupe_hash,
            })
        })
        .collect();
    let inserted = sqlx::query_scalar::<_, String>(
        "INSERT INTO notification_messages (id, notification_template_id, user_id, target,
             method, status, status_reason, created_by, payload, attempt_count, created_at,
             updated_at, dedupe_hash)
         SELECT value ->> 'id', value ->> 'template', value ->> 'user', value ->> 'target',
             value ->> 'method', value ->> 'status', value ->> 'reason', value ->> 'by',
             value ->> 'payload', 0, value ->> 'created', value ->> 'created',
             value ->> 'hash'
         FROM json_each(?1) WHERE true
         ON CONFLICT (dedupe_hash) DO NOTHING
         RETURNING id",
    )
    .bind(to_json(&rows))
    .fetch_all(&mut **conn)
    .await;
    let inserted = conn.check(inserted)?;
    inserted
        .iter()
        .map(|id| parse_id("notification_messages", id))
        .collect()
}

/// One outcome as the fixed-width text [`record_attempts`] reads with `substr`: id (36), lease
/// token (36), notifier (36), attempt count (10 digits), status (17, space-padded), next retry (27, blank when
/// none), start (27), duration in ms (19 digits), then `-` for no reason or `+` and the reason.
///
/// Fixed columns cost SQLite a `substr` each; JSON objects made it re-parse every outcome once
/// per field (a third of a flush, measured).
fn outcome_text(r: &AttemptRecord) -> String {
    use std::fmt::Write;
    let reason_len = r.result.status_reason.as_ref().map_or(0, String::len);
    let mut text = String::with_capacity(OUTCOME_FIXED + 1 + reason_len);
    let next_retry = r.result.next_retry_after.map(ts).unwrap_or_default();
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        "{}{}{}{:010}{:<17}{:<27}{}{:019}",
        r.message_id.hyphenated(),
        r.lease_token.hyphenated(),
        r.notifier_id.hyphenated(),
        r.result.attempt_count.max(0),
        r.result.status.as_str(),
        next_retry,
        ts(r.started_at),
        r.duration_ms.max(0),
    );
    match &r.result.status_reason {
        Some(reason) => {
            text.push('+');
            text.push_str(reason);
        }
        None => text.push('-'),
    }
    text
}

/// The width of [`outcome_text`]'s fixed columns.
const OUTCOME_FIXED: usize = 36 + 36 + 36 + 10 + 17 + 27 + 27 + 19;

/// [`outcome_text`]'s columns, by `substr` of `value`.
macro_rules! outcome_columns {
    () => {
        "substr(value, 1, 36) AS id, substr(value, 37, 36) AS token,
         substr(value, 73, 36) AS notifier, CAST(substr(value, 109, 10) AS INTEGER) AS attempts,
         rtrim(substr(value, 119, 17)) AS status,
         NULLIF(rtrim(substr(value, 136, 27)), '') AS next_retry,
         substr(value, 163, 27) AS started, CAST(substr(value, 190, 19) AS INTEGER) AS duration,
         CASE substr(value, 209, 1) WHEN '+' THEN substr(value, 210) END AS reason"
    };
}

/// Applies the outcomes (`?1`, [`outcome_text`]s as a JSON array) whose lease still holds, at
/// `?2`; returns the ids applied. MATERIALIZED: read the array once. `+m.status` keeps SQLite
/// from walking every leased row for each outcome (the status index); each outcome finds its
/// row by id.
const APPLY_OUTCOMES: &str = concat!(
    "WITH j AS MATERIALIZED (SELECT ",
    outcome_columns!(),
    " FROM json_each(?1))
     UPDATE notification_messages AS m SET status = j.status, status_reason = j.reason,
         attempt_count = j.attempts, next_retry_after = j.next_retry,
         leased_until = NULL, lease_token = NULL, updated_at = ?2
     FROM j
     WHERE m.id = j.id AND +m.status = 'leased' AND m.lease_token = j.token
     RETURNING id"
);

/// An attempt row for each outcome (`?1`) whose id (`?2`, a JSON array) was applied.
const WRITE_ATTEMPTS: &str = concat!(
    "INSERT INTO notification_attempts (message_id, attempt_number, notifier_id,
         started_at, duration_ms, outcome, reason)
     SELECT j.id,
         COALESCE((SELECT MAX(a.attempt_number) FROM notification_attempts a
                   WHERE a.message_id = j.id), 0) + 1,
         j.notifier, j.started, j.duration, j.status, j.reason
     FROM (SELECT ",
    outcome_columns!(),
    " FROM json_each(?1)) AS j
     WHERE j.id IN (SELECT value FROM json_each(?2))"
);

/// Adds [`minute_counts`] (`?1`) to `notification_attempt_minutes`.
const COUNT_MINUTES: &str =
    "INSERT INTO notification_attempt_minutes (minute, method, target, outcome, shard, n)
     SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, 0, value ->> 4
     FROM json_each(?1) WHERE true
     ON CONFLICT (minute, method, target, outcome, shard) DO UPDATE SET n = n + excluded.n";

/// Applies the outcomes whose lease still holds, then writes an attempt row for each and
/// counts them per minute, in one transaction on the direct connection. Returns how many
/// outcomes came too late (their lease had expired or passed to another replica).
pub(super) async fn record_attempts(
    direct: &Arc<Direct>,
    writer: &Arc<Connections>,
    records: &[AttemptRecord],
) -> StoreResult<u64> {
    let now = ts(Utc::now());
    let texts: Vec<String> = records.iter().map(outcome_text).collect();
    let json = to_json(&texts);
    let records = records.to_vec();
    direct
        .transaction(writer, move |tx| {
            let mut applied = Vec::with_capacity(records.len());
            let params = [Param::Text(&json), Param::Text(&now)];
            tx.for_each_row(APPLY_OUTCOMES, &params, |row| {
                applied.push(row.text("id")?);
                Ok(())
            })?;
            if !applied.is_empty() {
                let ids = to_json(&applied);
                tx.execute(WRITE_ATTEMPTS, &[Param::Text(&json), Param::Text(&ids)])?;
                let counts = to_json(&minute_counts(&records, &applied));
                tx.execute(COUNT_MINUTES, &[Param::Text(&counts)])?;
            }
            Ok((records.len() - applied.len()) as u64)
        })
        .await
}

/// A minute's start, method, target and outcome.
type MinuteKey<'a> = (DateTime<Utc>, &'a str, &'a str, &'a str);

/// The applied outcomes (the ids the update returned) counted per minute started, method,
/// target ('' for user messages) and outcome, for `notification_attempt_minutes`:
/// `[minute, method, target, outcome, n]` each.
fn minute_counts(records: &[AttemptRecord], applied: &[String]) -> Vec<serde_json::Value> {
    let applied: HashSet<Uuid> = applied.iter().filter_map(|id| id.parse().ok()).collect();
    // A batch holds a few channels and outcomes: a short list beats a map.
    let mut counts: Vec<(MinuteKey, i64)> = Vec::new();
    for record in records.iter().filter(|r| applied.contains(&r.message_id)) {
        let key = (
            crate::store::minute_start(record.started_at),
            record.method.as_str(),
            record.target.as_deref().unwrap_or(""),
            record.result.status.as_str(),
        );
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    counts
        .into_iter()
        .map(|((minute, method, target, outcome), n)| {
            serde_json::json!([ts(minute), method, target, outcome, n])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MessageState;
    use crate::queue::AttemptResult;
    use chrono::DateTime;

    #[test]
    fn an_outcome_has_fixed_columns_then_its_reason() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut record = AttemptRecord {
            message_id: Uuid::now_v7(),
            method: crate::model::Method::Webhook,
            target: None,
            lease_token: Uuid::now_v7(),
            notifier_id: Uuid::now_v7(),
            started_at: at,
            duration_ms: 1234,
            result: AttemptResult {
                status: MessageState::TemporaryFailure,
                status_reason: Some("HTTP 503 «busy»".into()),
                attempt_count: 3,
                next_retry_after: Some(at),
            },
        };
        let text = outcome_text(&record);
        assert_eq!(text.len(), OUTCOME_FIXED + 1 + "HTTP 503 «busy»".len());
        assert_eq!(&text[108..118], "0000000003");
        assert_eq!(&text[118..135], "temporary_failure");
        assert_eq!(&text[135..162], ts(at));
        assert_eq!(&text[189..208], "0000000000000001234");
        assert_eq!(&text[208..], "+HTTP 503 «busy»");
        record.result.status_reason = None;
        record.result.next_retry_after = None;
        let text = outcome_text(&record);
        assert_eq!(&text[135..162], " ".repeat(27));
        assert!(text.ends_with('-') && text.len() == OUTCOME_FIXED + 1);
    }
}
