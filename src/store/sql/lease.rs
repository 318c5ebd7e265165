//! The lease (DESIGN §5), the hot path: its rule written once, its statements expanded once per
//! backend, run in one transaction. PostgreSQL takes rows with `FOR UPDATE SKIP LOCKED` so
//! concurrent leases never wait on each other; SQLite serializes writers, so a plain
//! `UPDATE … WHERE id IN (…)` suffices.
//!
//! The passes bind `$1` the lease period, `$2` the leased reason, `$3` max_send_attempts,
//! `$4` how many to take, `$5` the lease token, `$6` the methods and `$7` the targets the
//! caller can deliver. [`EXHAUSTED`] binds `$1` max_send_attempts.

use std::time::Duration;

use uuid::Uuid;

use super::{List, Param, Sql};

/// Retries whose time has come and leases that expired (their replica died or the delivery
/// hung; that lease counts as an attempt), with attempts left. The leading `status IN` lets
/// SQLite search the due index by status; without it SQLite scanned the whole table, since it
/// cannot see that the OR implies the index's condition.
macro_rules! due {
    ($max:literal) => {
        concat!(
            "(status IN ('temporary_failure', 'leased') AND ((status = 'temporary_failure' AND next_retry_after <= {now} AND attempt_count < ",
            $max,
            ") OR (status = 'leased' AND leased_until < {now} AND attempt_count + 1 < ",
            $max,
            ")))"
        )
    };
}

/// Due messages whose attempts are used up (max_send_attempts was lowered, or a lease expired
/// on the last attempt): they are finalised rather than left stuck. (`status IN` as in
/// [`due`].)
macro_rules! exhausted {
    ($max:literal) => {
        concat!(
            "(status IN ('temporary_failure', 'leased') AND ((status = 'temporary_failure' AND next_retry_after <= {now} AND attempt_count >= ",
            $max,
            ") OR (status = 'leased' AND leased_until < {now} AND attempt_count + 1 >= ",
            $max,
            ")))"
        )
    };
}

/// Messages the caller can deliver: a user message by its method, a target message by name.
macro_rules! deliverable {
    () => {
        "((target IS NULL AND method {any $6}) OR target {any $7})"
    };
}

/// An expired lease counts as an attempt.
macro_rules! attempts_with_expired_lease {
    () => {
        "attempt_count + (CASE WHEN status = 'leased' THEN 1 ELSE 0 END)"
    };
}

macro_rules! take {
    ($queued_seconds:literal) => {
        concat!(
            "SET status = 'leased', leased_until = {later $1}, status_reason = $2,
                 updated_at = {now}, lease_token = $5, attempt_count = ",
            attempts_with_expired_lease!(),
            ", queued_seconds = ",
            $queued_seconds
        )
    };
}

macro_rules! leased_columns {
    ($table:literal) => {
        concat!(
            $table,
            "id, ",
            $table,
            "notification_template_id, ",
            $table,
            "user_id, ",
            $table,
            "target, ",
            $table,
            "method, CAST(",
            $table,
            "payload AS TEXT) AS payload, ",
            $table,
            "attempt_count, ",
            $table,
            "created_at, ",
            $table,
            "queued_seconds, ",
            $table,
            "lease_token"
        )
    };
}

macro_rules! lease_pass {
    ($condition:expr) => {
        Sql::each(
            concat!(
                "WITH leasable AS (SELECT id FROM notification_messages WHERE ",
                $condition,
                " AND ",
                deliverable!(),
                " ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
                 UPDATE notification_messages m ",
                take!("EXTRACT(EPOCH FROM {now} - updated_at)::double precision"),
                " FROM leasable WHERE m.id = leasable.id RETURNING ",
                leased_columns!("m.")
            ),
            concat!(
                "UPDATE notification_messages ",
                take!("(julianday({now}) - julianday(updated_at)) * 86400.0"),
                " WHERE id IN (SELECT id FROM notification_messages WHERE ",
                $condition,
                " AND ",
                deliverable!(),
                " ORDER BY id LIMIT $4) RETURNING ",
                leased_columns!("")
            ),
        )
    };
}

/// Finalises the due messages whose attempts are used up, saying why.
pub(in crate::store) static EXHAUSTED: Sql = Sql::new(concat!(
    "UPDATE notification_messages SET status = 'permanent_failure', status_reason = CASE
         WHEN status = 'leased' THEN 'lease expired without an outcome (the delivery hung or its replica died); gave up after '
             || (attempt_count + 1)
             || ' attempts; max_send_attempts is ' || CAST($1 AS TEXT)
         ELSE COALESCE(status_reason, 'failed') || ' (gave up after ' || attempt_count
             || ' attempts; max_send_attempts is ' || CAST($1 AS TEXT) || ')' END,
         attempt_count = ",
    attempts_with_expired_lease!(),
    ", leased_until = NULL, next_retry_after = NULL, updated_at = {now} WHERE ",
    exhausted!("$1")
));

/// Leases pending messages, oldest first: on SQLite by the `(status, id)` index, on PostgreSQL
/// by the index of pending messages alone (migration 6).
pub(in crate::store) static PENDING: Sql = lease_pass!("status = 'pending' AND attempt_count < $3");

/// Leases due retries and expired leases.
pub(in crate::store) static DUE: Sql = lease_pass!(due!("$3"));

/// The share of each lease kept for due retries and expired leases, so a backlog of new
/// messages cannot starve them.
pub(in crate::store) fn due_share(limit: u32) -> i64 {
    i64::from(limit.div_ceil(4).max(1))
}

/// One pass of a lease.
pub(in crate::store) struct Pass {
    pub sql: &'static Sql,
    /// The most rows it may take.
    pub share: i64,
    /// Whether its order is an index's (the pending messages'), to be read from the index
    /// rather than sorted ([`crate::store::backend::Backend::fetch_all_in_index_order`]).
    pub index_ordered: bool,
}

/// The lease's passes in order: due retries and expired leases first, up to their share; then
/// pending messages on their own ordered index (on PostgreSQL that scan also marks dead index
/// entries so later scans skip them); then due ones again if room is left.
pub(in crate::store) fn passes(limit: u32) -> [Pass; 3] {
    let due = |share| Pass {
        sql: &DUE,
        share,
        index_ordered: false,
    };
    let pending = Pass {
        sql: &PENDING,
        share: i64::MAX,
        index_ordered: true,
    };
    [due(due_share(limit)), pending, due(i64::MAX)]
}

/// What every pass binds besides how many rows it may take (`$1`…`$7`, the module doc).
pub(in crate::store) struct Binds<'a> {
    pub period: Duration,
    pub reason: &'a str,
    pub max_send_attempts: i32,
    pub token: Uuid,
    pub methods: &'a List<'a>,
    pub targets: &'a List<'a>,
}

impl Binds<'_> {
    /// The parameters of a pass that may take `room` rows.
    pub fn params(&self, room: i64) -> [Param<'_>; 7] {
        [
            Param::Later(self.period),
            Param::Text(self.reason),
            Param::I32(self.max_send_attempts),
            Param::I64(room),
            Param::Id(self.token),
            Param::List(self.methods),
            Param::List(self.targets),
        ]
    }
}

/// Marks a leased row that cannot be read `permanent_failure` with why (`$1`), by id (`$2`)
/// and lease token (`$3`).
pub(in crate::store) static ISOLATE_UNREADABLE: Sql = Sql::new(
    "UPDATE notification_messages SET status = 'permanent_failure', status_reason = $1,
         leased_until = NULL, lease_token = NULL, updated_at = {now}
     WHERE id = $2 AND lease_token = $3",
);
