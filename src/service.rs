//! Every operation a person can do, with the permission check in one place.
//!
//! The CLI and the console both call this layer; neither talks to the store directly. Each
//! operation takes the caller (an existing, active [`User`]) and checks its roles first.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

mod doctor;
pub mod read_models;

use crate::catalog;
use crate::config::Config;
use crate::labels::{self, LabelError};
use crate::model::{
    Attempt, EventTemplate, Message, Method, Preference, Role, Settings, User, UserStatus,
};
use crate::queue;
use crate::render::{OverrideError, Overrides};
use crate::routing::{self, EnqueueRequest, RoutingSettings};
use crate::store::{
    EnqueueOutcome, InboxEntry, InboxFilter, MessageFilter, NewMessage, NewUser, PageRequest,
    StateCounts, Store, StoreError,
};

/// Why an operation was refused or failed; the text is what the person reads.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("permission denied: {action} requires the {needed} role ({user} has: {has})")]
    Forbidden {
        action: String,
        needed: String,
        user: String,
        has: String,
    },
    #[error("unknown event `{name}`{hint}; `herald events list` shows the catalog")]
    UnknownEvent { name: String, hint: String },
    #[error("unknown user `{name}`{hint}; `herald users list` shows who exists")]
    UnknownUser { name: String, hint: String },
    #[error("no message with id {0}")]
    UnknownMessage(String),
    #[error("{0}")]
    Invalid(String),
    /// A message refused at enqueue for its labels (DESIGN §3); nothing was written.
    #[error(transparent)]
    Labels(#[from] LabelError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// What to enqueue, as a producer states it (strings are validated here).
#[derive(Debug, Clone, Default)]
pub struct EnqueueInput {
    pub event: String,
    pub users: Vec<String>,
    pub actor: Option<String>,
    pub labels: Vec<String>,
    /// JSON object text.
    pub data: Option<String>,
}

/// The messages created, the ids that made others duplicates, and routing warnings.
#[derive(Debug, Clone)]
pub struct EnqueueReport {
    pub enqueued: Vec<Message>,
    pub duplicates: Vec<Uuid>,
    pub warnings: Vec<String>,
}

/// How a retry request went, id by id.
#[derive(Debug, Clone, Default)]
pub struct RetryReport {
    pub retried: Vec<Uuid>,
    /// Ids not retried, with why (already sent, pending, inhibited…).
    pub skipped: Vec<(Uuid, String)>,
}

/// One event as a user sees it in their opt-out list.
#[derive(Debug, Clone)]
pub struct OptOutEntry {
    pub event: EventTemplate,
    /// Whether the user receives it, after their preference and the event default.
    pub enabled: bool,
    /// The user's explicit preference, if any (`Some(true)` = opted out).
    pub preference: Option<bool>,
}

/// The operations, over a store and a loaded configuration.
pub struct Service {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    /// The config's template overrides, which enqueue renders every message with; an override
    /// that does not compile refuses enqueues (and `serve`), not the service.
    overrides: Result<Overrides, OverrideError>,
}

/// Roles allowed to see every message and the pause switch.
const QUEUE_WATCHERS: &[Role] = &[Role::Owner, Role::Oncall];
const USER_MANAGERS: &[Role] = &[Role::Owner, Role::UserAdmin];
const OWNERS: &[Role] = &[Role::Owner];

/// Refuses unless the caller holds one of `roles` (owners pass every check).
fn require(caller: &User, roles: &[Role], action: &str) -> ServiceResult<()> {
    if caller.has_role(Role::Owner) || roles.iter().any(|r| caller.has_role(*r)) {
        return Ok(());
    }
    Err(ServiceError::Forbidden {
        action: action.to_string(),
        needed: roles
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" or "),
        user: caller.username.clone(),
        has: if caller.roles.is_empty() {
            "no roles".to_string()
        } else {
            caller
                .roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        },
    })
}

/// `; did you mean `x`?` when a known name is close to the typo.
fn did_you_mean<'a>(typo: &str, known: impl Iterator<Item = &'a str>) -> String {
    known
        .map(|k| (edit_distance(typo, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

impl Service {
    /// Wraps a migrated store: syncs the built-in catalog and the users declared in the config,
    /// and checks that every target subscribes to known events.
    pub async fn start(store: Arc<dyn Store>, config: Arc<Config>) -> ServiceResult<Service> {
        let events = catalog::builtin();
        let known = |name: &str| events.iter().any(|e| e.name == name);
        for target in config.target_refs() {
            for event in &target.notify_on {
                if !known(event) {
                    let whose = target
                        .owner
                        .as_ref()
                        .map_or(String::new(), |o| format!("user `{o}`: "));
                    return Err(ServiceError::Invalid(format!(
                        "config: {whose}target `{}` notify_on: unknown event `{event}`{}",
                        target.name,
                        did_you_mean(event, events.iter().map(|e| e.name.as_str()))
                    )));
                }
            }
        }
        store.upsert_catalog(events).await?;
        for u in &config.users {
            store
                .upsert_user(&NewUser {
                    username: u.username.clone(),
                    email: u.email.clone(),
                    name: u.name.clone().unwrap_or_default(),
                    roles: u.roles.clone(),
                })
                .await?;
        }
        let overrides = Overrides::from_config(&config);
        Ok(Service {
            store,
            config,
            overrides,
        })
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The caller named by `--as` / `HERALD_USER` / the OS user: it must exist and be active.
    pub async fn identify(&self, username: &str) -> ServiceResult<User> {
        let user = self.user_named(username).await?;
        if !user.is_active() {
            return Err(ServiceError::Invalid(format!(
                "user `{username}` is suspended and cannot act; an owner can run `herald users activate {username}`"
            )));
        }
        Ok(user)
    }

    async fn user_named(&self, username: &str) -> ServiceResult<User> {
        if let Some(user) = self.store.user_by_username(username).await? {
            return Ok(user);
        }
        let users = self.store.list_users().await?;
        Err(ServiceError::UnknownUser {
            name: username.to_string(),
            hint: did_you_mean(username, users.iter().map(|u| u.username.as_str())),
        })
    }

    async fn event_named(&self, name: &str) -> ServiceResult<EventTemplate> {
        if let Some(event) = self.store.template_by_name(name).await? {
            return Ok(event);
        }
        let events = self.store.list_templates().await?;
        Err(ServiceError::UnknownEvent {
            name: name.to_string(),
            hint: did_you_mean(name, events.iter().map(|e| e.spec.name.as_str())),
        })
    }

    // ---- events and delivery preferences -------------------------------------------------

    /// The catalog; everyone may read it.
    pub async fn events(&self, _caller: &User) -> ServiceResult<Vec<EventTemplate>> {
        Ok(self.store.list_templates().await?)
    }

    /// One event of the catalog, with its labels; everyone may read it.
    pub async fn event(&self, _caller: &User, name: &str) -> ServiceResult<EventTemplate> {
        self.event_named(name).await
    }

    /// The deployment's default method (`notifications.method`).
    pub fn default_method(&self) -> Method {
        self.config.notifications.method
    }

    /// Sets (or with `None`, resets to the default) an event's delivery method. Owners only.
    pub async fn set_event_method(
        &self,
        caller: &User,
        event: &str,
        method: Option<Method>,
    ) -> ServiceResult<EventTemplate> {
        require(caller, OWNERS, "changing an event's delivery method")?;
        if method == Some(Method::Inbox) {
            return Err(ServiceError::Invalid(
                "inbox cannot be an event's delivery method: every event already goes to the inbox when notifications.inbox_enabled is true; choose smtp, webhook, slack_webhook or slack_api".into(),
            ));
        }
        let template = self.event_named(event).await?;
        self.store.set_template_method(template.id, method).await?;
        Ok(EventTemplate { method, ..template })
    }

    // ---- enqueue --------------------------------------------------------------------------

    /// Routes an event to its recipients and queues the messages, all or nothing. Owners only:
    /// producers run as an owner account.
    pub async fn enqueue(
        &self,
        caller: &User,
        input: &EnqueueInput,
    ) -> ServiceResult<EnqueueReport> {
        require(caller, OWNERS, "enqueueing events")?;
        self.enqueue_unchecked(caller, input, true, None).await
    }

    async fn enqueue_unchecked(
        &self,
        caller: &User,
        input: &EnqueueInput,
        dedupe: bool,
        only_method: Option<Method>,
    ) -> ServiceResult<EnqueueReport> {
        let labels = routing::parse_labels(&input.labels)
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let data = parse_data(input.data.as_deref())?;
        let event = self.event_named(&input.event).await?;

        let mut explicit = Vec::with_capacity(input.users.len());
        for name in &input.users {
            let user = self.user_named(name).await?;
            if !explicit.iter().any(|u: &User| u.id == user.id) {
                explicit.push(user);
            }
        }
        let actor_name = input.actor.clone().or_else(|| self.config.username.clone());
        let actor = match &actor_name {
            Some(name) => {
                let actor = self.user_named(name).await?;
                if !actor.is_active() {
                    return Err(ServiceError::Invalid(format!(
                        "actor `{name}` is suspended: their targets receive nothing; activate them or drop --actor"
                    )));
                }
                Some(actor)
            }
            None => None,
        };
        let audit_owner = match labels.get("owner") {
            Some(owner) if input.event == "audit_failure" => {
                self.store.user_by_username(owner).await?
            }
            _ => None,
        };
        let audience = self
            .store
            .active_users_with_roles(&event.spec.audience_roles)
            .await?;
        let recipient_ids: Vec<Uuid> = explicit.iter().chain(&audience).map(|u| u.id).collect();
        let preferences = self
            .store
            .preferences_for_template(event.id, &recipient_ids)
            .await?;
        let targets = self.config.target_refs();
        let settings = RoutingSettings {
            default_method: self.config.notifications.method,
            inbox_enabled: self.config.notifications.inbox_enabled,
            configured: self.config.configured_methods(),
        };
        let now = Utc::now();
        let plan = routing::plan(&EnqueueRequest {
            event: &event,
            explicit: &explicit,
            audience: &audience,
            actor: actor.as_ref(),
            audit_owner: audit_owner.as_ref(),
            labels: &labels,
            data: &data,
            targets: &targets,
            preferences: &preferences,
            settings: &settings,
            dedupe,
            day: now.date_naive(),
        });
        let planned = plan.messages.into_iter();
        let planned: Vec<_> = match only_method {
            None => planned.collect(),
            // A test by one method: the user's row for it, whatever their routing says.
            Some(method) => planned
                .take(1)
                .map(|p| routing::PlannedMessage {
                    method,
                    dedupe_hash: None,
                    ..p
                })
                .collect(),
        };
        self.queue_planned(caller, &event, &labels, planned, plan.warnings)
            .await
    }

    /// Admits routed messages of `event` sent with `labels` ([`Service::admit`]), inserts them
    /// (one transaction) and reads back the ones created. Every path into the queue comes here.
    async fn queue_planned(
        &self,
        caller: &User,
        event: &EventTemplate,
        labels: &BTreeMap<String, String>,
        planned: Vec<routing::PlannedMessage>,
        warnings: Vec<String>,
    ) -> ServiceResult<EnqueueReport> {
        self.admit(event, labels, &planned)?;
        for warning in &warnings {
            tracing::warn!(event = %event.spec.name, "{warning}");
        }
        let template_id = event.id;
        let now = Utc::now();
        let messages: Vec<NewMessage> = planned
            .into_iter()
            .map(|p| NewMessage {
                id: Uuid::now_v7(),
                template_id,
                user_id: p.user_id,
                target: p.target,
                method: p.method,
                status: p.status,
                status_reason: p.status_reason,
                created_by: caller.username.clone(),
                payload: p.payload,
                dedupe_hash: p.dedupe_hash,
                created_at: now,
            })
            .collect();
        let EnqueueOutcome {
            enqueued,
            duplicates,
        } = self.store.enqueue(&messages).await?;
        let mut created = Vec::with_capacity(enqueued.len());
        for id in &enqueued {
            if let Some((m, _)) = self.store.message(*id).await? {
                created.push(m);
            }
        }
        Ok(EnqueueReport {
            enqueued: created,
            duplicates,
            warnings,
        })
    }

    /// Labels at the door (DESIGN §3): refuses, before anything is written, a message without a
    /// label its event requires, or one whose templates do not render for a planned recipient
    /// with the config's overrides, as the dispatcher would render it.
    fn admit(
        &self,
        event: &EventTemplate,
        labels: &BTreeMap<String, String>,
        planned: &[routing::PlannedMessage],
    ) -> ServiceResult<()> {
        labels::check_required(&event.spec, labels)?;
        let overrides = self.overrides.as_ref().map_err(|e| {
            ServiceError::Invalid(format!(
                "cannot check the message against the config's template overrides: {e}; fix \
                 the override (`herald doctor` checks every template)"
            ))
        })?;
        let messages = planned.iter().map(|p| (p.target.as_deref(), &p.payload));
        labels::check_renders(event, overrides, messages)?;
        Ok(())
    }

    /// Sends `test_notification` to the caller, bypassing dedupe: by `method` only when given,
    /// else by the caller's normal routing (the event's method plus the inbox copy).
    pub async fn send_test(
        &self,
        caller: &User,
        method: Option<Method>,
    ) -> ServiceResult<EnqueueReport> {
        let input = EnqueueInput {
            event: "test_notification".into(),
            users: vec![caller.username.clone()],
            actor: None,
            labels: vec![format!("initiator={}", caller.username)],
            data: None,
        };
        let Some(method) = method else {
            return self.enqueue_unchecked(caller, &input, false, None).await;
        };
        if !self.config.configured_methods().contains(&method) {
            return Err(ServiceError::Invalid(format!(
                "{method} is not configured on this deployment ({}); `herald doctor` checks every channel",
                match method {
                    Method::Smtp => "set email.smarthost and email.from",
                    Method::Webhook => "set notifications.webhook.endpoint",
                    _ => "Slack reaches people only through [[targets]]",
                }
            )));
        }
        self.enqueue_unchecked(caller, &input, false, Some(method))
            .await
    }

    /// Sends an ad-hoc `custom_notification` to the caller (Coder's `notifications custom`).
    pub async fn send_custom(
        &self,
        caller: &User,
        title: &str,
        message: &str,
    ) -> ServiceResult<EnqueueReport> {
        if title.trim().is_empty() && message.trim().is_empty() {
            return Err(ServiceError::Invalid(
                "a custom notification needs a title or a message: herald notifications custom \"Build done\" \"All tests passed\"".into(),
            ));
        }
        let input = EnqueueInput {
            event: "custom_notification".into(),
            users: vec![caller.username.clone()],
            actor: None,
            labels: vec![
                format!("custom_title={title}"),
                format!("custom_message={message}"),
            ],
            data: None,
        };
        self.enqueue_unchecked(caller, &input, false, None).await
    }

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
            Err(ServiceError::Invalid(format!(
                "no inbox entry {id} in {}'s inbox",
                caller.username
            )))
        }
    }

    // ---- pause killswitch -----------------------------------------------------------------

    pub async fn notifier_status(&self, _caller: &User) -> ServiceResult<Settings> {
        Ok(self.store.settings().await?)
    }

    /// Pauses or resumes delivery on every replica. Owners and on-call.
    pub async fn set_paused(&self, caller: &User, paused: bool) -> ServiceResult<()> {
        let action = if paused {
            "pausing notifications"
        } else {
            "resuming notifications"
        };
        require(caller, QUEUE_WATCHERS, action)?;
        self.store.set_paused(paused).await?;
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
        report.retried = self.store.retry_messages(&wanted, force, &reason).await?;
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
        let reason = format!("retried by {}", caller.username);
        let mut total = 0;
        let mut before = None;
        loop {
            let page = self
                .store
                .list_messages(
                    filter,
                    PageRequest {
                        before,
                        limit: 1000,
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            let ids: Vec<Uuid> = page.iter().map(|m| m.id).collect();
            total += self.store.retry_messages(&ids, force, &reason).await?.len();
        }
        Ok(total)
    }

    /// Deletes messages last changed before `cutoff`, with their attempts. Owners only.
    pub async fn purge_messages(&self, caller: &User, cutoff: DateTime<Utc>) -> ServiceResult<u64> {
        require(caller, OWNERS, "purging messages")?;
        Ok(self.store.purge_messages(cutoff).await?)
    }

    // ---- users ----------------------------------------------------------------------------

    /// Adds a user. While no owner exists anyone may (to create the first owner); afterwards
    /// owners and user-admins, and only owners may grant `owner`.
    pub async fn add_user(&self, caller: Option<&User>, new: NewUser) -> ServiceResult<User> {
        validate_username(&new.username)?;
        if !new.email.contains('@') {
            return Err(ServiceError::Invalid(format!(
                "`{}` is not an email address (expected e.g. bob@example.com)",
                new.email
            )));
        }
        if self.store.owner_exists().await? {
            let caller = caller.ok_or_else(|| {
                ServiceError::Invalid(
                    "adding users requires an identity: pass --as USER or set HERALD_USER".into(),
                )
            })?;
            require(caller, USER_MANAGERS, "adding users")?;
            if new.roles.contains(&Role::Owner) {
                require(caller, OWNERS, "granting the owner role")?;
            }
        }
        Ok(self.store.insert_user(&new).await?)
    }

    /// Whether `users add` may run without an identity (no owner yet).
    pub async fn bootstrapping(&self) -> ServiceResult<bool> {
        Ok(!self.store.owner_exists().await?)
    }

    /// Every user with their email, roles and status; owners and user-admins. On-call is
    /// refused rather than shown a list with emails blanked: on-call sees the queue and pauses,
    /// nothing else (DESIGN §3), and needs no user list for it — messages and the console's
    /// queue filters already carry the recipients' usernames.
    pub async fn list_users(&self, caller: &User) -> ServiceResult<Vec<User>> {
        require(caller, USER_MANAGERS, "listing users")?;
        Ok(self.store.list_users().await?)
    }

    /// Suspends or reactivates a user. Owners and user-admins; only owners touch owners.
    pub async fn set_user_status(
        &self,
        caller: &User,
        username: &str,
        status: UserStatus,
    ) -> ServiceResult<User> {
        let action = match status {
            UserStatus::Active => "activating users",
            UserStatus::Suspended => "suspending users",
        };
        require(caller, USER_MANAGERS, action)?;
        let user = self.user_named(username).await?;
        if user.has_role(Role::Owner) {
            require(caller, OWNERS, "changing an owner's status")?;
        }
        if status == UserStatus::Suspended && user.id == caller.id {
            return Err(ServiceError::Invalid(
                "you cannot suspend yourself; ask another owner or user-admin".into(),
            ));
        }
        self.store.set_user_status(user.id, status).await?;
        Ok(User { status, ..user })
    }

    // ---- opt-outs -------------------------------------------------------------------------

    /// The user whose opt-outs are meant: yourself, or (owners only) someone else.
    async fn opt_out_subject(&self, caller: &User, user: Option<&str>) -> ServiceResult<User> {
        match user {
            Some(name) if name != caller.username => {
                require(
                    caller,
                    OWNERS,
                    "changing or viewing another user's opt-outs",
                )?;
                self.user_named(name).await
            }
            _ => Ok(caller.clone()),
        }
    }

    /// Every event with whether `user` (default: the caller) receives it.
    pub async fn opt_outs(
        &self,
        caller: &User,
        user: Option<&str>,
    ) -> ServiceResult<(User, Vec<OptOutEntry>)> {
        let subject = self.opt_out_subject(caller, user).await?;
        let prefs = self.store.preferences_of_user(subject.id).await?;
        let entries = self
            .store
            .list_templates()
            .await?
            .into_iter()
            .map(|event| {
                let preference = prefs
                    .iter()
                    .find(|p| p.template_id == event.id)
                    .map(|p| p.disabled);
                let enabled = match preference {
                    Some(disabled) => !disabled,
                    None => event.spec.enabled_by_default,
                };
                OptOutEntry {
                    event,
                    enabled,
                    preference,
                }
            })
            .collect();
        Ok((subject, entries))
    }

    /// Opts `user` (default: the caller) out of `event` (`disabled = true`) or back in.
    pub async fn set_opt_out(
        &self,
        caller: &User,
        event: &str,
        user: Option<&str>,
        disabled: bool,
    ) -> ServiceResult<User> {
        let subject = self.opt_out_subject(caller, user).await?;
        let event = self.event_named(event).await?;
        self.store
            .set_preference(Preference {
                user_id: subject.id,
                template_id: event.id,
                disabled,
            })
            .await?;
        Ok(subject)
    }
}

fn parse_data(data: Option<&str>) -> ServiceResult<serde_json::Value> {
    let Some(text) = data else {
        return Ok(serde_json::Value::Object(Default::default()));
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err(ServiceError::Invalid(
            "--data must be a JSON object, e.g. --data '{\"error\": \"boom\"}'".into(),
        )),
        Err(e) => Err(ServiceError::Invalid(format!(
            "--data is not valid JSON ({e}); pass an object, e.g. --data '{{\"error\": \"boom\"}}'"
        ))),
    }
}

fn parse_message_id(id: &str) -> ServiceResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| {
        ServiceError::Invalid(format!(
            "`{id}` is not a message id (a UUID such as 0193b3c4-…); `herald messages list` shows ids"
        ))
    })
}

fn validate_username(name: &str) -> ServiceResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "`{name}` is not a valid username: use 1–64 letters, digits, `_`, `-` or `.`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        let known = ["workspace_deleted", "workspace_created", "run_failure"];
        assert_eq!(
            did_you_mean("workspace_deleteed", known.iter().copied()),
            " (did you mean `workspace_deleted`?)"
        );
        assert_eq!(did_you_mean("zzz", known.iter().copied()), "");
    }

    #[test]
    fn data_must_be_a_json_object() {
        assert!(parse_data(Some("{\"a\": 1}")).is_ok());
        assert!(
            parse_data(Some("[1]"))
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
        assert!(
            parse_data(Some("{oops"))
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn usernames_are_checked() {
        assert!(validate_username("bob.smith-2").is_ok());
        assert!(validate_username("bob smith").is_err());
        assert!(validate_username("").is_err());
    }
}
