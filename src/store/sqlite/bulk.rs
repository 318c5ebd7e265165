//! SQLite's bulk statements: a batch travels as one JSON array read with `json_each`.

use chrono::Utc;
use sqlx::{Sqlite, SqlitePool, Transaction};
use uuid::Uuid;

use super::text::{parse_id, ts};
use crate::store::rows::to_json;
use crate::store::{AttemptRecord, NewMessage, StoreResult};

/// Inserts the batch in one statement; `WHERE true` keeps SQLite from reading ON CONFLICT as
/// part of the SELECT. Returns the ids inserted.
pub(super) async fn insert_messages(
    tx: &mut Transaction<'static, Sqlite>,
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
    let inserted: Vec<String> = sqlx::query_scalar(
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
    .fetch_all(&mut **tx)
    .await?;
    inserted
        .iter()
        .map(|id| parse_id("notification_messages", id))
        .collect()
}

/// Applies the outcomes whose lease still holds, then writes an attempt row for each.
pub(super) async fn record_attempts(
    pool: &SqlitePool,
    records: &[AttemptRecord],
) -> StoreResult<u64> {
    let now = ts(Utc::now());
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.message_id.to_string(),
                "token": r.lease_token.to_string(),
                "status": r.result.status.as_str(),
                "reason": r.result.status_reason,
                "attempts": r.result.attempt_count,
                "next_retry": r.result.next_retry_after.map(ts),
                "notifier": r.notifier_id.to_string(),
                "started": ts(r.started_at),
                "duration": r.duration_ms,
            })
        })
        .collect();
    let json = to_json(&rows);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let applied: Vec<String> = sqlx::query_scalar(
        // MATERIALIZED: parse the JSON once, then one index lookup per outcome; inlined,
        // SQLite re-parsed the whole array for every leased row (quadratic).
        "WITH j AS MATERIALIZED (
             SELECT value ->> 'id' AS id, value ->> 'token' AS token,
                    value ->> 'status' AS status,
                    value ->> 'reason' AS reason, value ->> 'attempts' AS attempts,
                    value ->> 'next_retry' AS next_retry
             FROM json_each(?1))
         UPDATE notification_messages AS m SET status = j.status, status_reason = j.reason,
             attempt_count = j.attempts, next_retry_after = j.next_retry,
             leased_until = NULL, lease_token = NULL, updated_at = ?2
         FROM j
         WHERE m.id = j.id AND m.status = 'leased' AND m.lease_token = j.token
         RETURNING id",
    )
    .bind(&json)
    .bind(&now)
    .fetch_all(&mut *tx)
    .await?;
    if !applied.is_empty() {
        sqlx::query(
            "INSERT INTO notification_attempts (message_id, attempt_number, notifier_id,
                 started_at, duration_ms, outcome, reason)
             SELECT value ->> 'id',
                 COALESCE((SELECT MAX(a.attempt_number) FROM notification_attempts a
                           WHERE a.message_id = value ->> 'id'), 0) + 1,
                 value ->> 'notifier', value ->> 'started', value ->> 'duration',
                 value ->> 'status', value ->> 'reason'
             FROM json_each(?1)
             WHERE value ->> 'id' IN (SELECT value FROM json_each(?2))",
        )
        .bind(&json)
        .bind(to_json(&applied))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((records.len() - applied.len()) as u64)
}
