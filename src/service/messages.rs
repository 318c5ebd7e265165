//! The inbox, the pause killswitch, and the queue's messages: list, show, retry, purge.

use serde_json::Value;

use super::*;

/// What a purge deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeReport {
    pub messages: u64,
    pub audit_rows: u64,
}

/// How many messages one bulk retry reads and puts back at a time.
const RETRY_PAGE: u32 = 1000;

impl Service {
    // ---- inbox ----------------------------------------------------------------------------

    /// The caller's own inbox, unread first.
    pub async fn inbox(
        &self,
        caller: &User,
        filter: InboxFilter,
        limit: u32,
    ) -> ServiceResult<Vec<InboxEntry>> {
        Ok(self.store.list_inbox(caller.id, filter, limit).await?)
    }

    /// Marks one of the caller's inbox entries read or unread.
    pub async fn mark_inbox(&self, caller: &User, id: &str, read: bool) -> ServiceResult<()> {
        let uuid = Uuid::parse_str(id).map_err(|_| {
            ServiceError::Invalid(format!(
                "`{id}` is not an inbox entry id; `herald inbox list` shows ids"
            ))
        })?;
        if self.store.set_inbox_read(caller.id, uuid, read).await? {
            Ok(())
        } else {
            Err(ServiceError::NotFound(format!(
                "no inbox entry {id} in {}'s inbox; `herald inbox list` shows ids",
                caller.username
            )))
        }
    }

    // ---- pause killswitch -----------------------------------------------------------------

    pub async fn notifier_status(&self, _caller: &User) -> ServiceResult<Settings> {
        Ok(self.store.settings().await?)
    }

    /// Whether the store answers and holds Herald's tables, by its cheapest read (the settings
    /// row), for `/readyz`; it needs no caller.
    pub async fn check_ready(&self) -> ServiceResult<()> {
        self.store.settings().await?;
        Ok(())
    }

    /// Pauses or resumes delivery on every replica. Owners and on-call.
    pub async fn set_paused(&self, caller: &User, paused: bool) -> ServiceResult<()> {
        let action = if paused {
            "pausing notifications"
        } else {
            "resuming notifications"
        };
        require(caller, QUEUE_WATCHERS, action)?;
        let verb = if paused {
            actions::PAUSE
        } else {
            actions::RESUME
        };
        let audit = self.audit_entry(&caller.username, verb, EVERYTHING, Value::Null);
        self.store.set_paused(paused, Some(&audit)).await?;
        tracing::info!(user = %caller.username, paused, "notifier pause flag changed");
        Ok(())
    }

    // ---- messages -------------------------------------------------------------------------

    /// A page of messages. Owners and on-call see all; everyone else only their own.
    pub async fn list_messages(
        &self,
        caller: &User,
        mut filter: MessageFilter,
        user: Option<&str>,
        page: PageRequest,
    ) -> ServiceResult<Vec<Message>> {
        let sees_all = require(caller, QUEUE_WATCHERS, "").is_ok();
        match user {
            Some(name) if name != caller.username => {
                require(caller, QUEUE_WATCHERS, "listing another user's messages")?;
                filter.user_id = Some(self.user_named(name).await?.id);
            }
            Some(_) => filter.user_id = Some(caller.id),
            None if !sees_all => filter.user_id = Some(caller.id),
            None => {}
        }
        if let Some(event) = &filter.event
            && !event.contains('*')
        {
            self.event_named(event).await?;
        }
        Ok(self.store.list_messages(&filter, page).await?)
    }

    /// One message with its attempts; own messages, or any for owners and on-call.
    pub async fn message(&self, caller: &User, id: &str) -> ServiceResult<(Message, Vec<Attempt>)> {
        let uuid = parse_message_id(id)?;
        let found = self
            .store
            .message(uuid)
            .await?
            .ok_or_else(|| ServiceError::UnknownMessage(id.to_string()))?;
        if found.0.user_id != Some(caller.id) {
            require(caller, QUEUE_WATCHERS, "viewing another user's message")?;
        }
        Ok(found)
    }

    pub async fn count_by_state(&self, caller: &User) -> ServiceResult<StateCounts> {
        require(caller, QUEUE_WATCHERS, "viewing queue counts")?;
        Ok(self.store.count_by_state().await?)
    }

    /// Puts failed messages back to `pending`. Owners only; `force` also retries inhibited ones.
    pub async fn retry_messages(
        &self,
        caller: &User,
        ids: &[String],
        force: bool,
    ) -> ServiceResult<RetryReport> {
        require(caller, OWNERS, "retrying messages")?;
        let mut report = RetryReport::default();
        let mut wanted = Vec::new();
        for id in ids {
            let uuid = parse_message_id(id)?;
            let Some((message, _)) = self.store.message(uuid).await? else {
                return Err(ServiceError::UnknownMessage(id.clone()));
            };
            match queue::can_retry(message.status, force) {
                Ok(()) => wanted.push(uuid),
                Err(why) => report.skipped.push((uuid, why)),
            }
        }
        let reason = format!("retried by {}", caller.username);
        let subject = match wanted.as_slice() {
            [one] => one.to_string(),
            many => format!("{} messages", many.len()),
        };
        let audit = self.audit_entry(
            &caller.username,
            actions::RETRY,
            subject,
            serde_json::json!({"ids": wanted, "force": force}),
        );
        report.retried = self
            .store
            .retry_messages(&wanted, force, &reason, Some(&audit))
            .await?;
        for id in wanted.iter().filter(|id| !report.retried.contains(id)) {
            report
                .skipped
                .push((*id, "changed state while retrying; check it again".into()));
        }
        Ok(report)
    }

    /// Retries every failed message matching `filter` (its statuses must be failure states,
    /// or inhibited with `force`). Owners only. Returns how many.
    pub async fn retry_matching(
        &self,
        caller: &User,
        filter: &MessageFilter,
        force: bool,
    ) -> ServiceResult<usize> {
        require(caller, OWNERS, "retrying messages")?;
        for s in &filter.statuses {
            if queue::can_retry(*s, force).is_err() {
                return Err(ServiceError::Invalid(format!(
                    "cannot retry messages in state {s}: only temporary_failure and permanent_failure (or inhibited with --force) can be retried"
                )));
            }
        }
        if let Some(event) = &filter.event
            && !event.contains('*')
        {
            self.event_named(event).await?;
        }
        let subject = audit::describe_filter(filter, None);
        self.retry_pages(caller, force, subject, |page| {
            self.store.list_messages(filter, page)
        })
        .await
    }

    /// Retries every message the pages of `next_page` hold, a keyset page of
    /// [`RETRY_PAGE`] at a time until one comes back empty, as retried by `caller`; how many
    /// were put back to `pending`. Each page that changed is an audit row naming `filter`.
    /// The caller checks roles and states first.
    pub(super) async fn retry_pages<'a, F, Fut>(
        &'a self,
        caller: &User,
        force: bool,
        filter: String,
        mut next_page: F,
    ) -> ServiceResult<usize>
    where
        F: FnMut(PageRequest) -> Fut,
        Fut: Future<Output = Result<Vec<Message>, StoreError>> + 'a,
    {
        let reason = format!("retried by {}", caller.username);
        let audit = self.audit_entry(
            &caller.username,
            actions::RETRY,
            filter,
            serde_json::json!({"by_filter": true, "force": force}),
        );
        let mut total = 0;
        let mut before = None;
        loop {
            let page = next_page(PageRequest {
                before,
                limit: RETRY_PAGE,
            })
            .await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            let ids: Vec<Uuid> = page.iter().map(|m| m.id).collect();
            let retried = self
                .store
                .retry_messages(&ids, force, &reason, Some(&audit))
                .await?;
            total += retried.len();
        }
        Ok(total)
    }

    /// Deletes messages last changed before `cutoff`, with their attempts, and the audit rows
    /// written before it (retention, as housekeeping does); the purge itself is then
    /// recorded. Owners only.
    pub async fn purge_messages(
        &self,
        caller: &User,
        cutoff: DateTime<Utc>,
    ) -> ServiceResult<PurgeReport> {
        require(caller, OWNERS, "purging messages")?;
        let audit_rows = self.store.purge_audit(cutoff).await?;
        let audit = self.audit_entry(
            &caller.username,
            actions::PURGE,
            format!("changed before {}", cutoff.to_rfc3339()),
            serde_json::json!({"audit_rows": audit_rows}),
        );
        let messages = self.store.purge_messages(cutoff, Some(&audit)).await?;
        Ok(PurgeReport {
            messages,
            audit_rows,
        })
    }
}
