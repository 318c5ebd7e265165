//! The caller's own inbox: `GET /api/v1/inbox` (unread first) and
//! `POST /api/v1/inbox/{id}/read`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::params::{NoParams, Params, bad_param};
use super::{ApiError, ApiState};
use crate::service::{InboxEntry, InboxFilter};

/// `GET /api/v1/inbox`'s query, `herald inbox list`'s flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxParams {
    /// Only unread entries.
    #[serde(default)]
    unread: bool,
    /// Only read entries.
    #[serde(default)]
    read: bool,
    limit: Option<u32>,
}

/// As many entries as `herald inbox list` shows when not told.
const DEFAULT_LIMIT: u32 = 50;

/// `200 [entries…]`, as `herald inbox list --json` prints them.
pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Params(params): Params<InboxParams>,
) -> Result<Json<Vec<InboxEntry>>, ApiError> {
    let filter = match (params.unread, params.read) {
        (true, true) => {
            return Err(bad_param(
                "unread",
                "`unread=true` and `read=true` together match nothing; pass one of them, or neither for all",
            ));
        }
        (true, false) => InboxFilter::Unread,
        (false, true) => InboxFilter::Read,
        (false, false) => InboxFilter::All,
    };
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 {
        return Err(bad_param("limit", "ask for at least one entry"));
    }
    Ok(Json(state.service.inbox(&caller, filter, limit).await?))
}

/// `200 {"id", "read": true}`; another user's entry is as unknown as a missing one (404).
pub async fn mark_read(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    _: Params<NoParams>,
) -> Result<Json<Value>, ApiError> {
    state.service.mark_inbox(&caller, &id, true).await?;
    Ok(Json(json!({ "id": id, "read": true })))
}
