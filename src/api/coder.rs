//! `POST /api/v1/ingest/coder`: Coder's notification webhook (`CODER_NOTIFICATIONS_METHOD=webhook`)
//! taken unchanged and enqueued as the catalog event it names, so Coder's notifications reach
//! Herald's routing (DESIGN §12).
//!
//! Coder's body is `{"_version", "msg_id", "payload": {"notification_name", "user_username",
//! "user_email", "labels", "data", …}, "title", "body"}`; fields Coder adds later are ignored.
//!
//! Which catalog event: Coder names its notification templates for people ("Workspace
//! Deleted", "Your account has been suspended") and gives each a fixed UUID. The event is, in
//! this order, the one for `payload.notification_template_id` when Coder sends a template id
//! listed in [`BY_TEMPLATE_ID`] (ids survive an admin renaming a template); else the one for
//! the name in snake case (lower case, every run of other characters one `_`: "Workspace
//! Deleted" → `workspace_deleted`), through [`BY_NAME`] where Coder's wording differs from the
//! catalog's (`workspace_marked_as_dormant` → `workspace_marked_dormant`). A name that maps to
//! no catalog event is refused with 422 naming it; nothing is written.
//!
//! Who: the Herald user whose username is `payload.user_username`, else the one whose email
//! is `payload.user_email` (case-insensitive). Unknown users are refused with 422 naming them
//! (the bridge never creates users). `labels` and `data` pass through; the enqueue is the
//! service's, with its checks: the token must be an owner's (or a service user's with the
//! owner role). The answer is that of `POST /api/v1/events`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::auth::QueryCaller;
use super::body::JsonBody;
use super::events::{self, EventReport};
use super::schema::{Enqueued, ErrorBody};
use super::{ApiError, ApiState};
use crate::model::User;
use crate::service::ServiceError;

/// Coder's webhook body: only what the bridge reads; Coder's other fields (`_version`,
/// `msg_id`, `title`, `body`, …) are taken and ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CoderWebhook {
    pub payload: Option<CoderPayload>,
}

/// Coder's `payload` object; its other fields are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CoderPayload {
    /// The notification template's name, e.g. `Workspace Deleted`: the catalog event in
    /// snake case.
    pub notification_name: Option<String>,
    /// Coder's template id; a known one names the catalog event whatever the name says.
    pub notification_template_id: Option<String>,
    /// The recipient's username, looked up first.
    pub user_username: Option<String>,
    /// The recipient's email, looked up when the username is not a Herald user's.
    pub user_email: Option<String>,
    /// Passed through as the event's labels.
    #[schema(value_type = Option<BTreeMap<String, String>>)]
    pub labels: Option<BTreeMap<String, Value>>,
    /// Passed through as the event's data.
    #[schema(value_type = Option<Object>)]
    pub data: Option<Map<String, Value>>,
}

/// Coder's template ids (coderd/notifications/events.go) and the catalog events they are.
pub const BY_TEMPLATE_ID: &[(&str, &str)] = &[
    ("281fdf73-c6d6-4cbb-8ff5-888baf8a2fff", "workspace_created"),
    (
        "d089fe7b-d5c5-4c0c-aaf5-689859f7d392",
        "workspace_manually_updated",
    ),
    ("f517da0b-cdc9-410f-ab89-a86107c420ed", "workspace_deleted"),
    (
        "381df2a9-c0c0-4749-420f-80a9280c66f9",
        "workspace_autobuild_failed",
    ),
    (
        "0ea69165-ec14-4314-91f1-69566ac3c5a0",
        "workspace_marked_dormant",
    ),
    (
        "c34a0c09-0704-4cac-bd1c-0c0146811c2b",
        "workspace_autoupdated",
    ),
    (
        "51ce2fdf-c9ca-4be1-8d70-628674f9bc42",
        "workspace_marked_for_deletion",
    ),
    (
        "2faeee0f-26cb-4e96-821c-85ccb9f71513",
        "workspace_manual_build_failed",
    ),
    (
        "a9d027b4-ac49-4fb1-9f6d-45af15f64e7a",
        "workspace_out_of_memory",
    ),
    (
        "f047f6a3-5713-40f7-85aa-0394cce9fa3a",
        "workspace_out_of_disk",
    ),
    (
        "4e19c0ac-94e1-4532-9515-d1801aa283b2",
        "user_account_created",
    ),
    (
        "f44d9314-ad03-4bc8-95d0-5cad491da6b6",
        "user_account_deleted",
    ),
    (
        "b02ddd82-4733-4d02-a2d7-c36f3598997d",
        "user_account_suspended",
    ),
    (
        "9f5af851-8408-4e73-a7a1-c6502ba46689",
        "user_account_activated",
    ),
    (
        "6a2f0609-9b69-4d36-a989-9f5925b6cbff",
        "your_account_suspended",
    ),
    (
        "1a6a6bea-ee0a-43e2-9e7c-eabdb53730e4",
        "your_account_activated",
    ),
    (
        "62f86a30-2330-4b61-a26d-311ff3b608cf",
        "user_password_reset",
    ),
    ("29a09665-2a4c-403f-9648-54301670e7be", "template_deleted"),
    (
        "f40fae84-55a2-42cd-99fa-b41c1ca64894",
        "template_deprecated",
    ),
    (
        "34a20db2-e9cc-4a93-b0e4-8569699d7a00",
        "template_workspace_builds_failed_report",
    ),
    ("c425f63e-716a-4bf4-ae24-78348f706c3f", "test_notification"),
    (
        "39b1e189-c857-4b0c-877a-511144c18516",
        "custom_notification",
    ),
];

/// Coder's names, in snake case, that are not the catalog's: the templates' names and the
/// wording of Coder's documentation.
pub const BY_NAME: &[(&str, &str)] = &[
    ("workspace_marked_as_dormant", "workspace_marked_dormant"),
    ("workspace_updated_automatically", "workspace_autoupdated"),
    ("workspace_automatically_updated", "workspace_autoupdated"),
    (
        "workspace_automatic_build_failure",
        "workspace_autobuild_failed",
    ),
    (
        "workspace_manual_build_failure",
        "workspace_manual_build_failed",
    ),
    ("your_account_has_been_suspended", "your_account_suspended"),
    ("your_account_has_been_activated", "your_account_activated"),
    ("one_time_passcode", "user_password_reset"),
    (
        "user_password_reset_one_time_passcode",
        "user_password_reset",
    ),
    (
        "report_workspace_builds_failed",
        "template_workspace_builds_failed_report",
    ),
    (
        "report_workspace_builds_failed_for_template",
        "template_workspace_builds_failed_report",
    ),
];

/// `201` as `POST /api/v1/events` answers; 422 naming what is missing or unknown.
#[utoipa::path(
    post,
    path = "/api/v1/ingest/coder",
    tag = "coder",
    operation_id = "ingest_coder",
    summary = "Coder's notification webhook",
    description = "Takes Coder's webhook body unchanged (`CODER_NOTIFICATIONS_METHOD=webhook`) and \
        enqueues the catalog event it names for the Herald user it names, answering as \
        `POST /api/v1/events`. The token goes in the bearer header or as `?token=`.",
    request_body(content = CoderWebhook, content_type = "application/json"),
    security(("bearer" = []), ("query_token" = [])),
    responses(
        (status = 201, description = "Enqueued, as `POST /api/v1/events` answers.", body = Enqueued),
        (status = 400, description = "Malformed JSON.", body = ErrorBody),
        (status = 401, description = "No, malformed, unknown or revoked token (with `WWW-Authenticate: Bearer`).", body = ErrorBody),
        (status = 403, description = "The token's user may not report events (owners only).", body = ErrorBody),
        (status = 413, description = "A body over 1 MiB.", body = ErrorBody),
        (status = 415, description = "A body type other than JSON (`application/json`; none, or curl's default form type, is read as JSON too).", body = ErrorBody),
        (status = 422, description = "No `payload`, no notification name or recipient, a name that matches no catalog event, a recipient who is not a Herald user, or a label the event refuses.", body = ErrorBody),
    ),
)]
pub async fn ingest(
    State(state): State<ApiState>,
    QueryCaller(caller): QueryCaller,
    JsonBody(body): JsonBody<CoderWebhook>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let webhook = body;
    let payload = webhook
        .payload
        .ok_or_else(|| refused("the body has no `payload`: send Coder's webhook body unchanged"))?;
    let name = payload
        .notification_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .ok_or_else(|| {
            refused(
                "`payload.notification_name` is missing: send Coder's webhook body unchanged \
                 (it names the notification)",
            )
        })?;
    let event = catalog_event(payload.notification_template_id.as_deref(), name);
    match state.service.event(&caller, &event).await {
        Ok(_) => {}
        Err(ServiceError::UnknownEvent { .. }) => {
            return Err(refused(format!(
                "Coder's notification \"{name}\" matches no catalog event (looked for \
                 `{event}`); `herald events list` shows the catalog, nothing was queued"
            )));
        }
        Err(other) => return Err(other.into()),
    }
    let username = recipient(
        &state,
        &caller,
        name,
        payload.user_username.as_deref(),
        payload.user_email.as_deref(),
    )
    .await?;
    let report = EventReport {
        event,
        users: vec![username],
        actor: None,
        labels: payload.labels.unwrap_or_default(),
        data: payload.data,
    };
    events::enqueue(&state, &caller, report).await
}

/// The catalog event for a Coder template id or name (see the module doc).
pub fn catalog_event(template_id: Option<&str>, name: &str) -> String {
    if let Some(id) = template_id.map(str::trim) {
        let known = BY_TEMPLATE_ID
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(id));
        if let Some((_, event)) = known {
            return (*event).to_string();
        }
    }
    let key = snake_case(name);
    match BY_NAME.iter().find(|(coder, _)| *coder == key) {
        Some((_, event)) => (*event).to_string(),
        None => key,
    }
}

/// Lower case, every run of characters other than ASCII letters and digits one `_`.
fn snake_case(name: &str) -> String {
    let mut key = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            key.push(c.to_ascii_lowercase());
        } else if !key.is_empty() && !key.ends_with('_') {
            key.push('_');
        }
    }
    while key.ends_with('_') {
        key.pop();
    }
    key
}

/// The Herald username for Coder's user: by username, else by email. A caller who may not
/// list users gets the username through, and the service's enqueue says what they lack.
async fn recipient(
    state: &ApiState,
    caller: &User,
    notification: &str,
    username: Option<&str>,
    email: Option<&str>,
) -> Result<String, ApiError> {
    let username = username.map(str::trim).filter(|u| !u.is_empty());
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    if username.is_none() && email.is_none() {
        return Err(refused(
            "`payload.user_username` and `payload.user_email` are both missing: send Coder's \
             webhook body unchanged (they name the recipient)",
        ));
    }
    let users = match state.service.list_users(caller).await {
        Ok(users) => users,
        Err(ServiceError::Forbidden { .. }) => {
            return Ok(username.or(email).unwrap_or_default().to_string());
        }
        Err(other) => return Err(other.into()),
    };
    let by_username = username.and_then(|name| users.iter().find(|u| u.username == name));
    let by_email =
        || email.and_then(|mail| users.iter().find(|u| u.email.eq_ignore_ascii_case(mail)));
    match by_username.or_else(by_email) {
        Some(user) => Ok(user.username.clone()),
        None => {
            let who = match (username, email) {
                (Some(name), Some(mail)) => format!("`{name}` ({mail})"),
                (Some(name), None) => format!("`{name}`"),
                (None, Some(mail)) => format!("<{mail}>"),
                (None, None) => unreachable!("checked above"),
            };
            let add = format!(
                "herald users add {} --email {}",
                username.unwrap_or("USERNAME"),
                email.unwrap_or("EMAIL")
            );
            Err(refused(format!(
                "Coder's notification \"{notification}\" is for {who}, who is not a Herald \
                 user: add them with `{add}`; nothing was queued"
            )))
        }
    }
}

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

#[cfg(test)]
mod tests {
    use super::{catalog_event, snake_case};

    #[test]
    fn coder_names_become_catalog_names() {
        assert_eq!(snake_case("Workspace Deleted"), "workspace_deleted");
        assert_eq!(
            snake_case("  Report: Workspace Builds Failed  "),
            "report_workspace_builds_failed"
        );
        assert_eq!(snake_case("One-Time Passcode"), "one_time_passcode");
        assert_eq!(
            catalog_event(None, "Workspace Marked as Dormant"),
            "workspace_marked_dormant"
        );
        assert_eq!(
            catalog_event(None, "Your account has been suspended"),
            "your_account_suspended"
        );
        assert_eq!(
            catalog_event(None, "User account suspended"),
            "user_account_suspended"
        );
        assert_eq!(catalog_event(None, "Task Idle"), "task_idle");
    }

    #[test]
    fn a_known_template_id_beats_the_name() {
        assert_eq!(
            catalog_event(
                Some("F517DA0B-CDC9-410F-AB89-A86107C420ED"),
                "Renamed by an admin"
            ),
            "workspace_deleted"
        );
        assert_eq!(
            catalog_event(
                Some("00000000-0000-0000-0000-000000000000"),
                "Workspace Created"
            ),
            "workspace_created"
        );
    }

    #[test]
    fn every_mapping_names_a_catalog_event() {
        let names: Vec<&str> = crate::catalog::builtin()
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        for (_, event) in super::BY_TEMPLATE_ID.iter().chain(super::BY_NAME) {
            assert!(names.contains(event), "`{event}` is not in the catalog");
        }
    }
}
