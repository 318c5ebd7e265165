//! [`ApiError`]: an HTTP status with one sentence a person can act on, sent as
//! `{"error": "…"}`, and the status each [`ServiceError`] becomes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::MAX_BODY_BYTES;
use crate::service::{ServiceError, StoreError};

/// An error answer: its status and the sentence in `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// An error with `status`; `message` says what went wrong and what to do.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    /// The HTTP status sent.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The sentence sent as `error`.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

/// A refused operation is the caller's to fix (400, 401, 403, 404, 409, 422); a store that does not
/// answer is the server's (503, worth retrying), a row it cannot read a bug (500).
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> ApiError {
        let status = match &error {
            ServiceError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ServiceError::UnknownEvent { .. }
            | ServiceError::UnknownUser { .. }
            | ServiceError::UnknownMessage(_)
            | ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::Labels(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            ServiceError::Store(StoreError::Corrupt { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
            ServiceError::Store(
                StoreError::Open { .. }
                | StoreError::NotMigrated { .. }
                | StoreError::TooNew { .. }
                | StoreError::Database(_),
            ) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let message = match &error {
            ServiceError::Store(StoreError::Open { .. } | StoreError::Database(_)) => {
                format!("{error}; the store is unavailable, try again shortly")
            }
            ServiceError::Store(StoreError::Corrupt { .. }) => {
                format!("{error}; this is a bug in herald, please report it")
            }
            _ => error.to_string(),
        };
        ApiError::new(status, message)
    }
}

impl ApiError {
    /// 413 for a body that grew past the limit without declaring its length (a declared one
    /// is refused earlier, naming its length).
    pub fn body_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is over the {MAX_BODY_BYTES}-byte (1 MiB) limit; send a smaller one"
            ),
        )
    }

    /// 503 for a request that came as the server was stopping: nothing of it was done.
    pub fn stopping() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping and did not take this request; send it again",
        )
    }
}
