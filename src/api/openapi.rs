//! `GET /api/v1/openapi.json`: the API's OpenAPI 3.1 document, generated from the handlers'
//! `#[utoipa::path]` annotations by the same router that serves them (`routes`), with Herald's
//! title, version and security schemes.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::schema::ErrorBody;

/// The security scheme of `Authorization: Bearer <token>`.
pub const BEARER: &str = "bearer";
/// The `?token=<token>` alternative, taken only by the Coder bridge.
pub const QUERY_TOKEN: &str = "query_token";

/// What the document holds besides its paths: info, the error schema, the security schemes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Herald",
        description = "Herald's producers' API: report events, watch the queue, pause delivery, \
            read the inbox and manage opt-outs, each as the API token's user with that user's \
            roles. Every error answers `{\"error\": \"…\"}`, one sentence saying what to do; any \
            endpoint that reads the store answers 503 while the store is unavailable (retry \
            shortly). See the README's \"Reporting events\" section for tokens and examples.",
        license(name = "MIT"),
    ),
    components(schemas(ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "events", description = "Reporting events and the catalog."),
        (name = "messages", description = "The queue's messages."),
        (name = "notifier", description = "The pause switch."),
        (name = "inbox", description = "The caller's own inbox."),
        (name = "optouts", description = "The caller's own opt-outs."),
        (name = "coder", description = "Coder's notification webhook."),
        (name = "audit", description = "Who did what: the operators' audit trail."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
    )
)]
pub(super) struct Base;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token from `herald tokens create NAME`, as \
                         `Authorization: Bearer <token>`; it acts as its user.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            QUERY_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The same API token as `?token=<token>`, for a sender that cannot set a header \
                 (Coder's webhook); only the Coder bridge takes it.",
            ))),
        );
    }
}

/// The document, as served.
pub fn openapi() -> &'static OpenApi {
    static DOCUMENT: OnceLock<OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| super::routes::openapi_router().into_openapi())
}

/// The document as JSON.
fn openapi_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serialises")
    })
}

/// `200` the OpenAPI document; no token needed.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((
        status = 200,
        description = "This document (OpenAPI 3.1).",
        content_type = "application/json",
        body = Object,
    )),
)]
pub(super) async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], openapi_json())
}
