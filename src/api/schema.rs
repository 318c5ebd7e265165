//! The OpenAPI schemas of what the API sends: the JSON bodies it answers with, each named as a
//! component of `GET /api/v1/openapi.json`.
//!
//! The answers built in `service::json` (shared with the CLI's `--json`) and the model's rows
//! are described here field for field, with the real types, so the document says exactly what
//! is sent; `tests/it/api_openapi.rs` checks real answers against these schemas, so a field
//! added to one side and not the other fails it. The string enums take their values from the
//! model's own `ALL`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use crate::model::{EventKind, MessageState, Method, Role};

/// Every error: `{"error": "…"}`, one sentence saying what went wrong and what to do.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
}

/// A string schema whose values are `values`, described as `what`.
fn string_enum(what: &str, values: impl Iterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(what))
        .enum_values(Some(values))
        .into()
}

/// Implements the schema of a model string enum from its `ALL` and `as_str`.
macro_rules! model_enum_schema {
    ($($name:ident: $what:literal),+ $(,)?) => {$(
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                string_enum($what, $name::ALL.iter().map(|value| value.as_str()))
            }
        }

        impl ToSchema for $name {}
    )+};
}

model_enum_schema!(
    Method: "How a message is delivered.",
    MessageState: "Where a message is in its life.",
    Role: "A user's role.",
    EventKind: "A built-in catalog event (`system`) or an ad-hoc one (`custom`).",
);

/// A queued notification: one recipient (a user or a target) and one delivery method.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Message {
    pub id: Uuid,
    /// The catalog event's id.
    pub notification_template_id: Uuid,
    /// The catalog event's name.
    pub event: String,
    /// The recipient user; null for a message to a target.
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    /// The target's qualified name (`name` or `owner/name`) for a target message.
    pub target: Option<String>,
    pub method: Method,
    pub status: MessageState,
    /// Why it is in its status (an inhibition or the last failure).
    pub status_reason: Option<String>,
    /// Who enqueued it.
    pub created_by: String,
    /// What the templates render: `labels`, `data` and what routing added.
    pub payload: Value,
    pub attempt_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set while a dispatcher holds it.
    pub leased_until: Option<DateTime<Utc>>,
    /// When a temporary failure is tried again.
    pub next_retry_after: Option<DateTime<Utc>>,
    /// Seconds from enqueue to the first attempt, once attempted.
    pub queued_seconds: Option<f64>,
    /// The daily dedupe key.
    pub dedupe_hash: Option<String>,
}

/// One delivery tried.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Attempt {
    pub message_id: Uuid,
    /// 1 for the first attempt.
    pub attempt_number: i32,
    /// The dispatcher replica that tried.
    pub notifier_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: MessageState,
    pub reason: Option<String>,
}

/// A message with its delivery attempts, as `herald messages show --json` prints it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct MessageWithAttempts {
    #[schema(inline)]
    #[serde(flatten)]
    pub message: Message,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
}

/// A call to action shown with a notification.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Action {
    pub label: String,
    pub url: String,
}

/// A label an event's templates read.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Label {
    /// The key in `labels`.
    pub name: String,
    /// A report without it is refused (422).
    pub required: bool,
    /// What the value is, for the producer.
    pub description: String,
}

/// A catalog event with its label schema, as `herald events list --json` prints it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct Event {
    pub id: Uuid,
    /// The name reports use, e.g. `workspace_deleted`.
    pub name: String,
    /// Display group, e.g. `Workspace Events`.
    pub group: String,
    pub title_template: String,
    /// Markdown.
    pub body_template: String,
    pub actions: Vec<Action>,
    /// Roles that receive it besides the users a report names.
    pub audience_roles: Vec<Role>,
    pub enabled_by_default: bool,
    /// The admin's method for this event; null: the deployment's default.
    pub method: Option<Method>,
    /// The method its messages get.
    pub effective_method: Method,
    pub kind: EventKind,
    /// False when never copied to the inbox (one-time passcodes).
    pub inbox: bool,
    /// True when it reaches a suspended user (events about their own account).
    pub reaches_suspended: bool,
    /// The labels its templates read, in catalog order.
    pub labels: Vec<Label>,
}

/// Whether a user receives one event, as `herald optout list --json` prints each row.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct OptOut {
    pub username: String,
    pub event: String,
    pub group: String,
    /// Whether the user receives it, after their preference and the event's default.
    pub enabled: bool,
    /// The user's own choice: true opted out, false opted in, null none.
    pub disabled: Option<bool>,
    pub enabled_by_default: bool,
}

/// The pause switch, as `herald notifications status --json` prints it.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct NotifierStatus {
    /// True while no replica delivers.
    pub notifier_paused: bool,
    pub updated_at: DateTime<Utc>,
}

/// A notification in the caller's inbox.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct InboxEntry {
    pub id: Uuid,
    pub user_id: Uuid,
    pub template_id: Uuid,
    pub event: String,
    pub message_id: Option<Uuid>,
    pub title: String,
    /// Markdown.
    pub content: String,
    pub actions: Vec<Action>,
    /// Null while unread.
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A report's outcome: the messages made, the ids of those that made others duplicates, and
/// routing's warnings.
#[derive(Debug, Serialize, ToSchema)]
pub struct Enqueued {
    /// The messages made, as `GET /api/v1/messages` lists them.
    #[schema(value_type = Vec<Message>)]
    pub enqueued: Vec<crate::model::Message>,
    /// Messages already queued today with the same content, which the report did not repeat.
    pub duplicates: Vec<Uuid>,
    /// Routing's remarks, e.g. a method this deployment has not configured.
    pub warnings: Vec<String>,
}

/// A page of messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    #[schema(value_type = Vec<Message>)]
    pub messages: Vec<crate::model::Message>,
    /// Set when the page is full: pass it as `after` for the next page.
    pub next: Option<Uuid>,
}

/// One operator action of the audit trail.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub struct AuditRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The Herald user who acted.
    pub actor: String,
    /// What was done, `noun.verb`: `messages.retry`, `notifications.pause`, `tokens.revoke`…
    pub action: String,
    /// What it was done to: a message id, a user, `method:M` or `target:T`, a token's name, a
    /// key's fingerprint.
    pub subject: String,
    /// The rest: `via` (cli, console, api, ssh), and ids, counts or whose; never a secret.
    pub detail: Value,
}

/// A page of the audit trail, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    #[schema(value_type = Vec<AuditRow>)]
    pub rows: Vec<crate::service::AuditRecord>,
    /// Set when the page is full: pass it as `after` for the next page.
    pub next: Option<Uuid>,
}

/// The messages set back to `pending`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    pub retried: Vec<Uuid>,
}

/// An inbox entry marked read.
#[derive(Debug, Serialize, ToSchema)]
pub struct MarkedRead {
    /// The entry's id, as given.
    pub id: String,
    /// Always true.
    pub read: bool,
}

/// `/healthz` and `/readyz`: `ok` or `ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (alive) or `ready` (the store answers).
    pub status: &'static str,
}
