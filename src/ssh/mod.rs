//! The console over SSH (DESIGN §13): `herald serve --ssh ADDR` runs an SSH server (russh)
//! whose sessions open the console as the Herald user who owns the client's public key
//! (`user_ssh_keys`). Public-key auth only; each session has its own console state and shares
//! the server's store and dispatcher. A front end: it calls the service, never the store.

mod host_key;
mod limits;
mod session;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::dispatch::DispatcherState;
use crate::service::{FrontEnd, Service};
use crate::telemetry::LogRing;

pub use limits::{AUTH_WINDOW, AuthLimiter};

/// How long open sessions get to end (their consoles told to stop) when the server stops.
const SESSION_DRAIN: Duration = Duration::from_secs(5);

/// What every connection shares.
struct Shared {
    service: Arc<Service>,
    /// The serving process's dispatcher, shown in each console's header.
    dispatcher: Option<watch::Receiver<DispatcherState>>,
    /// The process's log lines, for each console's Troubleshoot tab.
    ring: LogRing,
    limiter: Mutex<AuthLimiter>,
    /// One permit per open console.
    sessions: Arc<Semaphore>,
    max_sessions: usize,
    idle_timeout: Duration,
    /// Becomes true when the server stops.
    shutdown: watch::Receiver<bool>,
}

/// The SSH server's socket, bound before anything else starts so an address in use fails
/// `herald serve` at once.
pub struct SshListener {
    listener: TcpListener,
}

impl SshListener {
    /// Binds `addr`; `source` names where it came from (`--ssh`, `ssh.listen`) for the error.
    pub async fn bind(addr: SocketAddr, source: &str) -> Result<SshListener> {
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for SSH on {addr} ({source}): pick a free port, e.g. --ssh 127.0.0.1:2222")
        })?;
        Ok(SshListener { listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// Starts serving: the host key is read (or made and logged) first, so a bad one fails
    /// the start.
    pub fn serve(
        self,
        service: Arc<Service>,
        dispatcher: Option<watch::Receiver<DispatcherState>>,
        ring: LogRing,
    ) -> Result<SshServer> {
        let service = Arc::new(service.through(FrontEnd::Ssh));
        let settings = service.config().ssh.clone();
        let host_key = host_key::load_or_create(&settings.host_key_file)?;
        let config = Arc::new(russh::server::Config {
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            keys: vec![host_key],
            auth_rejection_time: Duration::from_secs(1),
            auth_rejection_time_initial: Some(Duration::ZERO),
            // A connection with no traffic at all (none before login either) goes a minute
            // after a console would have closed for want of keystrokes, which says why first.
            inactivity_timeout: Some(
                settings
                    .idle_timeout
                    .saturating_add(Duration::from_secs(60)),
            ),
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let (stop, shutdown) = watch::channel(false);
        let shared = Arc::new(Shared {
            service,
            dispatcher,
            ring,
            limiter: Mutex::new(AuthLimiter::new(settings.auth_attempts_per_minute)),
            sessions: Arc::new(Semaphore::new(settings.max_sessions)),
            max_sessions: settings.max_sessions,
            idle_timeout: settings.idle_timeout,
            shutdown: shutdown.clone(),
        });
        let addr = self.local_addr();
        let task = tokio::spawn(accept(self.listener, config, shared, shutdown));
        Ok(SshServer { addr, stop, task })
    }
}

/// The running SSH server.
pub struct SshServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SshServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, tells every console to stop (each client reads why) and waits for
    /// the sessions to end, at most a few seconds.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Resolves once `shutdown` is true.
async fn stopping(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stopping| *stopping).await;
}

async fn accept(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stopping(shutdown.clone()) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let handler = session::Connection::new(shared.clone(), peer);
                    let config = config.clone();
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        let running = match russh::server::run_stream(config, socket, handler).await {
                            Ok(running) => running,
                            Err(e) => {
                                tracing::debug!(%peer, "SSH connection failed before the session: {e}");
                                return;
                            }
                        };
                        let handle = running.handle();
                        tokio::pin!(running);
                        tokio::select! {
                            ended = &mut running => {
                                if let Err(e) = ended {
                                    tracing::debug!(%peer, "SSH connection ended: {e}");
                                }
                            }
                            () = stopping(shutdown.clone()) => {
                                // The console says why and closes its channel; then the
                                // connection goes.
                                let _ = tokio::time::timeout(SESSION_DRAIN, &mut running).await;
                                let _ = handle
                                    .disconnect(russh::Disconnect::ByApplication, "herald is stopping".into(), String::new())
                                    .await;
                            }
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("cannot accept an SSH connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    let drained = tokio::time::timeout(SESSION_DRAIN * 2, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}
