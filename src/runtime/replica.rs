//! One replica of the notifier: the channels this configuration delivers with, the catalog's
//! and the overrides' templates checked, and a dispatcher running until it is told to stop.
//! `herald serve` and the console's embedded dispatcher both start theirs here.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::channels::Channels;
use crate::dispatch::{DispatchSettings, Dispatcher, DispatcherState};
use crate::render::{Overrides, validate_catalog};
use crate::service::Service;
use crate::telemetry::Metrics;

/// A running replica; stop it with [`ReplicaHandle::stop`] or [`ReplicaHandle::stop_within`].
pub struct ReplicaHandle {
    notifier_id: Uuid,
    /// Whether the deployment's default method has no channel here (users get inbox copies
    /// only from this replica); the caller says so where its operator looks.
    pub default_method_missing: bool,
    state: watch::Receiver<DispatcherState>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

/// Starts a replica on the service's store and configuration, recording into `metrics`.
/// Refuses to start when a template does not compile or render.
pub async fn start_replica(service: &Service, metrics: Arc<Metrics>) -> Result<ReplicaHandle> {
    let config = service.config();
    let store = service.store().clone();
    let channels = Channels::for_replica(&config.channel_settings(), store.clone())?;
    let default_method_missing = channels.get(config.notifications.method).is_none();
    let overrides = checked_templates(service).await?;
    let dispatcher = Dispatcher::new(
        store,
        Arc::new(channels),
        DispatchSettings::from(config),
        metrics,
    )?
    .with_overrides(overrides);
    let notifier_id = dispatcher.notifier_id();
    let state = dispatcher.state();
    let (stop, stopping) = watch::channel(false);
    let task = tokio::spawn(async move { dispatcher.run(stopping).await });
    Ok(ReplicaHandle {
        notifier_id,
        default_method_missing,
        state,
        stop,
        task,
    })
}

impl ReplicaHandle {
    /// The dispatcher's random id (its `notification_replicas` row).
    pub fn notifier_id(&self) -> Uuid {
        self.notifier_id
    }

    /// Follows the dispatcher's state.
    pub fn state(&self) -> watch::Receiver<DispatcherState> {
        self.state.clone()
    }

    /// Stops leasing, waits for every delivery in flight and its outcome, then returns.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("the dispatcher task failed")?
    }

    /// Like [`ReplicaHandle::stop`], waiting at most `bound` (saying so when the wait is
    /// noticeable). Past that the replica is left: its messages stay leased until the lease
    /// expires, and are then delivered again by any replica.
    pub async fn stop_within(self, bound: Duration) -> Result<()> {
        let _ = self.stop.send(true);
        let mut task = self.task;
        let started = tokio::time::Instant::now();
        if let Ok(joined) = tokio::time::timeout(Duration::from_millis(300), &mut task).await {
            return joined.context("the dispatcher task failed")?;
        }
        tracing::info!(
            "waiting up to {} for the dispatcher to finish the deliveries in flight",
            humantime::format_duration(bound)
        );
        match tokio::time::timeout_at(started + bound, task).await {
            Ok(joined) => joined.context("the dispatcher task failed")?,
            Err(_) => {
                tracing::warn!(
                    "the dispatcher did not stop within {}; the deliveries still in flight stay \
                     leased until notifications.lease_period expires, then any replica delivers them",
                    humantime::format_duration(bound)
                );
                Ok(())
            }
        }
    }
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
