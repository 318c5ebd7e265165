//! Runs [`Effect`]s: each in its own tokio task, calling only the service, answering with one
//! [`Action`] on the channel the UI loop reads. The UI never waits on the store.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc::UnboundedSender;

use crate::model::User;
use crate::service::PageRequest;
use crate::service::{EnqueueInput, EnqueueReport, Service, ServiceError};

use crate::console::action::{Action, Effect, OptOutRow};
use crate::console::inbox::INBOX_LIMIT;
use crate::console::troubleshoot::REASONS;

/// Performs effects for one caller against one service.
#[derive(Clone)]
pub struct Driver {
    service: Arc<Service>,
    caller: User,
    results: UnboundedSender<Action>,
}

fn text(e: ServiceError) -> String {
    e.to_string()
}

fn enqueued(what: &str, report: &EnqueueReport) -> String {
    let methods: Vec<String> = report
        .enqueued
        .iter()
        .map(|m| m.method.to_string())
        .collect();
    if methods.is_empty() {
        format!("{what}: nothing was queued (no method is configured for you)")
    } else {
        format!("{what} queued by {}", methods.join(", "))
    }
}

impl Driver {
    /// A driver sending results to `results`.
    pub fn new(service: Arc<Service>, caller: User, results: UnboundedSender<Action>) -> Driver {
        Driver {
            service,
            caller,
            results,
        }
    }

    /// Starts `effect` in a task; its result arrives later as an action.
    pub fn spawn(&self, effect: Effect) {
        let driver = self.clone();
        tokio::spawn(async move {
            let action = driver.perform(effect).await;
            // The UI loop is gone when the console is quitting; the result no longer matters.
            let _ = driver.results.send(action);
        });
    }

    /// Performs `effect` and returns its result as an action.
    pub async fn perform(&self, effect: Effect) -> Action {
        let s = &self.service;
        let me = &self.caller;
        match effect {
            Effect::LoadSettings => Action::SettingsLoaded(
                s.notifier_status(me)
                    .await
                    .map(|st| st.notifier_paused)
                    .map_err(text),
            ),
            Effect::LoadEvents => Action::EventsLoaded(s.events(me).await.map_err(text)),
            Effect::LoadVolumes => Action::VolumesLoaded(
                s.event_volumes(me, Utc::now() - chrono::Duration::hours(24))
                    .await
                    .map_err(text),
            ),
            Effect::LoadCounts => Action::CountsLoaded(s.count_by_state(me).await.map_err(text)),
            Effect::LoadThroughput => Action::ThroughputLoaded(
                s.throughput(me, Utc::now() - chrono::Duration::minutes(1))
                    .await
                    .map_err(text),
            ),
            Effect::LoadPage {
                seq,
                query,
                before,
                limit,
            } => Action::PageLoaded {
                seq,
                result: s
                    .search_titled(me, &query, PageRequest { before, limit })
                    .await
                    .map_err(text),
            },
            Effect::LoadMessage(id) => Action::MessageLoaded(
                s.message_detail(me, &id.to_string())
                    .await
                    .map(Box::new)
                    .map_err(text),
            ),
            Effect::CountRetryable(query) => {
                let result = s.count_matching(me, &query).await.map_err(text);
                Action::RetryableCounted { query, result }
            }
            Effect::Retry(ids) => {
                let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
                Action::Retried(s.retry_messages(me, &ids, false).await.map_err(text).map(
                    |report| {
                        let mut summary = format!("retried {}", report.retried.len());
                        if !report.skipped.is_empty() {
                            summary.push_str(&format!(
                                ", skipped {} ({})",
                                report.skipped.len(),
                                report.skipped[0].1
                            ));
                        }
                        summary
                    },
                ))
            }
            Effect::RetryQuery(query) => Action::Retried(
                s.retry_query(me, &query)
                    .await
                    .map(|n| format!("retried {n} matching messages"))
                    .map_err(text),
            ),
            Effect::SetPaused(paused) => Action::PauseSet(
                s.set_paused(me, paused)
                    .await
                    .map(|()| paused)
                    .map_err(text),
            ),
            Effect::SetEventMethod { event, method } => Action::MethodSet(
                s.set_event_method(me, &event, method)
                    .await
                    .map(|e| (e.spec.name, e.method))
                    .map_err(text),
            ),
            Effect::SendEventTest(event) => Action::TestSent(
                s.send_event_test(me, &event)
                    .await
                    .map(|r| enqueued(&format!("test of {event}"), &r))
                    .map_err(text),
            ),
            Effect::LoadOptOuts(user) => Action::OptOutsLoaded(
                s.opt_outs(me, user.as_deref())
                    .await
                    .map(|(subject, entries)| {
                        let rows = entries
                            .into_iter()
                            .map(|e| OptOutRow {
                                event: e.event.spec.name,
                                group: e.event.spec.group,
                                enabled: e.enabled,
                                preference: e.preference,
                                enabled_by_default: e.event.spec.enabled_by_default,
                            })
                            .collect();
                        (subject.username, rows)
                    })
                    .map_err(text),
            ),
            Effect::SetOptOut {
                event,
                user,
                disabled,
            } => {
                let result = s
                    .set_opt_out(me, &event, user.as_deref(), disabled)
                    .await
                    .map(|_| ())
                    .map_err(text);
                Action::OptOutSet {
                    event,
                    disabled,
                    result,
                }
            }
            Effect::LoadInbox => Action::InboxLoaded(
                s.inbox(me, crate::service::InboxFilter::All, INBOX_LIMIT)
                    .await
                    .map_err(text),
            ),
            Effect::MarkInbox { id, read } => Action::InboxMarked(
                s.mark_inbox(me, &id.to_string(), read)
                    .await
                    .map(|()| (id, read))
                    .map_err(text),
            ),
            Effect::LoadReasons => {
                Action::ReasonsLoaded(s.top_status_reasons(me, REASONS).await.map_err(text))
            }
            Effect::LoadReplicas => Action::ReplicasLoaded(s.replicas(me).await.map_err(text)),
            Effect::LoadUndeliverable => {
                Action::UndeliverableLoaded(s.undeliverable(me).await.map_err(text))
            }
            Effect::RunDoctor => Action::DoctorFinished(s.doctor(me).await.map_err(text)),
            Effect::LoadAudit => {
                let page = PageRequest {
                    before: None,
                    limit: crate::console::audit::AUDIT_ROWS,
                };
                let filter = crate::service::AuditFilter::default();
                Action::AuditLoaded(s.audit_log(me, &filter, page).await.map_err(text))
            }
            Effect::LoadChannels => Action::ChannelsLoaded(
                s.channel_health(me)
                    .await
                    .map(|report| report.channels)
                    .map_err(text),
            ),
            Effect::LoadPauses => Action::PausesLoaded(s.channel_pauses(me).await.map_err(text)),
            Effect::SetChannelPaused {
                scope,
                name,
                paused,
            } => {
                let result = if paused {
                    s.pause_channel(me, scope, &name).await
                } else {
                    s.resume_channel(me, scope, &name).await
                };
                Action::ChannelPauseSet {
                    scope,
                    name,
                    paused,
                    result: result.map_err(text),
                }
            }
            Effect::Explain {
                event,
                users,
                labels,
            } => {
                let input = EnqueueInput {
                    event,
                    users,
                    actor: None,
                    labels,
                    data: None,
                };
                Action::Explained(s.explain(me, &input).await.map(Box::new).map_err(text))
            }
        }
    }
}
