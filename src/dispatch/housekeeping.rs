//! Background duties of a notifier: its heartbeat row, aging out dead replicas, and retention.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use crate::model::{Capabilities, Method};
use crate::store::{Replica, Store, StoreResult, Undeliverable};
use crate::telemetry::Metrics;

/// How often a notifier says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A replica silent this long is considered dead and removed.
pub const REPLICA_EXPIRY: Duration = Duration::from_secs(60);
/// How often a notifier counts what no replica can deliver (a scan of waiting messages).
const UNDELIVERABLE_INTERVAL: Duration = Duration::from_secs(30);
/// How often retention runs (by one replica at a time).
const RETENTION_INTERVAL: Duration = Duration::from_secs(600);

/// What the background duties need.
pub(super) struct Duties {
    pub store: Arc<dyn Store>,
    pub notifier_id: Uuid,
    pub retention: Duration,
    pub capabilities: Capabilities,
    pub in_flight: Arc<AtomicI64>,
    pub metrics: Arc<Metrics>,
}

pub(super) async fn run(duties: Duties, mut shutdown: watch::Receiver<bool>) {
    let Duties {
        store,
        notifier_id,
        retention,
        capabilities,
        in_flight,
        metrics,
    } = duties;
    let started_at = Utc::now();
    let hostname = hostname();
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    let mut retention_tick = tokio::time::interval(RETENTION_INTERVAL);
    // After the first heartbeat, so this replica's own capabilities are counted.
    let mut waiting_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + HEARTBEAT_INTERVAL,
        UNDELIVERABLE_INTERVAL,
    );
    waiting_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let replica = Replica {
                    id: notifier_id,
                    hostname: hostname.clone(),
                    pid,
                    started_at,
                    last_seen_at: Utc::now(),
                    in_flight: i32::try_from(in_flight.load(Ordering::Relaxed)).unwrap_or(i32::MAX),
                    capabilities: capabilities.clone(),
                };
                if let Err(e) = store.heartbeat(&replica).await {
                    tracing::warn!(error = %e, "notifier heartbeat failed");
                }
                let expiry = chrono::Duration::from_std(REPLICA_EXPIRY).unwrap_or(chrono::Duration::MAX);
                match store.prune_replicas(Utc::now() - expiry).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(count = n, "removed replicas that stopped sending heartbeats"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune dead replicas"),
                }
                report_message_counts(&*store, &metrics).await;
            }
            _ = waiting_tick.tick() => {
                report_undeliverable(&*store, &metrics).await;
                report_backlog(&*store, &metrics).await;
            }
            _ = retention_tick.tick() => purge_old_messages(&*store, notifier_id, retention).await,
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    return;
                }
            }
        }
    }
}

/// Messages no running replica can deliver, for `/metrics` and a warning in the log.
async fn report_undeliverable(store: &dyn Store, metrics: &Metrics) {
    let waiting = match undeliverable_now(store).await {
        Ok(waiting) => waiting,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count undeliverable messages");
            return;
        }
    };
    for w in &waiting {
        tracing::warn!(method = %w.method, target = w.target.as_deref().unwrap_or(""), "{}", w.describe());
    }
    metrics.set_undeliverable(
        waiting
            .into_iter()
            .map(|w| (w.method.to_string(), w.target.unwrap_or_default(), w.count))
            .collect(),
    );
}

/// The store's messages per state, from its maintained counts (a few rows), for `/metrics`.
async fn report_message_counts(store: &dyn Store, metrics: &Metrics) {
    match store.count_by_state().await {
        Ok(counts) => metrics.set_message_counts(
            counts
                .into_iter()
                .map(|(state, n)| (state.to_string(), n))
                .collect(),
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read the message counts"),
    }
}

/// Messages waiting per method (a read of the waiting rows only), for `/metrics`; every
/// method is present, zero when nothing waits.
async fn report_backlog(store: &dyn Store, metrics: &Metrics) {
    let backlog = match store.backlog_by_channel().await {
        Ok(backlog) => backlog,
        Err(e) => {
            tracing::warn!(error = %e, "cannot count the backlog");
            return;
        }
    };
    let per_method = Method::ALL
        .iter()
        .map(|&method| {
            let waiting = backlog.iter().filter(|b| b.method == method);
            (method.to_string(), waiting.map(|b| b.count).sum())
        })
        .collect();
    metrics.set_backlog(per_method);
}

/// What waits for a method or target that none of the replicas alive now can deliver.
pub async fn undeliverable_now(store: &dyn Store) -> StoreResult<Vec<Undeliverable>> {
    let covered = live_capabilities(store).await?;
    store.undeliverable(&covered).await
}

/// Everything the replicas alive now (their heartbeat fresh) deliver between them.
pub async fn live_capabilities(store: &dyn Store) -> StoreResult<Capabilities> {
    let replicas = store.list_replicas().await?;
    let expiry = chrono::Duration::from_std(REPLICA_EXPIRY).unwrap_or(chrono::Duration::MAX);
    let alive = Utc::now() - expiry;
    Ok(Capabilities::union(
        replicas
            .iter()
            .filter(|r| r.last_seen_at >= alive)
            .map(|r| &r.capabilities),
    ))
}

/// Deletes messages untouched for `retention`, and audit rows older than it, when this
/// notifier holds the retention duty.
pub async fn purge_old_messages(store: &dyn Store, notifier_id: Uuid, retention: Duration) {
    match store
        .lead_retention(notifier_id, RETENTION_INTERVAL * 2)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the retention duty");
            return;
        }
    }
    let Ok(age) = chrono::Duration::from_std(retention) else {
        return;
    };
    let cutoff = Utc::now() - age;
    let retention = humantime::format_duration(retention);
    // Automatic retention is no operator's action: it writes no audit row.
    match store.purge_messages(cutoff, None).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(count = n, retention = %retention, "purged old notification messages")
        }
        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
    }
    match store.purge_audit(cutoff).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, retention = %retention, "purged old audit rows"),
        Err(e) => tracing::warn!(error = %e, "audit retention purge failed"),
    }
    // Channel health reads the last 15 minutes of these; an hour is kept.
    let counted = Utc::now() - ATTEMPT_MINUTES_KEPT;
    if let Err(e) = store.purge_attempt_minutes(counted).await {
        tracing::warn!(error = %e, "cannot purge the per-minute attempt counts");
    }
}

/// How long the per-minute attempt counts are kept (channel health reads 15 minutes of them).
const ATTEMPT_MINUTES_KEPT: chrono::Duration = chrono::Duration::hours(1);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}
