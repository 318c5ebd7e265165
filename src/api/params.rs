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
                    "the query of {} is refused: {}; fix or drop that parameter",
                    parts.uri.path(),
                    in_parameter_words(&rejection.body_text())
                ),
            )),
        }
    }
}

/// serde's sentence about a query, in the words of query parameters: `colour: unknown field
/// `colour`, expected one of `a`, `b`` becomes `unknown parameter `colour`, expected one of …`;
/// a bad value keeps its parameter's name in front (`limit: invalid digit found in string`).
fn in_parameter_words(text: &str) -> String {
    let text = text.trim_start_matches("Failed to deserialize query string: ");
    let text = match text.split_once("unknown field") {
        Some((_, rest)) => format!("unknown parameter{rest}"),
        None => text.to_string(),
    };
    text.replace("there are no fields", "it takes no parameters")
}

/// A 400 for query parameter `name`, saying `why`.
pub fn bad_param(name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("query parameter `{name}`: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::in_parameter_words;

    #[test]
    fn serdes_refusal_speaks_of_parameters() {
        assert_eq!(
            in_parameter_words(
                "Failed to deserialize query string: colour: unknown field `colour`, expected one of `status`, `limit`"
            ),
            "unknown parameter `colour`, expected one of `status`, `limit`"
        );
        assert_eq!(
            in_parameter_words(
                "Failed to deserialize query string: x: unknown field `x`, there are no fields"
            ),
            "unknown parameter `x`, it takes no parameters"
        );
        assert_eq!(
            in_parameter_words(
                "Failed to deserialize query string: limit: invalid digit found in string"
            ),
            "limit: invalid digit found in string"
        );
    }
}
