//! [`JsonBody`]: a request body read as JSON, as the endpoints that take one expect it.
//!
//! Like axum's `Json`, with one leniency: `curl -d '{…}'` sends
//! `Content-Type: application/x-www-form-urlencoded` unless told otherwise, and the README's
//! (and the issue's) one-line examples rely on it. A body with that type, or with none, is read
//! as JSON too; any other type that is not JSON (`text/plain`, `multipart/form-data`, …) is
//! answered 415. Malformed JSON is 400, JSON of the wrong shape 422, each saying where.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The request's body, parsed as `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// Whether a `Content-Type` may carry a JSON body: JSON itself (`application/json`,
/// `application/*+json`), none, or curl's default for `-d`.
fn json_allowed(content_type: Option<&str>) -> bool {
    let Some(value) = content_type else {
        return true;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
        || essence == "application/x-www-form-urlencoded"
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?").to_string());
        if !json_allowed(content_type.as_deref()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "the body is sent as `{}`; send a JSON object with Content-Type: application/json",
                    content_type.unwrap_or_default()
                ),
            ));
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(),
                    status => ApiError::new(
                        status,
                        format!(
                            "the request body could not be read ({}); send it again",
                            rejection.body_text()
                        ),
                    ),
                })?;
        parse(&bytes).map(JsonBody)
    }
}

/// `bytes` as `T`: 400 for text that is not JSON, 422 for JSON of another shape.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        let what = match status {
            StatusCode::BAD_REQUEST => "the body is not valid JSON",
            _ => "the JSON body does not have the expected shape",
        };
        ApiError::new(
            status,
            format!("{what}: {e}; send a JSON object with Content-Type: application/json"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_curl_default_and_no_type_are_read_as_json() {
        for allowed in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("Application/JSON"),
            Some("application/vnd.herald+json"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert!(json_allowed(allowed), "{allowed:?}");
        }
        for refused in [
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/xml",
        ] {
            assert!(!json_allowed(Some(refused)), "{refused}");
        }
    }

    #[test]
    fn malformed_is_400_and_a_wrong_shape_422_saying_where() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Report {
            event: String,
        }
        let malformed = parse::<Report>(b"{\"event\":").unwrap_err();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        let unknown = parse::<Report>(br#"{"event":"x","priority":"high"}"#).unwrap_err();
        assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            unknown.message().contains("unknown field `priority`"),
            "{}",
            unknown.message()
        );
    }
}
