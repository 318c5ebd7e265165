//! Scoped pauses (DESIGN §14), for every backend.

use crate::model::{ChannelPause, PauseScope};
use crate::store::StoreResult;
use crate::store::backend::{Backend, On, StoredRow};
use crate::store::rows::parse_enum;
use crate::store::sql::{Param, channels as q};

use super::{execute, rows};

const PAUSES: &str = "notification_channel_pauses";

/// [`crate::store::Store::channel_pauses`].
pub(super) async fn channel_pauses<B: Backend>(backend: &B) -> StoreResult<Vec<ChannelPause>> {
    rows(backend, &q::CHANNEL_PAUSES, &[])
        .await?
        .iter()
        .map(|row| {
            Ok(ChannelPause {
                scope: parse_enum(PAUSES, row.str("scope")?)?,
                name: row.text("name")?,
                paused_by: row.text("paused_by")?,
                paused_at: row.time(PAUSES, "paused_at")?,
            })
        })
        .collect()
}

/// [`crate::store::Store::pause_channel`].
pub(super) async fn pause_channel<B: Backend>(
    backend: &B,
    scope: PauseScope,
    name: &str,
    paused_by: &str,
) -> StoreResult<bool> {
    let params = [
        Param::Text(scope.as_str()),
        Param::Text(name),
        Param::Text(paused_by),
    ];
    Ok(execute(backend, &q::PAUSE_CHANNEL, &params).await? > 0)
}

/// [`crate::store::Store::resume_channel`]: also wakes every replica, which may have held
/// messages back.
pub(super) async fn resume_channel<B: Backend>(
    backend: &B,
    scope: PauseScope,
    name: &str,
) -> StoreResult<bool> {
    let params = [Param::Text(scope.as_str()), Param::Text(name)];
    let resumed = execute(backend, &q::RESUME_CHANNEL, &params).await? > 0;
    if resumed {
        backend.wake_replicas(On::Pool).await?;
        backend.handle().wake_here();
    }
    Ok(resumed)
}
