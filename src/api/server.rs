//! Binding, serving and stopping the API's listener, and [`ApiState`], what every handler
//! shares. The accept loop is hyper's HTTP/1 server under [`ConnectionLimits`], so a client
//! that opens connections and never finishes a request cannot hold the server.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use super::batch::{self, Authenticator, Batcher};
use crate::service::{FrontEnd, Service};
use crate::telemetry::Metrics;

/// How long `/readyz` waits for the store before answering 503.
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// What one client may hold of the server: connections are served at most
/// `max_connections` at a time (more wait in the listen backlog), and a connection whose
/// request head (request line and headers) has not fully arrived `header_read_timeout` after
/// it began is closed — so a slowloris client holds at most a slot for that long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// How long a request head may take to arrive, on a new or a kept-alive connection.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    /// 256 connections, 10 s for a request head (what the old `/metrics` server allowed a
    /// whole connection).
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// What every handler shares: the service (every operation, permission-checked), the
/// dispatcher's metrics and the writer reported events are queued through.
#[derive(Clone)]
pub struct ApiState {
    /// The operations the endpoints call.
    pub service: Arc<Service>,
    /// What `/metrics` renders.
    pub metrics: Arc<Metrics>,
    /// Writes reported events, many requests' in one transaction ([`super::batch`]).
    pub(super) batcher: Batcher,
    /// Checks bearer tokens, many requests' in one read ([`super::batch`]).
    pub(super) authenticator: Authenticator,
}

impl ApiState {
    /// The state for `service` and `metrics`; starts the token checker's and the events'
    /// writer's tasks on the current runtime.
    pub fn new(service: Arc<Service>, metrics: Arc<Metrics>) -> ApiState {
        let service = Arc::new(service.through(FrontEnd::Api));
        ApiState {
            batcher: batch::batcher(service.clone()),
            authenticator: batch::authenticator(service.clone()),
            service,
            metrics,
        }
    }
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
    /// dropped), under the default [`ConnectionLimits`].
    pub fn serve(self, router: Router) -> ApiServer {
        self.serve_with(router, ConnectionLimits::default())
    }

    /// [`ApiListener::serve`] under `limits`.
    pub fn serve_with(self, router: Router, limits: ConnectionLimits) -> ApiServer {
        let (stop, stopping) = watch::channel(false);
        let addr = self.addr;
        let task = tokio::spawn(accept_connections(self.listener, router, limits, stopping));
        ApiServer { addr, stop, task }
    }
}

/// Accepts connections while a slot is free, each served by its own task, until `stopping`
/// turns true (or its sender is dropped); then stops accepting and waits for the connections
/// in flight, which finish their current request and close.
async fn accept_connections(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        // A slot first, then the connection: beyond the bound, clients wait in the backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stopped(&mut stopping) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %err, "the HTTP API could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            limits,
            stopping.clone(),
            slot,
        ));
    }
    drop(listener);
    // Every slot back: every connection has closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Returns once `stopping` is true or its sender is gone (the server was dropped).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

/// Serves one connection's requests until the client closes it, its request head is late,
/// or the server stops (then the request in flight finishes first); `_slot` is given back
/// when it returns.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let service = TowerToHyperService::new(router);
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let mut closing = false;
    loop {
        tokio::select! {
            finished = connection.as_mut() => {
                if let Err(err) = finished {
                    tracing::debug!(error = %err, "an HTTP API connection ended with an error");
                }
                return;
            }
            () = stopped(&mut stopping), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
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
