//! Every operation a person can do, with the permission check in one place.
//!
//! The CLI and the console both call this layer; neither talks to the store directly. Each
//! operation takes the caller (an existing, active [`User`]) and checks its roles first.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;

mod audit;
mod batch;
pub mod channel_health;
mod channels;
mod doctor;
mod enqueue;
mod explain;
pub mod json;
mod lookups;
mod messages;
pub mod read_models;
mod ssh_keys;
mod tokens;
mod users;

pub use crate::routing::Outcome as RoutingOutcome;
pub use audit::{EVERYTHING, FrontEnd, actions, audit_detail_words, audit_via};
pub use batch::Prepared;
pub use explain::{ExplainedDecision, Explanation};
pub use messages::PurgeReport;

use crate::catalog;
use crate::config::Config;
use crate::labels::{self, LabelError};
use crate::model::{
    Attempt, EventTemplate, Message, Method, Preference, Role, Settings, User, UserStatus,
};
use crate::queue;
use crate::render::{OverrideError, Overrides};
use crate::routing::{self, EnqueueRequest, RoutingSettings};
use crate::store::{EnqueueOutcome, NewMessage, Store};

pub use ssh_keys::{ParsedSshKey, SshKeyInfo, fingerprint as ssh_fingerprint, parse_public_key};

/// The store's plain types that are part of the service's API, so front ends never import
/// the store (only `store::open`).
pub use crate::store::{
    AuditFilter, AuditRecord, InboxEntry, InboxFilter, MessageFilter, NewUser, PageRequest,
    REASONS_WINDOW, ReasonCount, Replica, StateCounts, StoreError, TokenInfo, Undeliverable,
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
    /// Something else named by id is not there, or not the caller's (an HTTP API 404).
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// The request's credentials name nobody who may act (an HTTP API 401); the text says
    /// how to get working ones.
    #[error("{0}")]
    Unauthenticated(String),
    /// What would be created exists already (an HTTP API 409); the text says what to do.
    #[error("{0}")]
    Conflict(String),
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
    /// Where the calls come from, for the audit trail ([`Service::through`]).
    front_end: FrontEnd,
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
            front_end: FrontEnd::default(),
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
        let found = self.store.user_by_username(username).await?;
        found_or_hint(found, username, self.store.list_users()).await
    }

    async fn event_named(&self, name: &str) -> ServiceResult<EventTemplate> {
        found_or_hint(
            self.store.template_by_name(name).await?,
            name,
            self.store.list_templates(),
        )
        .await
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
        let audit = self.audit_entry(
            &caller.username,
            actions::EVENT_METHOD,
            &template.spec.name,
            serde_json::json!({"method": method.map_or("default", Method::as_str)}),
        );
        self.store
            .set_template_method(template.id, method, Some(&audit))
            .await?;
        Ok(EventTemplate { method, ..template })
    }
}

/// What `user_named` and `event_named` look up: the name it goes by, and the error for a name
/// that matches nothing.
trait Named: Sized {
    fn key(&self) -> &str;
    fn unknown(name: String, hint: String) -> ServiceError;
}

impl Named for User {
    fn key(&self) -> &str {
        &self.username
    }
    fn unknown(name: String, hint: String) -> ServiceError {
        ServiceError::UnknownUser { name, hint }
    }
}

impl Named for EventTemplate {
    fn key(&self) -> &str {
        &self.spec.name
    }
    fn unknown(name: String, hint: String) -> ServiceError {
        ServiceError::UnknownEvent { name, hint }
    }
}

/// What a lookup by `name` `found`; when nothing, the unknown-name error with a did-you-mean
/// hint among every `known` one (read only then).
async fn found_or_hint<T: Named>(
    found: Option<T>,
    name: &str,
    known: impl Future<Output = Result<Vec<T>, StoreError>>,
) -> ServiceResult<T> {
    if let Some(found) = found {
        return Ok(found);
    }
    let known = known.await?;
    let hint = did_you_mean(name, known.iter().map(|k| k.key()));
    Err(T::unknown(name.to_string(), hint))
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

/// 1–64 ASCII letters, digits, `_`, `-` or `.`: the names of users and of API tokens.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn validate_username(name: &str) -> ServiceResult<()> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(ServiceError::Invalid(format!(
            "`{name}` is not a valid username: use 1–64 letters, digits, `_`, `-` or `.`"
        )))
    }
}

#[cfg(test)]
mod tests;
