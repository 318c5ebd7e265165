//! The queue's messages: `GET /api/v1/messages` (filtered, a keyset page at a time),
//! `GET /api/v1/messages/{id}` (with its attempts) and `POST /api/v1/messages/{id}/retry`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use uuid::Uuid;

use super::auth::Caller;
use super::params::{NoParams, Params, bad_param};
use super::schema::{ErrorBody, MessagePage, MessageWithAttempts, Retried};
use super::{ApiError, ApiState};
use crate::model::{MessageState, Method};
use crate::service::json::message_json;
use crate::service::{MessageFilter, PageRequest};

/// A page's size when `limit` is not given, as `herald messages list`.
const DEFAULT_LIMIT: u32 = 50;
/// The largest page, as `herald messages list --limit`.
const MAX_LIMIT: u32 = 10_000;

/// `GET /api/v1/messages`'s query, `herald messages list`'s flags.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// States, comma-separated: `pending`, `leased`, `sent`, `temporary_failure`,
    /// `permanent_failure`, `inhibited`.
    #[param(example = "pending,temporary_failure")]
    status: Option<String>,
    /// An event name or a `*` pattern, e.g. `workspace_*`.
    event: Option<String>,
    /// A recipient's username (another user's needs an owner's or on-call's token).
    user: Option<String>,
    /// A delivery method: `smtp`, `webhook`, `slack_webhook`, `slack_api`, `inbox`.
    method: Option<String>,
    /// The page's size, 1 to 10000; 50 when not given.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// The previous page's `next`: only messages older than it.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

/// `200 {"messages": [...], "next": ID|null}`, newest first; `next` is set when the page is
/// full, and goes in `after` for the following page.
#[utoipa::path(
    get,
    path = "/api/v1/messages",
    tag = "messages",
    operation_id = "list_messages",
    summary = "List messages",
    description = "Newest first, a page at a time, as `herald messages list`; a member sees only their own.",
    params(ListParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page; `next` is set when it is full.", body = MessagePage),
        (status = 400, description = "An unknown parameter or a value it cannot take.", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "Another user's messages, asked for by a member.", body = ErrorBody),
        (status = 404, description = "`user` names no user.", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Params(params): Params<ListParams>,
) -> Result<Json<MessagePage>, ApiError> {
    let statuses = match params.status.as_deref() {
        None | Some("") => Vec::new(),
        Some(text) => text
            .split(',')
            .map(|s| s.trim().parse::<MessageState>())
            .collect::<Result<_, _>>()
            .map_err(|e| bad_param("status", e))?,
    };
    let method = params
        .method
        .as_deref()
        .map(str::parse::<Method>)
        .transpose()
        .map_err(|e| bad_param("method", e))?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad_param(
            "limit",
            format!("{limit} is out of range; ask for 1 to {MAX_LIMIT} messages"),
        ));
    }
    let before = params
        .after
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| {
            bad_param(
                "after",
                "not a message id; pass the `next` of the previous page",
            )
        })?;
    let filter = MessageFilter {
        statuses,
        event: params.event,
        user_id: None,
        method,
        target: None,
    };
    let messages = state
        .service
        .list_messages(
            &caller,
            filter,
            params.user.as_deref(),
            PageRequest { before, limit },
        )
        .await?;
    let next = (messages.len() == limit as usize)
        .then(|| messages.last().map(|m| m.id))
        .flatten();
    Ok(Json(MessagePage { messages, next }))
}

/// `200 {message…, "attempts": [...]}`, as `herald messages show --json` prints it.
#[utoipa::path(
    get,
    path = "/api/v1/messages/{id}",
    tag = "messages",
    operation_id = "show_message",
    summary = "One message with its attempts",
    params(("id" = Uuid, Path, description = "The message's id.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The message and its delivery attempts.", body = MessageWithAttempts),
        (status = 400, description = "A query parameter (it takes none), or an id that is not a UUID.", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "Another user's message, asked for by a member.", body = ErrorBody),
        (status = 404, description = "No message has this id.", body = ErrorBody),
    ),
)]
pub async fn show(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    _: Params<NoParams>,
) -> Result<Json<Value>, ApiError> {
    let (message, attempts) = state.service.message(&caller, &id).await?;
    Ok(Json(message_json(&message, &attempts)))
}

/// `POST /api/v1/messages/{id}/retry`'s query.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RetryParams {
    /// Also retry an inhibited message (its recipient opted out), as `--force`.
    #[serde(default)]
    force: bool,
}

/// `200 {"retried": [id]}` once the message is back to `pending`; 409 saying why when it is in
/// no state to retry (sent, pending, inhibited without `force`).
#[utoipa::path(
    post,
    path = "/api/v1/messages/{id}/retry",
    tag = "messages",
    operation_id = "retry_message",
    summary = "Retry a message",
    description = "Sets a failed (or, with `force`, an inhibited) message back to `pending`; owners only.",
    params(
        ("id" = Uuid, Path, description = "The message's id."),
        RetryParams,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Back to `pending`.", body = Retried),
        (status = 400, description = "An unknown parameter, a `force` that is not `true` or `false`, or an id that is not a UUID.", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "The token's user may not retry (owners only).", body = ErrorBody),
        (status = 404, description = "No message has this id.", body = ErrorBody),
        (status = 409, description = "The message is in no state to retry (sent, pending, or inhibited without `force`).", body = ErrorBody),
    ),
)]
pub async fn retry(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Params(params): Params<RetryParams>,
) -> Result<Json<Retried>, ApiError> {
    let report = state
        .service
        .retry_messages(&caller, std::slice::from_ref(&id), params.force)
        .await?;
    if let Some((_, why)) = report.skipped.first() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            // The service speaks the CLI's flag; here it is a query parameter.
            format!(
                "message {id} was not retried: {}",
                why.replace("--force", "`?force=true`")
            ),
        ));
    }
    Ok(Json(Retried {
        retried: report.retried,
    }))
}
