//! `herald serve`: a headless replica — the dispatcher, its metrics, and a clean stop.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::watch;

use crate::channels::Channels;
use crate::cli::ServeArgs;
use crate::dispatch::{DispatchSettings, Dispatcher};
use crate::render::{Overrides, validate_catalog};
use crate::service::Service;
use crate::telemetry::{Metrics, serve_metrics};

/// Runs the dispatcher until SIGINT or SIGTERM, then stops it cleanly.
pub async fn serve(service: &Service, args: &ServeArgs) -> Result<()> {
    let config = service.config();
    let store = service.store().clone();
    let channels = Channels::for_replica(config, store.clone())?;
    let default_method = config.notifications.method;
    if channels.get(default_method).is_none() {
        tracing::warn!(
            "the default delivery method {default_method} is not configured (set {}); messages to users go to the inbox only",
            match default_method {
                crate::model::Method::Smtp => "email.smarthost",
                _ => "notifications.webhook.endpoint",
            }
        );
    }
    let metrics = Arc::new(Metrics::new());
    let (stop, stopping) = watch::channel(false);
    if let Some(addr) = args.metrics_addr {
        let mut stopping = stopping.clone();
        let bound = serve_metrics(addr, metrics.clone(), async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .await?;
        tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    }
    let overrides = checked_templates(service).await?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        Arc::new(channels),
        DispatchSettings::from(config),
        metrics,
    )?
    .with_overrides(overrides);
    tracing::info!(
        notifier_id = %dispatcher.notifier_id(),
        store = %store.display_url(),
        "herald serve started"
    );
    let running = tokio::spawn(dispatcher.run(stopping));
    wait_for_signal().await?;
    tracing::info!("signal received: stopping");
    let _ = stop.send(true);
    running.await.context("the dispatcher task failed")??;
    Ok(())
}

/// The config's template overrides, after checking that every template (catalog and
/// overrides) compiles and renders: a broken catalog refuses to start.
pub async fn checked_templates(service: &Service) -> Result<Overrides> {
    let overrides = Overrides::from_config(service.config())?;
    let events = service.store().list_templates().await?;
    if let Err(errors) = validate_catalog(&events, &overrides) {
        for e in &errors {
            tracing::error!("{e}");
        }
        anyhow::bail!(
            "{} template error(s), the first: {}; fix the catalog or the [events]/[[targets]] overrides",
            errors.len(),
            errors[0]
        );
    }
    Ok(overrides)
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
