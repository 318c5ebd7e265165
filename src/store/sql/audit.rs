//! The statements of the audit trail (DESIGN §14): one row per operator action, listed newest
//! first on the primary key (ids are UUIDv7) and purged by age on `audit_log_at`.

use super::Sql;

/// One audit row: `$1` id, `$2` at, `$3` actor, `$4` action, `$5` subject, `$6` detail.
pub(in crate::store) static INSERT_AUDIT: Sql = Sql::new(
    "INSERT INTO audit_log (id, at, actor, action, subject, detail)
     VALUES ($1, $2, $3, $4, $5, $6)",
);

/// Up to `$5` rows with ids below `$1` and at or above `$4`, newest first; `$2` (actor) and
/// `$3` (action) filter when given.
pub(in crate::store) static LIST_AUDIT: Sql = Sql::new(
    "SELECT id, at, actor, action, subject, detail FROM audit_log
     WHERE id < $1 AND id >= $4
         AND actor = COALESCE($2, actor) AND action = COALESCE($3, action)
     ORDER BY id DESC LIMIT $5",
);

/// Deletes the rows written before `$1`.
pub(in crate::store) static PURGE_AUDIT: Sql = Sql::new("DELETE FROM audit_log WHERE at < $1");
