//! The caller's own opt-outs: `GET /api/v1/optouts` (every event, and whether the caller
//! receives it), `PUT /api/v1/optouts/{event}` (opt out) and `DELETE` (opt back in).

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::auth::Caller;
use super::params::{NoParams, Params};
use super::schema::{ErrorBody, OptOut};
use super::{ApiError, ApiState};
use crate::model::User;
use crate::service::json::opt_out_json;

/// `200 [rows…]`, as `herald optout list --json` prints them.
#[utoipa::path(
    get,
    path = "/api/v1/optouts",
    tag = "optouts",
    operation_id = "list_optouts",
    summary = "The caller's opt-outs",
    description = "Every event, and whether the caller receives it, as `herald optout list --json` prints it.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One row per catalog event.", body = Vec<OptOut>),
        (status = 400, description = "A query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
) -> Result<Json<Value>, ApiError> {
    let (subject, entries) = state.service.opt_outs(&caller, None).await?;
    Ok(Json(Value::Array(
        entries.iter().map(|e| opt_out_json(&subject, e)).collect(),
    )))
}

/// `200 {row}` with `"enabled": false`: the caller no longer receives `event`.
#[utoipa::path(
    put,
    path = "/api/v1/optouts/{event}",
    tag = "optouts",
    operation_id = "opt_out",
    summary = "Opt out of an event",
    description = "The caller no longer receives the event.",
    params(("event" = String, Path, description = "A catalog event's name, e.g. `workspace_deleted`.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event's row as it now stands, with `enabled: false`.", body = OptOut),
        (status = 400, description = "A query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 404, description = "No catalog event has this name.", body = ErrorBody),
    ),
)]
pub async fn opt_out(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(event): Path<String>,
    _: Params<NoParams>,
) -> Result<Json<Value>, ApiError> {
    set(&state, &caller, &event, true).await
}

/// `200 {row}` with `"enabled": true`: an explicit opt-in, as `herald optout clear` (so an
/// event that is off by default is received too).
#[utoipa::path(
    delete,
    path = "/api/v1/optouts/{event}",
    tag = "optouts",
    operation_id = "opt_in",
    summary = "Opt back in to an event",
    description = "An explicit opt-in, as `herald optout clear`: an event off by default is received too.",
    params(("event" = String, Path, description = "A catalog event's name, e.g. `workspace_deleted`.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The event's row as it now stands, with `enabled: true`.", body = OptOut),
        (status = 400, description = "A query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 404, description = "No catalog event has this name.", body = ErrorBody),
    ),
)]
pub async fn opt_in(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(event): Path<String>,
    _: Params<NoParams>,
) -> Result<Json<Value>, ApiError> {
    set(&state, &caller, &event, false).await
}

/// Sets the caller's preference for `event` and answers its row as it now stands.
async fn set(
    state: &ApiState,
    caller: &User,
    event: &str,
    disabled: bool,
) -> Result<Json<Value>, ApiError> {
    state
        .service
        .set_opt_out(caller, event, None, disabled)
        .await?;
    let (subject, entries) = state.service.opt_outs(caller, None).await?;
    let row = entries
        .iter()
        .find(|e| e.event.spec.name == event)
        .map(|e| opt_out_json(&subject, e))
        .unwrap_or_default();
    Ok(Json(row))
}
