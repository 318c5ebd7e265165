//! What routing decided for each candidate recipient and method, and why: what `herald
//! explain` shows (DESIGN §14). [`super::plan`] records a decision for every message it plans
//! and for every candidate it leaves out, so enqueue and explain can never disagree.

use serde::Serialize;

use crate::model::{EventTemplate, Method, Role, TargetRef, User};

/// What happens to one candidate recipient by one method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A `pending` message is queued.
    Queued,
    /// An `inhibited` row is written: the recipient opted out, the event is off by default,
    /// or the user is suspended.
    Inhibited,
    /// Nothing is written.
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Inhibited => "inhibited",
            Outcome::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Routing's decision for one candidate recipient (a user or a target) and one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The user recipient, or the user who owns the target, by username.
    pub user: Option<String>,
    /// The qualified target name (`owner/name` for a user's own), for a target recipient.
    pub target: Option<String>,
    /// None when the candidate is left out before any method applies (not in the audience).
    pub method: Option<Method>,
    pub outcome: Outcome,
    /// Why, in words an operator can act on; None for a plain `queued`.
    pub reason: Option<String>,
    /// The index in [`super::Plan::messages`] of the message this decision writes.
    pub message: Option<usize>,
}

impl Decision {
    /// A candidate left out with `reason`, nothing written.
    pub(super) fn skipped(
        user: Option<&str>,
        target: Option<String>,
        method: Option<Method>,
        reason: String,
    ) -> Decision {
        Decision {
            user: user.map(str::to_string),
            target,
            method,
            outcome: Outcome::Skipped,
            reason: Some(reason),
            message: None,
        }
    }
}

fn role_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why `user`, neither named with `--user` nor in the active audience, gets nothing.
pub(super) fn bystander_reason(event: &EventTemplate, user: &User) -> String {
    let audience = &event.spec.audience_roles;
    let held: Vec<Role> = audience
        .iter()
        .copied()
        .filter(|r| user.has_role(*r))
        .collect();
    if !held.is_empty() && !user.is_active() {
        return format!(
            "user suspended: holds the audience role {} but suspended users are not in the audience",
            role_list(&held)
        );
    }
    if audience.is_empty() {
        format!(
            "not in audience: {} has no audience roles, only users named with --user receive it",
            event.spec.name
        )
    } else {
        format!(
            "not in audience: {} reaches {}, and the user holds none of them",
            event.spec.name,
            role_list(audience)
        )
    }
}

/// Why a target that holds no message for this event was left out.
pub(super) fn target_skip_reason(event: &str, target: &TargetRef, actor: Option<&User>) -> String {
    if !target.notify_on.iter().any(|name| name == event) {
        return format!("not subscribed: its notify_on does not list {event}");
    }
    match (&target.owner, actor) {
        (None, Some(actor)) => format!(
            "global target: with the actor `{}` only the actor's own targets are notified",
            actor.username
        ),
        (None, None) => "not chosen".to_string(),
        (Some(owner), Some(actor)) => format!(
            "owned by `{owner}`, not by the actor `{}`; a user's targets hear only of events they act in",
            actor.username
        ),
        (Some(owner), None) => {
            format!("owned by `{owner}`: a user's targets are notified only with --actor {owner}")
        }
    }
}
