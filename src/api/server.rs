//! Binding, serving and stopping the API's listener, and [`ApiState`], what every handler
//! shares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::service::Service;
use crate::telemetry::Metrics;

/// How long `/readyz` waits for the store before answering 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// What every handler shares: the service (every operation, permission-checked) and the
/// dispatcher's metrics.
#[derive(Clone)]
pub struct ApiState {
    /// The operations the endpoints call.
    pub service: Arc<Service>,
    /// What `/metrics` renders.
    pub metrics: Arc<Metrics>,
}

/// The address could not be bound; names the address and the setting it came from.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} for the HTTP API ({setting}): {reason}; stop what is using it or choose another address"
)]
pub struct ListenError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// The flag or key that gave it, e.g. `--http` or `http.listen`.
    pub setting: &'static str,
    /// Why, e.g. "address in use".
    pub reason: String,
}

/// A bound address, not yet serving: binding first lets `serve` refuse to start before the
/// dispatcher leases anything.
pub struct ApiListener {
    listener: TcpListener,
    addr: SocketAddr,
}

impl ApiListener {
    /// Binds `addr`, which `setting` (a flag or config key) gave, for the error's sake.
    pub async fn bind(addr: SocketAddr, setting: &'static str) -> Result<ApiListener, ListenError> {
        let error = |err: std::io::Error| ListenError {
            addr,
            setting,
            reason: listen_reason(&err),
        };
        let listener = TcpListener::bind(addr).await.map_err(error)?;
        let addr = listener.local_addr().map_err(error)?;
        Ok(ApiListener { listener, addr })
    }

    /// The bound address (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `router` from a spawned task until [`ApiServer::stop`] (or until the server is
    /// dropped).
    pub fn serve(self, router: Router) -> ApiServer {
        let (stop, mut stopping) = watch::channel(false);
        let shutdown = async move {
            // A dropped sender also stops the server.
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(self.listener, router)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::warn!(error = %err, "the HTTP API server stopped");
            }
        });
        ApiServer {
            addr: self.addr,
            stop,
            task,
        }
    }
}

/// A serving API listener.
pub struct ApiServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ApiServer {
    /// The address it serves.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections at once and lets the requests in flight finish for up to
    /// `bound`, then stops waiting for them (they end with the process). Returns whether all
    /// finished in time.
    pub async fn stop(mut self, bound: Duration) -> bool {
        let _ = self.stop.send(true);
        if tokio::time::timeout(bound, &mut self.task).await.is_ok() {
            return true;
        }
        self.task.abort();
        false
    }
}

fn listen_reason(err: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match err.kind() {
        ErrorKind::AddrInUse => "address in use".to_owned(),
        ErrorKind::AddrNotAvailable => "address not available on this machine".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => err.to_string(),
    }
}
