//! The embedded SQLite store: one file, WAL mode, writers serialized by `BEGIN IMMEDIATE`.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::Notify;
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

/// SQLite implementation of [`Store`].
pub struct SqliteStore {
    pool: SqlitePool,
    url: String,
    options: SqliteConnectOptions,
    wake: Arc<Notify>,
    watching: OnceLock<()>,
}

/// How often the watcher asks SQLite whether another process committed.
const DATA_VERSION_POLL: Duration = Duration::from_millis(5);

/// Fixed-width UTC text, so that comparing strings compares instants.
fn ts(dt: DateTime<Utc>) -> String {
    dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(table: &'static str, text: &str) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt {
            table,
            detail: format!("bad timestamp `{text}`: {e}"),
        })
}

fn parse_opt_ts(table: &'static str, text: Option<String>) -> StoreResult<Option<DateTime<Utc>>> {
    text.map(|t| parse_ts(table, &t)).transpose()
}

fn parse_id(table: &'static str, text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt {
        table,
        detail: format!("bad id `{text}`: {e}"),
    })
}

/// The file a `sqlite:` URL names, or `None` for an in-memory database.
fn database_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

const USER_COLUMNS: &str = "id, username, email, name, roles, status, created_at, updated_at";
const TEMPLATE_COLUMNS: &str = "id, name, \"group\", title_template, body_template, actions, \
     audience_roles, enabled_by_default, method, kind, inbox, reaches_suspended";
const MESSAGE_SELECT: &str = "SELECT m.id, m.notification_template_id, t.name AS event, m.user_id, \
     u.username, m.target, m.method, m.status, m.status_reason, m.created_by, m.payload, \
     m.attempt_count, m.created_at, m.updated_at, m.leased_until, m.next_retry_after, \
     m.queued_seconds, m.dedupe_hash \
     FROM notification_messages m \
     JOIN notification_templates t ON t.id = m.notification_template_id \
     LEFT JOIN users u ON u.id = m.user_id";

fn user_from_row(row: &SqliteRow) -> StoreResult<User> {
    const T: &str = "users";
    Ok(User {
        id: parse_id(T, row.try_get("id")?)?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        roles: split_roles(T, row.try_get("roles")?)?,
        status: parse_enum(T, row.try_get("status")?)?,
        created_at: parse_ts(T, row.try_get("created_at")?)?,
        updated_at: parse_ts(T, row.try_get("updated_at")?)?,
    })
}

fn template_from_row(row: &SqliteRow) -> StoreResult<EventTemplate> {
    const T: &str = "notification_templates";
    let method: Option<String> = row.try_get("method")?;
    let name: String = row.try_get("name")?;
    Ok(EventTemplate {
        id: parse_id(T, row.try_get("id")?)?,
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

fn message_from_row(row: &SqliteRow) -> StoreResult<Message> {
    const T: &str = "notification_messages";
    let user_id: Option<String> = row.try_get("user_id")?;
    Ok(Message {
        id: parse_id(T, row.try_get("id")?)?,
        notification_template_id: parse_id(T, row.try_get("notification_template_id")?)?,
        event: row.try_get("event")?,
        user_id: user_id.map(|u| parse_id(T, &u)).transpose()?,
        username: row.try_get("username")?,
        target: row.try_get("target")?,
        method: parse_enum(T, row.try_get("method")?)?,
        status: parse_enum(T, row.try_get("status")?)?,
        status_reason: row.try_get("status_reason")?,
        created_by: row.try_get("created_by")?,
        payload: parse_json(T, row.try_get("payload")?)?,
        attempt_count: row.try_get("attempt_count")?,
        created_at: parse_ts(T, row.try_get("created_at")?)?,
        updated_at: parse_ts(T, row.try_get("updated_at")?)?,
        leased_until: parse_opt_ts(T, row.try_get("leased_until")?)?,
        next_retry_after: parse_opt_ts(T, row.try_get("next_retry_after")?)?,
        queued_seconds: row.try_get("queued_seconds")?,
        dedupe_hash: row.try_get("dedupe_hash")?,
    })
}

fn attempt_from_row(row: &SqliteRow) -> StoreResult<Attempt> {
    const T: &str = "notification_attempts";
    Ok(Attempt {
        message_id: parse_id(T, row.try_get("message_id")?)?,
        attempt_number: row.try_get("attempt_number")?,
        notifier_id: parse_id(T, row.try_get("notifier_id")?)?,
        started_at: parse_ts(T, row.try_get("started_at")?)?,
        duration_ms: row.try_get("duration_ms")?,
        outcome: parse_enum(T, row.try_get("outcome")?)?,
        reason: row.try_get("reason")?,
    })
}

fn preference_from_row(row: &SqliteRow) -> StoreResult<Preference> {
    const T: &str = "notification_preferences";
    Ok(Preference {
        user_id: parse_id(T, row.try_get("user_id")?)?,
        template_id: parse_id(T, row.try_get("template_id")?)?,
        disabled: row.try_get("disabled")?,
    })
}

fn unique_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

impl SqliteStore {
    /// Makes a leased row that cannot be read `permanent_failure` with why, so it never fails
    /// (or wedges) a batch again.
    async fn isolate_unreadable(&self, row: &SqliteRow, token: Uuid, error: &StoreError) {
        let id: Option<String> = row.try_get("id").ok();
        tracing::error!(message_id = ?id, error = %error, "leased message cannot be read; marking it permanent_failure");
        let Some(id) = id else { return };
        let done = sqlx::query(
            "UPDATE notification_messages SET status = 'permanent_failure', status_reason = ?1,
                 leased_until = NULL, lease_token = NULL, updated_at = ?2
             WHERE id = ?3 AND lease_token = ?4",
        )
        .bind(unreadable_reason(error))
        .bind(ts(Utc::now()))
        .bind(&id)
        .bind(token.to_string())
        .execute(&self.pool)
        .await;
        if let Err(e) = done {
            tracing::error!(message_id = %id, error = %e, "cannot isolate the unreadable message; its lease will expire");
        }
    }

    /// Opens (and with [`OpenMode::Migrate`], creates and migrates) the database at `url`.
    pub async fn open(url: &str, mode: OpenMode) -> StoreResult<SqliteStore> {
        let open_err = |detail: String| StoreError::Open {
            url: url.to_string(),
            detail,
        };
        if mode == OpenMode::Existing
            && let Some(path) = database_path(url)
            && !Path::new(path).exists()
        {
            return Err(open_err(format!(
                "no database file at {path}; run `herald migrate` to create it, or check database_url"
            )));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| open_err(e.to_string()))?
            .create_if_missing(mode == OpenMode::Migrate)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await
            .map_err(|e| open_err(e.to_string()))?;
        let store = SqliteStore {
            pool,
            url: url.to_string(),
            options,
            wake: Arc::new(Notify::new()),
            watching: OnceLock::new(),
        };
        match mode {
            OpenMode::Migrate => store.migrate().await?,
            OpenMode::Existing => check_version(url, store.schema_version().await?)?,
        }
        Ok(store)
    }

    async fn schema_version(&self) -> StoreResult<i64> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'herald_schema_migrations')",
        )
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS herald_schema_migrations (
                version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *tx)
        .await?;
        let current: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM herald_schema_migrations")
                .fetch_one(&mut *tx)
                .await?;
        let current = current.unwrap_or(0);
        check_newer(&self.url, current)?;
        for m in super::MIGRATIONS.iter().filter(|m| m.version > current) {
            sqlx::raw_sql(m.sqlite).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO herald_schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(ts(Utc::now()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Notices commits by other processes: `PRAGMA data_version` on one connection changes when
/// any other connection commits. Runs until the store's notifier is dropped.
async fn watch_data_version(options: SqliteConnectOptions, wake: std::sync::Weak<Notify>) {
    let mut conn: Option<SqliteConnection> = None;
    let mut last: Option<i64> = None;
    loop {
        tokio::time::sleep(DATA_VERSION_POLL).await;
        let Some(wake) = wake.upgrade() else { return };
        if conn.is_none() {
            match SqliteConnection::connect_with(&options).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the SQLite change watcher; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(c)
            .await
        {
            Ok(version) => {
                if last.is_some_and(|l| l != version) {
                    wake.notify_one();
                }
                last = Some(version);
            }
            Err(e) => {
                tracing::warn!(error = %e, "SQLite change watcher failed; reconnecting");
                conn = None;
                last = None;
            }
        }
    }
}

/// The `WHERE` clause of a message search (the query must join `t`, the templates).
fn push_message_filter(
    q: &mut QueryBuilder<'_, Sqlite>,
    filter: &MessageFilter,
    reason: Option<&str>,
) {
    q.push(" WHERE 1 = 1");
    if !filter.statuses.is_empty() {
        q.push(" AND m.status IN (");
        let mut sep = q.separated(", ");
        for s in &filter.statuses {
            sep.push_bind(s.as_str());
        }
        q.push(")");
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
        q.push(" AND m.user_id = ").push_bind(user_id.to_string());
    }
    if let Some(method) = filter.method {
        q.push(" AND m.method = ").push_bind(method.as_str());
    }
    if let Some(reason) = reason {
        q.push(" AND m.status_reason = ")
            .push_bind(reason.to_string());
    }
}

fn leased_from_row(row: &SqliteRow) -> StoreResult<LeasedMessage> {
    const T: &str = "notification_messages";
    Ok(LeasedMessage {
        id: parse_id(T, row.try_get("id")?)?,
        template_id: parse_id(T, row.try_get("notification_template_id")?)?,
        user_id: row
            .try_get::<Option<String>, _>("user_id")?
            .map(|u| parse_id(T, &u))
            .transpose()?,
        target: row.try_get("target")?,
        method: parse_enum(T, row.try_get("method")?)?,
        payload: parse_json(T, row.try_get("payload")?)?,
        attempt_count: row.try_get("attempt_count")?,
        created_at: parse_ts(T, row.try_get("created_at")?)?,
        queued_seconds: row
            .try_get::<Option<f64>, _>("queued_seconds")?
            .unwrap_or(0.0),
        lease_token: parse_id(T, row.try_get("lease_token")?)?,
    })
}

fn replica_from_row(row: &SqliteRow) -> StoreResult<Replica> {
    const T: &str = "notification_replicas";
    Ok(Replica {
        id: parse_id(T, row.try_get("id")?)?,
        hostname: row.try_get("hostname")?,
        pid: row.try_get("pid")?,
        started_at: parse_ts(T, row.try_get("started_at")?)?,
        last_seen_at: parse_ts(T, row.try_get("last_seen_at")?)?,
        in_flight: row.try_get("in_flight")?,
        capabilities: parse_json(T, row.try_get("capabilities")?)?,
    })
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A store migrated by a newer herald must not be touched by an older one.
fn check_newer(url: &str, current: i64) -> StoreResult<()> {
    if current > super::latest_version() {
        check_version(url, current)?;
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn display_url(&self) -> &str {
        &self.url
    }

    async fn insert_user(&self, user: &NewUser) -> StoreResult<User> {
        let now = ts(Utc::now());
        let row = sqlx::query(&format!(
            "INSERT INTO users (id, username, email, name, roles, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'active', ?, ?) RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::now_v7().to_string())
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.name)
        .bind(join_roles(&user.roles))
        .bind(&now)
        .bind(&now)
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
        let now = ts(Utc::now());
        let row = sqlx::query(&format!(
            "INSERT INTO users (id, username, email, name, roles, status, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'active', ?, ?)
             ON CONFLICT (username) DO UPDATE SET email = excluded.email, name = excluded.name,
                 roles = excluded.roles, updated_at = excluded.updated_at
             WHERE (users.email, users.name, users.roles) IS NOT (excluded.email, excluded.name, excluded.roles)
             RETURNING {USER_COLUMNS}"
        ))
        .bind(Uuid::now_v7().to_string())
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.name)
        .bind(join_roles(&user.roles))
        .bind(&now)
        .bind(&now)
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
            "SELECT {USER_COLUMNS} FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id.to_string())
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
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE status = 'active' ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(users
            .into_iter()
            .filter(|u| u.roles.iter().any(|r| roles.contains(r)))
            .collect())
    }

    async fn set_user_status(&self, id: Uuid, status: UserStatus) -> StoreResult<()> {
        sqlx::query("UPDATE users SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status.as_str())
            .bind(ts(Utc::now()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn owner_exists(&self) -> StoreResult<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE ',' || roles || ',' LIKE '%,owner,%')",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn upsert_catalog(&self, events: &[EventSpec]) -> StoreResult<()> {
        let now = ts(Utc::now());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for e in events {
            sqlx::query(
                "INSERT INTO notification_templates (id, name, \"group\", title_template,
                     body_template, actions, audience_roles, enabled_by_default, kind, inbox,
                     reaches_suspended, created_at, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                 ON CONFLICT (name) DO UPDATE SET \"group\" = excluded.\"group\",
                     title_template = excluded.title_template,
                     body_template = excluded.body_template, actions = excluded.actions,
                     audience_roles = excluded.audience_roles,
                     enabled_by_default = excluded.enabled_by_default, kind = excluded.kind,
                     inbox = excluded.inbox, reaches_suspended = excluded.reaches_suspended,
                     updated_at = excluded.updated_at
                 WHERE notification_templates.\"group\" IS NOT excluded.\"group\"
                     OR notification_templates.title_template IS NOT excluded.title_template
                     OR notification_templates.body_template IS NOT excluded.body_template
                     OR notification_templates.actions IS NOT excluded.actions
                     OR notification_templates.audience_roles IS NOT excluded.audience_roles
                     OR notification_templates.enabled_by_default IS NOT excluded.enabled_by_default
                     OR notification_templates.kind IS NOT excluded.kind
                     OR notification_templates.inbox IS NOT excluded.inbox
                     OR notification_templates.reaches_suspended IS NOT excluded.reaches_suspended",
            )
            .bind(Uuid::now_v7().to_string())
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
            .bind(&now)
            .bind(&now)
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
            "SELECT {TEMPLATE_COLUMNS} FROM notification_templates WHERE name = ?"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(template_from_row).transpose()
    }

    async fn set_template_method(&self, id: Uuid, method: Option<Method>) -> StoreResult<()> {
        sqlx::query("UPDATE notification_templates SET method = ?, updated_at = ? WHERE id = ?")
            .bind(method.map(Method::as_str))
            .bind(ts(Utc::now()))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn preferences_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Preference>> {
        let rows = sqlx::query(
            "SELECT user_id, template_id, disabled FROM notification_preferences WHERE user_id = ?",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(preference_from_row).collect()
    }

    async fn preferences_for_template(
        &self,
        template_id: Uuid,
        user_ids: &[Uuid],
    ) -> StoreResult<Vec<Preference>> {
        let mut out = Vec::new();
        for chunk in user_ids.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "SELECT user_id, template_id, disabled FROM notification_preferences WHERE template_id = ",
            );
            q.push_bind(template_id.to_string())
                .push(" AND user_id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id.to_string());
            }
            q.push(")");
            for row in q.build().fetch_all(&self.pool).await? {
                out.push(preference_from_row(&row)?);
            }
        }
        Ok(out)
    }

    async fn set_preference(&self, pref: Preference) -> StoreResult<()> {
        let now = ts(Utc::now());
        sqlx::query(
            "INSERT INTO notification_preferences (user_id, template_id, disabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (user_id, template_id) DO UPDATE SET disabled = excluded.disabled,
                 updated_at = excluded.updated_at",
        )
        .bind(pref.user_id.to_string())
        .bind(pref.template_id.to_string())
        .bind(pref.disabled)
        .bind(&now)
        .bind(&now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_preference(&self, user_id: Uuid, template_id: Uuid) -> StoreResult<bool> {
        let done = sqlx::query(
            "DELETE FROM notification_preferences WHERE user_id = ? AND template_id = ?",
        )
        .bind(user_id.to_string())
        .bind(template_id.to_string())
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
            updated_at: parse_ts("notification_settings", row.try_get("updated_at")?)?,
        })
    }

    async fn set_paused(&self, paused: bool) -> StoreResult<()> {
        sqlx::query(
            "UPDATE notification_settings SET notifier_paused = ?, updated_at = ? WHERE id = 1",
        )
        .bind(paused)
        .bind(ts(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn enqueue(&self, messages: &[NewMessage]) -> StoreResult<EnqueueOutcome> {
        if messages.is_empty() {
            return Ok(EnqueueOutcome::default());
        }
        let rows: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                serde_json::json!({
                    "id": m.id.to_string(),
                    "template": m.template_id.to_string(),
                    "user": m.user_id.map(|u| u.to_string()),
                    "target": m.target,
                    "method": m.method.as_str(),
                    "status": m.status.as_str(),
                    "reason": m.status_reason,
                    "by": m.created_by,
                    "payload": to_json(&m.payload),
                    "created": ts(m.created_at),
                    "hash": m.dedupe_hash,
                })
            })
            .collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // One statement for the whole batch; `WHERE true` keeps SQLite from reading
        // ON CONFLICT as part of the SELECT.
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
        .fetch_all(&mut *tx)
        .await?;
        let inserted: std::collections::HashSet<String> = inserted.into_iter().collect();
        let mut outcome = EnqueueOutcome::default();
        let mut skipped = Vec::new();
        for m in messages {
            if inserted.contains(&m.id.to_string()) {
                outcome.enqueued.push(m.id);
            } else {
                skipped.push(m.dedupe_hash.clone().unwrap_or_default());
            }
        }
        if !skipped.is_empty() {
            let found: Vec<(String, String)> = sqlx::query_as(
                "SELECT dedupe_hash, id FROM notification_messages
                 WHERE dedupe_hash IN (SELECT value FROM json_each(?1))",
            )
            .bind(to_json(&skipped))
            .fetch_all(&mut *tx)
            .await?;
            let by_hash: std::collections::HashMap<String, String> = found.into_iter().collect();
            for hash in &skipped {
                let id = by_hash.get(hash).ok_or_else(|| StoreError::Corrupt {
                    table: "notification_messages",
                    detail: format!("a message was refused but no message has dedupe hash {hash}"),
                })?;
                outcome
                    .duplicates
                    .push(parse_id("notification_messages", id)?);
            }
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
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT status, n FROM notification_counts")
            .fetch_all(&self.pool)
            .await?;
        tally("notification_counts", rows)
    }

    async fn message(&self, id: Uuid) -> StoreResult<Option<(Message, Vec<Attempt>)>> {
        let Some(row) = sqlx::query(&format!("{MESSAGE_SELECT} WHERE m.id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let message = message_from_row(&row)?;
        let attempts = sqlx::query(
            "SELECT message_id, attempt_number, notifier_id, started_at, duration_ms, outcome, reason
             FROM notification_attempts WHERE message_id = ? ORDER BY attempt_number",
        )
        .bind(id.to_string())
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
        let now = ts(Utc::now());
        let states = retryable_states(include_inhibited);
        let mut changed = Vec::new();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in ids.chunks(500) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "UPDATE notification_messages SET status = 'pending', attempt_count = 0, \
                 leased_until = NULL, next_retry_after = NULL, status_reason = ",
            );
            q.push_bind(reason)
                .push(", updated_at = ")
                .push_bind(&now)
                .push(" WHERE status IN (");
            let mut sep = q.separated(", ");
            for s in &states {
                sep.push_bind(s.as_str());
            }
            q.push(") AND id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(id.to_string());
            }
            q.push(") RETURNING id");
            for row in q.build().fetch_all(&mut *tx).await? {
                changed.push(parse_id("notification_messages", row.try_get("id")?)?);
            }
        }
        tx.commit().await?;
        if !changed.is_empty() {
            self.wake.notify_one();
        }
        Ok(changed)
    }

    async fn purge_messages(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let cutoff = ts(cutoff);
        let mut total = 0;
        loop {
            let done = sqlx::query(&format!(
                "DELETE FROM notification_messages WHERE id IN (
                     SELECT id FROM notification_messages
                     WHERE updated_at < ? AND status IN {FINAL_STATES_SQL} LIMIT ?)"
            ))
            .bind(&cutoff)
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
        let mut q = QueryBuilder::<Sqlite>::new(MESSAGE_SELECT);
        push_message_filter(&mut q, filter, reason);
        if let Some(before) = page.before {
            q.push(" AND m.id < ").push_bind(before.to_string());
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
        let mut q = QueryBuilder::<Sqlite>::new(
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
             ORDER BY n DESC, status_reason, status LIMIT ?",
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
             WHERE m.id >= ? AND m.created_at >= ?
             GROUP BY t.name ORDER BY t.name",
        )
        .bind(uuid_v7_floor(since).to_string())
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("n")?)))
            .collect()
    }

    async fn attempts_since(&self, since: DateTime<Utc>) -> StoreResult<StateCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT outcome, COUNT(*) AS n FROM notification_attempts
             WHERE started_at >= ? GROUP BY outcome",
        )
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        tally("notification_attempts", rows)
    }

    async fn lease_batch(&self, req: &LeaseRequest<'_>) -> StoreResult<Vec<LeasedMessage>> {
        let now = Utc::now();
        let now_text = ts(now);
        let token = Uuid::now_v7();
        let max = i64::from(req.max_send_attempts);
        let methods = to_json(&req.capabilities.methods);
        let targets = to_json(&req.capabilities.targets);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(&format!(
            "UPDATE notification_messages SET status = 'permanent_failure',
                 status_reason = {}, attempt_count = attempt_count + (status = 'leased'),
                 leased_until = NULL, next_retry_after = NULL, updated_at = ?1
             WHERE {}",
            super::EXHAUSTED_REASON.replace("$max", "?2"),
            super::LEASE_EXHAUSTED
                .replace("$now", "?1")
                .replace("$max", "?2")
        ))
        .bind(&now_text)
        .bind(max)
        .execute(&mut *tx)
        .await?;
        let mut rows = Vec::new();
        // Due retries and expired leases first, up to their share; then pending messages on
        // their own ordered index; then due ones again if room is left.
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
                "UPDATE notification_messages SET status = 'leased', leased_until = ?1,
                     status_reason = ?2, updated_at = ?3, lease_token = ?6,
                     attempt_count = attempt_count + (status = 'leased'),
                     queued_seconds = (julianday(?3) - julianday(updated_at)) * 86400.0
                 WHERE id IN (
                     SELECT id FROM notification_messages
                     WHERE {}
                       AND ((target IS NULL AND method IN (SELECT value FROM json_each(?7)))
                            OR target IN (SELECT value FROM json_each(?8)))
                     ORDER BY id LIMIT ?5)
                 RETURNING id, notification_template_id, user_id, target, method, payload,
                     attempt_count, created_at, queued_seconds, lease_token",
                condition.replace("$now", "?3").replace("$max", "?4")
            );
            rows.extend(
                sqlx::query(&sql)
                    .bind(ts(now + chrono_duration(req.lease_period)))
                    .bind(crate::queue::leased_reason(req.notifier_id))
                    .bind(&now_text)
                    .bind(max)
                    .bind(room)
                    .bind(token.to_string())
                    .bind(&methods)
                    .bind(&targets)
                    .fetch_all(&mut *tx)
                    .await?,
            );
        }
        tx.commit().await?;
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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

    async fn undeliverable(&self, capabilities: &Capabilities) -> StoreResult<Vec<Undeliverable>> {
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
            "SELECT method, target, COUNT(*) FROM notification_messages
             WHERE status IN ('pending', 'temporary_failure')
               AND NOT ((target IS NULL AND method IN (SELECT value FROM json_each(?1)))
                        OR COALESCE(target IN (SELECT value FROM json_each(?2)), 0))
             GROUP BY method, target ORDER BY method, target",
        )
        .bind(to_json(&capabilities.methods))
        .bind(to_json(&capabilities.targets))
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
        let due: Option<String> = sqlx::query_scalar(
            "SELECT MIN(due) FROM (
                 SELECT MIN(next_retry_after) AS due FROM notification_messages
                 WHERE status = 'temporary_failure'
                   AND ((target IS NULL AND method IN (SELECT value FROM json_each(?1)))
                        OR target IN (SELECT value FROM json_each(?2)))
                 UNION ALL
                 SELECT MIN(leased_until) FROM notification_messages WHERE status = 'leased'
                   AND ((target IS NULL AND method IN (SELECT value FROM json_each(?1)))
                        OR target IN (SELECT value FROM json_each(?2))))",
        )
        .bind(to_json(&capabilities.methods))
        .bind(to_json(&capabilities.targets))
        .fetch_one(&self.pool)
        .await?;
        parse_opt_ts("notification_messages", due)
    }

    fn wakeup(&self) -> Arc<Notify> {
        self.watching.get_or_init(|| {
            tokio::spawn(watch_data_version(
                self.options.clone(),
                Arc::downgrade(&self.wake),
            ));
        });
        self.wake.clone()
    }

    async fn heartbeat(&self, replica: &Replica) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_replicas (id, hostname, pid, started_at, last_seen_at,
                 in_flight, capabilities)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET last_seen_at = excluded.last_seen_at,
                 in_flight = excluded.in_flight, capabilities = excluded.capabilities",
        )
        .bind(replica.id.to_string())
        .bind(&replica.hostname)
        .bind(replica.pid)
        .bind(ts(replica.started_at))
        .bind(ts(replica.last_seen_at))
        .bind(replica.in_flight)
        .bind(to_json(&replica.capabilities))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_replica(&self, id: Uuid) -> StoreResult<()> {
        sqlx::query("DELETE FROM notification_replicas WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn prune_replicas(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM notification_replicas WHERE last_seen_at < ?")
            .bind(ts(cutoff))
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
        let now = Utc::now();
        let done = sqlx::query(
            "UPDATE notification_settings SET retention_holder = ?1, retention_until = ?2
             WHERE id = 1 AND (retention_holder IS NULL OR retention_holder = ?1
                               OR retention_until < ?3)",
        )
        .bind(notifier_id.to_string())
        .bind(ts(now + chrono_duration(hold)))
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_retention(&self, notifier_id: Uuid) -> StoreResult<()> {
        sqlx::query(
            "UPDATE notification_settings SET retention_holder = NULL, retention_until = NULL
             WHERE id = 1 AND retention_holder = ?",
        )
        .bind(notifier_id.to_string())
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
             WHERE i.user_id = ?{condition}
             ORDER BY i.read_at IS NOT NULL, i.created_at DESC LIMIT ?"
        ))
        .bind(user_id.to_string())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                const T: &str = "inbox_notifications";
                Ok(InboxEntry {
                    id: parse_id(T, row.try_get("id")?)?,
                    user_id: parse_id(T, row.try_get("user_id")?)?,
                    template_id: parse_id(T, row.try_get("template_id")?)?,
                    event: row.try_get("event")?,
                    message_id: row
                        .try_get::<Option<String>, _>("message_id")?
                        .map(|m| parse_id(T, &m))
                        .transpose()?,
                    title: row.try_get("title")?,
                    content: row.try_get("content")?,
                    actions: parse_json(T, row.try_get("actions")?)?,
                    read_at: parse_opt_ts(T, row.try_get("read_at")?)?,
                    created_at: parse_ts(T, row.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    async fn set_inbox_read(&self, user_id: Uuid, id: Uuid, read: bool) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE inbox_notifications SET read_at = ? WHERE id = ? AND user_id = ?")
                .bind(read.then(|| ts(Utc::now())))
                .bind(id.to_string())
                .bind(user_id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_inbox(&self, entry: &NewInboxEntry) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO inbox_notifications (id, user_id, template_id, message_id, title, content,
                 actions, read_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?)
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(entry.id.to_string())
        .bind(entry.user_id.to_string())
        .bind(entry.template_id.to_string())
        .bind(entry.message_id.to_string())
        .bind(&entry.title)
        .bind(&entry.content)
        .bind(to_json(&entry.actions))
        .bind(ts(entry.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_fixed_width_so_text_order_is_time_order() {
        let a = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = a + chrono::Duration::microseconds(1);
        assert_eq!(ts(a), "2026-01-02T03:04:05.000000Z");
        assert!(ts(a) < ts(b));
        assert_eq!(parse_ts("t", &ts(b)).unwrap(), b);
    }

    #[test]
    fn database_path_reads_both_url_forms() {
        assert_eq!(database_path("sqlite://herald.db"), Some("herald.db"));
        assert_eq!(
            database_path("sqlite:/tmp/x.db?mode=rwc"),
            Some("/tmp/x.db")
        );
        assert_eq!(database_path("sqlite::memory:"), None);
    }
}
