//! The HTTP API served in-process on a free loopback port over a migrated store, for tests
//! that speak HTTP to it as a producer or a Prometheus scrape would, with the service behind
//! it at hand to set up users and tokens and to count what was written.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald::api::{self, ApiListener, ApiServer, ApiState, ConnectionLimits};
use herald::config::Config;
use herald::model::{Role, User};
use herald::service::Service;
use herald::telemetry::Metrics;

use super::TestDb;

/// A serving API; dropping it stops the server.
pub struct RunningApi {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
    pub addr: SocketAddr,
    /// What `/metrics` renders: record into it to see the scrape change.
    pub metrics: Arc<Metrics>,
    /// The service the handlers call, for a test's setup and checks.
    pub service: Arc<Service>,
    server: ApiServer,
}

impl RunningApi {
    /// The API over `db`, migrated here, with the default configuration.
    pub async fn start(db: &TestDb) -> RunningApi {
        RunningApi::start_with(db, ConnectionLimits::default()).await
    }

    /// [`RunningApi::start`], serving under `limits`.
    pub async fn start_with(db: &TestDb, limits: ConnectionLimits) -> RunningApi {
        let store = super::store::migrated(db).await;
        let service = Service::start(store, Arc::new(Config::default()))
            .await
            .expect("the service starts over a migrated store");
        let metrics = Arc::new(Metrics::new());
        let listener = ApiListener::bind("127.0.0.1:0".parse().unwrap(), "--http")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0, "the bound port is known");
        let service = Arc::new(service);
        let router = api::router(ApiState::new(service.clone(), metrics.clone()));
        let server = listener.serve_with(router, limits);
        RunningApi {
            url: format!("http://{addr}"),
            addr,
            metrics,
            service,
            server,
        }
    }

    /// Adds user `name` (`name@example.com`) with `roles`; the first owner needs no caller,
    /// later users are added by `by`.
    pub async fn add_user(&self, by: Option<&User>, name: &str, roles: &[Role]) -> User {
        self.service
            .add_user(by, super::store::new_user(name, roles))
            .await
            .unwrap_or_else(|e| panic!("adding {name}: {e}"))
    }

    /// A fresh API token of `user`'s, named `name`.
    pub async fn token(&self, user: &User, name: &str) -> String {
        let (_, secret) = self
            .service
            .create_token(user, name, None)
            .await
            .unwrap_or_else(|e| panic!("a token for {}: {e}", user.username));
        secret.expose().to_string()
    }

    /// How many messages the store holds, in any state.
    pub async fn message_count(&self) -> i64 {
        let counts = self
            .service
            .store()
            .count_by_state()
            .await
            .expect("count messages");
        counts.iter().map(|(_, n)| n).sum()
    }

    /// `self.url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// [`ApiServer::stop`] with `bound`.
    pub async fn stop(self, bound: Duration) -> bool {
        self.server.stop(bound).await
    }
}

/// One answer of the API, read whole: status, headers and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    /// Reads `response`; its body must be JSON (`Content-Type: application/json`).
    pub async fn of(response: reqwest::Response) -> Answer {
        let status = response.status();
        let headers = response.headers().clone();
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(content_type, "application/json", "{status}: {headers:?}");
        let body = response.json().await.expect("a JSON body");
        Answer {
            status,
            headers,
            body,
        }
    }

    /// The `error` sentence of an error answer with `status`: one line a person can act on.
    #[track_caller]
    pub fn error(&self, status: reqwest::StatusCode) -> &str {
        assert_eq!(self.status, status, "{:?}", self.body);
        let error = self.body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no `error` sentence: {}", self.body));
        assert_eq!(
            self.body.as_object().map(|o| o.len()),
            Some(1),
            "only `error`: {}",
            self.body
        );
        assert!(
            !error.is_empty() && !error.contains('\n') && error.len() < 400,
            "one sentence: {error:?}"
        );
        error
    }
}

/// Requests to the API as one token's holder.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client of `api` sending `token` (none: no Authorization header).
    pub fn new(api: &RunningApi, token: Option<&str>) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: api.url.clone(),
            token: token.map(str::to_string),
        }
    }

    /// A request of `method` to `path`, with the token.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::GET, path)).await
    }

    /// POST with `body` as JSON.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Answer {
        self.send(self.request(reqwest::Method::POST, path).json(body))
            .await
    }

    /// POST without a body.
    pub async fn post_empty(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::POST, path)).await
    }

    pub async fn put(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::PUT, path)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(self.request(reqwest::Method::DELETE, path)).await
    }

    /// Sends `request` and reads the answer.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        Answer::of(request.send().await.expect("the API answers")).await
    }
}
