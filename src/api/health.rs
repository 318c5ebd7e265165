//! The operator's endpoints: `GET /healthz` (the process answers), `GET /readyz` (the store
//! answers and holds Herald's tables, else 503) and `GET /metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::{ApiError, ApiState, READY_TIMEOUT};

/// The Prometheus text exposition format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Alive: answered without touching the store.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Ready when the store answers its cheapest read within [`READY_TIMEOUT`].
pub(super) async fn readyz(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let not_ready = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why);
    match tokio::time::timeout(READY_TIMEOUT, state.service.check_ready()).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(error)) => Err(not_ready(format!(
            "not ready: {error}; check that the store is reachable and migrated (`herald migrate`)"
        ))),
        Err(_) => Err(not_ready(format!(
            "not ready: the store did not answer within {}s; check that it is reachable",
            READY_TIMEOUT.as_secs()
        ))),
    }
}

/// What the dispatcher recorded so far, as Prometheus scrapes it.
pub(super) async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], state.metrics.render())
}
