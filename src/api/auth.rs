//! Who is calling: [`Caller`], the user an API token acts as, taken from the request before a
//! handler runs. Every endpoint under `/api/v1` takes one; the service then checks that user's
//! roles as it does for the CLI and the console.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::{ApiError, ApiState};
use crate::model::User;

/// The authenticated user behind a request's `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

/// The same, also accepting `?token=<token>` in the query: only for peers that cannot set a
/// header (Coder's webhook sender, DESIGN §12). The query is never logged.
#[derive(Debug, Clone)]
pub struct QueryCaller(pub User);

const MISSING: &str = "this endpoint needs an API token: send `Authorization: Bearer <token>` \
     (create one with `herald tokens create NAME`)";

/// A 401 carrying `WWW-Authenticate: Bearer`, as RFC 6750 asks.
#[derive(Debug)]
pub struct Unauthorized(ApiError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, "Bearer".parse().expect("a valid header"));
        response
    }
}

impl From<ApiError> for Unauthorized {
    fn from(error: ApiError) -> Self {
        Unauthorized(error)
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let token = bearer(parts).map_err(IntoResponse::into_response)?;
        authenticate(state, token).await.map(Caller)
    }
}

impl FromRequestParts<ApiState> for QueryCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Response> {
        let token = match bearer(parts) {
            Ok(Some(token)) => Some(token),
            Ok(None) => query_token(parts.uri.query()),
            Err(refused) => return Err(refused.into_response()),
        };
        authenticate(state, token).await.map(QueryCaller)
    }
}

/// The bearer token of the `Authorization` header, `None` without the header; a header that
/// is not `Bearer …` is refused with what to send instead.
fn bearer(parts: &Parts) -> Result<Option<String>, Unauthorized> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Ok(Some(token.trim().to_string()))
        }
        _ => Err(Unauthorized(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the Authorization header is not `Bearer <token>`: send the API token that way",
        ))),
    }
}

/// `token=` from a query string (percent-escapes are not expected in a token).
fn query_token(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
        .filter(|token| !token.is_empty())
        .map(str::to_string)
}

async fn authenticate(state: &ApiState, token: Option<String>) -> Result<User, Response> {
    let Some(token) = token else {
        return Err(Unauthorized(ApiError::new(StatusCode::UNAUTHORIZED, MISSING)).into_response());
    };
    let Some(checked) = state.authenticator.call(token).await else {
        return Err(ApiError::stopping().into_response());
    };
    match checked {
        Ok(user) => Ok(user),
        Err(error) => {
            let error = ApiError::from(error);
            Err(if error.status() == StatusCode::UNAUTHORIZED {
                Unauthorized(error).into_response()
            } else {
                error.into_response()
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::query_token;

    #[test]
    fn the_query_token_is_found_among_other_parameters() {
        assert_eq!(
            query_token(Some("a=1&token=herald_ab&b=2")).as_deref(),
            Some("herald_ab")
        );
        assert_eq!(query_token(Some("token=")), None);
        assert_eq!(query_token(Some("tokens=x")), None);
        assert_eq!(query_token(None), None);
    }
}
