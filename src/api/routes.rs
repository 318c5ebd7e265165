//! [`router`]: every route of the API in one place, with what all of them share — the 1 MiB
//! body limit, JSON 404 and 405 answers, and a debug line per request. Each route is
//! registered with its handler's OpenAPI annotation ([`openapi_router`]), so the router and
//! `GET /api/v1/openapi.json` list the same endpoints.

use std::time::{Duration, Instant};

use http_body_util::BodyExt;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{Next, from_fn};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{
    ApiError, ApiState, audit, coder, events, health, inbox, messages, notifier, openapi, optouts,
};

/// The largest request body taken (DESIGN §12); larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A body declared over the limit but not beyond this is read and dropped before the 413
/// goes out, so a client still sending it reads the answer instead of a broken pipe; a
/// larger one is answered at once and its connection closed.
const DRAINED_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// How long draining a refused body may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The API's router over `state`: `/healthz`, `/readyz`, `/metrics`, and the producers'
/// endpoints under `/api/v1`, as `openapi_router` lists them.
pub fn router(state: ApiState) -> Router {
    let (routes, _) = openapi_router().split_for_parts();
    routes
        // Both after every route: the 405 fallback only reaches routes already added.
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn(refuse_large_bodies))
        .layer(from_fn(log_request))
        .with_state(state)
}

/// Every route with its handler and, from the same `routes!` call, its entry in the OpenAPI
/// document: a route cannot be served without being documented. One `routes!` per path;
/// never `.route(…)`, which would serve a path the document does not list.
pub(super) fn openapi_router() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(<openapi::Base as utoipa::OpenApi>::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(openapi::document))
        .routes(routes!(events::report, events::catalog))
        .routes(routes!(messages::list))
        .routes(routes!(messages::show))
        .routes(routes!(messages::retry))
        .routes(routes!(notifier::pause))
        .routes(routes!(notifier::resume))
        .routes(routes!(notifier::status))
        .routes(routes!(inbox::list))
        .routes(routes!(inbox::mark_read))
        .routes(routes!(optouts::list))
        .routes(routes!(optouts::opt_out, optouts::opt_in))
        .routes(routes!(coder::ingest))
        .routes(routes!(audit::list))
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
        Some(length) if length > MAX_BODY_BYTES as u64 => {
            if length <= DRAINED_BODY_BYTES {
                let mut body = request.into_body();
                let drain = async { while let Some(Ok(_)) = body.frame().await {} };
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, drain).await;
            }
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is {length} bytes, over the {MAX_BODY_BYTES}-byte (1 MiB) limit; send a smaller one"
                ),
            )
            .into_response()
        }
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
