//! The text of every query both backends share, in the placeholder dialect of [`super`].

use super::Sql;

macro_rules! user_columns {
    () => {
        "id, username, email, name, roles, status, created_at, updated_at"
    };
}

macro_rules! template_columns {
    () => {
        "id, name, \"group\", title_template, body_template, actions, audience_roles, \
         enabled_by_default, method, kind, inbox, reaches_suspended"
    };
}

/// `SELECT` every user column `FROM users`, then the rest.
macro_rules! select_users {
    ($rest:literal) => {
        concat!("SELECT ", user_columns!(), " FROM users ", $rest)
    };
}

/// `SELECT` every template column `FROM notification_templates`, then the rest.
macro_rules! select_templates {
    ($rest:literal) => {
        concat!(
            "SELECT ",
            template_columns!(),
            " FROM notification_templates ",
            $rest
        )
    };
}

macro_rules! insert_user {
    () => {
        "INSERT INTO users (id, username, email, name, roles, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, 'active', {now}, {now})"
    };
}

macro_rules! inbox_select {
    ($condition:literal) => {
        Sql::new(concat!(
            "SELECT i.id, i.user_id, i.template_id, t.name AS event, i.message_id, i.title,
                 i.content, i.actions, i.read_at, i.created_at
             FROM inbox_notifications i JOIN notification_templates t ON t.id = i.template_id
             WHERE i.user_id = $1",
            $condition,
            " ORDER BY i.read_at IS NOT NULL, i.created_at DESC LIMIT $2"
        ))
    };
}

macro_rules! message_select {
    () => {
        "SELECT m.id, m.notification_template_id, t.name AS event, m.user_id, u.username, \
         m.target, m.method, m.status, m.status_reason, m.created_by, \
         CAST(m.payload AS TEXT) AS payload, m.attempt_count, m.created_at, m.updated_at, \
         m.leased_until, m.next_retry_after, m.queued_seconds, m.dedupe_hash \
         FROM notification_messages m \
         JOIN notification_templates t ON t.id = m.notification_template_id \
         LEFT JOIN users u ON u.id = m.user_id"
    };
}

/// The columns [`crate::store::rows::message_from_row`] reads.
pub(in crate::store) const MESSAGE_SELECT: &str = message_select!();

pub(in crate::store) const MESSAGE_COUNT: &str = "SELECT COUNT(*) AS n \
     FROM notification_messages m \
     JOIN notification_templates t ON t.id = m.notification_template_id";

// schema
pub(in crate::store) static MIGRATIONS_TABLE_EXISTS: Sql = Sql::each(
    "SELECT to_regclass('herald_schema_migrations') IS NOT NULL AS present",
    "SELECT EXISTS (SELECT 1 FROM sqlite_master
         WHERE type = 'table' AND name = 'herald_schema_migrations') AS present",
);
pub(in crate::store) static CREATE_MIGRATIONS_TABLE: Sql = Sql::each(
    "CREATE TABLE IF NOT EXISTS herald_schema_migrations (
         version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS herald_schema_migrations (
         version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
);
pub(in crate::store) static SCHEMA_VERSION: Sql =
    Sql::new("SELECT MAX(version) AS version FROM herald_schema_migrations");
pub(in crate::store) static RECORD_MIGRATION: Sql = Sql::new(
    "INSERT INTO herald_schema_migrations (version, name, applied_at) VALUES ($1, $2, {now})",
);

// users
pub(in crate::store) static INSERT_USER: Sql =
    Sql::new(concat!(insert_user!(), " RETURNING ", user_columns!()));
/// Writes only when something changed; returns no row when nothing did.
pub(in crate::store) static UPSERT_USER: Sql = Sql::new(concat!(
    insert_user!(),
    " ON CONFLICT (username) DO UPDATE SET email = excluded.email, name = excluded.name,
         roles = excluded.roles, updated_at = excluded.updated_at
     WHERE (users.email, users.name, users.roles)
         IS DISTINCT FROM (excluded.email, excluded.name, excluded.roles)
     RETURNING ",
    user_columns!()
));
pub(in crate::store) static USER_BY_USERNAME: Sql = Sql::new(select_users!("WHERE username = $1"));
/// The users named in `$1`, in no order.
pub(in crate::store) static USERS_BY_USERNAMES: Sql =
    Sql::new(select_users!("WHERE username {any $1}"));
pub(in crate::store) static USER_BY_ID: Sql = Sql::new(select_users!("WHERE id = $1"));
pub(in crate::store) static LIST_USERS: Sql = Sql::new(select_users!("ORDER BY username"));
/// Active users holding one of the roles in `$1`.
pub(in crate::store) static ACTIVE_USERS_WITH_ROLES: Sql = Sql::each(
    select_users!(
        "WHERE status = 'active' AND string_to_array(roles, ',') && $1::text[]
         ORDER BY username"
    ),
    select_users!(
        "WHERE status = 'active' AND EXISTS (SELECT 1 FROM json_each($1) r
             WHERE instr(',' || roles || ',', ',' || r.value || ',') > 0)
         ORDER BY username"
    ),
);
pub(in crate::store) static SET_USER_STATUS: Sql =
    Sql::new("UPDATE users SET status = $1, updated_at = {now} WHERE id = $2");
pub(in crate::store) static OWNER_EXISTS: Sql = Sql::new(
    "SELECT EXISTS (SELECT 1 FROM users WHERE ',' || roles || ',' LIKE '%,owner,%') AS present",
);

// event catalog
/// Inserts an event, or refreshes a known one's templates when they changed (never `method`).
pub(in crate::store) static UPSERT_TEMPLATE: Sql = Sql::new(
    "INSERT INTO notification_templates (id, name, \"group\", title_template, body_template,
         actions, audience_roles, enabled_by_default, kind, inbox, reaches_suspended,
         created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, {now}, {now})
     ON CONFLICT (name) DO UPDATE SET \"group\" = excluded.\"group\",
         title_template = excluded.title_template,
         body_template = excluded.body_template, actions = excluded.actions,
         audience_roles = excluded.audience_roles,
         enabled_by_default = excluded.enabled_by_default, kind = excluded.kind,
         inbox = excluded.inbox, reaches_suspended = excluded.reaches_suspended,
         updated_at = excluded.updated_at
     WHERE (notification_templates.\"group\", notification_templates.title_template,
            notification_templates.body_template, notification_templates.actions,
            notification_templates.audience_roles,
            notification_templates.enabled_by_default, notification_templates.kind,
            notification_templates.inbox, notification_templates.reaches_suspended)
         IS DISTINCT FROM
           (excluded.\"group\", excluded.title_template, excluded.body_template,
            excluded.actions, excluded.audience_roles, excluded.enabled_by_default,
            excluded.kind, excluded.inbox, excluded.reaches_suspended)",
);
pub(in crate::store) static LIST_TEMPLATES: Sql =
    Sql::new(select_templates!("ORDER BY \"group\", name"));
pub(in crate::store) static TEMPLATE_BY_NAME: Sql = Sql::new(select_templates!("WHERE name = $1"));
pub(in crate::store) static SET_TEMPLATE_METHOD: Sql =
    Sql::new("UPDATE notification_templates SET method = $1, updated_at = {now} WHERE id = $2");

// preferences
pub(in crate::store) static PREFERENCES_OF_USER: Sql = Sql::new(
    "SELECT user_id, template_id, disabled FROM notification_preferences WHERE user_id = $1",
);
pub(in crate::store) static PREFERENCES_FOR_TEMPLATE: Sql = Sql::new(
    "SELECT user_id, template_id, disabled FROM notification_preferences
     WHERE template_id = $1 AND user_id {any $2}",
);
pub(in crate::store) static SET_PREFERENCE: Sql = Sql::new(
    "INSERT INTO notification_preferences (user_id, template_id, disabled, created_at,
         updated_at)
     VALUES ($1, $2, $3, {now}, {now})
     ON CONFLICT (user_id, template_id) DO UPDATE SET disabled = excluded.disabled,
         updated_at = excluded.updated_at",
);
pub(in crate::store) static CLEAR_PREFERENCE: Sql =
    Sql::new("DELETE FROM notification_preferences WHERE user_id = $1 AND template_id = $2");

// settings
pub(in crate::store) static SETTINGS: Sql =
    Sql::new("SELECT notifier_paused, updated_at FROM notification_settings WHERE id = 1");
/// PostgreSQL also wakes every replica, in the same statement (on the channel
/// `postgres::WAKEUP_CHANNEL` listens on).
pub(in crate::store) static SET_PAUSED: Sql = Sql::each(
    "WITH changed AS (
         UPDATE notification_settings SET notifier_paused = $1, updated_at = {now}
         WHERE id = 1 RETURNING id)
     SELECT pg_notify('herald_wakeup', '') FROM changed",
    "UPDATE notification_settings SET notifier_paused = $1, updated_at = {now} WHERE id = 1",
);

// messages
pub(in crate::store) static MESSAGE_BY_ID: Sql =
    Sql::new(concat!(message_select!(), " WHERE m.id = $1"));
/// The messages with the ids in `$1`, in no order.
pub(in crate::store) static MESSAGES_BY_IDS: Sql =
    Sql::new(concat!(message_select!(), " WHERE m.id {any $1}"));
pub(in crate::store) static MESSAGES_WITH_HASHES: Sql =
    Sql::new("SELECT dedupe_hash, id FROM notification_messages WHERE dedupe_hash {any $1}");
pub(in crate::store) static COUNT_BY_STATE: Sql =
    Sql::new("SELECT status, CAST(SUM(n) AS BIGINT) AS n FROM notification_counts GROUP BY status");
pub(in crate::store) static ATTEMPTS_OF_MESSAGE: Sql = Sql::new(
    "SELECT message_id, attempt_number, notifier_id, started_at, duration_ms, outcome, reason
     FROM notification_attempts WHERE message_id = $1 ORDER BY attempt_number",
);
/// Back to `pending` with no attempts, for the ids in `$3` whose state is in `$2`.
pub(in crate::store) static RETRY_MESSAGES: Sql = Sql::new(
    "UPDATE notification_messages SET status = 'pending', attempt_count = 0,
         leased_until = NULL, next_retry_after = NULL, status_reason = $1, updated_at = {now}
     WHERE status {any $2} AND id {any $3}
     RETURNING id",
);
/// One bounded batch of final messages last changed before `$1`.
/// Deletes up to `$2` messages in a final state last changed before `$1`, with their attempts
/// (on SQLite by the foreign key's cascade; PostgreSQL has no such key, migration 6); returns
/// their ids.
pub(in crate::store) static PURGE_BATCH: Sql = Sql::each(
    "WITH gone AS (
         DELETE FROM notification_messages WHERE id IN (
             SELECT id FROM notification_messages
             WHERE updated_at < $1 AND status IN ('sent', 'permanent_failure', 'inhibited')
             LIMIT $2)
         RETURNING id),
     attempts AS (DELETE FROM notification_attempts WHERE message_id IN (SELECT id FROM gone))
     SELECT id FROM gone",
    "DELETE FROM notification_messages WHERE id IN (
         SELECT id FROM notification_messages
         WHERE updated_at < $1 AND status IN ('sent', 'permanent_failure', 'inhibited')
         LIMIT $2)
     RETURNING id",
);

// read models
/// The top `$1` reasons among the newest `$2` messages of each failure state: each window is
/// read newest first down the `(status, id)` index, so the cost is bounded whatever the table
/// holds.
pub(in crate::store) static TOP_STATUS_REASONS: Sql = Sql::new(
    "SELECT status, status_reason, COUNT(*) AS n FROM (
         SELECT * FROM (SELECT status, status_reason FROM notification_messages
                        WHERE status = 'temporary_failure' ORDER BY id DESC LIMIT $2) AS t
         UNION ALL
         SELECT * FROM (SELECT status, status_reason FROM notification_messages
                        WHERE status = 'permanent_failure' ORDER BY id DESC LIMIT $2) AS p
     ) AS recent
     WHERE status_reason IS NOT NULL
     GROUP BY status, status_reason
     ORDER BY n DESC, status_reason, status LIMIT $1",
);
/// `$1` is the UUIDv7 floor of `$2`, so the primary key bounds the scan.
pub(in crate::store) static VOLUME_BY_EVENT: Sql = Sql::new(
    "SELECT t.name, COUNT(*) AS n FROM notification_messages m
     JOIN notification_templates t ON t.id = m.notification_template_id
     WHERE m.id >= $1 AND m.created_at >= $2
     GROUP BY t.name ORDER BY t.name",
);
pub(in crate::store) static ATTEMPTS_SINCE: Sql = Sql::new(
    "SELECT outcome AS status, COUNT(*) AS n FROM notification_attempts
     WHERE started_at >= $1 GROUP BY outcome",
);

// dispatch
/// Waiting messages whose method (`$1`) or target (`$2`) no replica covers, from the counts
/// the store keeps per state, method and target (migration 11): a few rows, whatever waits.
pub(in crate::store) static UNDELIVERABLE: Sql = Sql::new(
    "SELECT method, NULLIF(target, '') AS target, CAST(SUM(n) AS BIGINT) AS n
     FROM notification_counts
     WHERE status IN ('pending', 'temporary_failure')
       AND NOT ((target = '' AND method {any $1}) OR target {any $2})
     GROUP BY method, target HAVING SUM(n) > 0 ORDER BY method, target",
);
pub(in crate::store) static NEXT_DUE: Sql = Sql::new(
    "SELECT MIN(due) AS due FROM (
         SELECT MIN(next_retry_after) AS due FROM notification_messages
         WHERE status = 'temporary_failure'
           AND ((target IS NULL AND method {any $1}) OR target {any $2})
         UNION ALL
         SELECT MIN(leased_until) FROM notification_messages WHERE status = 'leased'
           AND ((target IS NULL AND method {any $1}) OR target {any $2})) AS waiting",
);
pub(in crate::store) static HEARTBEAT: Sql = Sql::new(
    "INSERT INTO notification_replicas (id, hostname, pid, started_at, last_seen_at,
         in_flight, capabilities)
     VALUES ($1, $2, $3, $4, $5, $6, $7)
     ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at,
         in_flight = excluded.in_flight, capabilities = excluded.capabilities",
);
pub(in crate::store) static REMOVE_REPLICA: Sql =
    Sql::new("DELETE FROM notification_replicas WHERE id = $1");
pub(in crate::store) static PRUNE_REPLICAS: Sql =
    Sql::new("DELETE FROM notification_replicas WHERE last_seen_at < $1");
pub(in crate::store) static LIST_REPLICAS: Sql = Sql::new(
    "SELECT id, hostname, pid, started_at, last_seen_at, in_flight, capabilities
     FROM notification_replicas ORDER BY started_at",
);
pub(in crate::store) static LEAD_RETENTION: Sql = Sql::new(
    "UPDATE notification_settings SET retention_holder = $1, retention_until = {later $2}
     WHERE id = 1 AND (retention_holder IS NULL OR retention_holder = $1
                       OR retention_until < {now})",
);
pub(in crate::store) static RELEASE_RETENTION: Sql = Sql::new(
    "UPDATE notification_settings SET retention_holder = NULL, retention_until = NULL
     WHERE id = 1 AND retention_holder = $1",
);

// inbox
pub(in crate::store) static INSERT_INBOX: Sql = Sql::new(
    "INSERT INTO inbox_notifications (id, user_id, template_id, message_id, title, content,
         actions, read_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)
     ON CONFLICT (message_id) DO NOTHING",
);
/// A user's inbox (all, unread, read), unread first, then newest first.
pub(in crate::store) static LIST_INBOX: [Sql; 3] = [
    inbox_select!(""),
    inbox_select!(" AND i.read_at IS NULL"),
    inbox_select!(" AND i.read_at IS NOT NULL"),
];
pub(in crate::store) static SET_INBOX_READ: Sql = Sql::new(
    "UPDATE inbox_notifications SET read_at = CASE WHEN $1 THEN {now} END
     WHERE id = $2 AND user_id = $3",
);

// api tokens
macro_rules! token_select {
    ($rest:literal) => {
        Sql::new(concat!(
            "SELECT t.id, t.name, t.user_id, u.username, t.created_at, t.last_used_at,
                 t.revoked_at
             FROM api_tokens t JOIN users u ON u.id = t.user_id ",
            $rest
        ))
    };
}

pub(in crate::store) static INSERT_API_TOKEN: Sql = Sql::new(
    "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at)
     VALUES ($1, $2, $3, $4, {now})",
);
pub(in crate::store) static API_TOKEN_BY_ID: Sql = token_select!("WHERE t.id = $1");
pub(in crate::store) static LIST_API_TOKENS: Sql =
    token_select!("ORDER BY u.username, t.name, t.created_at");
pub(in crate::store) static LIST_API_TOKENS_OF_USER: Sql =
    token_select!("WHERE t.user_id = $1 ORDER BY t.name, t.created_at");
pub(in crate::store) static REVOKE_API_TOKEN: Sql = Sql::new(
    "UPDATE api_tokens SET revoked_at = {now}
     WHERE user_id = $1 AND name = $2 AND revoked_at IS NULL",
);
/// The live (not revoked) tokens whose hashes are in `$1`, each with its user.
pub(in crate::store) static LIVE_API_TOKENS: Sql = Sql::new(
    "SELECT t.token_hash, t.id AS token_id, t.last_used_at, u.id, u.username, u.email, u.name,
         u.roles, u.status, u.created_at, u.updated_at
     FROM api_tokens t JOIN users u ON u.id = t.user_id
     WHERE t.token_hash {any $1} AND t.revoked_at IS NULL",
);
/// Sets `last_used_at` unless another request did since `$2`: concurrent first uses after a
/// quiet minute write the row once between them, give or take a race.
pub(in crate::store) static TOUCH_API_TOKEN: Sql = Sql::new(
    "UPDATE api_tokens SET last_used_at = {now}
     WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
);

// ssh keys
macro_rules! ssh_key_select {
    ($rest:literal) => {
        Sql::new(concat!(
            "SELECT k.id, k.user_id, u.username, k.public_key, k.fingerprint, k.comment,
                 k.created_at, k.last_used_at
             FROM user_ssh_keys k JOIN users u ON u.id = k.user_id ",
            $rest
        ))
    };
}

pub(in crate::store) static INSERT_SSH_KEY: Sql = Sql::new(
    "INSERT INTO user_ssh_keys (id, user_id, public_key, fingerprint, comment, created_at)
     VALUES ($1, $2, $3, $4, $5, {now})",
);
pub(in crate::store) static SSH_KEY_BY_ID: Sql = ssh_key_select!("WHERE k.id = $1");
pub(in crate::store) static SSH_KEY_BY_FINGERPRINT: Sql =
    ssh_key_select!("WHERE k.fingerprint = $1");
pub(in crate::store) static LIST_SSH_KEYS: Sql =
    ssh_key_select!("ORDER BY u.username, k.created_at, k.id");
pub(in crate::store) static LIST_SSH_KEYS_OF_USER: Sql =
    ssh_key_select!("WHERE k.user_id = $1 ORDER BY k.created_at, k.id");
pub(in crate::store) static DELETE_SSH_KEY: Sql =
    Sql::new("DELETE FROM user_ssh_keys WHERE id = $1");
/// The key with fingerprint `$1` (one probe of the unique index) and its user's columns.
pub(in crate::store) static SSH_KEY_OWNER: Sql = Sql::new(
    "SELECT k.id AS key_id, u.id, u.username, u.email, u.name, u.roles, u.status,
         u.created_at, u.updated_at
     FROM user_ssh_keys k JOIN users u ON u.id = k.user_id
     WHERE k.fingerprint = $1",
);
pub(in crate::store) static TOUCH_SSH_KEY: Sql =
    Sql::new("UPDATE user_ssh_keys SET last_used_at = {now} WHERE id = $1");
