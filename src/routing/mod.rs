//! Routing: who gets what for one event (DESIGN §4).
//!
//! Pure: given the event, the users, their preferences, the targets and the deployment's
//! settings, [`plan`] decides every message to enqueue — recipient, method, initial state and
//! why — and records a [`Decision`] for every candidate, left-out ones too. The service layer
//! fetches the inputs, checks the dedupe hashes against the store and writes the plan in one
//! transaction (enqueue), or shows the decisions and writes nothing (explain).

mod decision;

pub use decision::{Decision, Outcome};

use std::collections::{BTreeMap, HashSet};

use chrono::NaiveDate;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{EventTemplate, MessageState, Method, Preference, TargetRef, User};

/// One message routing decided to enqueue (defined in the leaf layer so the store can hold it).
pub use crate::model::PlannedMessage;

/// The `_version` of the payload (Coder's webhook payload schema, DESIGN §7).
pub const PAYLOAD_VERSION: &str = "1.2";

/// `status_reason` of a row inhibited by an opt-out, or by an event disabled by default.
pub const REASON_DISABLED_BY_USER: &str = "disabled by user";

/// `status_reason` of a row for a suspended user the event does not reach.
pub const REASON_USER_SUSPENDED: &str = "user is suspended";

/// The one event SQLMesh also routes to the audited model's owner.
const AUDIT_FAILURE: &str = "audit_failure";

/// The deployment's delivery settings as routing needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSettings {
    /// `notifications.method`: `smtp` or `webhook`.
    pub default_method: Method,
    /// `notifications.inbox_enabled`: copy user messages to the inbox.
    pub inbox_enabled: bool,
    /// Methods whose channel is configured; `inbox` is always deliverable, listed or not.
    pub configured: Vec<Method>,
}

impl RoutingSettings {
    /// Whether user messages by `method` can be delivered at all.
    pub fn is_configured(&self, method: Method) -> bool {
        method == Method::Inbox || self.configured.contains(&method)
    }
}

/// Everything routing needs for one enqueue, already fetched and resolved by the caller.
#[derive(Debug, Clone, Copy)]
pub struct EnqueueRequest<'a> {
    pub event: &'a EventTemplate,
    /// Users named with `--user`, already resolved; may be suspended.
    pub explicit: &'a [User],
    /// Active users holding one of the event's `audience_roles`.
    pub audience: &'a [User],
    /// `--actor`: when set, only the actor's own targets are notified (SQLMesh rule).
    pub actor: Option<&'a User>,
    /// The user named by the label `owner=NAME`, if it names a known user.
    pub audit_owner: Option<&'a User>,
    /// Other known users, for explain: each is recorded as skipped (not in the audience, or
    /// suspended). Enqueue passes none.
    pub bystanders: &'a [User],
    pub labels: &'a BTreeMap<String, String>,
    pub data: &'a Value,
    /// Every target: global (`owner` None) and user-owned.
    pub targets: &'a [TargetRef],
    /// The recipients' preferences for this event.
    pub preferences: &'a [Preference],
    pub settings: &'a RoutingSettings,
    /// False for test notifications, which are never deduplicated.
    pub dedupe: bool,
    /// The UTC day the dedupe hash is scoped to.
    pub day: NaiveDate,
}

/// The messages for one enqueue, and what the operator should know about what was left out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub messages: Vec<PlannedMessage>,
    pub warnings: Vec<String>,
    /// One per candidate recipient and method: every planned message, and every candidate
    /// left out, with why.
    pub decisions: Vec<Decision>,
}

/// A `--label` that is not `KEY=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelError {
    #[error("label `{0}` has no `=`; expected KEY=VALUE, e.g. `--label name=ws1`")]
    MissingEquals(String),
    #[error("label `{0}` has an empty key; expected KEY=VALUE, e.g. `--label name=ws1`")]
    EmptyKey(String),
    #[error(
        "label key `{key}` (in `{label}`) may hold only letters, digits, `_`, `.` and `-`; \
         expected KEY=VALUE, e.g. `--label name=ws1`"
    )]
    InvalidKey { label: String, key: String },
    #[error("label `{key}` is given twice (`{first}` and `{second}`); give each key once")]
    DuplicateKey {
        key: String,
        first: String,
        second: String,
    },
}

/// Parses one `KEY=VALUE` label, split at the first `=`: the value may contain `=` and may be
/// empty; the key is non-empty and made of `[A-Za-z0-9_.-]`.
pub fn parse_label(s: &str) -> Result<(String, String), LabelError> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| LabelError::MissingEquals(s.to_string()))?;
    if key.is_empty() {
        return Err(LabelError::EmptyKey(s.to_string()));
    }
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if !key.chars().all(valid) {
        return Err(LabelError::InvalidKey {
            label: s.to_string(),
            key: key.to_string(),
        });
    }
    Ok((key.to_string(), value.to_string()))
}

/// Parses every `--label`; a key given twice is refused rather than silently overwritten.
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, LabelError> {
    let mut labels = BTreeMap::new();
    for item in items {
        let (key, value) = parse_label(item)?;
        if let Some(previous) = labels.get(&key) {
            return Err(LabelError::DuplicateKey {
                first: format!("{key}={previous}"),
                second: item.clone(),
                key,
            });
        }
        labels.insert(key, value);
    }
    Ok(labels)
}

/// The hex SHA-256 identifying a message for dedupe: the same event, recipient, method and
/// payload on the same UTC day hash alike. Fields are joined by `\n`; absent ones are empty.
pub fn dedupe_hash(
    template_id: Uuid,
    user_id: Option<Uuid>,
    target: Option<&str>,
    method: Method,
    payload: &Value,
    day: NaiveDate,
) -> String {
    // `Value`'s Display is serde_json's compact form, with keys sorted (no preserve_order).
    let joined = [
        template_id.to_string(),
        user_id.map(|id| id.to_string()).unwrap_or_default(),
        target.unwrap_or_default().to_string(),
        method.as_str().to_string(),
        payload.to_string(),
        day.format("%Y-%m-%d").to_string(),
    ]
    .join("\n");
    hex::encode(Sha256::digest(joined.as_bytes()))
}

/// The message payload in Coder's webhook schema (`_version` 1.2). User fields are empty
/// strings when there is no user (target messages); actions are the unrendered templates.
pub fn build_payload(
    event: &EventTemplate,
    user: Option<&User>,
    labels: &BTreeMap<String, String>,
    data: &Value,
    targets: &[String],
) -> Value {
    let user_field = |field: fn(&User) -> String| user.map(field).unwrap_or_default();
    // Consumers of the schema expect an object; a missing `--data` arrives as null.
    let data = if data.is_null() {
        json!({})
    } else {
        data.clone()
    };
    json!({
        "_version": PAYLOAD_VERSION,
        "notification_name": event.spec.name,
        "notification_template_id": event.id.to_string(),
        "user_id": user_field(|u| u.id.to_string()),
        "user_email": user_field(|u| u.email.clone()),
        "user_name": user_field(|u| u.name.clone()),
        "user_username": user_field(|u| u.username.clone()),
        "actions": event.spec.actions,
        "labels": labels,
        "data": data,
        "targets": targets,
    })
}

/// Decides every message for one enqueue (DESIGN §4): user recipients by method, then targets.
pub fn plan(req: &EnqueueRequest<'_>) -> Plan {
    let mut builder = PlanBuilder::new(req);
    let methods = user_methods(req.event, req.settings);
    let recipients = user_recipients(req.explicit, req.audience);
    for &user in &recipients {
        let (status, reason) = user_state(req, user);
        let payload = build_payload(req.event, Some(user), req.labels, req.data, &[]);
        for &method in &methods {
            if !req.settings.is_configured(method) {
                builder.skip(user, method);
                continue;
            }
            builder.push(Some(user), None, method, status, reason, payload.clone());
        }
    }
    for user in req.bystanders {
        if !recipients.iter().any(|r| r.id == user.id) {
            let reason = decision::bystander_reason(req.event, user);
            let skipped = Decision::skipped(Some(&user.username), None, None, reason);
            builder.decisions.push(skipped);
        }
    }
    let (targets, declared_twice) = target_recipients(req);
    let event = req.event.spec.name.as_str();
    for target in req.targets {
        let chosen = targets.iter().find(|(t, _)| std::ptr::eq(*t, target));
        let Some(&(target, owner)) = chosen else {
            let reason = if declared_twice.iter().any(|t| std::ptr::eq(*t, target)) {
                "declared more than once: notified once, by its first declaration".to_string()
            } else {
                decision::target_skip_reason(event, target, req.actor)
            };
            let method = Some(target.target_type.method());
            let skipped = Decision::skipped(
                target.owner.as_deref(),
                Some(target.qualified_name()),
                method,
                reason,
            );
            builder.decisions.push(skipped);
            continue;
        };
        let qualified = target.qualified_name();
        let payload = build_payload(
            req.event,
            None,
            req.labels,
            req.data,
            std::slice::from_ref(&qualified),
        );
        // Targets carry their own channel settings, so they are neither checked against the
        // configured methods nor inhibited by a user's preferences.
        builder.push(
            owner,
            Some(&qualified),
            target.target_type.method(),
            MessageState::Pending,
            None,
            payload,
        );
    }
    let mut twice: Vec<&str> = Vec::new();
    for target in declared_twice {
        if !twice.contains(&target.name.as_str()) {
            twice.push(target.name.as_str());
        }
    }
    builder.warnings.extend(
        twice
            .into_iter()
            .map(|name| format!("target `{name}` is declared more than once; notified once")),
    );
    builder.finish()
}

/// Explicit users first, then the audience, each user once. Audience members are active by
/// contract; a suspended one slipping through is dropped, as the audience is active users.
fn user_recipients<'a>(explicit: &'a [User], audience: &'a [User]) -> Vec<&'a User> {
    let mut seen = HashSet::new();
    explicit
        .iter()
        .chain(audience.iter().filter(|u| u.is_active()))
        .filter(|u| seen.insert(u.id))
        .collect()
}

/// The methods each user recipient gets: the event's or the default, plus the inbox copy.
fn user_methods(event: &EventTemplate, settings: &RoutingSettings) -> Vec<Method> {
    let main = event.method.unwrap_or(settings.default_method);
    let mut methods = vec![main];
    if settings.inbox_enabled && event.spec.inbox && main != Method::Inbox {
        methods.push(Method::Inbox);
    }
    methods
}

/// Pending, or inhibited with the reason the console shows for "why did alice get nothing?".
fn user_state(req: &EnqueueRequest<'_>, user: &User) -> (MessageState, Option<&'static str>) {
    if !user.is_active() && !req.event.spec.reaches_suspended {
        return (MessageState::Inhibited, Some(REASON_USER_SUSPENDED));
    }
    let preference = req
        .preferences
        .iter()
        .find(|p| p.user_id == user.id && p.template_id == req.event.id);
    let enabled = match preference {
        Some(p) => !p.disabled,
        None => req.event.spec.enabled_by_default,
    };
    if enabled {
        (MessageState::Pending, None)
    } else {
        (MessageState::Inhibited, Some(REASON_DISABLED_BY_USER))
    }
}

/// A target chosen for the event, with the user who owns it (`None` for a global target).
type TargetRecipient<'a> = (&'a TargetRef, Option<&'a User>);

/// Targets holding the event, by SQLMesh's rule, and the declarations left out for repeating
/// one already chosen (same name, owner and type: the same message, so sent once).
fn target_recipients<'a>(
    req: &EnqueueRequest<'a>,
) -> (Vec<TargetRecipient<'a>>, Vec<&'a TargetRef>) {
    let event = req.event.spec.name.as_str();
    let audit_owner = audit_owner(req);
    let chosen = req
        .targets
        .iter()
        .filter(|t| t.notify_on.iter().any(|name| name == event))
        .filter_map(|t| match &t.owner {
            None => req.actor.is_none().then_some((t, None)),
            // One pass over the targets keeps a target once when the owner is also the actor.
            Some(owner) => req
                .actor
                .into_iter()
                .chain(audit_owner)
                .find(|u| u.username == *owner)
                .map(|u| (t, Some(u))),
        });
    let mut seen = HashSet::new();
    let mut recipients = Vec::new();
    let mut declared_twice = Vec::new();
    for (target, owner) in chosen {
        let key = (
            target.owner.as_deref(),
            target.name.as_str(),
            target.target_type,
        );
        if seen.insert(key) {
            recipients.push((target, owner));
        } else {
            declared_twice.push(target);
        }
    }
    (recipients, declared_twice)
}

/// The audited model's owner, when the `audit_failure` exception applies: a prod audit failure
/// labelled `owner=NAME` whose owner the caller resolved.
fn audit_owner<'a>(req: &EnqueueRequest<'a>) -> Option<&'a User> {
    let applies = req.event.spec.name == AUDIT_FAILURE
        && req.labels.get("environment").map(String::as_str) == Some("prod")
        && req.labels.contains_key("owner");
    req.audit_owner.filter(|_| applies)
}

/// Why user messages by an unconfigured method cannot be delivered, in config keys.
fn unconfigured_reason(method: Method) -> &'static str {
    match method {
        Method::Smtp => "email.smarthost is not set",
        Method::Webhook => "notifications.webhook.endpoint is not set",
        Method::SlackWebhook | Method::SlackApi => {
            "no target: Slack reaches people only through [[targets]]"
        }
        Method::Inbox => "notifications.inbox_enabled is false",
    }
}

/// Accumulates messages, skipped-method counts and warnings while [`plan`] walks recipients
/// (each recipient and method once, by construction).
struct PlanBuilder<'r, 'a> {
    req: &'r EnqueueRequest<'a>,
    messages: Vec<PlannedMessage>,
    /// Skipped message counts per method, in the order methods were first skipped.
    skipped: Vec<(Method, usize)>,
    warnings: Vec<String>,
    decisions: Vec<Decision>,
}

impl<'r, 'a> PlanBuilder<'r, 'a> {
    fn new(req: &'r EnqueueRequest<'a>) -> Self {
        Self {
            req,
            messages: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            decisions: Vec::new(),
        }
    }

    /// `user`'s message by `method`, whose channel is not configured: not enqueued.
    fn skip(&mut self, user: &User, method: Method) {
        match self.skipped.iter_mut().find(|(m, _)| *m == method) {
            Some((_, count)) => *count += 1,
            None => self.skipped.push((method, 1)),
        }
        let reason = format!("method not configured: {}", unconfigured_reason(method));
        let skipped = Decision::skipped(Some(&user.username), None, Some(method), reason);
        self.decisions.push(skipped);
    }

    /// Plans one message for `user` (the recipient, or the target's owner) or `target`.
    fn push(
        &mut self,
        user: Option<&User>,
        target: Option<&str>,
        method: Method,
        status: MessageState,
        reason: Option<&str>,
        payload: Value,
    ) {
        let user_id = user.map(|u| u.id);
        let dedupe_hash = self.req.dedupe.then(|| {
            dedupe_hash(
                self.req.event.id,
                user_id,
                target,
                method,
                &payload,
                self.req.day,
            )
        });
        self.decisions.push(Decision {
            user: user.map(|u| u.username.clone()),
            target: target.map(str::to_string),
            method: Some(method),
            outcome: match status {
                MessageState::Inhibited => Outcome::Inhibited,
                _ => Outcome::Queued,
            },
            reason: reason.map(str::to_string),
            message: Some(self.messages.len()),
        });
        self.messages.push(PlannedMessage {
            user_id,
            target: target.map(str::to_string),
            method,
            status,
            status_reason: reason.map(str::to_string),
            payload,
            dedupe_hash,
        });
    }

    fn finish(mut self) -> Plan {
        let skipped = self.skipped.iter().map(|&(method, count)| {
            let noun = if count == 1 { "message" } else { "messages" };
            format!(
                "{method} is not configured ({}): {count} {noun} not enqueued",
                unconfigured_reason(method)
            )
        });
        let mut warnings: Vec<String> = skipped.collect();
        warnings.append(&mut self.warnings);
        Plan {
            messages: self.messages,
            warnings,
            decisions: self.decisions,
        }
    }
}

#[cfg(test)]
mod tests;
