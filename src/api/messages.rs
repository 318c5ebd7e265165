//! The queue's messages: `GET /api/v1/messages` (filtered, a keyset page at a time),
//! `GET /api/v1/messages/{id}` (with its attempts) and `POST /api/v1/messages/{id}/retry`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::Caller;
use super::params::{NoParams, Params, bad_param};
use super::{ApiError, ApiState};
use crate::model::{MessageState, Method};
use crate::service::json::message_json;
use crate::service::{MessageFilter, PageRequest};

/// A page's size when `limit` is not given, as `herald messages list`.
const DEFAULT_LIMIT: u32 = 50;
/// The largest page, as `herald messages list --limit`.
const MAX_LIMIT: u32 = 10_000;

/// `GET /api/v1/messages`'s query, `herald messages list`'s flags.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// States, comma-separated.
    status: Option<String>,
    /// An event name or a `*` pattern.
    event: Option<String>,
    /// A recipient's username.
    user: Option<String>,
    method: Option<String>,
    limit: Option<u32>,
    /// The previous page's `next`: only messages older than it.
    after: Option<String>,
}

/// `200 {"messages": [...], "next": ID|null}`, newest first; `next` is set when the page is
/// full, and goes in `after` for the following page.
pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Params(params): Params<ListParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "messages": messages, "next": next })))
}

/// `200 {message…, "attempts": [...]}`, as `herald messages show --json` prints it.
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryParams {
    /// Also retry an inhibited message (its recipient opted out), as `--force`.
    #[serde(default)]
    force: bool,
}

/// `200 {"retried": [id]}` once the message is back to `pending`; 409 saying why when it is in
/// no state to retry (sent, pending, inhibited without `force`).
pub async fn retry(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Params(params): Params<RetryParams>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "retried": report.retried })))
}
