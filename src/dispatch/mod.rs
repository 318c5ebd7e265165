//! The dispatcher (a "notifier", DESIGN §6): lease a batch, deliver it concurrently under
//! `dispatch_timeout`, buffer the outcomes and write them back in bulk; wake at once when work
//! arrives; honour the pause flag; keep a heartbeat; purge old messages.
//!
//! Every process that runs the console or `herald serve` runs one. Replicas coordinate only
//! through the store.

mod acks;
mod housekeeping;

pub use acks::write_outcomes;
pub use housekeeping::{live_capabilities, purge_old_messages, undeliverable_now};

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{RwLock, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::channels::{Channels, Delivery};
use crate::config::Config;
use crate::model::{Capabilities, DeliveryOutcome, EventTemplate, Method};
use crate::queue::{self, RetryPolicy};
use crate::render::{self, Overrides};
use crate::store::{AttemptRecord, LeaseRequest, LeasedMessage, Store};
use crate::telemetry::Metrics;

/// The dispatcher's knobs, from `[notifications]`, and what this replica can deliver.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// The methods and targets this replica leases (DESIGN §6).
    pub capabilities: Capabilities,
    /// Each of this replica's targets and its method, so pausing a method holds its targets.
    pub target_methods: Vec<(String, Method)>,
    pub lease_count: u32,
    pub lease_period: Duration,
    pub dispatch_timeout: Duration,
    pub fetch_interval: Duration,
    pub store_sync_interval: Duration,
    pub store_sync_buffer: usize,
    pub retention: Duration,
    pub policy: RetryPolicy,
}

impl From<&Config> for DispatchSettings {
    fn from(config: &Config) -> Self {
        let n = &config.notifications;
        DispatchSettings {
            capabilities: config.capabilities(),
            target_methods: config
                .target_refs()
                .iter()
                .map(|t| (t.qualified_name(), t.target_type.method()))
                .collect(),
            lease_count: n.lease_count.max(1),
            lease_period: n.lease_period,
            dispatch_timeout: n.dispatch_timeout,
            fetch_interval: n.fetch_interval,
            store_sync_interval: n.store_sync_interval,
            store_sync_buffer: n.store_sync_buffer.max(1),
            retention: n.retention,
            policy: RetryPolicy {
                max_send_attempts: n.max_send_attempts,
                retry_interval: n.retry_interval,
                max_retry_delay: n.max_retry_delay,
            },
        }
    }
}

/// What the dispatcher is doing, for the console header and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatcherState {
    Starting,
    Running,
    Paused,
    /// The store is failing; retrying with back-off.
    Degraded,
    Stopping,
    Stopped,
}

/// One notifier. Build it, then [`Dispatcher::run`] it until the shutdown signal.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    channels: Arc<Channels>,
    settings: DispatchSettings,
    notifier_id: Uuid,
    metrics: Arc<Metrics>,
    state: watch::Sender<DispatcherState>,
    in_flight: Arc<AtomicI64>,
    overrides: Overrides,
}

/// Everything one delivery task needs, shared by all of them.
struct DeliveryContext {
    store: Arc<dyn Store>,
    channels: Arc<Channels>,
    settings: DispatchSettings,
    notifier_id: Uuid,
    metrics: Arc<Metrics>,
    templates: RwLock<HashMap<Uuid, Arc<EventTemplate>>>,
    acks: mpsc::Sender<AttemptRecord>,
    in_flight: Arc<AtomicI64>,
    overrides: Overrides,
}

/// Longest pause between retries of a failing store call.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Dispatcher {
    /// Refuses settings that would let a lease expire while its delivery still runs.
    pub fn new(
        store: Arc<dyn Store>,
        channels: Arc<Channels>,
        settings: DispatchSettings,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Dispatcher> {
        if settings.dispatch_timeout >= settings.lease_period {
            anyhow::bail!(
                "notifications.dispatch_timeout ({}) must be shorter than notifications.lease_period ({}), or a slow delivery's lease expires and another replica sends it again",
                humantime::format_duration(settings.dispatch_timeout),
                humantime::format_duration(settings.lease_period)
            );
        }
        Ok(Dispatcher {
            store,
            channels,
            settings,
            notifier_id: Uuid::now_v7(),
            metrics,
            state: watch::Sender::new(DispatcherState::Starting),
            in_flight: Arc::new(AtomicI64::new(0)),
            overrides: Overrides::default(),
        })
    }

    /// Renders with the configuration's `[events.NAME]` and target template overrides
    /// ([`Overrides::from_config`]); without this, every message renders from the catalog.
    pub fn with_overrides(mut self, overrides: Overrides) -> Dispatcher {
        self.overrides = overrides;
        self
    }

    /// This notifier's random id (in `status_reason`, attempts and `notification_replicas`).
    pub fn notifier_id(&self) -> Uuid {
        self.notifier_id
    }

    /// Follows the dispatcher's state.
    pub fn state(&self) -> watch::Receiver<DispatcherState> {
        self.state.subscribe()
    }

    /// Runs until `shutdown` turns true: then stops leasing, finishes in-flight deliveries,
    /// flushes every outcome and returns. Nothing is left `leased` by a clean stop.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let s = &self.settings;
        tracing::info!(
            notifier_id = %self.notifier_id,
            lease_count = s.lease_count,
            fetch_interval = %humantime::format_duration(s.fetch_interval),
            "notifications dispatcher started"
        );
        let wake = self.store.wakeup();
        let (ack_tx, ack_rx) = mpsc::channel(s.store_sync_buffer);
        let flusher = tokio::spawn(acks::flush_outcomes(
            self.store.clone(),
            ack_rx,
            s.store_sync_interval,
            s.store_sync_buffer,
            self.metrics.clone(),
        ));
        let housekeeping = tokio::spawn(housekeeping::run(
            housekeeping::Duties {
                store: self.store.clone(),
                notifier_id: self.notifier_id,
                retention: s.retention,
                capabilities: s.capabilities.clone(),
                in_flight: self.in_flight.clone(),
                metrics: self.metrics.clone(),
            },
            shutdown.clone(),
        ));
        let context = Arc::new(DeliveryContext {
            store: self.store.clone(),
            channels: self.channels.clone(),
            settings: s.clone(),
            notifier_id: self.notifier_id,
            metrics: self.metrics.clone(),
            templates: RwLock::new(HashMap::new()),
            acks: ack_tx,
            in_flight: self.in_flight.clone(),
            overrides: self.overrides.clone(),
        });
        // Deliveries in flight are bounded; leasing waits for room, and a full ack buffer
        // holds deliveries (and so leasing) back.
        let capacity = usize::try_from(s.lease_count)
            .unwrap_or(usize::MAX)
            .saturating_mul(2);
        let permits = Arc::new(Semaphore::new(capacity));
        let mut tasks = JoinSet::new();
        let mut backoff = Duration::from_millis(100);
        let mut deep = false;

        while !*shutdown.borrow() {
            while tasks.try_join_next().is_some() {}
            let paused = match self.store.settings().await {
                Ok(settings) => settings.notifier_paused,
                Err(e) => {
                    self.degraded(&e, &mut backoff, &mut shutdown).await;
                    continue;
                }
            };
            if paused {
                self.set_state(DispatcherState::Paused);
                wait_for_work(&wake, s.fetch_interval, &mut shutdown).await;
                continue;
            }
            // Scoped pauses (DESIGN §14) narrow what this lease may take; the rest flows.
            let capabilities = match self.store.channel_pauses().await {
                Ok(pauses) if pauses.is_empty() => None,
                Ok(pauses) => Some(s.capabilities.without_paused(&pauses, &s.target_methods)),
                Err(e) => {
                    self.degraded(&e, &mut backoff, &mut shutdown).await;
                    continue;
                }
            };
            let capabilities = capabilities.as_ref().unwrap_or(&s.capabilities);
            self.set_state(DispatcherState::Running);
            let room = u32::try_from(permits.available_permits()).unwrap_or(u32::MAX);
            // While the backlog is deep (the last lease came back full), lease only whole
            // batches: each lease is a write transaction whose cost hardly depends on its size,
            // and the deliveries still in flight keep the channels busy meanwhile.
            if room == 0 || (deep && room < s.lease_count && !tasks.is_empty()) {
                // Wait for a delivery to finish rather than spin.
                tokio::select! {
                    _ = tasks.join_next() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let want = room.min(s.lease_count);
            let request = LeaseRequest {
                notifier_id: self.notifier_id,
                limit: want,
                lease_period: s.lease_period,
                max_send_attempts: s.policy.max_send_attempts,
                capabilities,
            };
            let batch = match self.store.lease_batch(&request).await {
                Ok(batch) => batch,
                Err(e) => {
                    self.degraded(&e, &mut backoff, &mut shutdown).await;
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            let full = batch.len() >= want as usize;
            deep = full;
            if !batch.is_empty() {
                self.metrics.record_lease(batch.len() as u64);
                tracing::debug!(notifier_id = %self.notifier_id, count = batch.len(), "notifications leased");
            }
            for message in batch {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let context = context.clone();
                tasks.spawn(async move {
                    deliver(context, message).await;
                    drop(permit);
                });
            }
            if full {
                continue; // more may be waiting: keep leasing while batches come back full
            }
            let idle = match self.store.next_due(capabilities).await {
                Ok(Some(due)) => (due - Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(s.fetch_interval),
                _ => s.fetch_interval,
            };
            wait_for_work(&wake, idle, &mut shutdown).await;
        }

        self.set_state(DispatcherState::Stopping);
        tracing::info!(
            notifier_id = %self.notifier_id,
            in_flight = tasks.len(),
            "notifications dispatcher stopping: finishing in-flight deliveries"
        );
        while tasks.join_next().await.is_some() {}
        drop(context); // closes the ack channel: the flusher writes what is left and ends
        flusher.await??;
        let _ = housekeeping.await;
        if let Err(e) = self.store.release_retention(self.notifier_id).await {
            tracing::warn!(error = %e, "could not give up the retention duty");
        }
        if let Err(e) = self.store.remove_replica(self.notifier_id).await {
            tracing::warn!(error = %e, "could not remove this replica's heartbeat row");
        }
        self.set_state(DispatcherState::Stopped);
        tracing::info!(notifier_id = %self.notifier_id, "notifications dispatcher stopped");
        Ok(())
    }

    fn set_state(&self, state: DispatcherState) {
        self.state.send_if_modified(|s| {
            let changed = *s != state;
            *s = state;
            changed
        });
    }

    async fn degraded(
        &self,
        error: &crate::store::StoreError,
        backoff: &mut Duration,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        self.set_state(DispatcherState::Degraded);
        tracing::warn!(notifier_id = %self.notifier_id, error = %error, retry_in = ?*backoff, "notifications store unavailable");
        tokio::select! {
            _ = tokio::time::sleep(*backoff) => {}
            _ = shutdown.changed() => {}
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps until woken by new work, `idle` elapses, or shutdown.
async fn wait_for_work(
    wake: &tokio::sync::Notify,
    idle: Duration,
    shutdown: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        _ = wake.notified() => {}
        _ = tokio::time::sleep(idle) => {}
        _ = shutdown.changed() => {}
    }
}

/// Renders and delivers one message, then queues its outcome for the bulk write.
async fn deliver(ctx: Arc<DeliveryContext>, message: LeasedMessage) {
    // Shared with the guarded task rather than cloned: the payload is a whole JSON tree.
    let message = Arc::new(message);
    ctx.in_flight.fetch_add(1, Ordering::Relaxed);
    ctx.metrics.inflight_add(1);
    ctx.metrics
        .observe_queued(message.method.as_str(), message.queued_seconds);
    let started_at = Utc::now();
    let clock = Instant::now();
    let (event_name, outcome) = match template(&ctx, message.template_id).await {
        Some(event) => {
            let outcome = deliver_guarded(&ctx, &event, &message).await;
            (event.spec.name.clone(), outcome)
        }
        None => (
            "unknown".to_string(),
            DeliveryOutcome::Permanent {
                reason: format!(
                    "event template {} no longer exists in the catalog",
                    message.template_id
                ),
            },
        ),
    };
    let elapsed = clock.elapsed();
    let result = queue::after_attempt(
        message.attempt_count,
        &outcome,
        &ctx.settings.policy,
        Utc::now(),
    );
    ctx.metrics.record_attempt(
        message.method.as_str(),
        &event_name,
        result.status.as_str(),
        elapsed.as_secs_f64(),
    );
    if message.attempt_count > 0 {
        ctx.metrics.record_retry(message.method.as_str());
    }
    match (&outcome, &result.status_reason) {
        (DeliveryOutcome::Sent, _) => {
            tracing::debug!(message_id = %message.id, method = %message.method, "notification sent")
        }
        (_, reason) => {
            let reason = reason.as_deref().unwrap_or_default();
            tracing::warn!(message_id = %message.id, method = %message.method, event = %event_name, status = %result.status, "notification delivery failed: {reason}")
        }
    }
    let record = AttemptRecord {
        message_id: message.id,
        method: message.method,
        target: message.target.clone(),
        lease_token: message.lease_token,
        notifier_id: ctx.notifier_id,
        started_at,
        duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        result,
    };
    // The flusher only stops after every sender is gone, so this cannot fail while we run.
    if ctx.acks.send(record).await.is_err() {
        tracing::error!(message_id = %message.id, "outcome dropped: the ack buffer is closed; the lease will expire and the message will be retried");
    }
    ctx.in_flight.fetch_sub(1, Ordering::Relaxed);
    ctx.metrics.inflight_add(-1);
}

/// Runs the render and the channel under `dispatch_timeout`, catching a panic, so a delivery
/// that panics or hangs still ends in an outcome (an attempt) instead of a lease that silently
/// expires. It runs in the delivery's own task: a second task per message cost a spawn and a
/// wake-up for nothing (BENCHMARKS.md, issue 10).
async fn deliver_guarded(
    ctx: &Arc<DeliveryContext>,
    event: &Arc<EventTemplate>,
    message: &Arc<LeasedMessage>,
) -> DeliveryOutcome {
    let timeout = ctx.settings.dispatch_timeout;
    let delivery = std::pin::pin!(deliver_rendered(ctx, event, message));
    let guarded = CatchPanic(delivery);
    match tokio::time::timeout(timeout, guarded).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(what)) => {
            tracing::error!(message_id = %message.id, method = %message.method, "delivery panicked: {what}");
            DeliveryOutcome::Retryable {
                reason: format!("delivery failed inside herald (panic: {what})"),
                retry_after: None,
            }
        }
        // The timeout drops the delivery, which closes its connection.
        Err(_) => DeliveryOutcome::Retryable {
            reason: format!(
                "dispatch timeout after {}",
                humantime::format_duration(timeout)
            ),
            retry_after: None,
        },
    }
}

/// A future that turns a panic while it is polled into `Err` with the panic's message, through
/// [`crate::channels::catch_panic`] (so the console keeps its terminal). Once it has panicked
/// its caller drops it at once.
struct CatchPanic<F>(F);

impl<F: std::future::Future + Unpin> std::future::Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = std::pin::Pin::new(&mut self.0);
        match crate::channels::catch_panic(|| inner.poll(cx)) {
            Ok(std::task::Poll::Ready(output)) => std::task::Poll::Ready(Ok(output)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(what) => std::task::Poll::Ready(Err(what)),
        }
    }
}

async fn deliver_rendered(
    ctx: &DeliveryContext,
    event: &EventTemplate,
    message: &LeasedMessage,
) -> DeliveryOutcome {
    let rendered = match render::render_for(
        event,
        &ctx.overrides,
        message.target.as_deref(),
        &message.payload,
    ) {
        Ok(r) => r,
        Err(e) => {
            return DeliveryOutcome::Permanent {
                reason: format!("template error: {e}"),
            };
        }
    };
    let Some(channel) = ctx.channels.get(message.method) else {
        // Leases take only what this replica's capabilities cover, so this is a wiring fault:
        // keep the message for a replica that can deliver it.
        return DeliveryOutcome::Retryable {
            reason: format!(
                "no {} channel is set up on notifier {}; another replica (or this one, once configured) will deliver it",
                message.method, ctx.notifier_id
            ),
            retry_after: None,
        };
    };
    let delivery = Delivery {
        message_id: message.id,
        event: &event.spec.name,
        method: message.method,
        user_id: message.user_id,
        target: message.target.as_deref(),
        payload: &message.payload,
        rendered: &rendered,
    };
    channel.deliver(&delivery).await
}

/// The event behind a message, from a cache refreshed from the store on a miss.
async fn template(ctx: &DeliveryContext, id: Uuid) -> Option<Arc<EventTemplate>> {
    if let Some(t) = ctx.templates.read().await.get(&id) {
        return Some(t.clone());
    }
    let mut cache = ctx.templates.write().await;
    if let Some(t) = cache.get(&id) {
        return Some(t.clone());
    }
    match ctx.store.list_templates().await {
        Ok(all) => {
            *cache = all.into_iter().map(|t| (t.id, Arc::new(t))).collect();
        }
        Err(e) => tracing::warn!(error = %e, "cannot load the event catalog"),
    }
    cache.get(&id).cloned()
}
