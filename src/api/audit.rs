//! `GET /api/v1/audit`: the audit trail (DESIGN §14), newest first, a keyset page at a time,
//! as `herald audit list`; owners' and user-admins' tokens only.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::auth::Caller;
use super::params::{Params, bad_param};
use super::schema::{AuditPage, ErrorBody};
use super::{ApiError, ApiState};
use crate::service::{AuditFilter, PageRequest};

/// A page's size when `limit` is not given, as `herald audit list`.
const DEFAULT_LIMIT: u32 = 50;
/// The largest page, as `herald audit list --limit`.
const MAX_LIMIT: u32 = 10_000;

/// `GET /api/v1/audit`'s query, `herald audit list`'s flags.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only what this user did.
    actor: Option<String>,
    /// Only this action, e.g. `messages.retry`, `notifications.pause`, `tokens.revoke`.
    action: Option<String>,
    /// Only rows written in the last DURATION, e.g. `30m`, `2h`, `7d`.
    since: Option<String>,
    /// The page's size, 1 to 10000; 50 when not given.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<u32>,
    /// The previous page's `next`: only rows older than it.
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

/// `200 {"rows": [...], "next": ID|null}`, newest first; `next` is set when the page is full,
/// and goes in `after` for the following page.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    operation_id = "list_audit",
    summary = "The audit trail",
    description = "Who did what — retries, pauses, resumes, event methods, opt-outs changed for others, users, tokens, keys, purges — newest first, as `herald audit list`. Owners and user-admins.",
    params(AuditParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page; `next` is set when it is full.", body = AuditPage),
        (status = 400, description = "An unknown parameter or a value it cannot take.", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "The token's user is neither an owner nor a user-admin.", body = ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Params(params): Params<AuditParams>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(bad_param(
            "limit",
            format!("{limit} is out of range; ask for 1 to {MAX_LIMIT} rows"),
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
                "not an audit row id; pass the `next` of the previous page",
            )
        })?;
    let since = match params.since.as_deref() {
        None => None,
        Some(text) => {
            let age = crate::config::parse_duration(text).map_err(|why| bad_param("since", why))?;
            let age = chrono::Duration::from_std(age).ok();
            Some(
                age.and_then(|age| chrono::Utc::now().checked_sub_signed(age))
                    .ok_or_else(|| {
                        bad_param("since", "reaches before any date the store can hold")
                    })?,
            )
        }
    };
    let filter = AuditFilter {
        actor: params.actor,
        action: params.action,
        since,
    };
    let rows = state
        .service
        .audit_log(&caller, &filter, PageRequest { before, limit })
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    Ok(Json(AuditPage { rows, next }))
}
