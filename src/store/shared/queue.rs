//! The queue's two writes with most steps: enqueue (one insert, then naming the originals of
//! duplicates) and the lease (finalise the exhausted, then the passes), for every backend.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::execute;
use crate::store::backend::{Backend, On, StoredRow};
use crate::store::rows::{leased_from_row, unreadable_reason};
use crate::store::sql::{List, Param, lease, queries as q};
use crate::store::{
    EnqueueOutcome, LeaseRequest, LeasedMessage, NewMessage, StoreError, StoreResult,
};

const MESSAGES: &str = "notification_messages";

/// [`crate::store::Store::enqueue`].
pub(super) async fn enqueue<B: Backend>(
    backend: &B,
    messages: &[NewMessage],
) -> StoreResult<EnqueueOutcome> {
    if messages.is_empty() {
        return Ok(EnqueueOutcome::default());
    }
    let mut tx = backend.begin().await?;
    let inserted: HashSet<Uuid> = B::insert_messages(&mut tx, messages)
        .await?
        .into_iter()
        .collect();
    let mut outcome = EnqueueOutcome::default();
    let mut skipped = Vec::new();
    for m in messages {
        if inserted.contains(&m.id) {
            outcome.enqueued.push(m.id);
        } else {
            skipped.push(m.planned.dedupe_hash.clone().unwrap_or_default());
        }
    }
    if !skipped.is_empty() {
        let statement = q::MESSAGES_WITH_HASHES.get(B::DIALECT);
        let found = backend
            .fetch_all(On::Tx(&mut tx), statement, &[Param::Strings(&skipped)])
            .await?;
        let by_hash = found
            .iter()
            .map(|row| Ok((row.text("dedupe_hash")?, row.id(MESSAGES, "id")?)))
            .collect::<StoreResult<HashMap<String, Uuid>>>()?;
        for hash in &skipped {
            let id = by_hash.get(hash).ok_or_else(|| StoreError::Corrupt {
                table: MESSAGES,
                detail: format!("a message was refused but no message has dedupe hash {hash}"),
            })?;
            outcome.duplicates.push(*id);
        }
    }
    if !outcome.enqueued.is_empty() {
        backend.wake_replicas(On::Tx(&mut tx)).await?;
    }
    B::commit(tx).await?;
    if !outcome.enqueued.is_empty() {
        backend.handle().wake_here();
    }
    Ok(outcome)
}

/// [`crate::store::Store::lease_batch`].
pub(in crate::store) async fn lease_batch<B: Backend>(
    backend: &B,
    req: &LeaseRequest<'_>,
) -> StoreResult<Vec<LeasedMessage>> {
    let token = Uuid::now_v7();
    let max = i32::try_from(req.max_send_attempts).unwrap_or(i32::MAX);
    let reason = crate::queue::leased_reason(req.notifier_id);
    // One transaction for all the passes: one commit per lease, not one per statement
    // (measured on PostgreSQL: 11,600 → 12,800 msg/s drained). `SKIP LOCKED` still keeps
    // concurrent leases apart; only the finalising statement can wait, and only first.
    let mut tx = backend.begin().await?;
    let methods = List::methods(B::DIALECT, &req.capabilities.methods);
    let targets = List::strings(B::DIALECT, &req.capabilities.targets);
    let exhausted = lease::EXHAUSTED.get(B::DIALECT);
    backend
        .execute(On::Tx(&mut tx), exhausted, &[Param::I32(max)])
        .await?;
    let binds = lease::Binds {
        period: req.lease_period,
        reason: &reason,
        max_send_attempts: max,
        token,
        methods: &methods,
        targets: &targets,
    };
    let mut rows = Vec::new();
    for pass in lease::passes(req.limit) {
        let room = (i64::from(req.limit) - rows.len() as i64).min(pass.share);
        if room <= 0 {
            continue;
        }
        let statement = pass.sql.get(B::DIALECT);
        let params = binds.params(room);
        let taken = if pass.index_ordered {
            backend
                .fetch_all_in_index_order(&mut tx, statement, &params)
                .await?
        } else {
            backend
                .fetch_all(On::Tx(&mut tx), statement, &params)
                .await?
        };
        rows.extend(taken);
    }
    B::commit(tx).await?;
    let mut leased = Vec::with_capacity(rows.len());
    for row in &rows {
        match leased_from_row(row) {
            Ok(message) => leased.push(message),
            Err(e) => isolate_unreadable(backend, row, token, &e).await,
        }
    }
    leased.sort_by_key(|m| m.id);
    Ok(leased)
}

/// Makes a leased row that cannot be read `permanent_failure` with why, so it never fails (or
/// wedges) a batch again.
async fn isolate_unreadable<B: Backend>(
    backend: &B,
    row: &B::Row,
    token: Uuid,
    error: &StoreError,
) {
    let Some((id, reason)) = unreadable(row.raw_id(), error) else {
        return;
    };
    let params = [Param::Text(&reason), id, Param::Id(token)];
    if let Err(e) = execute(backend, &lease::ISOLATE_UNREADABLE, &params).await {
        not_isolated(id, &e);
    }
}

/// Logs a leased row that cannot be read; returns its id and the reason to isolate it with,
/// or None when even its id is unreadable (then its lease will expire).
pub(in crate::store) fn unreadable<'a>(
    id: Option<Param<'a>>,
    error: &StoreError,
) -> Option<(Param<'a>, String)> {
    tracing::error!(message_id = ?id, error = %error, "leased message cannot be read; marking it permanent_failure");
    Some((id?, unreadable_reason(error)))
}

/// Logs that an unreadable row could not be isolated.
pub(in crate::store) fn not_isolated(id: Param<'_>, error: &StoreError) {
    tracing::error!(message_id = ?id, error = %error, "cannot isolate the unreadable message; its lease will expire");
}
