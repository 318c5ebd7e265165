//! The operator's endpoints: `GET /healthz` (the process answers), `GET /readyz` (the store
//! answers and holds Herald's tables, else 503) and `GET /metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::schema::{ErrorBody, Health};
use super::{ApiError, ApiState, READY_TIMEOUT};

/// The Prometheus text exposition format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Alive: answered without touching the store.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Alive",
    description = "Answers while the process runs, without touching the store; no token needed.",
    responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = Health)),
)]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready when the store answers its cheapest read within [`READY_TIMEOUT`].
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Ready",
    description = "Ready when the store answers and holds Herald's tables within 5 s; no token needed.",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`.", body = Health),
        (status = 503, description = "The store is unreachable, not migrated, or slower than 5 s.", body = ErrorBody),
    ),
)]
pub(super) async fn readyz(State(state): State<ApiState>) -> Result<Json<Health>, ApiError> {
    let not_ready = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why);
    match tokio::time::timeout(READY_TIMEOUT, state.service.check_ready()).await {
        Ok(Ok(())) => Ok(Json(Health { status: "ready" })),
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
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "The dispatcher's counters and histograms in the Prometheus text format; no token needed.",
    responses((
        status = 200,
        description = "Prometheus text exposition format 0.0.4.",
        content_type = "text/plain; version=0.0.4; charset=utf-8",
        body = String,
    )),
)]
pub(super) async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    ([(CONTENT_TYPE, PROMETHEUS_TEXT)], state.metrics.render())
}
