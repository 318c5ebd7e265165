//! The shared store: one trait, a SQLite and a PostgreSQL implementation, the migrations.
//!
//! Every replica coordinates only through the store (DESIGN §1). Both implementations pass the
//! same conformance suite (`tests/it/store_conformance.rs`). The operations are written once
//! (`shared.rs`, over the `Backend` each implementation provides), each query's text once
//! (`sql/`); `sqlite/` and `postgres/` keep the connection, the encodings, the wake-ups and
//! the bulk statements that truly differ.

mod backend;
mod migrations;
mod postgres;
mod rows;
mod shared;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::model::{
    Attempt, Capabilities, ChannelPause, EventSpec, EventTemplate, Message, MessageState, Method,
    PauseScope, PlannedMessage, Preference, Role, Settings, User, UserStatus,
};
use crate::queue::AttemptResult;
use crate::secret::redact_url_password;

pub use postgres::{PostgresStore, pool_options as postgres_pool_options};
pub use sqlite::{SqliteStore, connect_options as sqlite_connect_options};

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

/// A message to insert: what routing planned, plus the id, event, creator and time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    pub id: Uuid,
    pub template_id: Uuid,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Recipient, method, status and payload, as routing decided them.
    pub planned: PlannedMessage,
}

/// Which messages were inserted and which already existed (same dedupe hash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueOutcome {
    pub enqueued: Vec<Uuid>,
    /// Ids of the messages that made the new ones duplicates, in the order of the messages
    /// refused.
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
    /// A qualified target name: only that target's messages.
    pub target: Option<String>,
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

/// The start of the minute `at` falls in: the key of the attempts counted per minute.
pub fn minute_start(at: DateTime<Utc>) -> DateTime<Utc> {
    let seconds = at.timestamp();
    DateTime::from_timestamp(seconds - seconds.rem_euclid(60), 0).unwrap_or(at)
}

/// One finished delivery attempt and the state it leads to, for [`Store::record_attempts`].
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub message_id: Uuid,
    /// The message's method and target (as leased): the attempt is counted per minute under
    /// this channel.
    pub method: Method,
    pub target: Option<String>,
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

/// How many messages of one channel wait (`pending`, `temporary_failure`, `leased`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelBacklog {
    pub method: Method,
    /// The qualified target name; None for user messages.
    pub target: Option<String>,
    pub count: i64,
}

/// How many attempts of one channel ended in one outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChannelAttempts {
    pub method: Method,
    pub target: Option<String>,
    /// `sent`, `temporary_failure` or `permanent_failure`.
    pub outcome: MessageState,
    pub count: i64,
}

/// One delivery attempt with the channel it went to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecentAttempt {
    pub method: Method,
    pub target: Option<String>,
    pub outcome: MessageState,
    pub duration_ms: i64,
    pub reason: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// A row for `api_tokens`: the token's SHA-256 only, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// Lowercase hex SHA-256 of the whole token.
    pub token_hash: String,
}

/// A row of `api_tokens` as it is listed, with its owner's username; the hash is never read
/// back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub user_id: Uuid,
    pub username: String,
    pub created_at: DateTime<Utc>,
    /// The last request it authenticated, to within [`TOKEN_TOUCH_INTERVAL`].
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// How stale `api_tokens.last_used_at` may get before a use writes it again: a token that
/// authenticates thousands of requests a second costs one write a minute, not one a request.
pub const TOKEN_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// A row for `user_ssh_keys`: a public key, parsed and fingerprinted by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSshKey {
    pub id: Uuid,
    pub user_id: Uuid,
    /// OpenSSH one-line form without the comment, e.g. `ssh-ed25519 AAAA…`.
    pub public_key: String,
    /// OpenSSH's `SHA256:…` fingerprint of the key.
    pub fingerprint: String,
    pub comment: String,
}

/// A row of `user_ssh_keys` with its owner's username.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SshKeyInfo {
    pub id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub public_key: String,
    pub fingerprint: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
    /// The last SSH login it authenticated.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// One operator action for `audit_log` (DESIGN §14), handed to the store method that makes
/// the change, which writes both in one transaction. Never holds a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The Herald user who acted.
    pub actor: String,
    /// What was done, `noun.verb` (`messages.retry`, `notifications.pause`).
    pub action: String,
    /// What it was done to: a message id, a user, `method:slack_api`, a token's name.
    pub subject: String,
    /// The rest as a JSON object: the front end (`via`), ids, a fingerprint; the store adds a
    /// `count` where the change touched many rows.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// A row of `audit_log` as it is listed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: serde_json::Value,
}

/// Which audit rows to list; all present filters must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly this actor.
    pub actor: Option<String>,
    /// Exactly this action.
    pub action: Option<String>,
    /// Written at or after this moment.
    pub since: Option<DateTime<Utc>>,
}

/// Message counts per state; every state is present, zero when empty.
pub type StateCounts = Vec<(MessageState, i64)>;

/// How many of the newest messages of each failure state [`Store::top_status_reasons`] groups:
/// what is failing now, at a cost that does not grow with the store.
pub const REASONS_WINDOW: u32 = 5_000;

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

/// The shared store. Implementations must keep every operation atomic. A change an operator
/// makes takes an `audit` entry, written in the change's own transaction: a failed change
/// leaves no audit row and a failed audit write undoes the change.
#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// The database URL with any password removed, for display.
    fn display_url(&self) -> &str;

    // users
    /// Creates a user; with `audit`, its audit row in the same transaction.
    async fn insert_user(&self, user: &NewUser, audit: Option<&AuditEntry>) -> StoreResult<User>;
    /// Creates or updates (email, name, roles) a user declared in the config.
    async fn upsert_user(&self, user: &NewUser) -> StoreResult<User>;
    /// The users with these usernames, in no order, in one statement; names that match
    /// nobody are left out.
    async fn users_by_usernames(&self, usernames: &[&str]) -> StoreResult<Vec<User>>;
    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    /// Active users holding at least one of `roles`.
    async fn active_users_with_roles(&self, roles: &[Role]) -> StoreResult<Vec<User>>;
    async fn set_user_status(
        &self,
        id: Uuid,
        status: UserStatus,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()>;
    async fn owner_exists(&self) -> StoreResult<bool>;

    // event catalog
    /// Inserts new events and refreshes the templates of known ones; never touches `method`.
    async fn upsert_catalog(&self, events: &[EventSpec]) -> StoreResult<()>;
    async fn list_templates(&self) -> StoreResult<Vec<EventTemplate>>;
    async fn template_by_name(&self, name: &str) -> StoreResult<Option<EventTemplate>>;
    async fn set_template_method(
        &self,
        id: Uuid,
        method: Option<Method>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()>;

    // preferences
    async fn preferences_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Preference>>;
    async fn preferences_for_template(
        &self,
        template_id: Uuid,
        user_ids: &[Uuid],
    ) -> StoreResult<Vec<Preference>>;
    async fn set_preference(&self, pref: Preference, audit: Option<&AuditEntry>)
    -> StoreResult<()>;
    /// Removes a preference; true when one existed (only then is `audit` written).
    async fn clear_preference(
        &self,
        user_id: Uuid,
        template_id: Uuid,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    // settings
    async fn settings(&self) -> StoreResult<Settings>;
    async fn set_paused(&self, paused: bool, audit: Option<&AuditEntry>) -> StoreResult<()>;

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
    /// The messages with these ids, in the order given, without their attempts, in one
    /// statement (what enqueue reads back); ids that name no message are left out.
    async fn messages_by_ids(&self, ids: &[Uuid]) -> StoreResult<Vec<Message>>;
    /// The ids of the messages holding these dedupe hashes, as `(hash, id)` in no order, in one
    /// statement (the unique index on `dedupe_hash`); hashes no message holds are left out.
    async fn messages_with_dedupe_hashes(
        &self,
        hashes: &[String],
    ) -> StoreResult<Vec<(String, Uuid)>>;
    /// Puts failed messages (and inhibited ones when `include_inhibited`) back to `pending`
    /// with no attempts; returns the ids changed. `audit` is written, with their `count`,
    /// when any changed.
    async fn retry_messages(
        &self,
        ids: &[Uuid],
        include_inhibited: bool,
        reason: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Vec<Uuid>>;
    /// Deletes messages in a final state (`sent`, `permanent_failure`, `inhibited`), with their
    /// attempts, last changed before `cutoff`, in bounded batches; returns how many. Nothing
    /// that can still be delivered is ever deleted. `audit`, with the total `count`, is
    /// written in the last batch's transaction.
    async fn purge_messages(
        &self,
        cutoff: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<u64>;

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
    /// The commonest `status_reason`s among the newest [`REASONS_WINDOW`] messages in each of
    /// `temporary_failure` and `permanent_failure`, most frequent first (ties by reason); reads
    /// at most that many rows per state, however large the store.
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
    /// `capabilities` does not cover, per method and target; reads the counts the store keeps
    /// per state, method and target, never the messages.
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

    // scoped pauses (DESIGN §14)
    /// Every scoped pause, by scope then name: a small table each replica reads before it
    /// leases.
    async fn channel_pauses(&self) -> StoreResult<Vec<ChannelPause>>;
    /// Holds every message of one method or one target on every replica; false when it was
    /// paused already (the first pause's row is kept, and `audit` is not written).
    async fn pause_channel(
        &self,
        scope: PauseScope,
        name: &str,
        paused_by: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;
    /// Lifts a scoped pause and wakes every replica; false when it was not paused (and
    /// `audit` is not written).
    async fn resume_channel(
        &self,
        scope: PauseScope,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;

    // channel health (DESIGN §14)
    /// Waiting messages (`pending`, `temporary_failure`, `leased`) per method and target;
    /// reads the counts the store keeps per state, method and target, never the messages.
    async fn backlog_by_channel(&self) -> StoreResult<Vec<ChannelBacklog>>;
    /// Attempts started in the minute of `since` or later, per method, target and outcome,
    /// from the counts kept per minute (reads a few rows per minute, not the attempts).
    async fn attempts_by_channel(&self, since: DateTime<Utc>) -> StoreResult<Vec<ChannelAttempts>>;
    /// The latest `limit` attempts started at or after `since`, newest first.
    async fn recent_attempts(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<RecentAttempt>>;

    // api tokens
    /// Stores a token for its user; a live token of that user with the same name is a
    /// [`StoreError::Conflict`].
    async fn insert_api_token(
        &self,
        token: &NewApiToken,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<TokenInfo>;
    /// Every token (revoked ones too), or only `user_id`'s, by username, then name, then age.
    async fn list_api_tokens(&self, user_id: Option<Uuid>) -> StoreResult<Vec<TokenInfo>>;
    /// Revokes `user_id`'s live token `name`; false when it has none of that name.
    async fn revoke_api_token(
        &self,
        user_id: Uuid,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool>;
    /// The live (not revoked) token with this hash, as its id and its user, read from the store
    /// on every call so a revoke on any replica takes effect at the next request. Touches
    /// `last_used_at` only when it is older than [`TOKEN_TOUCH_INTERVAL`].
    async fn find_live_api_token(&self, token_hash: &str) -> StoreResult<Option<(Uuid, User)>> {
        let mut found = self.find_live_api_tokens(&[token_hash.to_string()]).await?;
        Ok(found.pop().flatten())
    }
    /// [`Store::find_live_api_token`] for many hashes in one read (a server checking many
    /// requests' tokens at once): one entry per hash, in order, `None` where no live token has it.
    async fn find_live_api_tokens(
        &self,
        token_hashes: &[String],
    ) -> StoreResult<Vec<Option<(Uuid, User)>>>;

    // ssh keys
    /// Stores a public key for its user; a key already stored (for anyone) is a
    /// [`StoreError::Conflict`].
    async fn insert_ssh_key(
        &self,
        key: &NewSshKey,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<SshKeyInfo>;
    /// Every key, or only `user_id`'s, by username, then age.
    async fn list_ssh_keys(&self, user_id: Option<Uuid>) -> StoreResult<Vec<SshKeyInfo>>;
    /// The key with this fingerprint, whoever's it is.
    async fn ssh_key_by_fingerprint(&self, fingerprint: &str) -> StoreResult<Option<SshKeyInfo>>;
    /// Deletes one key; false when it was not there.
    async fn delete_ssh_key(&self, id: Uuid, audit: Option<&AuditEntry>) -> StoreResult<bool>;
    /// The user who owns the key with this fingerprint, as the key's id and the user, read
    /// from the store on every call so a removal or a suspension holds from the next login.
    async fn ssh_key_owner(&self, fingerprint: &str) -> StoreResult<Option<(Uuid, User)>>;
    /// Records a login made with the key: sets its `last_used_at` to now.
    async fn touch_ssh_key(&self, id: Uuid) -> StoreResult<()>;

    // audit trail (DESIGN §14); rows are written only by the changes they record
    /// A page of audit rows matching `filter`, newest first, strictly older than
    /// `page.before` when given; reads the primary key, never the whole table.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// Deletes the audit rows written before `cutoff` (retention); returns how many.
    async fn purge_audit(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
    /// Deletes the per-minute attempt counts of minutes before `cutoff`; returns how many.
    async fn purge_attempt_minutes(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;
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

#[cfg(test)]
mod tests;
