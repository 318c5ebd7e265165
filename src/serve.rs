//! `herald serve`: a headless replica — the dispatcher, the HTTP API with its health and
//! metrics endpoints, the console over SSH, and a clean stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::api::{self, ApiListener, ApiServer, ApiState};
use crate::cli::ServeArgs;
use crate::runtime::start_replica;
use crate::service::Service;
use crate::ssh::SshListener;
use crate::telemetry::{LogRing, Metrics};

/// How long requests in flight at SIGINT/SIGTERM may take to finish.
const REQUEST_DRAIN: Duration = Duration::from_secs(10);

/// Runs the dispatcher (and the HTTP API when `--http` or `http.listen` names an address, the
/// SSH server when `--ssh` or `ssh.listen` does) until SIGINT or SIGTERM, then stops them
/// cleanly. `ring` holds the process's log lines for the SSH consoles' Troubleshoot tab.
pub async fn serve(service: Arc<Service>, args: &ServeArgs, ring: Option<LogRing>) -> Result<()> {
    // Signals are caught before anything answers: a SIGTERM sent as soon as `/healthz` says
    // ready stops cleanly instead of killing the process.
    let signals = Signals::catch()?;
    let metrics = Arc::new(Metrics::new());
    // The listeners first: an address in use refuses to start before anything is leased.
    let http = match (args.http, service.config().http.listen) {
        (Some(addr), _) => Some(ApiListener::bind(addr, "--http").await?),
        (None, Some(addr)) => Some(ApiListener::bind(addr, "http.listen").await?),
        (None, None) => None,
    };
    let ssh = match (args.ssh, service.config().ssh.listen) {
        (Some(addr), _) => Some(SshListener::bind(addr, "--ssh").await?),
        (None, Some(addr)) => Some(SshListener::bind(addr, "ssh.listen").await?),
        (None, None) => None,
    };
    let metrics_only = match args.metrics_addr {
        Some(addr) => Some(ApiListener::bind(addr, "--metrics-addr").await?),
        None => None,
    };
    let replica = start_replica(&service, metrics.clone()).await?;
    let ssh = match ssh {
        Some(listener) => {
            let addr = listener.local_addr();
            let ring = ring.unwrap_or_else(|| LogRing::new(0));
            let server = listener.serve(service.clone(), Some(replica.state()), ring);
            match server {
                Ok(server) => {
                    tracing::info!(
                        "serving the console over SSH at {addr} (`ssh -p {} HOST`)",
                        addr.port()
                    );
                    Some(server)
                }
                Err(e) => {
                    let _ = replica.stop().await;
                    return Err(e);
                }
            }
        }
        None => None,
    };
    let state = ApiState::new(service.clone(), metrics);
    let mut servers: Vec<ApiServer> = Vec::new();
    if let Some(listener) = http {
        tracing::info!("serving the HTTP API at http://{}", listener.local_addr());
        servers.push(listener.serve(api::router(state.clone())));
    }
    if let Some(listener) = metrics_only {
        tracing::info!(
            "serving the HTTP API, /metrics included, at http://{} (--metrics-addr)",
            listener.local_addr()
        );
        servers.push(listener.serve(api::router(state)));
    }
    let config = service.config();
    let default_method = config.notifications.method;
    if replica.default_method_missing {
        tracing::warn!(
            "the default delivery method {default_method} is not configured (set {}); messages to users go to the inbox only",
            match default_method {
                crate::model::Method::Smtp => "email.smarthost",
                _ => "notifications.webhook.endpoint",
            }
        );
    }
    tracing::info!(
        notifier_id = %replica.notifier_id(),
        store = %service.store().display_url(),
        "herald serve started"
    );
    signals.wait().await;
    tracing::info!("signal received: stopping");
    for server in servers {
        let addr = server.local_addr();
        if !server.stop(REQUEST_DRAIN).await {
            tracing::warn!(
                %addr,
                "requests still running {}s after the signal were left to end with the process",
                REQUEST_DRAIN.as_secs()
            );
        }
    }
    if let Some(ssh) = ssh {
        ssh.stop().await;
    }
    replica.stop().await
}

/// SIGTERM and SIGINT, caught from [`Signals::catch`] on (their default would end the process).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn catch() -> Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Until either arrives (or arrived since [`Signals::catch`]).
    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
