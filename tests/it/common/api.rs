//! The HTTP API served in-process on a free loopback port over a migrated store, for tests
//! that speak HTTP to it as a producer or a Prometheus scrape would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use herald::api::{self, ApiListener, ApiServer, ApiState};
use herald::config::Config;
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
    /// The service the handlers call, for a test's setup (users, tokens) and checks.
    pub service: Arc<Service>,
    server: ApiServer,
}

impl RunningApi {
    /// The API over `db`, migrated here, with the default configuration.
    pub async fn start(db: &TestDb) -> RunningApi {
        let store = super::store::migrated(db).await;
        let service = Service::start(store, Arc::new(Config::default()))
            .await
            .expect("the service starts over a migrated store");
        let service = Arc::new(service);
        let metrics = Arc::new(Metrics::new());
        let listener = ApiListener::bind("127.0.0.1:0".parse().unwrap(), "--http")
            .await
            .expect("a free loopback port");
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0, "the bound port is known");
        let server = listener.serve(api::router(ApiState {
            service: service.clone(),
            metrics: metrics.clone(),
        }));
        RunningApi {
            url: format!("http://{addr}"),
            addr,
            metrics,
            service,
            server,
        }
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
