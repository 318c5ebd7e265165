//! What a refused operation looks like on the wire: each [`ServiceError`] as its status, and
//! [`ApiError`] as `{"error": "…"}`. The server itself is tested over loopback in
//! `tests/it/api_server.rs`.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use super::ApiError;
use super::body::JsonBody;
use crate::labels::LabelError;
use crate::model::LabelSpec;
use crate::service::{ServiceError, StoreError};

#[test]
fn each_service_error_becomes_the_status_that_says_whose_it_is_to_fix() {
    let url = || "sqlite://herald.db".to_string();
    let cases: Vec<(ServiceError, StatusCode)> = vec![
        (
            ServiceError::Forbidden {
                action: "pausing delivery".into(),
                needed: "oncall".into(),
                user: "mia".into(),
                has: "member".into(),
            },
            StatusCode::FORBIDDEN,
        ),
        (
            ServiceError::UnknownEvent {
                name: "run_failur".into(),
                hint: " (did you mean `run_failure`?)".into(),
            },
            StatusCode::NOT_FOUND,
        ),
        (
            ServiceError::UnknownUser {
                name: "bob".into(),
                hint: String::new(),
            },
            StatusCode::NOT_FOUND,
        ),
        (
            ServiceError::UnknownMessage("0193b3c4".into()),
            StatusCode::NOT_FOUND,
        ),
        (
            ServiceError::NotFound("no inbox entry 0193b3c4 in bob's inbox".into()),
            StatusCode::NOT_FOUND,
        ),
        (
            ServiceError::Invalid("`x` is not a message id".into()),
            StatusCode::BAD_REQUEST,
        ),
        (
            ServiceError::Unauthenticated("the API token is unknown or revoked".into()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            ServiceError::Conflict("a live token named `ci` exists".into()),
            StatusCode::CONFLICT,
        ),
        (
            ServiceError::Labels(LabelError::Missing {
                event: "run_failure".into(),
                missing: vec![LabelSpec {
                    name: "environment".into(),
                    required: true,
                    description: "the SQLMesh environment".into(),
                }],
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            ServiceError::Store(StoreError::Conflict("user `bob` already exists".into())),
            StatusCode::CONFLICT,
        ),
        (
            ServiceError::Store(StoreError::Corrupt {
                table: "notification_messages",
                detail: "bad state".into(),
            }),
            StatusCode::INTERNAL_SERVER_ERROR,
        ),
        (
            ServiceError::Store(StoreError::Open {
                url: url(),
                detail: "unable to open database file".into(),
            }),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            ServiceError::Store(StoreError::NotMigrated {
                url: url(),
                found: 1,
                latest: 4,
            }),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            ServiceError::Store(StoreError::TooNew {
                url: url(),
                found: 9,
                latest: 4,
            }),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            ServiceError::Store(StoreError::Database(sqlx::Error::PoolTimedOut)),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ];
    for (error, status) in cases {
        let text = error.to_string();
        let api = ApiError::from(error);
        assert_eq!(api.status(), status, "{text}");
        assert!(
            api.message().starts_with(&text),
            "the service's sentence is kept: {text} -> {}",
            api.message()
        );
    }
}

#[test]
fn a_store_that_does_not_answer_says_to_try_again() {
    let api = ApiError::from(ServiceError::Store(StoreError::Database(
        sqlx::Error::PoolTimedOut,
    )));
    assert!(
        api.message()
            .ends_with("; the store is unavailable, try again shortly"),
        "{}",
        api.message()
    );
}

#[tokio::test]
async fn an_api_error_is_sent_as_a_json_object_with_its_status() {
    let response = ApiError::new(StatusCode::CONFLICT, "token `ci` already exists").into_response();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        response.headers().get(CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "error": "token `ci` already exists" })
    );
}

/// What [`JsonBody`], the handlers' body extractor, says about `body` sent with `content_type`.
async fn refused_json(content_type: &str, body: Body) -> ApiError {
    let request = Request::builder()
        .method("POST")
        .uri("/api/v1/events")
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .unwrap();
    match JsonBody::<serde_json::Value>::from_request(request, &()).await {
        Ok(value) => panic!("taken: {value:?}"),
        Err(refused) => refused,
    }
}

#[tokio::test]
async fn a_refused_json_body_keeps_its_status_and_says_what_to_send() {
    let malformed = refused_json("application/json", Body::from("{\"event\":")).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    assert!(
        malformed
            .message()
            .ends_with("; send a JSON object with Content-Type: application/json"),
        "{}",
        malformed.message()
    );
    let not_json = refused_json("text/plain", Body::from("{}")).await;
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // The extractor's own limit (axum's 2 MB here; the router's `DefaultBodyLimit` makes it
    // 1 MiB) catches a body that declared no length, e.g. a chunked one: the same 413 sentence
    // as for a declared length over the limit.
    let chunks = Body::from(vec![b' '; 3 * 1024 * 1024]);
    let too_large = refused_json("application/json", chunks).await;
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        too_large.message(),
        "the request body is over the 1048576-byte (1 MiB) limit; send a smaller one"
    );
}
