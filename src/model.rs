//! Plain domain types shared by every layer: events, users, roles, methods, messages.
//!
//! Nothing here does I/O. String forms (`as_str` / `FromStr`) are the contract used in the
//! store, the CLI and JSON output (DESIGN §3, §5, §8).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Declares a string-backed enum with `as_str`, `ALL`, `Display`, `FromStr` and serde impls.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored / printed form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        what: $what,
                        value: s.to_string(),
                        expected: vec![$($text),+],
                    }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A string that is not one of an enum's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; expected one of: {}", expected.join(", "))]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: Vec<&'static str>,
}

string_enum!(
    /// What a user may do and which events reach them (DESIGN §3).
    Role, "role" {
        Owner => "owner",
        UserAdmin => "user-admin",
        TemplateAdmin => "template-admin",
        Oncall => "oncall",
        Member => "member",
    }
);

string_enum!(
    /// Whether a user receives notifications and may act.
    UserStatus, "user status" {
        Active => "active",
        Suspended => "suspended",
    }
);

string_enum!(
    /// How a message is delivered.
    Method, "delivery method" {
        Smtp => "smtp",
        Webhook => "webhook",
        SlackWebhook => "slack_webhook",
        SlackApi => "slack_api",
        Inbox => "inbox",
    }
);

string_enum!(
    /// Where a message is in its life (DESIGN §5).
    MessageState, "message status" {
        Pending => "pending",
        Leased => "leased",
        Sent => "sent",
        TemporaryFailure => "temporary_failure",
        PermanentFailure => "permanent_failure",
        Inhibited => "inhibited",
    }
);

string_enum!(
    /// What a scoped pause holds (DESIGN §14): every message of one method, or of one target.
    PauseScope, "pause scope" {
        Method => "method",
        Target => "target",
    }
);

string_enum!(
    /// Built-in catalog events versus ad-hoc ones.
    EventKind, "event kind" {
        System => "system",
        Custom => "custom",
    }
);

string_enum!(
    /// The kind of a SQLMesh-style notification target; each maps to one [`Method`].
    TargetType, "target type" {
        SlackWebhook => "slack_webhook",
        SlackApi => "slack_api",
        Smtp => "smtp",
        Webhook => "webhook",
    }
);

impl TargetType {
    /// The delivery method that carries messages for this target type.
    pub fn method(self) -> Method {
        match self {
            TargetType::SlackWebhook => Method::SlackWebhook,
            TargetType::SlackApi => Method::SlackApi,
            TargetType::Smtp => Method::Smtp,
            TargetType::Webhook => Method::Webhook,
        }
    }
}

/// A call to action shown with a notification; both fields are templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    pub label: String,
    pub url: String,
}

impl Action {
    /// An action from its label and its URL.
    pub fn new(label: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            url: url.into(),
        }
    }
}

/// A label an event's templates read: part of the contract a producer writes to (DESIGN §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabelSpec {
    /// The key of `--label NAME=VALUE`, read by templates as `labels.NAME`.
    pub name: String,
    /// True when a template reads it unguarded: a message without it is refused at enqueue.
    pub required: bool,
    /// What the value is, for the producer: e.g. `the new account's username`.
    pub description: String,
}

/// An event as declared in the catalog (`assets/events.toml`), before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    /// Unique snake_case key, e.g. `workspace_deleted`.
    pub name: String,
    /// Display group, e.g. `Workspace Events`.
    pub group: String,
    pub title_template: String,
    /// Markdown.
    pub body_template: String,
    pub actions: Vec<Action>,
    /// Roles that receive the event besides the explicitly named users.
    pub audience_roles: Vec<Role>,
    pub enabled_by_default: bool,
    pub kind: EventKind,
    /// False for one-time passcodes: never copied to the inbox.
    pub inbox: bool,
    /// True for events about a user's own account, which reach that user even when suspended.
    pub reaches_suspended: bool,
    /// The labels its templates read, in catalog order. Not stored: the binary's catalog is
    /// their only source, so the store fills them in by event name.
    pub labels: Vec<LabelSpec>,
}

impl EventSpec {
    /// The declared label called `name`.
    pub fn label(&self, name: &str) -> Option<&LabelSpec> {
        self.labels.iter().find(|label| label.name == name)
    }

    /// The required labels, in declaration order.
    pub fn required_labels(&self) -> impl Iterator<Item = &LabelSpec> {
        self.labels.iter().filter(|label| label.required)
    }
}

/// A stored event (a row of `notification_templates`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTemplate {
    pub id: Uuid,
    pub spec: EventSpec,
    /// The admin's per-event delivery method; `None` means the deployment default.
    pub method: Option<Method>,
}

/// A person known to Herald.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub name: String,
    pub roles: Vec<Role>,
    pub status: UserStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active
    }
}

/// A user's choice about one event: `disabled = true` is an opt-out, `false` an explicit opt-in
/// (which matters for events disabled by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preference {
    pub user_id: Uuid,
    pub template_id: Uuid,
    pub disabled: bool,
}

/// Where a target-bound message goes, as routing sees it (secrets stay in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRef {
    pub name: String,
    pub target_type: TargetType,
    pub notify_on: Vec<String>,
    /// The user who declared it in `[[users]]`, or `None` for a global target.
    pub owner: Option<String>,
}

impl TargetRef {
    /// The name stored in `notification_messages.target`: `name` for a global target,
    /// `owner/name` for a user's own, so both kinds can share a name.
    pub fn qualified_name(&self) -> String {
        match &self.owner {
            Some(owner) => format!("{owner}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What one delivery attempt came to, as a channel reports it (DESIGN §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Sent,
    /// Worth trying again; `retry_after` is the peer's own hint (e.g. HTTP `Retry-After`).
    Retryable {
        reason: String,
        retry_after: Option<std::time::Duration>,
    },
    Permanent {
        reason: String,
    },
}

/// What one replica can deliver (DESIGN §6), published in its `notification_replicas` row and
/// applied to its leases: user messages of `methods` (target is NULL) and target messages of
/// the qualified target names in `targets`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    pub methods: Vec<Method>,
    pub targets: Vec<String>,
}

impl Capabilities {
    /// Whether a message of `method` for `target` (None for a user message) can be delivered.
    pub fn covers(&self, method: Method, target: Option<&str>) -> bool {
        match target {
            None => self.methods.contains(&method),
            Some(t) => self.targets.iter().any(|c| c == t),
        }
    }

    /// Everything any of `all` can deliver.
    pub fn union<'a>(all: impl IntoIterator<Item = &'a Capabilities>) -> Capabilities {
        let mut out = Capabilities::default();
        for c in all {
            for m in &c.methods {
                if !out.methods.contains(m) {
                    out.methods.push(*m);
                }
            }
            for t in &c.targets {
                if !out.targets.contains(t) {
                    out.targets.push(t.clone());
                }
            }
        }
        out.methods.sort();
        out.targets.sort();
        out
    }
}

/// One message routing decided to enqueue: what it goes to and what it carries.
///
/// The store's `NewMessage` wraps this with the id, event and creator, so the fields are
/// written once and moved, not copied, from routing into the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMessage {
    pub user_id: Option<Uuid>,
    /// The target's name for target messages.
    pub target: Option<String>,
    pub method: Method,
    /// `Pending`, or `Inhibited` with the reason in `status_reason`.
    pub status: MessageState,
    pub status_reason: Option<String>,
    pub payload: serde_json::Value,
    pub dedupe_hash: Option<String>,
}

/// A row of `notification_messages`, joined with the event name and username.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: Uuid,
    pub notification_template_id: Uuid,
    pub event: String,
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub target: Option<String>,
    pub method: Method,
    pub status: MessageState,
    pub status_reason: Option<String>,
    pub created_by: String,
    pub payload: serde_json::Value,
    pub attempt_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub leased_until: Option<DateTime<Utc>>,
    pub next_retry_after: Option<DateTime<Utc>>,
    pub queued_seconds: Option<f64>,
    pub dedupe_hash: Option<String>,
}

/// A row of `notification_attempts`: one delivery tried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub message_id: Uuid,
    pub attempt_number: i32,
    pub notifier_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub outcome: MessageState,
    pub reason: Option<String>,
}

/// Deployment-wide switches stored in `notification_settings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub notifier_paused: bool,
    pub updated_at: DateTime<Utc>,
}

/// A row of `notification_channel_pauses`: one method or one target held on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelPause {
    pub scope: PauseScope,
    /// The method (`slack_api`), or the qualified target name (`owner/name` for a user's own).
    pub name: String,
    /// Who paused it.
    pub paused_by: String,
    pub paused_at: DateTime<Utc>,
}

impl Capabilities {
    /// What is left to lease once `pauses` are honoured: a paused method holds its user
    /// messages and the targets of that method (`target_methods` maps each target to its
    /// method); a paused target holds that target.
    pub fn without_paused(
        &self,
        pauses: &[ChannelPause],
        target_methods: &[(String, Method)],
    ) -> Capabilities {
        let paused = |scope: PauseScope, name: &str| {
            pauses.iter().any(|p| p.scope == scope && p.name == name)
        };
        let method_of = |target: &str| {
            target_methods
                .iter()
                .find(|(t, _)| t == target)
                .map(|(_, m)| *m)
        };
        Capabilities {
            methods: self
                .methods
                .iter()
                .copied()
                .filter(|m| !paused(PauseScope::Method, m.as_str()))
                .collect(),
            targets: self
                .targets
                .iter()
                .filter(|t| !paused(PauseScope::Target, t))
                .filter(|t| method_of(t).is_none_or(|m| !paused(PauseScope::Method, m.as_str())))
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_methods_and_targets_drop_out_of_what_a_replica_leases() {
        let all = Capabilities {
            methods: vec![Method::Webhook, Method::Inbox],
            targets: vec!["team-slack".into(), "alice/dm".into(), "hooks".into()],
        };
        let target_methods = [
            ("team-slack".to_string(), Method::SlackWebhook),
            ("alice/dm".to_string(), Method::SlackApi),
            ("hooks".to_string(), Method::Webhook),
        ];
        let pause = |scope, name: &str| ChannelPause {
            scope,
            name: name.to_string(),
            paused_by: "olive".into(),
            paused_at: Utc::now(),
        };
        let left = |pauses: &[ChannelPause]| all.without_paused(pauses, &target_methods);
        assert_eq!(left(&[]), all);
        let target = left(&[pause(PauseScope::Target, "team-slack")]);
        assert_eq!(target.methods, all.methods);
        assert_eq!(target.targets, ["alice/dm", "hooks"]);
        // A paused method holds its user messages and every target of that method.
        let webhook = left(&[pause(PauseScope::Method, "webhook")]);
        assert_eq!(webhook.methods, [Method::Inbox]);
        assert_eq!(webhook.targets, ["team-slack", "alice/dm"]);
        let slack_api = left(&[pause(PauseScope::Method, "slack_api")]);
        assert_eq!(slack_api.methods, all.methods);
        assert_eq!(slack_api.targets, ["team-slack", "hooks"]);
    }

    #[test]
    fn enums_round_trip_through_their_string_forms() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>().unwrap(), *m);
        }
        for s in MessageState::ALL {
            assert_eq!(s.as_str().parse::<MessageState>().unwrap(), *s);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
    }

    #[test]
    fn unknown_value_lists_what_is_expected() {
        let err = "mail".parse::<Method>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown delivery method `mail`; expected one of: smtp, webhook, slack_webhook, slack_api, inbox"
        );
    }
}
