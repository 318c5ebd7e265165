//! The ack buffer: delivery outcomes are collected and written to the store in bulk, every
//! `store_sync_interval` or as soon as `store_sync_buffer` of them wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::store::{AttemptRecord, Store};
use crate::telemetry::Metrics;

/// Runs until every sender is dropped and the last outcomes are written. A failing store is
/// retried with back-off; outcomes are never dropped (the channel's bound holds deliveries,
/// and so leasing, back meanwhile).
pub(super) async fn flush_outcomes(
    store: Arc<dyn Store>,
    mut outcomes: mpsc::Receiver<AttemptRecord>,
    interval: Duration,
    buffer_size: usize,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let mut buffer: Vec<AttemptRecord> = Vec::with_capacity(buffer_size);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut open = true;
    while open || !buffer.is_empty() {
        if open {
            tokio::select! {
                received = outcomes.recv() => match received {
                    Some(record) => {
                        buffer.push(record);
                        // Take whatever else is already waiting without awaiting again.
                        while buffer.len() < buffer_size {
                            match outcomes.try_recv() {
                                Ok(record) => buffer.push(record),
                                Err(_) => break,
                            }
                        }
                        metrics.set_pending_updates(buffer.len() as i64);
                        if buffer.len() < buffer_size {
                            continue;
                        }
                    }
                    None => open = false,
                },
                _ = ticker.tick() => {}
            }
        }
        if buffer.is_empty() {
            continue;
        }
        flush(&*store, &mut buffer, &metrics).await;
    }
    Ok(())
}

/// Writes the buffer, retrying until the store takes it.
async fn flush(store: &dyn Store, buffer: &mut Vec<AttemptRecord>, metrics: &Metrics) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let started = Instant::now();
        match store.record_attempts(buffer).await {
            Ok(()) => {
                metrics.observe_flush(started.elapsed().as_secs_f64());
                buffer.clear();
                metrics.set_pending_updates(0);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = buffer.len(), retry_in = ?backoff, "cannot write delivery outcomes; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
