//! The statements of the operators' channel tools (DESIGN §14): scoped pauses.

use super::Sql;

/// Every scoped pause, by scope then name.
pub(in crate::store) static CHANNEL_PAUSES: Sql = Sql::new(
    "SELECT scope, name, paused_by, paused_at FROM notification_channel_pauses
     ORDER BY scope, name",
);

/// Pauses `$1` scope `$2` name for `$3`; a pause already there is kept as it was.
pub(in crate::store) static PAUSE_CHANNEL: Sql = Sql::new(
    "INSERT INTO notification_channel_pauses (scope, name, paused_by, paused_at)
     VALUES ($1, $2, $3, {now}) ON CONFLICT (scope, name) DO NOTHING",
);

/// Lifts the pause of `$1` scope `$2` name.
pub(in crate::store) static RESUME_CHANNEL: Sql =
    Sql::new("DELETE FROM notification_channel_pauses WHERE scope = $1 AND name = $2");
