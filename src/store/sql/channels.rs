//! The statements of the operators' channel tools (DESIGN §14): scoped pauses and channel
//! health. Health reads the counts the store keeps per state, method and target, the attempts
//! counted per minute, and the latest attempts of a recent window (the
//! `notification_attempts_started` index, a bounded number), never the whole queue.

use super::Sql;

/// Every scoped pause, by scope then name.
pub(in crate::store) static CHANNEL_PAUSES: Sql = Sql::new(
    "SELECT scope, name, paused_by, paused_at FROM notification_channel_pauses
     ORDER BY scope, name",
);

/// Pauses `$1` scope `$2` name for `$3`; a pause already there is kept as it was.
pub(in crate::store) static PAUSE_CHANNEL: Sql = Sql::new(
    "INSERT INTO notification_channel_pauses (scope, name, paused_by, paused_at)
     VALUES ($1, $2, $3, {now}) ON CONFLICT (scope, name) DO NOTHING",
);

/// Lifts the pause of `$1` scope `$2` name.
pub(in crate::store) static RESUME_CHANNEL: Sql =
    Sql::new("DELETE FROM notification_channel_pauses WHERE scope = $1 AND name = $2");

/// Waiting messages (`pending`, `temporary_failure`, `leased`) per method and target, from the
/// counts the store keeps per state, method and target (migration 11).
pub(in crate::store) static BACKLOG_BY_CHANNEL: Sql = Sql::new(
    "SELECT method, NULLIF(target, '') AS target, CAST(SUM(n) AS BIGINT) AS n
     FROM notification_counts
     WHERE status IN ('pending', 'temporary_failure', 'leased')
     GROUP BY method, target HAVING SUM(n) > 0 ORDER BY method, target",
);

/// Attempts started in the minute of `$1` (a minute's start) or later, per method, target and
/// outcome, from the counts kept per minute (migration 12): a few rows per minute, whatever the
/// delivery rate.
pub(in crate::store) static ATTEMPTS_BY_CHANNEL: Sql = Sql::new(
    "SELECT method, NULLIF(target, '') AS target, outcome, CAST(SUM(n) AS BIGINT) AS n
     FROM notification_attempt_minutes
     WHERE minute >= $1
     GROUP BY method, target, outcome HAVING SUM(n) > 0",
);

/// Drops the minute counts of minutes before `$1`.
pub(in crate::store) static PURGE_ATTEMPT_MINUTES: Sql =
    Sql::new("DELETE FROM notification_attempt_minutes WHERE minute < $1");

/// The latest `$2` attempts started at or after `$1`, newest first.
pub(in crate::store) static RECENT_ATTEMPTS: Sql = Sql::new(
    "SELECT m.method, m.target, a.outcome, a.duration_ms, a.reason, a.started_at
     FROM notification_attempts a JOIN notification_messages m ON m.id = a.message_id
     WHERE a.started_at >= $1
     ORDER BY a.started_at DESC LIMIT $2",
);
