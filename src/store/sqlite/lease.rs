//! The lease (DESIGN §5) on SQLite, as one call on the direct connection: the same
//! statements, in the same order and transaction, as the lease every backend shares
//! ([`crate::store::shared::queue::lease_batch`]).

use std::sync::Arc;

use uuid::Uuid;

use super::connections::Connections;
use super::direct::Direct;
use crate::store::backend::StoredRow;
use crate::store::rows::{leased_from_row, to_json};
use crate::store::shared::queue::{not_isolated, unreadable};
use crate::store::sql::{Dialect, List, Param, lease};
use crate::store::{LeaseRequest, LeasedMessage, StoreResult};

/// [`crate::store::Store::lease_batch`]; a row that cannot be read is made
/// `permanent_failure` in the same transaction, so it never fails (or wedges) a lease again.
pub(super) async fn lease_batch(
    direct: &Arc<Direct>,
    writer: &Arc<Connections>,
    req: &LeaseRequest<'_>,
) -> StoreResult<Vec<LeasedMessage>> {
    let token = Uuid::now_v7();
    let max_send_attempts = i32::try_from(req.max_send_attempts).unwrap_or(i32::MAX);
    let reason = crate::queue::leased_reason(req.notifier_id);
    let methods = List::Json(to_json(&req.capabilities.methods));
    let targets = List::Json(to_json(&req.capabilities.targets));
    let (limit, period) = (req.limit, req.lease_period);
    direct
        .transaction(writer, move |tx| {
            let exhausted = lease::EXHAUSTED.get(Dialect::Sqlite);
            tx.execute(exhausted, &[Param::I32(max_send_attempts)])?;
            let binds = lease::Binds {
                period,
                reason: &reason,
                max_send_attempts,
                token,
                methods: &methods,
                targets: &targets,
            };
            let mut leased = Vec::with_capacity(limit as usize);
            let mut unreadable_ids = Vec::new();
            let mut taken = 0;
            // SQLite walks the `(status, id)` index for the pending pass whatever its
            // statistics say, so `index_ordered` needs nothing here.
            for pass in lease::passes(limit) {
                let room = (i64::from(limit) - taken).min(pass.share);
                if room <= 0 {
                    continue;
                }
                let statement = pass.sql.get(Dialect::Sqlite);
                tx.for_each_row(statement, &binds.params(room), |row| {
                    taken += 1;
                    match leased_from_row(row) {
                        Ok(message) => leased.push(message),
                        Err(error) => {
                            if let Some((Param::Text(id), reason)) =
                                unreadable(row.raw_id(), &error)
                            {
                                unreadable_ids.push((id.to_string(), reason));
                            }
                        }
                    }
                    Ok(())
                })?;
            }
            for (id, reason) in unreadable_ids {
                let params = [Param::Text(&reason), Param::Text(&id), Param::Id(token)];
                if let Err(e) = tx.execute(lease::ISOLATE_UNREADABLE.get(Dialect::Sqlite), &params)
                {
                    not_isolated(Param::Text(&id), &e);
                }
            }
            leased.sort_by_key(|m| m.id);
            Ok(leased)
        })
        .await
}
