//! Channel health (DESIGN §14): per method and per target, what waits, how the last 15 minutes
//! of attempts went, how long deliveries take, the last error and whether it is paused — the
//! one screen an on-call engineer reads first. The store reads are bounded: counts the store
//! keeps (waiting messages per channel, attempts per minute and channel) and the window's
//! latest [`HEALTH_SAMPLE`] attempts; [`summarize`] is the pure part.

use std::collections::BTreeMap;

use serde::Serialize;

use super::*;
use crate::model::{ChannelPause, MessageState, PauseScope, TargetRef};
use crate::store::{ChannelAttempts, ChannelBacklog, RecentAttempt};

/// The window of attempts health looks back over.
pub const HEALTH_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// How many of the window's latest attempts the delivery times and last errors come from.
pub const HEALTH_SAMPLE: u32 = 5_000;

/// Every channel's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelsReport {
    /// The start of the attempts window: the start of the minute 15 minutes ago.
    pub since: DateTime<Utc>,
    /// User-message methods first, then targets, each by name.
    pub channels: Vec<ChannelHealth>,
}

/// One method (its user messages) or one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelHealth {
    pub method: Method,
    /// The qualified target name; None for the method's user messages.
    pub target: Option<String>,
    /// Messages waiting: pending, temporary_failure or leased.
    pub backlog: i64,
    /// Attempts in the window, by outcome.
    pub sent: i64,
    pub temporary_failure: i64,
    pub permanent_failure: i64,
    /// Median and 95th-percentile attempt duration in the window, in milliseconds.
    pub p50_ms: Option<i64>,
    pub p95_ms: Option<i64>,
    /// The latest failed attempt's reason in the window, and when it started.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Held by a scoped pause: its own, or its method's for a target.
    pub paused: bool,
}

impl ChannelHealth {
    fn empty(method: Method, target: Option<String>) -> ChannelHealth {
        ChannelHealth {
            method,
            target,
            backlog: 0,
            sent: 0,
            temporary_failure: 0,
            permanent_failure: 0,
            p50_ms: None,
            p95_ms: None,
            last_error: None,
            last_error_at: None,
            paused: false,
        }
    }
}

/// What [`summarize`] reads.
pub struct HealthInputs<'a> {
    /// User-message methods this deployment configured.
    pub methods: &'a [Method],
    pub targets: &'a [TargetRef],
    pub backlog: &'a [ChannelBacklog],
    pub attempts: &'a [ChannelAttempts],
    /// The window's latest attempts, newest first.
    pub recent: &'a [RecentAttempt],
    pub pauses: &'a [ChannelPause],
}

/// Sorts user-message methods before targets (`None` < `Some`), each by name.
type ChannelKey = (Option<String>, Method);

/// Folds the store's reads into one row per channel: every configured method and declared
/// target, and any other channel that has messages.
pub fn summarize(inputs: &HealthInputs<'_>) -> Vec<ChannelHealth> {
    let mut rows: BTreeMap<ChannelKey, ChannelHealth> = BTreeMap::new();
    for &method in inputs.methods {
        entry(&mut rows, method, &None);
    }
    for t in inputs.targets {
        entry(&mut rows, t.target_type.method(), &Some(t.qualified_name()));
    }
    for b in inputs.backlog {
        entry(&mut rows, b.method, &b.target).backlog += b.count;
    }
    for a in inputs.attempts {
        let row = entry(&mut rows, a.method, &a.target);
        match a.outcome {
            MessageState::Sent => row.sent += a.count,
            MessageState::TemporaryFailure => row.temporary_failure += a.count,
            MessageState::PermanentFailure => row.permanent_failure += a.count,
            _ => {}
        }
    }
    let mut durations: BTreeMap<ChannelKey, Vec<i64>> = BTreeMap::new();
    for r in inputs.recent {
        durations
            .entry((r.target.clone(), r.method))
            .or_default()
            .push(r.duration_ms);
        let row = entry(&mut rows, r.method, &r.target);
        if r.outcome != MessageState::Sent && row.last_error_at.is_none() {
            row.last_error = r.reason.clone();
            row.last_error_at = Some(r.started_at);
        }
    }
    for (key, mut times) in durations {
        times.sort_unstable();
        if let Some(row) = rows.get_mut(&key) {
            row.p50_ms = percentile(&times, 50);
            row.p95_ms = percentile(&times, 95);
        }
    }
    let paused = |scope: PauseScope, name: &str| {
        inputs
            .pauses
            .iter()
            .any(|p| p.scope == scope && p.name == name)
    };
    for row in rows.values_mut() {
        row.paused = paused(PauseScope::Method, row.method.as_str())
            || row
                .target
                .as_deref()
                .is_some_and(|t| paused(PauseScope::Target, t));
    }
    rows.into_values().collect()
}

/// The row of `method` and `target`, made empty when first met.
fn entry<'r>(
    rows: &'r mut BTreeMap<ChannelKey, ChannelHealth>,
    method: Method,
    target: &Option<String>,
) -> &'r mut ChannelHealth {
    rows.entry((target.clone(), method))
        .or_insert_with(|| ChannelHealth::empty(method, target.clone()))
}

/// The nearest-rank `p`th percentile of sorted `values`.
fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

impl Service {
    /// Every channel's health; owners and on-call.
    pub async fn channel_health(&self, caller: &User) -> ServiceResult<ChannelsReport> {
        require(caller, QUEUE_WATCHERS, "viewing channel health")?;
        // The attempts are counted per minute: the window starts at a minute's start.
        let since = crate::store::minute_start(Utc::now() - HEALTH_WINDOW);
        let backlog = self.store.backlog_by_channel().await?;
        let attempts = self.store.attempts_by_channel(since).await?;
        let recent = self.store.recent_attempts(since, HEALTH_SAMPLE).await?;
        let pauses = self.store.channel_pauses().await?;
        let methods = self.config.configured_methods();
        let targets = self.config.target_refs();
        let channels = summarize(&HealthInputs {
            methods: &methods,
            targets: &targets,
            backlog: &backlog,
            attempts: &attempts,
            recent: &recent,
            pauses: &pauses,
        });
        Ok(ChannelsReport { since, channels })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TargetType;

    fn recent(
        method: Method,
        target: Option<&str>,
        ms: i64,
        failed: Option<&str>,
    ) -> RecentAttempt {
        RecentAttempt {
            method,
            target: target.map(str::to_string),
            outcome: if failed.is_some() {
                MessageState::TemporaryFailure
            } else {
                MessageState::Sent
            },
            duration_ms: ms,
            reason: failed.map(str::to_string),
            started_at: Utc::now() - chrono::Duration::seconds(ms),
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 9], 50), Some(1));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn every_configured_channel_has_a_row_with_its_backlog_outcomes_latency_and_pause() {
        let targets = [TargetRef {
            name: "team-slack".into(),
            target_type: TargetType::SlackWebhook,
            notify_on: vec!["run_failure".into()],
            owner: None,
        }];
        let slack = Some("team-slack");
        let backlog = [ChannelBacklog {
            method: Method::SlackWebhook,
            target: slack.map(str::to_string),
            count: 3,
        }];
        let attempts = [
            ChannelAttempts {
                method: Method::Webhook,
                target: None,
                outcome: MessageState::Sent,
                count: 4,
            },
            ChannelAttempts {
                method: Method::SlackWebhook,
                target: slack.map(str::to_string),
                outcome: MessageState::TemporaryFailure,
                count: 2,
            },
        ];
        // Newest first: the first failure met is the last error.
        let recent = [
            recent(Method::SlackWebhook, slack, 30, Some("slack 500 newest")),
            recent(Method::SlackWebhook, slack, 10, Some("slack 500 older")),
            recent(Method::Webhook, None, 5, None),
            recent(Method::Webhook, None, 40, None),
        ];
        let pauses = [ChannelPause {
            scope: PauseScope::Target,
            name: "team-slack".into(),
            paused_by: "olive".into(),
            paused_at: Utc::now(),
        }];
        let rows = summarize(&HealthInputs {
            methods: &[Method::Webhook, Method::Inbox],
            targets: &targets,
            backlog: &backlog,
            attempts: &attempts,
            recent: &recent,
            pauses: &pauses,
        });
        let names: Vec<(Method, Option<&str>)> = rows
            .iter()
            .map(|r| (r.method, r.target.as_deref()))
            .collect();
        assert_eq!(
            names,
            [
                (Method::Webhook, None),
                (Method::Inbox, None),
                (Method::SlackWebhook, slack)
            ]
        );
        let (webhook, inbox, team) = (&rows[0], &rows[1], &rows[2]);
        assert_eq!((webhook.sent, webhook.backlog), (4, 0));
        assert_eq!((webhook.p50_ms, webhook.p95_ms), (Some(5), Some(40)));
        assert_eq!(webhook.last_error, None);
        assert!(!webhook.paused);
        assert_eq!(inbox, &ChannelHealth::empty(Method::Inbox, None));
        assert_eq!((team.backlog, team.temporary_failure), (3, 2));
        assert_eq!(team.last_error.as_deref(), Some("slack 500 newest"));
        assert!(team.paused);
    }

    #[test]
    fn a_paused_method_marks_its_targets_paused() {
        let targets = [TargetRef {
            name: "dm".into(),
            target_type: TargetType::SlackApi,
            notify_on: vec!["run_failure".into()],
            owner: Some("alice".into()),
        }];
        let pauses = [ChannelPause {
            scope: PauseScope::Method,
            name: "slack_api".into(),
            paused_by: "olive".into(),
            paused_at: Utc::now(),
        }];
        let rows = summarize(&HealthInputs {
            methods: &[Method::Webhook],
            targets: &targets,
            backlog: &[],
            attempts: &[],
            recent: &[],
            pauses: &pauses,
        });
        assert_eq!(rows[1].target.as_deref(), Some("alice/dm"));
        assert!(rows[1].paused);
        assert!(!rows[0].paused);
    }
}
