//! The store's operations, written once for every [`Backend`]: which statements run, in what
//! order and transaction, with what values, and how their rows become the model's types.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

mod audit;
mod channels;
pub(in crate::store) mod queue;

use crate::model::{
    Attempt, Capabilities, ChannelPause, EventSpec, EventTemplate, Message, MessageState, Method,
    PauseScope, Preference, Role, Settings, User, UserStatus,
};
use crate::store::backend::{Backend, On, StoredRow};
use crate::store::rows::{
    attempt_from_row, inbox_from_row, join_roles, message_from_row, preference_from_row,
    reason_count_from_row, replica_from_row, ssh_key_from_row, tally, template_from_row, to_json,
    token_from_row, undeliverable_from_row, user_from_row,
};
use crate::store::sql::search::{Select, like_pattern, search};
use crate::store::sql::{Param, Sql, queries as q};
use crate::store::{
    AttemptRecord, AuditEntry, AuditFilter, AuditRecord, ChannelAttempts, ChannelBacklog,
    EnqueueOutcome, InboxEntry, InboxFilter, LeaseRequest, LeasedMessage, MessageFilter,
    NewApiToken, NewInboxEntry, NewMessage, NewSshKey, NewUser, PageRequest, ReasonCount,
    RecentAttempt, Replica, SshKeyInfo, StateCounts, Store, StoreError, StoreResult,
    TOKEN_TOUCH_INTERVAL, TokenInfo, Undeliverable, uuid_v7_floor,
};
use audit::Record;

/// Deleting in batches keeps each transaction short so dispatchers are never blocked long.
const PURGE_BATCH: i64 = 5_000;

const MESSAGES: &str = "notification_messages";

pub(super) async fn rows<B: Backend>(
    backend: &B,
    sql: &Sql,
    params: &[Param<'_>],
) -> StoreResult<Vec<B::Row>> {
    backend
        .fetch_all(On::Pool, sql.get(B::DIALECT), params)
        .await
}

async fn first_row<B: Backend>(
    backend: &B,
    sql: &Sql,
    params: &[Param<'_>],
) -> StoreResult<Option<B::Row>> {
    Ok(rows(backend, sql, params).await?.into_iter().next())
}

async fn one_row<B: Backend>(backend: &B, sql: &Sql, params: &[Param<'_>]) -> StoreResult<B::Row> {
    first_row(backend, sql, params)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

pub(super) async fn execute<B: Backend>(
    backend: &B,
    sql: &Sql,
    params: &[Param<'_>],
) -> StoreResult<u64> {
    backend.execute(On::Pool, sql.get(B::DIALECT), params).await
}

fn unique_violation(error: &StoreError) -> bool {
    matches!(error, StoreError::Database(e)
        if e.as_database_error().is_some_and(|d| d.is_unique_violation()))
}

/// States a retry may move back to `pending`.
fn retryable_states(include_inhibited: bool) -> Vec<&'static str> {
    let mut states = vec![
        MessageState::TemporaryFailure.as_str(),
        MessageState::PermanentFailure.as_str(),
    ];
    if include_inhibited {
        states.push(MessageState::Inhibited.as_str());
    }
    states
}

fn method_names(capabilities: &Capabilities) -> Vec<&'static str> {
    capabilities.methods.iter().map(|m| m.as_str()).collect()
}

impl NewUser {
    fn params<'a>(&'a self, roles: &'a str) -> [Param<'a>; 5] {
        [
            Param::Id(Uuid::now_v7()),
            Param::Text(&self.username),
            Param::Text(&self.email),
            Param::Text(&self.name),
            Param::Text(roles),
        ]
    }
}

#[async_trait]
impl<B: Backend> Store for B {
    fn backend(&self) -> &'static str {
        B::DIALECT.name()
    }

    fn display_url(&self) -> &str {
        &self.handle().url
    }

    async fn insert_user(&self, user: &NewUser, audit: Option<&AuditEntry>) -> StoreResult<User> {
        let roles = join_roles(&user.roles);
        let params = user.params(&roles);
        let row = audit::fetch_audited(self, &q::INSERT_USER, &params, audit, false)
            .await
            .and_then(|rows| {
                rows.into_iter()
                    .next()
                    .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
            })
            .map_err(|e| {
                if unique_violation(&e) {
                    StoreError::Conflict(format!("user `{}` already exists", user.username))
                } else {
                    e
                }
            })?;
        user_from_row(&row)
    }

    async fn upsert_user(&self, user: &NewUser) -> StoreResult<User> {
        let roles = join_roles(&user.roles);
        match first_row(self, &q::UPSERT_USER, &user.params(&roles)).await? {
            Some(row) => user_from_row(&row),
            // Unchanged: the conditional upsert wrote nothing and returned nothing.
            None => self.user_by_username(&user.username).await?.ok_or_else(|| {
                StoreError::Conflict(format!("user `{}` vanished during upsert", user.username))
            }),
        }
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = first_row(self, &q::USER_BY_USERNAME, &[Param::Text(username)]).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users_by_usernames(&self, usernames: &[&str]) -> StoreResult<Vec<User>> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        let rows = rows(self, &q::USERS_BY_USERNAMES, &[Param::Strs(usernames)]).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn user_by_id(&self, id: Uuid) -> StoreResult<Option<User>> {
        let row = first_row(self, &q::USER_BY_ID, &[Param::Id(id)]).await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = rows(self, &q::LIST_USERS, &[]).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn active_users_with_roles(&self, roles: &[Role]) -> StoreResult<Vec<User>> {
        if roles.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        let rows = rows(self, &q::ACTIVE_USERS_WITH_ROLES, &[Param::Strs(&names)]).await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_user_status(
        &self,
        id: Uuid,
        status: UserStatus,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()> {
        let params = [Param::Text(status.as_str()), Param::Id(id)];
        audit::execute_audited(self, &q::SET_USER_STATUS, &params, audit, Record::IfChanged)
            .await?;
        Ok(())
    }

    async fn owner_exists(&self) -> StoreResult<bool> {
        one_row(self, &q::OWNER_EXISTS, &[]).await?.flag("present")
    }

    async fn upsert_catalog(&self, events: &[EventSpec]) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        for e in events {
            let actions = to_json(&e.actions);
            let roles = join_roles(&e.audience_roles);
            let params = [
                Param::Id(Uuid::now_v7()),
                Param::Text(&e.name),
                Param::Text(&e.group),
                Param::Text(&e.title_template),
                Param::Text(&e.body_template),
                Param::Text(&actions),
                Param::Text(&roles),
                Param::Bool(e.enabled_by_default),
                Param::Text(e.kind.as_str()),
                Param::Bool(e.inbox),
                Param::Bool(e.reaches_suspended),
            ];
            let statement = q::UPSERT_TEMPLATE.get(B::DIALECT);
            self.execute(On::Tx(&mut tx), statement, &params).await?;
        }
        B::commit(tx).await
    }

    async fn list_templates(&self) -> StoreResult<Vec<EventTemplate>> {
        let rows = rows(self, &q::LIST_TEMPLATES, &[]).await?;
        rows.iter().map(template_from_row).collect()
    }

    async fn template_by_name(&self, name: &str) -> StoreResult<Option<EventTemplate>> {
        let row = first_row(self, &q::TEMPLATE_BY_NAME, &[Param::Text(name)]).await?;
        row.as_ref().map(template_from_row).transpose()
    }

    async fn set_template_method(
        &self,
        id: Uuid,
        method: Option<Method>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()> {
        let params = [Param::OptText(method.map(Method::as_str)), Param::Id(id)];
        let sql = &q::SET_TEMPLATE_METHOD;
        audit::execute_audited(self, sql, &params, audit, Record::IfChanged).await?;
        Ok(())
    }

    async fn preferences_of_user(&self, user_id: Uuid) -> StoreResult<Vec<Preference>> {
        let rows = rows(self, &q::PREFERENCES_OF_USER, &[Param::Id(user_id)]).await?;
        rows.iter().map(preference_from_row).collect()
    }

    async fn preferences_for_template(
        &self,
        template_id: Uuid,
        user_ids: &[Uuid],
    ) -> StoreResult<Vec<Preference>> {
        let params = [Param::Id(template_id), Param::Ids(user_ids)];
        let rows = rows(self, &q::PREFERENCES_FOR_TEMPLATE, &params).await?;
        rows.iter().map(preference_from_row).collect()
    }

    async fn set_preference(
        &self,
        pref: Preference,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<()> {
        let params = [
            Param::Id(pref.user_id),
            Param::Id(pref.template_id),
            Param::Bool(pref.disabled),
        ];
        audit::execute_audited(self, &q::SET_PREFERENCE, &params, audit, Record::Always).await?;
        Ok(())
    }

    async fn clear_preference(
        &self,
        user_id: Uuid,
        template_id: Uuid,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let params = [Param::Id(user_id), Param::Id(template_id)];
        let sql = &q::CLEAR_PREFERENCE;
        Ok(audit::execute_audited(self, sql, &params, audit, Record::IfChanged).await? > 0)
    }

    async fn settings(&self) -> StoreResult<Settings> {
        let row = one_row(self, &q::SETTINGS, &[]).await?;
        Ok(Settings {
            notifier_paused: row.flag("notifier_paused")?,
            updated_at: row.time("notification_settings", "updated_at")?,
        })
    }

    async fn set_paused(&self, paused: bool, audit: Option<&AuditEntry>) -> StoreResult<()> {
        let params = [Param::Bool(paused)];
        audit::execute_audited(self, &q::SET_PAUSED, &params, audit, Record::Always).await?;
        self.handle().wake_here();
        Ok(())
    }

    async fn enqueue(&self, messages: &[NewMessage]) -> StoreResult<EnqueueOutcome> {
        queue::enqueue(self, messages).await
    }

    async fn list_messages(
        &self,
        filter: &MessageFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<Message>> {
        self.search_messages(filter, None, page).await
    }

    async fn count_by_state(&self) -> StoreResult<StateCounts> {
        tally(
            "notification_counts",
            &rows(self, &q::COUNT_BY_STATE, &[]).await?,
        )
    }

    async fn message(&self, id: Uuid) -> StoreResult<Option<(Message, Vec<Attempt>)>> {
        let Some(row) = first_row(self, &q::MESSAGE_BY_ID, &[Param::Id(id)]).await? else {
            return Ok(None);
        };
        let message = message_from_row(&row)?;
        let attempts = rows(self, &q::ATTEMPTS_OF_MESSAGE, &[Param::Id(id)])
            .await?
            .iter()
            .map(attempt_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some((message, attempts)))
    }

    async fn messages_by_ids(&self, ids: &[Uuid]) -> StoreResult<Vec<Message>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = rows(self, &q::MESSAGES_BY_IDS, &[Param::Ids(ids)])
            .await?
            .iter()
            .map(|row| message_from_row(row).map(|m| (m.id, m)))
            .collect::<StoreResult<std::collections::HashMap<_, _>>>()?;
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn messages_with_dedupe_hashes(
        &self,
        hashes: &[String],
    ) -> StoreResult<Vec<(String, Uuid)>> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let found = rows(self, &q::MESSAGES_WITH_HASHES, &[Param::Strings(hashes)]).await?;
        found
            .iter()
            .map(|row| Ok((row.text("dedupe_hash")?, row.id(MESSAGES, "id")?)))
            .collect()
    }

    async fn retry_messages(
        &self,
        ids: &[Uuid],
        include_inhibited: bool,
        reason: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<Vec<Uuid>> {
        let states = retryable_states(include_inhibited);
        let params = [Param::Text(reason), Param::Strs(&states), Param::Ids(ids)];
        let changed = audit::fetch_audited(self, &q::RETRY_MESSAGES, &params, audit, true)
            .await?
            .iter()
            .map(|row| row.id(MESSAGES, "id"))
            .collect::<StoreResult<Vec<_>>>()?;
        if !changed.is_empty() {
            self.wake_replicas(On::Pool).await?;
            self.handle().wake_here();
        }
        Ok(changed)
    }

    async fn purge_messages(
        &self,
        cutoff: DateTime<Utc>,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<u64> {
        let params = [Param::Time(cutoff), Param::I64(PURGE_BATCH)];
        let statement = q::PURGE_BATCH.get(B::DIALECT);
        let mut total = 0;
        loop {
            // Every batch is its own short transaction; the audit row, with the total, goes
            // in the last one's.
            let mut tx = self.begin().await?;
            let deleted = self
                .fetch_all(On::Tx(&mut tx), statement, &params)
                .await?
                .len() as u64;
            total += deleted;
            let last = deleted < PURGE_BATCH as u64;
            if last && let Some(entry) = audit {
                audit::write(self, &mut tx, entry, Some(total)).await?;
            }
            B::commit(tx).await?;
            if last {
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
        let select = Select::Page {
            before: page.before,
            limit: page.limit,
        };
        let rows = run_search(self, filter, reason, select).await?;
        rows.iter().map(message_from_row).collect()
    }

    async fn count_messages(
        &self,
        filter: &MessageFilter,
        reason: Option<&str>,
    ) -> StoreResult<i64> {
        run_search(self, filter, reason, Select::Count)
            .await?
            .first()
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))?
            .big("n")
    }

    async fn top_status_reasons(&self, limit: u32) -> StoreResult<Vec<ReasonCount>> {
        let rows = rows(
            self,
            &q::TOP_STATUS_REASONS,
            &[
                Param::I64(i64::from(limit)),
                Param::I64(i64::from(crate::store::REASONS_WINDOW)),
            ],
        )
        .await?;
        rows.iter().map(reason_count_from_row).collect()
    }

    async fn volume_by_event(&self, since: DateTime<Utc>) -> StoreResult<Vec<(String, i64)>> {
        let params = [Param::Id(uuid_v7_floor(since)), Param::Time(since)];
        let rows = rows(self, &q::VOLUME_BY_EVENT, &params).await?;
        rows.iter()
            .map(|row| Ok((row.text("name")?, row.big("n")?)))
            .collect()
    }

    async fn attempts_since(&self, since: DateTime<Utc>) -> StoreResult<StateCounts> {
        let rows = rows(self, &q::ATTEMPTS_SINCE, &[Param::Time(since)]).await?;
        tally("notification_attempts", &rows)
    }

    async fn lease_batch(&self, req: &LeaseRequest<'_>) -> StoreResult<Vec<LeasedMessage>> {
        Backend::lease_batch(self, req).await
    }

    async fn record_attempts(&self, records: &[AttemptRecord]) -> StoreResult<u64> {
        if records.is_empty() {
            return Ok(0);
        }
        Backend::record_attempts(self, records).await
    }

    async fn undeliverable(&self, capabilities: &Capabilities) -> StoreResult<Vec<Undeliverable>> {
        let methods = method_names(capabilities);
        let params = [Param::Strs(&methods), Param::Strings(&capabilities.targets)];
        let rows = rows(self, &q::UNDELIVERABLE, &params).await?;
        rows.iter().map(undeliverable_from_row).collect()
    }

    async fn next_due(&self, capabilities: &Capabilities) -> StoreResult<Option<DateTime<Utc>>> {
        let methods = method_names(capabilities);
        let params = [Param::Strs(&methods), Param::Strings(&capabilities.targets)];
        one_row(self, &q::NEXT_DUE, &params)
            .await?
            .opt_time(MESSAGES, "due")
    }

    fn wakeup(&self) -> Arc<Notify> {
        self.watch_wakeups()
    }

    async fn heartbeat(&self, replica: &Replica) -> StoreResult<()> {
        let capabilities = to_json(&replica.capabilities);
        let params = [
            Param::Id(replica.id),
            Param::Text(&replica.hostname),
            Param::I32(replica.pid),
            Param::Time(replica.started_at),
            Param::Time(replica.last_seen_at),
            Param::I32(replica.in_flight),
            Param::Text(&capabilities),
        ];
        execute(self, &q::HEARTBEAT, &params).await?;
        Ok(())
    }

    async fn remove_replica(&self, id: Uuid) -> StoreResult<()> {
        execute(self, &q::REMOVE_REPLICA, &[Param::Id(id)]).await?;
        Ok(())
    }

    async fn prune_replicas(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        execute(self, &q::PRUNE_REPLICAS, &[Param::Time(cutoff)]).await
    }

    async fn list_replicas(&self) -> StoreResult<Vec<Replica>> {
        let rows = rows(self, &q::LIST_REPLICAS, &[]).await?;
        rows.iter().map(replica_from_row).collect()
    }

    async fn lead_retention(&self, notifier_id: Uuid, hold: Duration) -> StoreResult<bool> {
        let params = [Param::Id(notifier_id), Param::Later(hold)];
        Ok(execute(self, &q::LEAD_RETENTION, &params).await? == 1)
    }

    async fn release_retention(&self, notifier_id: Uuid) -> StoreResult<()> {
        execute(self, &q::RELEASE_RETENTION, &[Param::Id(notifier_id)]).await?;
        Ok(())
    }

    async fn insert_inbox(&self, entry: &NewInboxEntry) -> StoreResult<()> {
        let actions = to_json(&entry.actions);
        let params = [
            Param::Id(entry.id),
            Param::Id(entry.user_id),
            Param::Id(entry.template_id),
            Param::Id(entry.message_id),
            Param::Text(&entry.title),
            Param::Text(&entry.content),
            Param::Text(&actions),
            Param::Time(entry.created_at),
        ];
        execute(self, &q::INSERT_INBOX, &params).await?;
        Ok(())
    }

    async fn list_inbox(
        &self,
        user_id: Uuid,
        filter: InboxFilter,
        limit: u32,
    ) -> StoreResult<Vec<InboxEntry>> {
        let sql = match filter {
            InboxFilter::All => &q::LIST_INBOX[0],
            InboxFilter::Unread => &q::LIST_INBOX[1],
            InboxFilter::Read => &q::LIST_INBOX[2],
        };
        let params = [Param::Id(user_id), Param::I64(i64::from(limit))];
        let rows = rows(self, sql, &params).await?;
        rows.iter().map(inbox_from_row).collect()
    }

    async fn set_inbox_read(&self, user_id: Uuid, id: Uuid, read: bool) -> StoreResult<bool> {
        let params = [Param::Bool(read), Param::Id(id), Param::Id(user_id)];
        Ok(execute(self, &q::SET_INBOX_READ, &params).await? == 1)
    }

    async fn channel_pauses(&self) -> StoreResult<Vec<ChannelPause>> {
        channels::channel_pauses(self).await
    }

    async fn pause_channel(
        &self,
        scope: PauseScope,
        name: &str,
        paused_by: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        channels::pause_channel(self, scope, name, paused_by, audit).await
    }

    async fn resume_channel(
        &self,
        scope: PauseScope,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        channels::resume_channel(self, scope, name, audit).await
    }

    async fn backlog_by_channel(&self) -> StoreResult<Vec<ChannelBacklog>> {
        channels::backlog_by_channel(self).await
    }

    async fn attempts_by_channel(&self, since: DateTime<Utc>) -> StoreResult<Vec<ChannelAttempts>> {
        channels::attempts_by_channel(self, since).await
    }

    async fn recent_attempts(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<RecentAttempt>> {
        channels::recent_attempts(self, since, limit).await
    }

    async fn insert_api_token(
        &self,
        token: &NewApiToken,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<TokenInfo> {
        let params = [
            Param::Id(token.id),
            Param::Id(token.user_id),
            Param::Text(&token.name),
            Param::Text(&token.token_hash),
        ];
        audit::execute_audited(self, &q::INSERT_API_TOKEN, &params, audit, Record::Always)
            .await
            .map_err(|e| {
                if unique_violation(&e) {
                    StoreError::Conflict(format!(
                        "the user already has a live API token named `{}`",
                        token.name
                    ))
                } else {
                    e
                }
            })?;
        token_from_row(&one_row(self, &q::API_TOKEN_BY_ID, &[Param::Id(token.id)]).await?)
    }

    async fn list_api_tokens(&self, user_id: Option<Uuid>) -> StoreResult<Vec<TokenInfo>> {
        let rows = match user_id {
            None => rows(self, &q::LIST_API_TOKENS, &[]).await?,
            Some(id) => rows(self, &q::LIST_API_TOKENS_OF_USER, &[Param::Id(id)]).await?,
        };
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_api_token(
        &self,
        user_id: Uuid,
        name: &str,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<bool> {
        let params = [Param::Id(user_id), Param::Text(name)];
        let sql = &q::REVOKE_API_TOKEN;
        Ok(audit::execute_audited(self, sql, &params, audit, Record::IfChanged).await? > 0)
    }

    async fn find_live_api_tokens(
        &self,
        token_hashes: &[String],
    ) -> StoreResult<Vec<Option<(Uuid, User)>>> {
        if token_hashes.is_empty() {
            return Ok(Vec::new());
        }
        let found = rows(self, &q::LIVE_API_TOKENS, &[Param::Strings(token_hashes)]).await?;
        let mut by_hash = std::collections::HashMap::with_capacity(found.len());
        // The common case is this one read: a busy token was touched less than a minute ago,
        // so it writes nothing (thousands of requests a second must not be thousands of
        // writes). Only a stale `last_used_at` costs an UPDATE, itself conditional.
        let stale_before = Utc::now() - TOKEN_TOUCH_INTERVAL;
        for row in &found {
            let token_id = row.id("api_tokens", "token_id")?;
            let user = user_from_row(row)?;
            let last_used = row.opt_time("api_tokens", "last_used_at")?;
            if last_used.is_none_or(|at| at < stale_before) {
                let params = [Param::Id(token_id), Param::Time(stale_before)];
                execute(self, &q::TOUCH_API_TOKEN, &params).await?;
            }
            by_hash.insert(row.text("token_hash")?, (token_id, user));
        }
        Ok(token_hashes
            .iter()
            .map(|hash| by_hash.get(hash).cloned())
            .collect())
    }

    async fn insert_ssh_key(
        &self,
        key: &NewSshKey,
        audit: Option<&AuditEntry>,
    ) -> StoreResult<SshKeyInfo> {
        let params = [
            Param::Id(key.id),
            Param::Id(key.user_id),
            Param::Text(&key.public_key),
            Param::Text(&key.fingerprint),
            Param::Text(&key.comment),
        ];
        audit::execute_audited(self, &q::INSERT_SSH_KEY, &params, audit, Record::Always)
            .await
            .map_err(|e| {
                if unique_violation(&e) {
                    StoreError::Conflict(format!(
                        "the SSH key {} is already added to a user",
                        key.fingerprint
                    ))
                } else {
                    e
                }
            })?;
        ssh_key_from_row(&one_row(self, &q::SSH_KEY_BY_ID, &[Param::Id(key.id)]).await?)
    }

    async fn list_ssh_keys(&self, user_id: Option<Uuid>) -> StoreResult<Vec<SshKeyInfo>> {
        let rows = match user_id {
            None => rows(self, &q::LIST_SSH_KEYS, &[]).await?,
            Some(id) => rows(self, &q::LIST_SSH_KEYS_OF_USER, &[Param::Id(id)]).await?,
        };
        rows.iter().map(ssh_key_from_row).collect()
    }

    async fn ssh_key_by_fingerprint(&self, fingerprint: &str) -> StoreResult<Option<SshKeyInfo>> {
        let params = [Param::Text(fingerprint)];
        first_row(self, &q::SSH_KEY_BY_FINGERPRINT, &params)
            .await?
            .map(|row| ssh_key_from_row(&row))
            .transpose()
    }

    async fn delete_ssh_key(&self, id: Uuid, audit: Option<&AuditEntry>) -> StoreResult<bool> {
        let params = [Param::Id(id)];
        let sql = &q::DELETE_SSH_KEY;
        Ok(audit::execute_audited(self, sql, &params, audit, Record::IfChanged).await? > 0)
    }

    async fn ssh_key_owner(&self, fingerprint: &str) -> StoreResult<Option<(Uuid, User)>> {
        let params = [Param::Text(fingerprint)];
        let Some(row) = first_row(self, &q::SSH_KEY_OWNER, &params).await? else {
            return Ok(None);
        };
        Ok(Some((
            row.id("user_ssh_keys", "key_id")?,
            user_from_row(&row)?,
        )))
    }

    async fn touch_ssh_key(&self, id: Uuid) -> StoreResult<()> {
        execute(self, &q::TOUCH_SSH_KEY, &[Param::Id(id)]).await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> StoreResult<Vec<AuditRecord>> {
        audit::list_audit(self, filter, page).await
    }

    async fn purge_audit(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        audit::purge_audit(self, cutoff).await
    }

    async fn purge_attempt_minutes(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        channels::purge_attempt_minutes(self, cutoff).await
    }
}

/// The rows of a message search ([`search`]).
async fn run_search<B: Backend>(
    backend: &B,
    filter: &MessageFilter,
    reason: Option<&str>,
    select: Select,
) -> StoreResult<Vec<B::Row>> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let pattern = filter
        .event
        .as_deref()
        .filter(|e| e.contains('*'))
        .map(like_pattern);
    let query = search(
        B::DIALECT,
        filter,
        &statuses,
        pattern.as_deref(),
        reason,
        select,
    );
    backend
        .fetch_all(On::Pool, &query.statement, &query.params)
        .await
}
