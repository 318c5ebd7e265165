//! The producers' HTTP API (DESIGN §12): one axum server on the process's tokio runtime, next
//! to the dispatcher, answering `/healthz`, `/readyz`, `/metrics` and the endpoints under
//! `/api/v1`, every error as `{"error": "…"}`.
//!
//! A front end like the CLI and the console: handlers call the
//! [`Service`](crate::service::Service), which checks permissions; nothing here writes SQL.
//! Where each part lives: `routes` (the one router and its layers), `server` (bind, serve,
//! graceful stop, [`ApiState`]), `auth` (the token's user, [`Caller`]), `health` (the operator's
//! endpoints), `events` (reporting events, the catalog), `messages` (the queue), `notifier`
//! (the pause switch), `inbox`, `optouts`, `audit` (the audit trail), `params` (query parameters), `error`
//! ([`ApiError`]), `openapi` (`GET /api/v1/openapi.json`, generated from the handlers'
//! annotations) and `schema` (the named schemas of the bodies sent).

mod audit;
mod auth;
mod batch;
mod body;
mod coder;
mod error;
mod events;
mod health;
mod inbox;
mod messages;
mod notifier;
mod openapi;
mod optouts;
mod params;
mod routes;
mod schema;
mod server;
#[cfg(test)]
mod tests;

pub use auth::{Caller, QueryCaller};
pub use error::ApiError;
pub use openapi::openapi;
pub use routes::{MAX_BODY_BYTES, router};
pub use server::{ApiListener, ApiServer, ApiState, ConnectionLimits, ListenError, READY_TIMEOUT};
