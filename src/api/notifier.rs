//! The pause killswitch: `POST /api/v1/pause`, `POST /api/v1/resume` (owners and on-call) and
//! `GET /api/v1/status`, each answering the switch as `herald notifications status --json`
//! prints it.

use axum::Json;
use axum::extract::State;

use super::auth::Caller;
use super::params::{NoParams, Params};
use super::{ApiError, ApiState};
use crate::model::{Settings, User};

/// `200 {"notifier_paused": true, "updated_at": …}`: no replica delivers until resumed.
pub async fn pause(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
) -> Result<Json<Settings>, ApiError> {
    set_paused(&state, &caller, true).await
}

/// `200 {"notifier_paused": false, "updated_at": …}`.
pub async fn resume(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
) -> Result<Json<Settings>, ApiError> {
    set_paused(&state, &caller, false).await
}

/// `200 {"notifier_paused", "updated_at"}`.
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
