//! Background duties of a notifier: its heartbeat row, aging out dead replicas, and retention.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use uuid::Uuid;

use crate::store::{Replica, Store};

/// How often a notifier says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A replica silent this long is considered dead and removed.
pub const REPLICA_EXPIRY: Duration = Duration::from_secs(60);
/// How often retention runs (by one replica at a time).
const RETENTION_INTERVAL: Duration = Duration::from_secs(600);

pub(super) async fn run(
    store: Arc<dyn Store>,
    notifier_id: Uuid,
    retention: Duration,
    in_flight: Arc<AtomicI64>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started_at = Utc::now();
    let hostname = hostname();
    let pid = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    let mut retention_tick = tokio::time::interval(RETENTION_INTERVAL);
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

/// Deletes messages untouched for `retention`, when this notifier holds the retention duty.
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
    match store.purge_messages(Utc::now() - age).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(count = n, retention = %humantime::format_duration(retention), "purged old notification messages")
        }
        Err(e) => tracing::warn!(error = %e, "retention purge failed"),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".to_string())
}
