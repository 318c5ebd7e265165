//! The audit trail (DESIGN §14) for every backend: the row an audited change writes in its own
//! transaction, the newest-first listing and the retention purge.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::backend::{Backend, On, StoredRow};
use crate::store::rows::to_json;
use crate::store::sql::{Param, Sql, audit as q};
use crate::store::{
    AuditEntry, AuditFilter, AuditRecord, PageRequest, StoreError, StoreResult, uuid_v7_floor,
};

use super::{execute, rows};

const AUDIT: &str = "audit_log";

/// Writes `entry` inside `tx`, with `count` (how many rows the change touched) added to its
/// detail when given: the change and its record commit or roll back together.
pub(super) async fn write<B: Backend>(
    backend: &B,
    tx: &mut B::Tx,
    entry: &AuditEntry,
    count: Option<u64>,
) -> StoreResult<()> {
    let mut detail = entry.detail.clone();
    if let Some(n) = count {
        detail.insert("count".into(), n.into());
    }
    let detail = to_json(&detail);
    let params = [
        Param::Id(Uuid::now_v7()),
        Param::Time(Utc::now()),
        Param::Text(&entry.actor),
        Param::Text(&entry.action),
        Param::Text(&entry.subject),
        Param::Text(&detail),
    ];
    let statement = q::INSERT_AUDIT.get(B::DIALECT);
    backend.execute(On::Tx(tx), statement, &params).await?;
    Ok(())
}

/// When an audited statement's row is written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Record {
    /// Only when the statement changed a row (a revoke of nothing records nothing).
    IfChanged,
    /// Whatever it reports (an update that sets a value it already held still happened).
    Always,
}

/// Runs one statement and, with `audit`, its audit row in the same transaction (see
/// [`Record`]); without, on the pool as before. Returns how many rows it changed.
pub(super) async fn execute_audited<B: Backend>(
    backend: &B,
    sql: &Sql,
    params: &[Param<'_>],
    audit: Option<&AuditEntry>,
    record: Record,
) -> StoreResult<u64> {
    let Some(entry) = audit else {
        return execute(backend, sql, params).await;
    };
    let mut tx = backend.begin().await?;
    let changed = backend
        .execute(On::Tx(&mut tx), sql.get(B::DIALECT), params)
        .await?;
    if changed > 0 || record == Record::Always {
        write(backend, &mut tx, entry, None).await?;
    }
    B::commit(tx).await?;
    Ok(changed)
}

/// Like [`execute_audited`] for a statement that returns rows (`RETURNING`); the row is
/// written when it returned any.
pub(super) async fn fetch_audited<B: Backend>(
    backend: &B,
    sql: &Sql,
    params: &[Param<'_>],
    audit: Option<&AuditEntry>,
    count: bool,
) -> StoreResult<Vec<B::Row>> {
    let Some(entry) = audit else {
        return rows(backend, sql, params).await;
    };
    let mut tx = backend.begin().await?;
    let found = backend
        .fetch_all(On::Tx(&mut tx), sql.get(B::DIALECT), params)
        .await?;
    if !found.is_empty() {
        let n = count.then_some(found.len() as u64);
        write(backend, &mut tx, entry, n).await?;
    }
    B::commit(tx).await?;
    Ok(found)
}

/// [`crate::store::Store::list_audit`].
pub(super) async fn list_audit<B: Backend>(
    backend: &B,
    filter: &AuditFilter,
    page: PageRequest,
) -> StoreResult<Vec<AuditRecord>> {
    let since = filter.since.map_or(Uuid::nil(), uuid_v7_floor);
    let params = [
        Param::Id(page.before.unwrap_or(Uuid::max())),
        Param::OptText(filter.actor.as_deref()),
        Param::OptText(filter.action.as_deref()),
        Param::Id(since),
        Param::I64(i64::from(page.limit)),
    ];
    rows(backend, &q::LIST_AUDIT, &params)
        .await?
        .iter()
        .map(|row| {
            let detail = row.str("detail")?;
            Ok(AuditRecord {
                id: row.id(AUDIT, "id")?,
                at: row.time(AUDIT, "at")?,
                actor: row.text("actor")?,
                action: row.text("action")?,
                subject: row.text("subject")?,
                detail: serde_json::from_str(detail).map_err(|e| StoreError::Corrupt {
                    table: AUDIT,
                    detail: format!("invalid JSON in detail: {e}"),
                })?,
            })
        })
        .collect()
}

/// [`crate::store::Store::purge_audit`].
pub(super) async fn purge_audit<B: Backend>(
    backend: &B,
    cutoff: DateTime<Utc>,
) -> StoreResult<u64> {
    execute(backend, &q::PURGE_AUDIT, &[Param::Time(cutoff)]).await
}
