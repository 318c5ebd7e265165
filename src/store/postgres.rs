//! The PostgreSQL store, for several replicas on several machines.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Executor;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{
    AttemptRecord, EnqueueOutcome, FINAL_STATES_SQL, InboxEntry, InboxFilter, LeaseRequest,
    LeasedMessage, MessageFilter, NewInboxEntry, NewMessage, NewUser, OpenMode, PURGE_BATCH,
    PageRequest, ReasonCount, Replica, StateCounts, Store, StoreError, StoreResult, Undeliverable,
    check_version, join_roles, like_pattern, parse_enum, parse_json, retryable_states, split_roles,
    tally, to_json, unreadable_reason, uuid_v7_floor,
};
use crate::model::{
    Action, Attempt, Capabilities, EventKind, EventSpec, EventTemplate, Message, Method,
    Preference, Role, Settings, User, UserStatus,
};

/// PostgreSQL implementation of [`Store`].
pub struct PostgresStore {
    pool: PgPool,
    /// The URL with its password redacted.
    url: String,
    wake: Arc<Notify>,
    listening: OnceLock<()>,
}

/// The `LISTEN/NOTIFY` channel that wakes dispatchers on every replica.
const WAKEUP_CHANNEL: &str = "herald_wakeup";

/// Serializes migrations run by replicas starting at the same time.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64; // "herald"

const USER_COLUMNS: &str = "id, username, email, name, roles, status, created_at, updated_at";
const TEMPLATE_COLUMNS: &str = "id, name, \"group\", title_template, body_template, actions, \
     audience_roles, enabled_by_default, method, kind, inbox, reaches_suspended";
const MESSAGE_SELECT: &str = "SELECT m.id, m.notification_template_id, t.name AS event, m.user_id, \
     u.username, m.target, m.method, m.status, m.status_reason, m.created_by, \
     m.payload::text AS payload, m.attempt_count, m.created_at, m.updated_at, m.leased_until, \
     m.next_retry_after, m.queued_seconds, m.dedupe_hash \
     FROM notification_messages m \
     JOIN notification_templates t ON t.id = m.notification_template_id \
     LEFT JOIN users u ON u.id = m.user_id";

fn user_from_row(row: &PgRow) -> StoreResult<User> {
    const T: &str = "users";
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        roles: split_roles(T, row.try_get("roles")?)?,
        status: parse_enum(T, row.try_get("status")?)?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn template_from_row(row: &PgRow) -> StoreResult<EventTemplate> {
    const T: &str = "notification_templates";
    let method: Option<String> = row.try_get("method")?;
    let name: String = row.try_get("name")?;
    Ok(EventTemplate {
        id: row.try_get("id")?,
        method: method.map(|m| parse_enum::<Method>(T, &m)).transpose()?,
        spec: EventSpec {
            // Not a column: labels come from the binary's catalog (DESIGN §3).
            labels: crate::catalog::declared_labels(&name),
            name,
            group: row.try_get("group")?,
            title_template: row.try_get("title_template")?,
            body_template: row.try_get("body_template")?,
            actions: parse_json::<Vec<Action>>(T, row.try_get("actions")?)?,
            audience_roles: split_roles(T, row.try_get("audience_roles")?)?,
            enabled_by_default: row.try_get("enabled_by_default")?,
            kind: parse_enum::<EventKind>(T, row.try_get("kind")?)?,
            inbox: row.try_get("inbox")?,
            reaches_suspended: row.try_get("reaches_suspended")?,
        },
    })
}

/// The `WHERE` clause of a message search (the query must join `t`, the templates).
fn push_message_filter(
    q: &mut QueryBuilder<'_, Postgres>,
    filter: &MessageFilter,
    reason: Option<&str>,
) {
    q.push(" WHERE TRUE");
    if !filter.statuses.is_empty() {
        let states: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        q.push(" AND m.status = ANY (").push_bind(states).push(")");
    }
    if let Some(event) = &filter.event {
        if event.contains('*') {
            q.push(" AND t.name LIKE ")
                .push_bind(like_pattern(event))
                .push(" ESCAPE '\\'");
        } else {
            q.push(" AND t.name = ").push_bind(event.clone());
        }
    }
    if let Some(user_id) = filter.user_id {
        q.push(" AND m.user_id = ").push_bind(user_id);
    }
    if let Some(method) = filter.method {
        q.push(" AND m.method = ").push_bind(method.as_str());
    }
    if let Some(reason) = reason {
        q.push(" AND m.status_reason = ")
            .push_bind(reason.to_string());
    }
}

fn message_from_row(row: &PgRow) -> StoreResult<Message> {
    const T: &str = "notification_messages";
    Ok(Message {
        id: row.try_get("id")?,
        notification_template_id: row.try_get("notification_template_id")?,
        event: row.try_get("event")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        target: row.try_get("target")?,
        method: parse_enum(T, row.try_get("method")?)?,
        status: parse_enum(T, row.try_get("status")?)?,
        status_reason: row.try_get("status_reason")?,
        created_by: row.try_get("created_by")?,
        payload: parse_json(T, row.try_get("payload")?)?,
        attempt_count: row.try_get("attempt_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        leased_until: row.try_get("leased_until")?,
        next_retry_after: row.try_get("next_retry_after")?,
        queued_seconds: row.try_get("queued_seconds")?,
        dedupe_hash: row.try_get("dedupe_hash")?,
    })
}

fn attempt_from_row(row: &PgRow) -> StoreResult<Attempt> {
    Ok(Attempt {
        message_id: row.try_get("message_id")?,
        attempt_number: row.try_get("attempt_number")?,
        notifier_id: row.try_get("notifier_id")?,
        started_at: row.try_get("started_at")?,
        duration_ms: row.try_get("duration_ms")?,
        outcome: parse_enum("notification_attempts", row.try_get("outcome")?)?,
        reason: row.try_get("reason")?,
    })
}

fn preference_from_row(row: &PgRow) -> StoreResult<Preference> {
    Ok(Preference {
        user_id: row.try_get("user_id")?,
        template_id: row.try_get("template_id")?,
        disabled: row.try_get("disabled")?,
    })
}

fn unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Wakes the local dispatcher on every `NOTIFY herald_wakeup`, reconnecting after errors.
/// Runs until the store's notifier is dropped.
async fn listen_for_wakeups(pool: PgPool, wake: std::sync::Weak<Notify>) {
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot LISTEN for wake-ups; retrying in 1s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(WAKEUP_CHANNEL).await {
            tracing::warn!(error = %e, "cannot LISTEN for wake-ups; retrying in 1s");
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Anything committed while we were not listening must not be missed.
        match wake.upgrade() {
            Some(w) => w.notify_one(),
            None => return,
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => match wake.upgrade() {
                    Some(w) => w.notify_one(),
                    None => return,
                },
                // The connection dropped; PgListener reconnects on the next call.
                Ok(None) => match wake.upgrade() {
                    Some(w) => w.notify_one(),
                    None => return,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "wake-up listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

fn leased_from_row(row: &PgRow) -> StoreResult<LeasedMessage> {
    Ok(LeasedMessage {
        id: row.try_get("id")?,
        template_id: row.try_get("notification_template_id")?,
        user_id: row.try_get("user_id")?,
        target: row.try_get("target")?,
        method: parse_enum("notification_messages", row.try_get("method")?)?,
        payload: parse_json("notification_messages", row.try_get("payload")?)?,
        attempt_count: row.try_get("attempt_count")?,
        created_at: row.try_get("created_at")?,
        queued_seconds: row
            .try_get::<Option<f64>, _>("queued_seconds")?
            .unwrap_or(0.0),
        lease_token: row.try_get("lease_token")?,
    })
}

fn replica_from_row(row: &PgRow) -> StoreResult<Replica> {
    Ok(Replica {
        id: row.try_get("id")?,
        hostname: row.try_get("hostname")?,
        pid: row.try_get("pid")?,
        started_at: row.try_get("started_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        in_flight: row.try_get("in_flight")?,
        capabilities: parse_json("notification_replicas", row.try_get("capabilities")?)?,
    })
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Makes a leased row that cannot be read `permanent_failure` with why, so it never fails
    /// (or wedges) a batch again.
    async fn isolate_unreadable(&self, row: &PgRow, token: Uuid, error: &StoreError) {
        let id: Option<Uuid> = row.try_get("id").ok();
        tracing::error!(message_id = ?id, error = %error, "leased message cannot be read; marking it permanent_failure");
        let Some(id) = id else { return };
        let done = sqlx::query(
            "UPDATE notification_messages SET status = 'permanent_failure', status_reason = $1,
                 leased_until = NULL, lease_token = NULL, updated_at = now()
             WHERE id = $2 AND lease_token = $3",
        )
        .bind(unreadable_reason(error))
        .bind(id)
        .bind(token)
        .execute(&self.pool)
        .await;
        if let Err(e) = done {
            tracing::error!(message_id = %id, error = %e, "cannot isolate the unreadable message; its lease will expire");
        }
    }

    /// Connects to `url` and, with [`OpenMode::Migrate`], applies pending migrations.
    pub async fn open(url: &str, mode: OpenMode) -> StoreResult<PostgresStore> {
        let shown = crate::secret::redact_url_password(url);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            // Generic plans built while the queue was empty keep sequential scans forever;
            // planning each execution keeps the lease on its index.
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET plan_cache_mode = force_custom_plan")
                        .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| StoreError::Open {
                url: shown.clone(),
                detail: format!("{e}; check that the server is running and database_url is right"),
            })?;
        let store = PostgresStore {
            pool,
            url: shown,
            wake: Arc::new(Notify::new()),
            listening: OnceLock::new(),
        };
        match mode {
            OpenMode::Migrate => store.migrate().await?,
            OpenMode::Existing => check_version(&store.url, store.schema_version().await?)?,
        }
        Ok(store)
    }

    async fn schema_version(&self) -> StoreResult<i64> {
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('herald_schema_migrations') IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        if !exists {
            return Ok(0);
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM herald_schema_migrations")
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0))
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS herald_schema_migrations (
                version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM herald_schema_migrations")
                .fetch_one(&mut *tx)
                .await?;
        let current = current.unwrap_or(0);
        if current > super::latest_version() {
            check_version(&self.url, current)?;
        }
        for m in super::MIGRATIONS.iter().filter(|m| m.version > current) {
            sqlx::raw_sql(m.postgres).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO herald_schema_migrations (version, name, applied_at) VALUES ($1, $2, now())",
            )
            .bind(m.version)
            .bind(m.name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn display_url(&self) -> &str {
        &self.url
    }

    async fn insert_user(&self, user: &NewUser) -> StoreResult<User> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (id, username, email, name, roles, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'active', now(), now()) RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.name)
        .bind(join_roles(&user.roles))
        .fetch_one(&self.pool)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Conflict(format!("user `{}` already exists", user.username))
            } else {
                e.into()
            }
        })?;
        user_from_row(&row)
    }

    async fn upsert_user(&self, user: &NewUser) -> StoreResult<User> {
        let row = sqlx::query(&format!(
            "INSERT INTO users (id, username, email, name, roles, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'active', now(), now())
             ON CONFLICT (username) DO UPDATE SET email = excluded.email, name = excluded.name,
                 roles = excluded.roles, updated_at = excluded.updated_at
             WHERE (users.email, users.name, users.roles) IS DISTINCT FROM (excluded.email, excluded.name, excluded.roles)
             RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::now_v7())
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.name)
        .bind(join_roles(&user.roles))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => user_from_row(&row),
            // Unchanged: the conditional upsert wrote nothing and returned nothing.
            None => self.user_by_username(&user.username).await?.ok_or_else(|| {
                StoreError::Conflict(format!("user `{}` vanished during upsert", user.username))
            }),
        }
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn active_users_with_roles(&self, roles: &[Role]) -> StoreResult<Vec<User>> {
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE status = 'active' AND string_to_array(roles, ',') && $1::text[]
             ORDER BY username"
        ))
        .bind(&names)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_status(&self, id: Uuid, status: UserStatus) -> StoreResult<()> {
        sqlx::query("UPDATE users SET status = $1, updated_at = now() WHERE id = $2")
            .bind(status.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn owner_exists(&self) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE 'owner' = ANY (string_to_array(roles, ',')))",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn upsert_catalog(&self, events: &[EventSpec]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for e in events {
            sqlx::query(
                "INSERT INTO notification_templates (id, name, \"group\", title_template,
                     body_template, actions, audience_roles, enabled_by_default, kind, inbox,
                     reaches_suspended, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now(), now())
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
            )
            .bind(Uuid::now_v7())
            .bind(&e.name)
            .bind(&e.group)
            .bind(&e.title_template)
            .bind(&e.body_template)
            .bind(to_json(&e.actions))
            .bind(join_roles(&e.audience_roles))
            .bind(e.enabled_by_default)
            .bind(e.kind.as_str())
            .bind(e.inbox)
            .bind(e.reaches_suspended)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_templates(&self) -> StoreResult<Vec<EventTemplate>> {
        let rows = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM notification_templates ORDER BY \"group\", name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_from_row).collect()
    }

    async fn template_by_name(&self, name: &str) -> StoreResult<Option<EventTemplate>> {
        let row = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM notification_templates WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(template_from_row).transpose()
    }

    async fn set_template_method(&self, id: Uuid, method: Option<Method>) -> StoreResult<()> {
        sqlx::query(
            "UPDATE notification_templates SET method = $1, updated_at = now() WHERE id = $2",
        )
        .bind(method.map(Method::as_str))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn preferences_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Preference>> {
        let rows = sqlx::query(
            "SELECT user_id, template_id, disabled FROM notification_preferences WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(preference_from_row).collect()
    }

    async fn preferences_for_template(
        &self,
        template_id: Uuid,
        user_ids: &[Uuid],
    ) -> StoreResult<Vec<Preference>> {
        let rows = sqlx::query(
            "SELECT user_id, template_id, disabled FROM notification_preferences
             WHERE template_id = $1 AND user_id = ANY ($2)",
        )
        .bind(template_id)
        .bind(user_ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(preference_from_row).collect()
    }

    async fn set_preference(&self, pref: Preference) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_preferences (user_id, template_id, disabled, created_at, updated_at)
             VALUES ($1, $2, $3, now(), now())
             ON CONFLICT (user_id, template_id) DO UPDATE SET disabled = excluded.disabled,
                 updated_at = excluded.updated_at",
        )
        .bind(pref.user_id)
        .bind(pref.template_id)
        .bind(pref.disabled)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_preference(&self, user_id: Uuid, template_id: Uuid) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM notification_preferences WHERE user_id = $1 AND template_id = $2",
        )
        .bind(user_id)
        .bind(template_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn settings(&self) -> StoreResult<Settings> {
        let row = sqlx::query(
            "SELECT notifier_paused, updated_at FROM notification_settings WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Settings {
            notifier_paused: row.try_get("notifier_paused")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    async fn set_paused(&self, paused: bool) -> StoreResult<()> {
        sqlx::query(
            "WITH changed AS (
                 UPDATE notification_settings SET notifier_paused = $1, updated_at = now()
                 WHERE id = 1 RETURNING id)
             SELECT pg_notify($2, '') FROM changed",
        )
        .bind(paused)
        .bind(WAKEUP_CHANNEL)
        .execute(&self.pool)
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    async fn enqueue(&self, messages: &[NewMessage]) -> StoreResult<EnqueueOutcome> {
        if messages.is_empty() {
            return Ok(EnqueueOutcome::default());
        }
        let ids: Vec<Uuid> = messages.iter().map(|m| m.id).collect();
        let templates: Vec<Uuid> = messages.iter().map(|m| m.template_id).collect();
        let users: Vec<Option<Uuid>> = messages.iter().map(|m| m.user_id).collect();
        let targets: Vec<Option<String>> = messages.iter().map(|m| m.target.clone()).collect();
        let methods: Vec<&str> = messages.iter().map(|m| m.method.as_str()).collect();
        let statuses: Vec<&str> = messages.iter().map(|m| m.status.as_str()).collect();
        let reasons: Vec<Option<String>> =
            messages.iter().map(|m| m.status_reason.clone()).collect();
        let creators: Vec<&str> = messages.iter().map(|m| m.created_by.as_str()).collect();
        let payloads: Vec<String> = messages.iter().map(|m| to_json(&m.payload)).collect();
        let created: Vec<DateTime<Utc>> = messages.iter().map(|m| m.created_at).collect();
        let hashes: Vec<Option<String>> = messages.iter().map(|m| m.dedupe_hash.clone()).collect();
        let mut tx = self.pool.begin().await?;
        // One statement for the whole batch.
        let inserted: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO notification_messages (id, notification_template_id, user_id, target,
                 method, status, status_reason, created_by, payload, attempt_count, created_at,
                 updated_at, dedupe_hash)
             SELECT id, template, usr, target, method, status, reason, creator, payload::jsonb,
                 0, created, created, hash
             FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[])
                 AS t(id, template, usr, target, method, status, reason, creator, payload,
                      created, hash)
             ON CONFLICT (dedupe_hash) DO NOTHING
             RETURNING id",
        )
        .bind(&ids)
        .bind(&templates)
        .bind(&users)
        .bind(&targets)
        .bind(&methods)
        .bind(&statuses)
        .bind(&reasons)
        .bind(&creators)
        .bind(&payloads)
        .bind(&created)
        .bind(&hashes)
        .fetch_all(&mut *tx)
        .await?;
        let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
        let mut outcome = EnqueueOutcome::default();
        let mut skipped = Vec::new();
        for m in messages {
            if inserted.contains(&m.id) {
                outcome.enqueued.push(m.id);
            } else {
                skipped.push(m.dedupe_hash.clone().unwrap_or_default());
            }
        }
        if !skipped.is_empty() {
            let found: Vec<(String, Uuid)> = sqlx::query_as(
                "SELECT dedupe_hash, id FROM notification_messages WHERE dedupe_hash = ANY ($1)",
            )
            .bind(&skipped)
            .fetch_all(&mut *tx)
            .await?;
            let by_hash: std::collections::HashMap<String, Uuid> = found.into_iter().collect();
            for hash in &skipped {
                let id = by_hash.get(hash).ok_or_else(|| StoreError::Corrupt {
                    table: "notification_messages",
                    detail: format!("a message was refused but no message has dedupe hash {hash}"),
                })?;
                outcome.duplicates.push(*id);
            }
        }
        if !outcome.enqueued.is_empty() {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(WAKEUP_CHANNEL)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if !outcome.enqueued.is_empty() {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<Message>> {
        self.search_messages(filter, None, page).await
    }

    async fn count_by_state(&self) -> StoreResult<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, SUM(n)::bigint AS n FROM notification_counts GROUP BY status",
        )
        .fetch_all(&self.pool)
        .await?;
        tally("notification_counts", rows)
    }

    async fn message(&self, id: Uuid) -> StoreResult<Option<(Message, Vec<Attempt>)>> {
        let Some(row) = sqlx::query(&format!("{MESSAGE_SELECT} WHERE m.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let message = message_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT message_id, attempt_number, notifier_id, started_at, duration_ms, outcome, reason
             FROM notification_attempts WHERE message_id = $1 ORDER BY attempt_number",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(attempt_from_row)
        .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((message, attempts)))
    }

    async fn retry_messages(
        &self,
        ids: &[Uuid],
        include_inhibited: bool,
        reason: &str,
    ) -> StoreResult<Vec<Uuid>> {
        let states: Vec<&str> = retryable_states(include_inhibited)
            .iter()
            .map(|s| s.as_str())
            .collect();
        let changed: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE notification_messages SET status = 'pending', attempt_count = 0,
                 leased_until = NULL, next_retry_after = NULL, status_reason = $1,
                 updated_at = now()
             WHERE status = ANY ($2) AND id = ANY ($3)
             RETURNING id",
        )
        .bind(reason)
        .bind(&states)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        if !changed.is_empty() {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(WAKEUP_CHANNEL)
                .execute(&self.pool)
                .await?;
            self.wake.notify_one();
        }
        Ok(changed)
    }

    async fn purge_messages(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let mut total = 0;
        loop {
            let done = sqlx::query(&format!(
                "DELETE FROM notification_messages WHERE id IN (
                     SELECT id FROM notification_messages
                     WHERE updated_at < $1 AND status IN {FINAL_STATES_SQL} LIMIT $2)"
            ))
            .bind(cutoff)
            .bind(PURGE_BATCH)
            .execute(&self.pool)
            .await?;
            total += done.rows_affected();
            if done.rows_affected() < PURGE_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    async fn search_messages(
        &self,
        filter: &MessageFilter,
        reason: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Vec<Message>> {
        let mut q = QueryBuilder::<Postgres>::new(MESSAGE_SELECT);
        push_message_filter(&mut q, filter, reason);
        if let Some(before) = page.before {
            q.push(" AND m.id < ").push_bind(before);
        }
        q.push(" ORDER BY m.id DESC LIMIT ")
            .push_bind(i64::from(page.limit));
        let rows = q.build().fetch_all(&self.pool).await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn count_messages(
        &self,
        filter: &MessageFilter,
        reason: Option<&str>,
    ) -> StoreResult<i64> {
        let mut q = QueryBuilder::<Postgres>::new(
            "SELECT COUNT(*) AS n FROM notification_messages m \
             JOIN notification_templates t ON t.id = m.notification_template_id",
        );
        push_message_filter(&mut q, filter, reason);
        Ok(q.build().fetch_one(&self.pool).await?.try_get("n")?)
    }

    async fn top_status_reasons(&self, limit: u32) -> StoreResult<Vec<ReasonCount>> {
        let rows = sqlx::query(
            "SELECT status, status_reason, COUNT(*) AS n FROM notification_messages
             WHERE status IN ('temporary_failure', 'permanent_failure')
               AND status_reason IS NOT NULL
             GROUP BY status, status_reason
             ORDER BY n DESC, status_reason, status LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ReasonCount {
                    status: parse_enum("notification_messages", row.try_get("status")?)?,
                    reason: row.try_get("status_reason")?,
                    count: row.try_get("n")?,
                })
            })
            .collect()
    }

    async fn volume_by_event(&self, since: DateTime<Utc>) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT t.name, COUNT(*) AS n FROM notification_messages m
             JOIN notification_templates t ON t.id = m.notification_template_id
             WHERE m.id >= $1 AND m.created_at >= $2
             GROUP BY t.name ORDER BY t.name",
        )
        .bind(uuid_v7_floor(since))
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("n")?)))
            .collect()
    }

    async fn attempts_since(&self, since: DateTime<Utc>) -> StoreResult<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT outcome, COUNT(*) AS n FROM notification_attempts
             WHERE started_at >= $1 GROUP BY outcome",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        tally("notification_attempts", rows)
    }

    async fn lease_batch(&self, req: &LeaseRequest<'_>) -> StoreResult<Vec<LeasedMessage>> {
        let token = Uuid::now_v7();
        let max = i32::try_from(req.max_send_attempts).unwrap_or(i32::MAX);
        let methods: Vec<&str> = req
            .capabilities
            .methods
            .iter()
            .map(|m| m.as_str())
            .collect();
        sqlx::query(&format!(
            "UPDATE notification_messages SET status = 'permanent_failure',
                 status_reason = {},
                 attempt_count = attempt_count + (CASE WHEN status = 'leased' THEN 1 ELSE 0 END),
                 leased_until = NULL, next_retry_after = NULL, updated_at = now()
             WHERE {}",
            super::EXHAUSTED_REASON.replace("$max", "$1::int::text"),
            super::LEASE_EXHAUSTED
                .replace("$now", "now()")
                .replace("$max", "$1::int")
        ))
        .bind(max)
        .execute(&self.pool)
        .await?;
        let mut rows = Vec::new();
        // Due retries and expired leases first, up to their share; then pending messages by a
        // plain ordered scan of (status, id) — which also marks dead index entries so later
        // scans skip them; then due ones again if room is left.
        let passes = [
            (super::LEASE_DUE, super::due_share(req.limit)),
            (super::LEASE_PENDING, i64::MAX),
            (super::LEASE_DUE, i64::MAX),
        ];
        for (condition, share) in passes {
            let room = (i64::from(req.limit) - rows.len() as i64).min(share);
            if room <= 0 {
                continue;
            }
            let sql = format!(
                "WITH leasable AS (
                     SELECT id FROM notification_messages
                     WHERE {}
                       AND ((target IS NULL AND method = ANY ($6)) OR target = ANY ($7))
                     ORDER BY id LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                 UPDATE notification_messages m SET status = 'leased',
                     leased_until = now() + $1 * interval '1 millisecond', status_reason = $2,
                     updated_at = now(), lease_token = $5,
                     attempt_count = m.attempt_count
                         + (CASE WHEN m.status = 'leased' THEN 1 ELSE 0 END),
                     queued_seconds = EXTRACT(EPOCH FROM now() - m.updated_at)::double precision
                 FROM leasable WHERE m.id = leasable.id
                 RETURNING m.id, m.notification_template_id, m.user_id, m.target, m.method,
                     m.payload::text AS payload, m.attempt_count, m.created_at, m.queued_seconds,
                     m.lease_token",
                condition.replace("$now", "now()").replace("$max", "$3")
            );
            rows.extend(
                sqlx::query(&sql)
                    .bind(millis(req.lease_period) as f64)
                    .bind(crate::queue::leased_reason(req.notifier_id))
                    .bind(max)
                    .bind(room)
                    .bind(token)
                    .bind(&methods)
                    .bind(&req.capabilities.targets)
                    .fetch_all(&self.pool)
                    .await?,
            );
        }
        let mut leased = Vec::with_capacity(rows.len());
        for row in &rows {
            match leased_from_row(row) {
                Ok(message) => leased.push(message),
                Err(e) => self.isolate_unreadable(row, token, &e).await,
            }
        }
        leased.sort_by_key(|m| m.id);
        Ok(leased)
    }

    async fn record_attempts(&self, records: &[AttemptRecord]) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = records.iter().map(|r| r.message_id).collect();
        let tokens: Vec<Uuid> = records.iter().map(|r| r.lease_token).collect();
        let statuses: Vec<&str> = records.iter().map(|r| r.result.status.as_str()).collect();
        let reasons: Vec<Option<&str>> = records
            .iter()
            .map(|r| r.result.status_reason.as_deref())
            .collect();
        let attempts: Vec<i32> = records.iter().map(|r| r.result.attempt_count).collect();
        let retries: Vec<Option<DateTime<Utc>>> =
            records.iter().map(|r| r.result.next_retry_after).collect();
        let notifiers: Vec<Uuid> = records.iter().map(|r| r.notifier_id).collect();
        let started: Vec<DateTime<Utc>> = records.iter().map(|r| r.started_at).collect();
        let durations: Vec<i64> = records.iter().map(|r| r.duration_ms).collect();
        // One statement: the state change where the lease still holds, and an attempt row for
        // each change, numbered after the message's earlier attempts.
        let written: i64 = sqlx::query_scalar(
            "WITH j AS (
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::int[],
                     $6::timestamptz[], $7::uuid[], $8::timestamptz[], $9::bigint[])
                 AS j(id, token, status, reason, attempts, next_retry, notifier, started,
                      duration)),
             changed AS (
                 UPDATE notification_messages m SET status = j.status, status_reason = j.reason,
                     attempt_count = j.attempts, next_retry_after = j.next_retry,
                     leased_until = NULL, lease_token = NULL, updated_at = now()
                 FROM j
                 WHERE m.id = j.id AND m.status = 'leased' AND m.lease_token = j.token
                 RETURNING m.id),
             recorded AS (
                 INSERT INTO notification_attempts (message_id, attempt_number, notifier_id,
                     started_at, duration_ms, outcome, reason)
                 SELECT j.id,
                     COALESCE((SELECT MAX(a.attempt_number) FROM notification_attempts a
                               WHERE a.message_id = j.id), 0) + 1,
                     j.notifier, j.started, j.duration, j.status, j.reason
                 FROM j JOIN changed ON changed.id = j.id
                 RETURNING 1)
             SELECT COUNT(*) FROM recorded",
        )
        .bind(&ids)
        .bind(&tokens)
        .bind(&statuses)
        .bind(&reasons)
        .bind(&attempts)
        .bind(&retries)
        .bind(&notifiers)
        .bind(&started)
        .bind(&durations)
        .fetch_one(&self.pool)
        .await?;
        Ok(records.len() as u64 - u64::try_from(written).unwrap_or(0))
    }

    async fn undeliverable(&self, capabilities: &Capabilities) -> StoreResult<Vec<Undeliverable>> {
        let methods: Vec<&str> = capabilities.methods.iter().map(|m| m.as_str()).collect();
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT method, target, COUNT(*) FROM notification_messages
             WHERE status IN ('pending', 'temporary_failure')
               AND NOT ((target IS NULL AND method = ANY ($1)) OR COALESCE(target = ANY ($2), false))
             GROUP BY method, target ORDER BY method, target",
        )
        .bind(&methods)
        .bind(&capabilities.targets)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(method, target, count)| {
                Ok(Undeliverable {
                    method: parse_enum("notification_messages", &method)?,
                    target,
                    count,
                })
            })
            .collect()
    }

    async fn next_due(&self, capabilities: &Capabilities) -> StoreResult<Option<DateTime<Utc>>> {
        let methods: Vec<&str> = capabilities.methods.iter().map(|m| m.as_str()).collect();
        Ok(sqlx::query_scalar(
            "SELECT LEAST(
                 (SELECT MIN(next_retry_after) FROM notification_messages
                  WHERE status = 'temporary_failure'
                    AND ((target IS NULL AND method = ANY ($1)) OR target = ANY ($2))),
                 (SELECT MIN(leased_until) FROM notification_messages WHERE status = 'leased'
                    AND ((target IS NULL AND method = ANY ($1)) OR target = ANY ($2))))",
        )
        .bind(&methods)
        .bind(&capabilities.targets)
        .fetch_one(&self.pool)
        .await?)
    }

    fn wakeup(&self) -> Arc<Notify> {
        self.listening.get_or_init(|| {
            tokio::spawn(listen_for_wakeups(
                self.pool.clone(),
                Arc::downgrade(&self.wake),
            ));
        });
        self.wake.clone()
    }

    async fn heartbeat(&self, replica: &Replica) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_replicas (id, hostname, pid, started_at, last_seen_at,
                 in_flight, capabilities)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at,
                 in_flight = excluded.in_flight, capabilities = excluded.capabilities",
        )
        .bind(replica.id)
        .bind(&replica.hostname)
        .bind(replica.pid)
        .bind(replica.started_at)
        .bind(replica.last_seen_at)
        .bind(replica.in_flight)
        .bind(to_json(&replica.capabilities))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_replica(&self, id: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM notification_replicas WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune_replicas(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM notification_replicas WHERE last_seen_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_replicas(&self) -> StoreResult<Vec<Replica>> {
        let rows = sqlx::query(
            "SELECT id, hostname, pid, started_at, last_seen_at, in_flight, capabilities
             FROM notification_replicas ORDER BY started_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(replica_from_row).collect()
    }

    async fn lead_retention(&self, notifier_id: Uuid, hold: Duration) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE notification_settings SET retention_holder = $1,
                 retention_until = now() + $2 * interval '1 millisecond'
             WHERE id = 1 AND (retention_holder IS NULL OR retention_holder = $1
                               OR retention_until < now())",
        )
        .bind(notifier_id)
        .bind(millis(hold) as f64)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_retention(&self, notifier_id: Uuid) -> StoreResult<()> {
        sqlx::query(
            "UPDATE notification_settings SET retention_holder = NULL, retention_until = NULL
             WHERE id = 1 AND retention_holder = $1",
        )
        .bind(notifier_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_inbox(
        &self,
        user_id: Uuid,
        filter: InboxFilter,
        limit: u32,
    ) -> StoreResult<Vec<InboxEntry>> {
        let condition = match filter {
            InboxFilter::All => "",
            InboxFilter::Unread => " AND i.read_at IS NULL",
            InboxFilter::Read => " AND i.read_at IS NOT NULL",
        };
        let rows = sqlx::query(&format!(
            "SELECT i.id, i.user_id, i.template_id, t.name AS event, i.message_id, i.title,
                 i.content, i.actions, i.read_at, i.created_at
             FROM inbox_notifications i JOIN notification_templates t ON t.id = i.template_id
             WHERE i.user_id = $1{condition}
             ORDER BY i.read_at IS NOT NULL, i.created_at DESC LIMIT $2"
        ))
        .bind(user_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(InboxEntry {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    template_id: row.try_get("template_id")?,
                    event: row.try_get("event")?,
                    message_id: row.try_get("message_id")?,
                    title: row.try_get("title")?,
                    content: row.try_get("content")?,
                    actions: parse_json("inbox_notifications", row.try_get("actions")?)?,
                    read_at: row.try_get("read_at")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    async fn set_inbox_read(&self, user_id: Uuid, id: Uuid, read: bool) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE inbox_notifications SET read_at = CASE WHEN $1 THEN now() END
             WHERE id = $2 AND user_id = $3",
        )
        .bind(read)
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_inbox(&self, entry: &NewInboxEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO inbox_notifications (id, user_id, template_id, message_id, title, content,
                 actions, read_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8)
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(entry.id)
        .bind(entry.user_id)
        .bind(entry.template_id)
        .bind(entry.message_id)
        .bind(&entry.title)
        .bind(&entry.content)
        .bind(to_json(&entry.actions))
        .bind(entry.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
