//! The shared store: one trait, a SQLite and a PostgreSQL implementation, the migrations.
//!
//! Every replica coordinates only through the store (DESIGN §1). Both implementations pass the
//! same conformance suite (`tests/it/store_conformance.rs`).

mod postgres;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{
    Attempt, Capabilities, EventSpec, EventTemplate, Message, MessageState, Method, Preference,
    Role, Settings, User, UserStatus,
};
use crate::queue::AttemptResult;
use crate::secret::redact_url_password;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// What can go wrong talking to the store, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {url}: {detail}")]
    Open { url: String, detail: String },
    #[error(
        "the store at {url} is not migrated (schema version {found} of {latest}); run `herald migrate`"
    )]
    NotMigrated {
        url: String,
        found: i64,
        latest: i64,
    },
    #[error(
        "the store at {url} has schema version {found}, newer than this herald knows ({latest}); upgrade herald"
    )]
    TooNew {
        url: String,
        found: i64,
        latest: i64,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("unreadable row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("store error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How [`open`] treats a store that does not exist or is behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database file if needed and apply every pending migration.
    Migrate,
    /// The store must exist and be fully migrated; nothing is created.
    Existing,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
}

/// A message to insert; routing decides everything but the id and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: Uuid,
    pub template_id: Uuid,
    pub user_id: Option<Uuid>,
    pub target: Option<String>,
    pub method: Method,
    pub status: MessageState,
    pub status_reason: Option<String>,
    pub created_by: String,
    pub payload: serde_json::Value,
    pub dedupe_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Which messages were inserted and which already existed (same dedupe hash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueOutcome {
    pub enqueued: Vec<Uuid>,
    /// Ids of the messages that made the new ones duplicates.
    pub duplicates: Vec<Uuid>,
}

/// Filters for listing messages; all present filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageFilter {
    pub statuses: Vec<MessageState>,
    /// An event name, or a pattern with `*` wildcards (`run_*`).
    pub event: Option<String>,
    pub user_id: Option<Uuid>,
    pub method: Option<Method>,
}

/// One keyset page: newest first, strictly older than `before` when given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub before: Option<Uuid>,
    pub limit: u32,
}

/// A message handed to a dispatcher by [`Store::lease_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedMessage {
    pub id: Uuid,
    pub template_id: Uuid,
    pub user_id: Option<Uuid>,
    pub target: Option<String>,
    pub method: Method,
    pub payload: serde_json::Value,
    /// Attempts made before this lease.
    pub attempt_count: i32,
    pub created_at: DateTime<Utc>,
    /// How long it waited in its previous state before this lease.
    pub queued_seconds: f64,
    /// This lease's token: the outcome is written only while the message still holds it.
    pub lease_token: Uuid,
}

/// One [`Store::lease_batch`] call.
#[derive(Debug, Clone, Copy)]
pub struct LeaseRequest<'a> {
    pub notifier_id: Uuid,
    pub limit: u32,
    pub lease_period: Duration,
    pub max_send_attempts: u32,
    /// Only messages this replica can deliver are leased; the rest wait for one that can.
    pub capabilities: &'a Capabilities,
}

/// Messages no running replica can deliver, per method and target (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Undeliverable {
    pub method: Method,
    /// The qualified target name; None for user messages.
    pub target: Option<String>,
    pub count: i64,
}

impl Undeliverable {
    /// `14 smtp messages wait: no replica has an smtp channel`.
    pub fn describe(&self) -> String {
        let noun = if self.count == 1 {
            "message"
        } else {
            "messages"
        };
        match &self.target {
            None => {
                let article = match self.method {
                    Method::Smtp | Method::Inbox => "an",
                    _ => "a",
                };
                format!(
                    "{} {} {noun} wait: no replica has {article} {} channel",
                    self.count, self.method, self.method
                )
            }
            Some(t) => format!(
                "{} {noun} for target `{t}` ({}) wait: no replica has that target configured",
                self.count, self.method
            ),
        }
    }
}

/// One finished delivery attempt and the state it leads to, for [`Store::record_attempts`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub message_id: Uuid,
    /// The lease the delivery ran under ([`LeasedMessage::lease_token`]).
    pub lease_token: Uuid,
    pub notifier_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub result: AttemptResult,
}

/// A dispatcher's heartbeat row (`notification_replicas`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Replica {
    pub id: Uuid,
    pub hostname: String,
    pub pid: i32,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub in_flight: i32,
    /// What it delivers (its leases take nothing else).
    pub capabilities: Capabilities,
}

/// A row for `inbox_notifications`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInboxEntry {
    pub id: Uuid,
    pub user_id: Uuid,
    pub template_id: Uuid,
    pub message_id: Uuid,
    pub title: String,
    pub content: String,
    pub actions: Vec<crate::model::Action>,
    pub created_at: DateTime<Utc>,
}

/// A row of `inbox_notifications` as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InboxEntry {
    pub id: Uuid,
    pub user_id: Uuid,
    pub template_id: Uuid,
    pub event: String,
    pub message_id: Option<Uuid>,
    pub title: String,
    pub content: String,
    pub actions: Vec<crate::model::Action>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Which inbox entries to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboxFilter {
    #[default]
    All,
    Unread,
    Read,
}

/// Message counts per state; every state is present, zero when empty.
pub type StateCounts = Vec<(MessageState, i64)>;

/// A `status_reason` shared by failed messages in one state, with how many carry it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReasonCount {
    /// `temporary_failure` or `permanent_failure`.
    pub status: MessageState,
    /// The reason, word for word.
    pub reason: String,
    /// How many messages in `status` carry it.
    pub count: i64,
}

/// The shared store. Implementations must keep every operation atomic.
#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// The database URL with any password removed, for display.
    fn display_url(&self) -> &str;

    // users
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User>;
    /// Creates or updates (email, name, roles) a user declared in the config.
    async fn upsert_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Active users holding at least one of `roles`.
    async fn active_users_with_roles(&self, roles: &[Role]) -> StoreResult<Vec<User>>;
    async fn set_user_status(&self, id: Uuid, status: UserStatus) -> StoreResult<()>;
    async fn owner_exists(&self) -> StoreResult<bool>;

    // event catalog
    /// Inserts new events and refreshes the templates of known ones; never touches `method`.
    async fn upsert_catalog(&self, events: &[EventSpec]) -> StoreResult<()>;
    async fn list_templates(&self) -> StoreResult<Vec<EventTemplate>>;
    async fn template_by_name(&self, name: &str) -> StoreResult<Option<EventTemplate>>;
    async fn set_template_method(&self, id: Uuid, method: Option<Method>) -> StoreResult<()>;

    // preferences
    async fn preferences_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Preference>>;
    async fn preferences_for_template(
        &self,
        template_id: Uuid,
        user_ids: &[Uuid],
    ) -> StoreResult<Vec<Preference>>;
    async fn set_preference(&self, pref: Preference) -> StoreResult<()>;
    /// Removes a preference; true when one existed.
    async fn clear_preference(&self, user_id: Uuid, template_id: Uuid) -> StoreResult<bool>;

    // settings
    async fn settings(&self) -> StoreResult<Settings>;
    async fn set_paused(&self, paused: bool) -> StoreResult<()>;

    // messages
    /// Inserts all messages in one transaction; a message whose dedupe hash exists is skipped.
    async fn enqueue(&self, messages: &[NewMessage]) -> StoreResult<EnqueueOutcome>;
    async fn list_messages(
        &self,
        filter: &MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<Message>>;
    /// Messages per state, from the counts the store keeps as messages change (the
    /// `notification_counts` table): it never scans the messages.
    async fn count_by_state(&self) -> StoreResult<StateCounts>;
    async fn message(&self, id: Uuid) -> StoreResult<Option<(Message, Vec<Attempt>)>>;
    /// Puts failed messages (and inhibited ones when `include_inhibited`) back to `pending`
    /// with no attempts; returns the ids changed.
    async fn retry_messages(
        &self,
        ids: &[Uuid],
        include_inhibited: bool,
        reason: &str,
    ) -> StoreResult<Vec<Uuid>>;
    /// Deletes messages in a final state (`sent`, `permanent_failure`, `inhibited`), with their
    /// attempts, last changed before `cutoff`, in bounded batches; returns how many. Nothing
    /// that can still be delivered is ever deleted.
    async fn purge_messages(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    // read models (the console)
    /// Like [`Store::list_messages`], and when `reason` is given only messages whose
    /// `status_reason` is exactly `reason`.
    async fn search_messages(
        &self,
        filter: &MessageFilter,
        reason: Option<&str>,
        page: PageRequest,
    ) -> StoreResult<Vec<Message>>;
    /// How many messages [`Store::search_messages`] would return without a page limit.
    async fn count_messages(
        &self,
        filter: &MessageFilter,
        reason: Option<&str>,
    ) -> StoreResult<i64>;
    /// The commonest `status_reason`s of `temporary_failure` and `permanent_failure` messages,
    /// most frequent first (ties by reason); reads only failed rows.
    async fn top_status_reasons(&self, limit: u32) -> StoreResult<Vec<ReasonCount>>;
    /// Messages created at or after `since`, per event name, by name; events with none are
    /// absent. Walks the primary key from [`uuid_v7_floor`] (message ids are UUIDv7).
    async fn volume_by_event(&self, since: DateTime<Utc>) -> StoreResult<Vec<(String, i64)>>;
    /// Delivery attempts started at or after `since`, per outcome; every state is present.
    async fn attempts_since(&self, since: DateTime<Utc>) -> StoreResult<StateCounts>;

    // dispatch
    /// Leases up to `limit` leasable messages (DESIGN §5) that the caller can deliver, under a
    /// fresh lease token, oldest first; concurrent callers never get the same message. Due
    /// retries and expired leases get a share of every batch; a lease that expired counts as
    /// an attempt. Messages whose attempts are used up are finalised instead of leased, and a
    /// row that cannot be read is made `permanent_failure` (with why) instead of failing the
    /// batch.
    async fn lease_batch(&self, request: &LeaseRequest<'_>) -> StoreResult<Vec<LeasedMessage>>;
    /// Applies finished attempts in bulk: the messages' new states — only where the message
    /// still holds the record's lease token — and one `notification_attempts` row each, numbered
    /// after the message's earlier attempts. Returns how many outcomes came too late (their
    /// lease was gone) and were dropped.
    async fn record_attempts(&self, records: &[AttemptRecord]) -> StoreResult<u64>;
    /// Messages that wait (`pending`, `temporary_failure`) for a method or target that
    /// `capabilities` does not cover, per method and target.
    async fn undeliverable(&self, capabilities: &Capabilities) -> StoreResult<Vec<Undeliverable>>;
    /// The earliest moment a waiting retry or an expired lease makes a message leasable.
    /// Only messages `capabilities` covers count: a replica is not woken for what it cannot
    /// deliver.
    async fn next_due(&self, capabilities: &Capabilities) -> StoreResult<Option<DateTime<Utc>>>;
    /// Notified when messages may have become leasable or the pause flag changed: an enqueue,
    /// retry or pause here, or in another process (`LISTEN/NOTIFY` on PostgreSQL,
    /// `PRAGMA data_version` on SQLite).
    fn wakeup(&self) -> Arc<Notify>;
    async fn heartbeat(&self, replica: &Replica) -> StoreResult<()>;
    async fn remove_replica(&self, id: Uuid) -> StoreResult<()>;
    /// Deletes replicas not seen since `cutoff`; returns how many.
    async fn prune_replicas(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
    async fn list_replicas(&self) -> StoreResult<Vec<Replica>>;
    /// Takes (or keeps) the retention duty for `hold`; false while another notifier holds it.
    async fn lead_retention(&self, notifier_id: Uuid, hold: Duration) -> StoreResult<bool>;
    /// Gives the retention duty up (on a clean stop) so another notifier can take it at once.
    async fn release_retention(&self, notifier_id: Uuid) -> StoreResult<()>;
    /// Writes an inbox entry; a second delivery of the same message adds nothing.
    async fn insert_inbox(&self, entry: &NewInboxEntry) -> StoreResult<()>;
    /// A user's inbox, unread first, then newest first.
    async fn list_inbox(
        &self,
        user_id: Uuid,
        filter: InboxFilter,
        limit: u32,
    ) -> StoreResult<Vec<InboxEntry>>;
    /// Marks one of the user's entries read (`true`) or unread; false when no such entry.
    async fn set_inbox_read(&self, user_id: Uuid, id: Uuid, read: bool) -> StoreResult<bool>;
}

/// Opens the store named by `url` (`sqlite://…` or `postgres://…`).
pub async fn open(url: &str, mode: OpenMode) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, mode).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, mode).await?))
    } else {
        Err(StoreError::Open {
            url: redact_url_password(url),
            detail: "unsupported scheme; use sqlite://FILE or postgres://USER@HOST/DB".into(),
        })
    }
}

/// One schema migration: its version, name and SQL for each backend.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sqlite: include_str!("store/migrations/sqlite/0001_init.sql"),
        postgres: include_str!("store/migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "dispatch",
        sqlite: include_str!("store/migrations/sqlite/0002_dispatch.sql"),
        postgres: include_str!("store/migrations/postgres/0002_dispatch.sql"),
    },
    Migration {
        version: 3,
        name: "lease_by_status",
        sqlite: include_str!("store/migrations/sqlite/0003_lease_by_status.sql"),
        postgres: include_str!("store/migrations/postgres/0003_lease_by_status.sql"),
    },
    Migration {
        version: 4,
        name: "counts",
        sqlite: include_str!("store/migrations/sqlite/0004_counts.sql"),
        postgres: include_str!("store/migrations/postgres/0004_counts.sql"),
    },
    Migration {
        version: 5,
        name: "faults",
        sqlite: include_str!("store/migrations/sqlite/0005_faults.sql"),
        postgres: include_str!("store/migrations/postgres/0005_faults.sql"),
    },
];

fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Checks an applied schema version against this binary's migrations.
fn check_version(url: &str, found: i64) -> StoreResult<()> {
    let latest = latest_version();
    match found.cmp(&latest) {
        std::cmp::Ordering::Equal => Ok(()),
        std::cmp::Ordering::Less => Err(StoreError::NotMigrated {
            url: url.to_string(),
            found,
            latest,
        }),
        std::cmp::Ordering::Greater => Err(StoreError::TooNew {
            url: url.to_string(),
            found,
            latest,
        }),
    }
}

fn join_roles(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn split_roles(table: &'static str, text: &str) -> StoreResult<Vec<Role>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|e: crate::model::UnknownValue| StoreError::Corrupt {
                    table,
                    detail: e.to_string(),
                })
        })
        .collect()
}

fn parse_enum<T: std::str::FromStr<Err = crate::model::UnknownValue>>(
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

fn to_json<T: serde::Serialize>(value: &T) -> String {
    // Serializing plain data (strings, maps, vectors) cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_string())
}

/// The `status_reason` of a message whose row could not be read at lease time.
fn unreadable_reason(error: &StoreError) -> String {
    crate::queue::clean_text(
        &format!("the stored message cannot be read ({error}); it was not delivered"),
        crate::queue::MAX_REASON_CHARS,
    )
}

/// Translates a `*` glob over event names into a SQL LIKE pattern (escape `\`).
fn like_pattern(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The lease's passes (DESIGN §5): pending messages, and retries whose time has come and leases
/// that expired (their replica died or the delivery hung; that lease counts as an attempt).
/// `$now` is the backend's current time, `$max` max_send_attempts.
const LEASE_PENDING: &str = "status = 'pending' AND attempt_count < $max";
const LEASE_DUE: &str =
    "((status = 'temporary_failure' AND next_retry_after <= $now AND attempt_count < $max)
     OR (status = 'leased' AND leased_until < $now AND attempt_count + 1 < $max))";
/// Due messages whose attempts are used up (max_send_attempts was lowered, or a lease expired on
/// the last attempt): they are finalised rather than left stuck.
const LEASE_EXHAUSTED: &str =
    "((status = 'temporary_failure' AND next_retry_after <= $now AND attempt_count >= $max)
     OR (status = 'leased' AND leased_until < $now AND attempt_count + 1 >= $max))";
/// The `status_reason` a finalised exhausted message gets (SQL, `$max` as above).
const EXHAUSTED_REASON: &str = "CASE WHEN status = 'leased'
     THEN 'lease expired without an outcome (the delivery hung or its replica died); gave up after '
          || (attempt_count + 1) || ' attempts; max_send_attempts is ' || $max
     ELSE COALESCE(status_reason, 'failed') || ' (gave up after ' || attempt_count
          || ' attempts; max_send_attempts is ' || $max || ')' END";
/// The share of each lease kept for due retries and expired leases, so a backlog of new
/// messages cannot starve them.
fn due_share(limit: u32) -> i64 {
    i64::from(limit.div_ceil(4).max(1))
}
/// States retention and `messages purge` may delete.
const FINAL_STATES_SQL: &str = "('sent', 'permanent_failure', 'inhibited')";

/// Deleting in batches keeps each transaction short so dispatchers are never blocked long.
const PURGE_BATCH: i64 = 5_000;

/// States a retry may move back to `pending`.
fn retryable_states(include_inhibited: bool) -> Vec<MessageState> {
    let mut states = vec![
        MessageState::TemporaryFailure,
        MessageState::PermanentFailure,
    ];
    if include_inhibited {
        states.push(MessageState::Inhibited);
    }
    states
}

/// The smallest UUIDv7 of the millisecond `time` falls in: every id made with
/// [`Uuid::now_v7`] at or after `time` sorts at or above it, so it bounds a time range on the
/// primary key.
pub fn uuid_v7_floor(time: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(time.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&millis.to_be_bytes()[2..]);
    bytes[6] = 0x70; // version 7, zero random bits
    bytes[8] = 0x80; // RFC 4122 variant
    Uuid::from_bytes(bytes)
}

/// Counts per state from `(status, n)` rows; every state is present, zero when absent.
fn tally(table: &'static str, rows: Vec<(String, i64)>) -> StoreResult<StateCounts> {
    let mut counts: StateCounts = MessageState::ALL.iter().map(|s| (*s, 0)).collect();
    for (status, n) in rows {
        let state: MessageState = parse_enum(table, &status)?;
        if let Some(slot) = counts.iter_mut().find(|(s, _)| *s == state) {
            slot.1 += n;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_globs_become_escaped_like_patterns() {
        assert_eq!(like_pattern("run_*"), "run\\_%");
        assert_eq!(like_pattern("100%"), "100\\%");
    }

    #[test]
    fn the_v7_floor_sorts_below_ids_made_at_or_after_its_time() {
        let now = Utc::now();
        let floor = uuid_v7_floor(now);
        assert_eq!(floor.get_version_num(), 7);
        let later = Uuid::now_v7();
        assert!(later >= floor);
        assert!(
            later.to_string() >= floor.to_string(),
            "text order is byte order"
        );
        assert!(uuid_v7_floor(now - chrono::Duration::seconds(1)) < floor);
    }

    #[test]
    fn versions_behind_or_ahead_are_refused_with_what_to_do() {
        let behind = check_version("sqlite://x.db", 0).unwrap_err().to_string();
        assert!(behind.contains("run `herald migrate`"), "{behind}");
        let ahead = check_version("sqlite://x.db", 99).unwrap_err().to_string();
        assert!(ahead.contains("upgrade herald"), "{ahead}");
        check_version("sqlite://x.db", latest_version()).unwrap();
    }
}
