//! Telemetry: logging to stderr and into the in-memory ring the console shows, and Prometheus
//! metrics (served at `/metrics` by the HTTP API, `crate::api`).
//!
//! Logging follows Coder: a base level is always shown (INFO for `serve`, WARN for one-shot
//! commands), and a filter regex (`--log-filter`, `HERALD_LOG_FILTER`; Coder's
//! `CODER_LOG_FILTER=".*notifications.*"`) lets matching debug events through too. Metrics are
//! atomics behind briefly held locks, so the dispatcher's hot path can record freely.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::hash::{BuildHasher, RandomState};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

mod layer;
mod metrics;
mod options;
mod ring;
#[cfg(test)]
mod tests;

pub use layer::{CaptureLayer, LogHandle, LogLayer, capture_layer, init_logging};
pub use metrics::Metrics;
pub use options::LogOptions;
pub use ring::{LogLine, LogRing};

use ring::*;

/// What can go wrong setting up telemetry, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter is not a valid regular expression.
    #[error(
        "invalid log filter {filter:?} (--log-filter / HERALD_LOG_FILTER): {reason}; the filter is a regular expression such as \".*notifications.*\""
    )]
    InvalidLogFilter {
        /// The filter as given.
        filter: String,
        /// The regex error, on one line.
        reason: String,
    },
    /// A global tracing subscriber was installed before [`init_logging`].
    #[error("logging is already initialised in this process (a global tracing subscriber is set)")]
    LoggingAlreadyInitialized,
}
