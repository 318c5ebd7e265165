//! Scoped pauses and the reads behind channel health (DESIGN §14), for every backend.

use chrono::{DateTime, Utc};

use crate::model::{ChannelPause, PauseScope};
use crate::store::backend::{Backend, On, StoredRow};
use crate::store::rows::parse_enum;
use crate::store::sql::{Param, channels as q};
use crate::store::{AuditEntry, ChannelAttempts, ChannelBacklog, RecentAttempt, StoreResult};

use super::audit::{Record, execute_audited};
use super::{execute, rows};

const PAUSES: &str = "notification_channel_pauses";
const MESSAGES: &str = "notification_messages";
const ATTEMPTS: &str = "notification_attempts";

/// [`crate::store::Store::channel_pauses`].
pub(super) async fn channel_pauses<B: Backend>(backend: &B) -> StoreResult<Vec<ChannelPause>> {
    rows(backend, &q::CHANNEL_PAUSES, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(ChannelPause {
                scope: parse_enum(PAUSES, row.str("scope")?)?,
                name: row.text("name")?,
                paused_by: row.text("paused_by")?,
                paused_at: row.time(PAUSES, "paused_at")?,
            })
        })
        .collect()
}

/// [`crate::store::Store::pause_channel`].
pub(super) async fn pause_channel<B: Backend>(
    backend: &B,
    scope: PauseScope,
    name: &str,
    paused_by: &str,
    audit: Option<&AuditEntry>,
) -> StoreResult<bool> {
    let params = [
        Param::Text(scope.as_str()),
        Param::Text(name),
        Param::Text(paused_by),
    ];
    let sql = &q::PAUSE_CHANNEL;
    Ok(execute_audited(backend, sql, &params, audit, Record::IfChanged).await? > 0)
}

/// [`crate::store::Store::resume_channel`]: also wakes every replica, which may have held
/// messages back.
pub(super) async fn resume_channel<B: Backend>(
    backend: &B,
    scope: PauseScope,
    name: &str,
    audit: Option<&AuditEntry>,
) -> StoreResult<bool> {
    let params = [Param::Text(scope.as_str()), Param::Text(name)];
    let sql = &q::RESUME_CHANNEL;
    let resumed = execute_audited(backend, sql, &params, audit, Record::IfChanged).await? > 0;
    if resumed {
        backend.wake_replicas(On::Pool).await?;
        backend.handle().wake_here();
    }
    Ok(resumed)
}

/// [`crate::store::Store::backlog_by_channel`].
pub(super) async fn backlog_by_channel<B: Backend>(
    backend: &B,
) -> StoreResult<Vec<ChannelBacklog>> {
    rows(backend, &q::BACKLOG_BY_CHANNEL, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(ChannelBacklog {
                method: parse_enum(MESSAGES, row.str("method")?)?,
                target: row.opt_text("target")?,
                count: row.big("n")?,
            })
        })
        .collect()
}

/// [`crate::store::Store::attempts_by_channel`].
pub(super) async fn attempts_by_channel<B: Backend>(
    backend: &B,
    since: DateTime<Utc>,
) -> StoreResult<Vec<ChannelAttempts>> {
    let minute = crate::store::minute_start(since);
    rows(backend, &q::ATTEMPTS_BY_CHANNEL, &[Param::Time(minute)])
        .await?
        .iter()
        .map(|row| {
            Ok(ChannelAttempts {
                method: parse_enum(MESSAGES, row.str("method")?)?,
                target: row.opt_text("target")?,
                outcome: parse_enum(ATTEMPTS, row.str("outcome")?)?,
                count: row.big("n")?,
            })
        })
        .collect()
}

/// [`crate::store::Store::recent_attempts`].
pub(super) async fn recent_attempts<B: Backend>(
    backend: &B,
    since: DateTime<Utc>,
    limit: u32,
) -> StoreResult<Vec<RecentAttempt>> {
    let params = [Param::Time(since), Param::I64(i64::from(limit))];
    rows(backend, &q::RECENT_ATTEMPTS, &params)
        .await?
        .iter()
        .map(|row| {
            Ok(RecentAttempt {
                method: parse_enum(MESSAGES, row.str("method")?)?,
                target: row.opt_text("target")?,
                outcome: parse_enum(ATTEMPTS, row.str("outcome")?)?,
                duration_ms: row.big("duration_ms")?,
                reason: row.opt_text("reason")?,
                started_at: row.time(ATTEMPTS, "started_at")?,
            })
        })
        .collect()
}

/// [`crate::store::Store::purge_attempt_minutes`].
pub(super) async fn purge_attempt_minutes<B: Backend>(
    backend: &B,
    cutoff: DateTime<Utc>,
) -> StoreResult<u64> {
    execute(backend, &q::PURGE_ATTEMPT_MINUTES, &[Param::Time(cutoff)]).await
}
