//! The pause killswitch: `POST /api/v1/pause`, `POST /api/v1/resume` (owners and on-call) and
//! `GET /api/v1/status`, each answering the switch as `herald notifications status --json`
//! prints it.

use axum::Json;
use axum::extract::State;

use super::auth::Caller;
use super::params::{NoParams, Params};
use super::schema::{ErrorBody, NotifierStatus};
use super::{ApiError, ApiState};
use crate::model::{Settings, User};

/// `200 {"notifier_paused": true, "updated_at": …}`: no replica delivers until resumed.
#[utoipa::path(
    post,
    path = "/api/v1/pause",
    tag = "notifier",
    operation_id = "pause",
    summary = "Pause delivery",
    description = "No replica delivers until resumed; owners and on-call.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The switch as it now stands.", body = NotifierStatus),
        (status = 400, description = "A query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "The token's user may not (owners and on-call only).", body = ErrorBody),
    ),
)]
pub async fn pause(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
) -> Result<Json<Settings>, ApiError> {
    set_paused(&state, &caller, true).await
}

/// `200 {"notifier_paused": false, "updated_at": …}`.
#[utoipa::path(
    post,
    path = "/api/v1/resume",
    tag = "notifier",
    operation_id = "resume",
    summary = "Resume delivery",
    description = "Replicas deliver again; owners and on-call.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The switch as it now stands.", body = NotifierStatus),
        (status = 400, description = "A query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "The token's user may not (owners and on-call only).", body = ErrorBody),
    ),
)]
pub async fn resume(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
) -> Result<Json<Settings>, ApiError> {
    set_paused(&state, &caller, false).await
}

/// `200 {"notifier_paused", "updated_at"}`.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    tag = "notifier",
    operation_id = "status",
    summary = "Whether delivery is paused",
    description = "As `herald notifications status --json` prints it; any user.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The switch as it now stands.", body = NotifierStatus),
        (status = 400, description = "A query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
    ),
)]
pub async fn status(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
) -> Result<Json<Settings>, ApiError> {
    Ok(Json(state.service.notifier_status(&caller).await?))
}

async fn set_paused(
    state: &ApiState,
    caller: &User,
    paused: bool,
) -> Result<Json<Settings>, ApiError> {
    state.service.set_paused(caller, paused).await?;
    Ok(Json(state.service.notifier_status(caller).await?))
}
