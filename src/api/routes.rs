//! [`router`]: every route of the API in one place, with what all of them share — the 1 MiB
//! body limit, JSON 404 and 405 answers, and a debug line per request.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use super::{ApiError, ApiState, coder, events, health, inbox, messages, notifier, optouts};

/// The largest request body taken (DESIGN §12); larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The API's router over `state`: `/healthz`, `/readyz`, `/metrics`, and the producers'
/// endpoints under `/api/v1` as they are added here.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/events", post(events::report).get(events::catalog))
        .route("/api/v1/messages", get(messages::list))
        .route("/api/v1/messages/{id}", get(messages::show))
        .route("/api/v1/messages/{id}/retry", post(messages::retry))
        .route("/api/v1/pause", post(notifier::pause))
        .route("/api/v1/resume", post(notifier::resume))
        .route("/api/v1/status", get(notifier::status))
        .route("/api/v1/inbox", get(inbox::list))
        .route("/api/v1/inbox/{id}/read", post(inbox::mark_read))
        .route("/api/v1/optouts", get(optouts::list))
        .route(
            "/api/v1/optouts/{event}",
            put(optouts::opt_out).delete(optouts::opt_in),
        )
        .route("/api/v1/ingest/coder", post(coder::ingest))
        // Both after every route: the 405 fallback only reaches routes already added.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn(refuse_large_bodies))
        .layer(from_fn(log_request))
        .with_state(state)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no endpoint at {}; herald serves /healthz, /readyz, /metrics and the API under /api/v1",
            uri.path()
        ),
    )
}

/// axum adds the `Allow` header listing the methods the path takes.
async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {}; the Allow header lists the methods it takes",
            uri.path()
        ),
    )
}

/// Answers 413 as soon as a declared length is over the limit, before any handler runs (a
/// body sent without a length is cut at the same size by [`DefaultBodyLimit`]).
async fn refuse_large_bodies(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > MAX_BODY_BYTES as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is {length} bytes, over the {MAX_BODY_BYTES}-byte (1 MiB) limit; send a smaller one"
            ),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// One debug line per request: method, path (never the query, which may carry `?token=`),
/// status and duration.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        duration = ?started.elapsed(),
        "http request"
    );
    response
}
