//! Explain: who would get what for an event, and why (DESIGN §14) — the routing enqueue uses,
//! checked against the store's dedupe hashes and the running replicas, writing nothing.

use std::collections::HashMap;

use serde::Serialize;

use super::enqueue::Routed;
use super::*;
use crate::model::{ChannelPause, PauseScope};
use crate::routing::{Decision, Outcome};

/// Every routing decision for one event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub event: String,
    /// One per candidate recipient and method, in routing's order: users named with --user,
    /// the audience, the other users, then the targets.
    pub decisions: Vec<ExplainedDecision>,
    /// What enqueue would log (methods not configured, targets declared twice).
    pub warnings: Vec<String>,
}

/// One candidate recipient and method, and what enqueue would do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExplainedDecision {
    /// The username, or `target:NAME` for a target.
    pub recipient: String,
    /// The user recipient, or the owner of a user's own target.
    pub user: Option<String>,
    /// The qualified target name, for a target.
    pub target: Option<String>,
    /// None when no method applies (a user outside the audience).
    pub method: Option<Method>,
    pub decision: Outcome,
    /// Why, in words an operator can act on; None for a plain `queued`.
    pub reason: Option<String>,
    /// For a duplicate: the message already queued today that this one repeats.
    pub duplicate_of: Option<Uuid>,
}

impl Service {
    /// What enqueueing `input` would do for every candidate recipient, writing nothing. The
    /// same validation as enqueue: an unknown name, a malformed or missing label, or a template
    /// that cannot render is the same error. Owners and on-call.
    pub async fn explain(&self, caller: &User, input: &EnqueueInput) -> ServiceResult<Explanation> {
        require(caller, QUEUE_WATCHERS, "explaining an event's routing")?;
        let Routed {
            event,
            labels,
            plan,
            ..
        } = self.route(input, true, true).await?;
        self.admit(&event, &labels, &plan.messages)?;
        let hashes: Vec<String> = plan
            .messages
            .iter()
            .filter_map(|m| m.dedupe_hash.clone())
            .collect();
        let existing: HashMap<String, Uuid> = self
            .store
            .messages_with_dedupe_hashes(&hashes)
            .await?
            .into_iter()
            .collect();
        let covered = crate::dispatch::live_capabilities(&*self.store).await?;
        let held = Held {
            everything: self.store.settings().await?.notifier_paused,
            pauses: self.store.channel_pauses().await?,
        };
        let decisions = plan
            .decisions
            .into_iter()
            .map(|decision| {
                let planned = decision.message.and_then(|i| plan.messages.get(i));
                let duplicate_of = planned
                    .and_then(|m| m.dedupe_hash.as_ref())
                    .and_then(|hash| existing.get(hash).copied());
                explained(decision, duplicate_of, &covered, &held)
            })
            .collect();
        Ok(Explanation {
            event: event.spec.name,
            decisions,
            warnings: plan.warnings,
        })
    }
}

/// What delivery is paused now: everything, or some methods and targets.
struct Held {
    everything: bool,
    pauses: Vec<ChannelPause>,
}

impl Held {
    /// Why a queued message of `method` (for `target`) would be held, if it would.
    fn why(&self, method: Method, target: Option<&str>) -> Option<String> {
        if self.everything {
            return Some(
                "held: notifications are paused (`herald notifications resume`)".to_string(),
            );
        }
        let paused = |scope: PauseScope, name: &str| {
            self.pauses
                .iter()
                .any(|p| p.scope == scope && p.name == name)
        };
        if paused(PauseScope::Method, method.as_str()) {
            return Some(format!(
                "held: method {method} is paused (`herald notifications resume --method {method}`)"
            ));
        }
        let target = target.filter(|t| paused(PauseScope::Target, t))?;
        Some(format!(
            "held: target {target} is paused (`herald notifications resume --target {target}`)"
        ))
    }
}

/// A routing decision as explain shows it: a duplicate is skipped, and a queued message that
/// no running replica delivers, or that a pause holds, says that it would wait.
fn explained(
    decision: Decision,
    duplicate_of: Option<Uuid>,
    covered: &crate::model::Capabilities,
    held: &Held,
) -> ExplainedDecision {
    let recipient = match (&decision.target, &decision.user) {
        (Some(target), _) => format!("target:{target}"),
        (None, Some(user)) => user.clone(),
        (None, None) => "-".to_string(),
    };
    let (outcome, reason) = match (duplicate_of, decision.outcome, decision.method) {
        (Some(id), _, _) => (
            Outcome::Skipped,
            Some(format!(
                "duplicate of {id}: an identical message was already queued today"
            )),
        ),
        (None, Outcome::Queued, Some(method))
            if !covered.covers(method, decision.target.as_deref()) =>
        {
            let what = match &decision.target {
                Some(target) => format!("target `{target}`"),
                None => method.to_string(),
            };
            (
                Outcome::Queued,
                Some(format!(
                    "no replica can deliver it: none running delivers {what}; it would wait pending"
                )),
            )
        }
        (None, Outcome::Queued, Some(method)) => (
            Outcome::Queued,
            held.why(method, decision.target.as_deref()),
        ),
        (None, outcome, _) => (outcome, decision.reason),
    };
    ExplainedDecision {
        recipient,
        user: decision.user,
        target: decision.target,
        method: decision.method,
        decision: outcome,
        reason,
        duplicate_of,
    }
}
