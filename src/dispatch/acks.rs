//! The ack buffer: delivery outcomes are collected and written to the store in bulk, every
//! `store_sync_interval` or as soon as `store_sync_buffer` of them wait.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::model::MessageState;
use crate::queue::{self, AttemptResult};
use crate::store::{AttemptRecord, Store, StoreError};
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
        write_outcomes(&*store, &mut buffer, &metrics).await;
    }
    Ok(())
}

/// Writes `buffer` (emptying it), retrying while the store is unavailable. An outcome the store refuses
/// (DESIGN §6.7) is isolated: the batch is written one outcome at a time, a refused outcome is
/// replaced by a final state that says why, and the rest are written — one bad row never holds
/// the others back.
pub async fn write_outcomes(store: &dyn Store, buffer: &mut Vec<AttemptRecord>, metrics: &Metrics) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let started = Instant::now();
        match store.record_attempts(buffer).await {
            Ok(late) => {
                metrics.observe_flush(started.elapsed().as_secs_f64());
                note_late(late, metrics);
                buffer.clear();
                metrics.set_pending_updates(0);
                return;
            }
            Err(e) if refused(&e) => {
                tracing::warn!(error = %e, pending = buffer.len(), "the store refused a batch of delivery outcomes; writing them one by one");
                isolate(store, buffer, metrics).await;
                if buffer.is_empty() {
                    metrics.set_pending_updates(0);
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, pending = buffer.len(), retry_in = ?backoff, "cannot write delivery outcomes; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Writes each outcome alone; keeps in `buffer` only those that failed for a reason that may
/// pass (the store went away meanwhile).
async fn isolate(store: &dyn Store, buffer: &mut Vec<AttemptRecord>, metrics: &Metrics) {
    let mut unwritten = Vec::new();
    for record in buffer.drain(..) {
        match store.record_attempts(std::slice::from_ref(&record)).await {
            Ok(late) => note_late(late, metrics),
            Err(e) if refused(&e) => {
                metrics.record_isolated_outcome();
                let replacement = refused_outcome(&record, &e);
                tracing::error!(message_id = %record.message_id, error = %e, "the store refused this delivery outcome; the message is marked permanent_failure");
                match store
                    .record_attempts(std::slice::from_ref(&replacement))
                    .await
                {
                    Ok(late) => note_late(late, metrics),
                    Err(e) if refused(&e) => {
                        // Nothing more can be written for it; its lease expires, and that
                        // counts as an attempt, so it cannot come back forever.
                        tracing::error!(message_id = %record.message_id, error = %e, "the store refused even the replacement outcome; dropping it");
                    }
                    Err(_) => unwritten.push(replacement),
                }
            }
            Err(_) => unwritten.push(record),
        }
    }
    *buffer = unwritten;
}

/// The final state written in place of an outcome the store refused.
fn refused_outcome(record: &AttemptRecord, error: &StoreError) -> AttemptRecord {
    let what = match record.result.status {
        MessageState::Sent => "the delivery succeeded, but",
        _ => "the delivery failed, and",
    };
    let reason = queue::clean_text(
        &format!(
            "{what} the store refused to record its outcome ({}); not retried automatically",
            error
        ),
        queue::MAX_REASON_CHARS,
    );
    AttemptRecord {
        result: AttemptResult {
            status: MessageState::PermanentFailure,
            status_reason: Some(reason),
            attempt_count: record.result.attempt_count,
            next_retry_after: None,
        },
        ..record.clone()
    }
}

fn note_late(late: u64, metrics: &Metrics) {
    if late > 0 {
        metrics.record_late_outcomes(late);
        tracing::info!(
            count = late,
            "delivery outcomes arrived after their lease expired and were dropped"
        );
    }
}

/// Whether the store refused the data itself (an invalid value, a broken constraint, a row it
/// cannot read) rather than being unavailable; a refusal does not pass by retrying.
pub(super) fn refused(error: &StoreError) -> bool {
    match error {
        StoreError::Corrupt { .. } | StoreError::Conflict(_) => true,
        StoreError::Database(sqlx::Error::Database(db)) => {
            if db.kind() != sqlx::error::ErrorKind::Other {
                return true; // unique, foreign key, not-null or check violation
            }
            let code = db.code().unwrap_or_default();
            // PostgreSQL class 22 (data exception: bad encoding, out of range, …); SQLite
            // SQLITE_TOOBIG (18), SQLITE_CONSTRAINT (19) and SQLITE_MISMATCH (20).
            code.starts_with("22") || matches!(code.as_ref(), "18" | "19" | "20")
        }
        StoreError::Database(
            sqlx::Error::Encode(_) | sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. },
        ) => true,
        _ => false,
    }
}
