//! `POST /api/v1/events` (report an event: the same routing, validation and dedupe as
//! `herald enqueue`) and `GET /api/v1/events` (the catalog, with each event's label schema).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::auth::Caller;
use super::body::JsonBody;
use super::params::{NoParams, Params};
use super::schema::{Enqueued, ErrorBody, Event};
use super::{ApiError, ApiState};
use crate::model::User;
use crate::service::EnqueueInput;
use crate::service::json::event_json;

/// What a producer reports, as `herald enqueue` takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventReport {
    /// The catalog event's name, e.g. `workspace_deleted`.
    pub event: String,
    /// Usernames to notify; empty: the event's audience.
    #[serde(default)]
    pub users: Vec<String>,
    /// The user whose action it was (SQLMesh's `username` rule: only their targets).
    #[serde(default)]
    pub actor: Option<String>,
    /// The event's labels; strings (numbers and booleans are taken as their text).
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, String>)]
    pub labels: BTreeMap<String, Value>,
    /// Free-form data for the templates.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
}

/// `201 {"enqueued": [messages…], "duplicates": [ids…], "warnings": […]}`.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "report_event",
    summary = "Report an event",
    description = "Routes, validates and dedupes as `herald enqueue` does; an owner's token (or a \
        service user's with the owner role). Nothing is written when refused.",
    request_body(content = EventReport, content_type = "application/json"),
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Taken: the messages made, the duplicates, routing's warnings.", body = Enqueued),
        (status = 400, description = "Malformed JSON, or a query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "The token's user may not report events (owners only).", body = ErrorBody),
        (status = 404, description = "An unknown event or user.", body = ErrorBody),
        (status = 413, description = "A body over 1 MiB.", body = ErrorBody),
        (status = 415, description = "A body type other than JSON (`application/json`; none, or curl's default form type, is read as JSON too).", body = ErrorBody),
        (status = 422, description = "An unknown or mistyped field, a missing required label, or a label value that is an object, an array or null.", body = ErrorBody),
    ),
)]
pub async fn report(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
    JsonBody(body): JsonBody<EventReport>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let report = body;
    enqueue(&state, &caller, report).await
}

/// Enqueues `report` as `caller` and answers as `POST /api/v1/events` does; the Coder bridge
/// answers the same way.
pub(super) async fn enqueue(
    state: &ApiState,
    caller: &User,
    report: EventReport,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let input = EnqueueInput {
        event: report.event,
        users: report.users,
        actor: report.actor,
        labels: label_items(report.labels)?,
        data: report.data.map(|data| Value::Object(data).to_string()),
    };
    let outcome = state
        .batcher
        .call((caller.clone(), input))
        .await
        .ok_or_else(ApiError::stopping)??;
    Ok((
        StatusCode::CREATED,
        Json(Enqueued {
            enqueued: outcome.enqueued,
            duplicates: outcome.duplicates,
            warnings: outcome.warnings,
        }),
    ))
}

/// `200 [events…]`: the catalog, each event with its label schema, as `herald events list
/// --json` prints it.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    operation_id = "list_events",
    summary = "The event catalog",
    description = "Every event with its label schema, as `herald events list --json` prints it.",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The catalog.", body = Vec<Event>),
        (status = 400, description = "A query parameter (it takes none).", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token.", body = ErrorBody),
    ),
)]
pub async fn catalog(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    _: Params<NoParams>,
) -> Result<Json<Value>, ApiError> {
    let default = state.service.default_method();
    let events = state.service.events(&caller).await?;
    Ok(Json(Value::Array(
        events.iter().map(|e| event_json(e, default)).collect(),
    )))
}

/// Labels as `herald enqueue --label KEY=VALUE` items, which the service validates.
fn label_items(labels: BTreeMap<String, Value>) -> Result<Vec<String>, ApiError> {
    labels
        .into_iter()
        .map(|(key, value)| {
            if key.contains('=') {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!(
                        "label key `{key}` contains `=`: keys hold letters, digits, `_`, `.` and `-`"
                    ),
                ));
            }
            let text = match value {
                Value::String(text) => text,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "label `{key}` is {}, not a string: send label values as strings (put structured values in `data`)",
                            kind(&other)
                        ),
                    ));
                }
            };
            Ok(format!("{key}={text}"))
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
        _ => "a scalar",
    }
}
