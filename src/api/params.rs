//! [`Params`]: an endpoint's query parameters, refused as a JSON 400 that names the parameter
//! at fault and those the endpoint takes (each parameter struct denies unknown fields).

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The query string as `T`; a parameter `T` does not know, or a value it cannot take, is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Params<T>(pub T);

/// What an endpoint without query parameters takes: nothing.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(params)) => Ok(Params(params)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "{} in the query of {}; fix or drop that parameter",
                    rejection.body_text(),
                    parts.uri.path()
                ),
            )),
        }
    }
}

/// A 400 for query parameter `name`, saying `why`.
pub fn bad_param(name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("query parameter `{name}`: {why}"),
    )
}
