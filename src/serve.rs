//! `herald serve`: a headless replica — the dispatcher, its metrics, and a clean stop.

use std::sync::Arc;

use anyhow::{Context, Result};

use crate::cli::ServeArgs;
use crate::runtime::start_replica;
use crate::service::Service;
use crate::telemetry::{Metrics, serve_metrics};

/// Runs the dispatcher until SIGINT or SIGTERM, then stops it cleanly.
pub async fn serve(service: &Service, args: &ServeArgs) -> Result<()> {
    let metrics = Arc::new(Metrics::new());
    // The endpoint first: an address in use refuses to start before anything is leased.
    let (stop_metrics, metrics_stopping) = tokio::sync::watch::channel(false);
    if let Some(addr) = args.metrics_addr {
        let mut stopping = metrics_stopping.clone();
        let bound = serve_metrics(addr, metrics.clone(), async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .await?;
        tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    }
    let replica = start_replica(service, metrics).await?;
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
    let waited = wait_for_signal().await;
    tracing::info!("signal received: stopping");
    let stopped = replica.stop().await;
    let _ = stop_metrics.send(true);
    waited?;
    stopped
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
