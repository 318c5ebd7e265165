//! The caller's own inbox: `GET /api/v1/inbox` (unread first) and
//! `POST /api/v1/inbox/{id}/read`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Caller;
use super::params::{NoParams, Params, bad_param};
use super::schema::{ErrorBody, MarkedRead};
use super::{ApiError, ApiState};
use crate::service::{InboxEntry, InboxFilter};

/// `GET /api/v1/inbox`'s query, `herald inbox list`'s flags.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Only unread entries.
    #[serde(default)]
    unread: bool,
    /// Only read entries.
    #[serde(default)]
    read: bool,
    /// At most this many entries (at least 1); 50 when not given.
    #[param(minimum = 1)]
    limit: Option<u32>,
}

/// As many entries as `herald inbox list` shows when not told.
const DEFAULT_LIMIT: u32 = 50;

/// `200 [entries…]`, as `herald inbox list --json` prints them.
#[utoipa::path(
    get,
    path = "/api/v1/inbox",
    tag = "inbox",
    operation_id = "list_inbox",
    summary = "The caller's inbox",
    description = "Unread first, as `herald inbox list --json` prints it.",
    params(InboxParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The entries.", body = Vec<super::schema::InboxEntry>),
        (status = 400, description = "An unknown parameter, a value it cannot take, `unread` and `read` together, or `limit=0`.", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    post,
    path = "/api/v1/inbox/{id}/read",
    tag = "inbox",
    operation_id = "mark_inbox_read",
    summary = "Mark an inbox entry read",
    params(("id" = uuid::Uuid, Path, description = "The inbox entry's id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Marked read.", body = MarkedRead),
        (status = 400, description = "A query parameter (it takes none), or an id that is not a UUID.", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 404, description = "No such entry in the caller's inbox.", body = ErrorBody),
    ),
)]
pub async fn mark_read(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    _: Params<NoParams>,
) -> Result<Json<MarkedRead>, ApiError> {
    state.service.mark_inbox(&caller, &id, true).await?;
    Ok(Json(MarkedRead { id, read: true }))
}
