//! A dispatcher running inside the test process, built the way `herald serve` builds its
//! replica (configured channels plus the inbox), on a store handle of its own as another
//! process would have.

use std::sync::Arc;
use std::time::Duration;

use herald::channels::Channels;
use herald::config::Config;
use herald::dispatch::{DispatchSettings, Dispatcher};
use herald::store::{self, OpenMode};
use herald::telemetry::Metrics;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A dispatcher running in this process, as `herald serve` builds it.
pub struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn start(config: &Config) -> Running {
        Running::start_with(config, |_| {}).await
    }

    /// Like [`Running::start`], with `adjust` replacing channels before the dispatcher starts.
    pub async fn start_with(config: &Config, adjust: impl FnOnce(&mut Channels)) -> Running {
        let store = store::open(&config.database_url, OpenMode::Existing)
            .await
            .expect("open store");
        let mut channels =
            Channels::for_replica(&config.channel_settings(), store.clone()).expect("channels");
        adjust(&mut channels);
        let dispatcher = Dispatcher::new(
            store,
            Arc::new(channels),
            DispatchSettings::from(config),
            Arc::new(Metrics::new()),
        )
        .expect("dispatcher");
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(dispatcher.run(stopping));
        Running { stop, task }
    }

    /// Stops it the way SIGTERM does, and insists it stops cleanly and soon.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the dispatcher stops within 30 s")
            .expect("dispatcher task panicked")
            .expect("dispatcher failed");
    }
}
