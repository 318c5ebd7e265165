//! Telemetry: logging to stderr and into the in-memory ring the console shows, and Prometheus
//! metrics with a minimal `/metrics` endpoint.
//!
//! Logging follows Coder: a base level is always shown (INFO for `serve`, WARN for one-shot
//! commands), and a filter regex (`--log-filter`, `HERALD_LOG_FILTER`; Coder's
//! `CODER_LOG_FILTER=".*notifications.*"`) lets matching debug events through too. Metrics are
//! atomics behind briefly held locks, so the dispatcher's hot path can record freely.

use std::collections::{HashMap, VecDeque};
use std::fmt::{self, Write as _};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

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
    /// The metrics endpoint could not bind its address.
    #[error("cannot listen on {addr} for metrics: {reason}")]
    MetricsListen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why, e.g. "address in use".
        reason: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------

/// How to log: base level, debug filter, output format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// `--log-filter` / `HERALD_LOG_FILTER`: a regular expression. Debug events whose line
    /// (`LEVEL target: message fields`, see [`LogLine::matches`]) matches it are shown as well
    /// as the base level; `.*` shows every debug event. Empty or blank means no filter.
    pub filter: Option<String>,
    /// The level always shown: INFO for `serve` and the console, WARN for one-shot commands.
    pub level: Level,
    /// Write JSON lines instead of text.
    pub json: bool,
    /// Colour the text output (the caller decides, e.g. stderr is a terminal and no `NO_COLOR`).
    pub ansi: bool,
    /// How many lines the in-memory ring keeps for the console.
    pub ring_capacity: usize,
}

impl LogOptions {
    /// Lines the ring keeps unless told otherwise.
    pub const DEFAULT_RING_CAPACITY: usize = 5000;

    /// Defaults for long-running processes (`serve`, the console): INFO and above.
    pub fn serve() -> Self {
        Self {
            filter: None,
            level: Level::INFO,
            json: false,
            ansi: false,
            ring_capacity: Self::DEFAULT_RING_CAPACITY,
        }
    }

    /// Defaults for one-shot commands: WARN and above on stderr.
    pub fn one_shot() -> Self {
        Self {
            level: Level::WARN,
            ..Self::serve()
        }
    }
}

impl Default for LogOptions {
    fn default() -> Self {
        Self::serve()
    }
}

/// One log event as kept in the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the event happened.
    pub time: DateTime<Utc>,
    /// Its level.
    pub level: Level,
    /// Its target, e.g. `herald::dispatch`.
    pub target: String,
    /// The message followed by its fields and those of its spans: `delivered message_id=…`.
    pub text: String,
}

impl LogLine {
    /// Whether `re` matches this line's `LEVEL target: text` (no timestamp). The log filter
    /// and the console's filter both match this form.
    pub fn matches(&self, re: &Regex) -> bool {
        re.is_match(&self.filter_text())
    }

    fn filter_text(&self) -> String {
        format!("{} {}: {}", self.level.as_str(), self.target, self.text)
    }
}

impl fmt::Display for LogLine {
    /// The text form written to stderr, without colour and newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:>5} {}: {}",
            rfc3339(self.time),
            self.level.as_str(),
            self.target,
            self.text
        )
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The last N log lines, shared between the logging layer and readers such as the console.
/// Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<RingInner>,
}

struct RingInner {
    capacity: usize,
    /// Lines with the generation they were pushed at, oldest first.
    lines: Mutex<VecDeque<(u64, Arc<LogLine>)>>,
    generation: AtomicU64,
}

impl LogRing {
    /// An empty ring keeping at most `capacity` lines (0 keeps none but still counts).
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::new(RingInner {
                capacity,
                lines: Mutex::new(VecDeque::with_capacity(capacity.min(1024))),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Appends a line, dropping the oldest when full.
    pub fn push(&self, line: LogLine) {
        let line = Arc::new(line);
        let mut lines = self.lock();
        let generation = self.inner.generation.fetch_add(1, Ordering::AcqRel) + 1;
        if self.inner.capacity == 0 {
            return;
        }
        if lines.len() == self.inner.capacity {
            lines.pop_front();
        }
        lines.push_back((generation, line));
    }

    /// Every line kept, oldest first.
    pub fn snapshot(&self) -> Vec<LogLine> {
        self.lines_since_generation(0, None)
    }

    /// The lines kept that `re` matches (see [`LogLine::matches`]), oldest first.
    pub fn lines_matching(&self, re: &Regex) -> Vec<LogLine> {
        self.lines_since_generation(0, Some(re))
    }

    /// The lines pushed after [`generation`](Self::generation) returned `generation` and still
    /// kept, oldest first: a reader can append these instead of copying the whole ring.
    pub fn since(&self, generation: u64) -> Vec<LogLine> {
        self.lines_since_generation(generation, None)
    }

    /// How many lines were ever pushed; changes exactly when something new arrived.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The most lines kept.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// How many lines are kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no line is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lines_since_generation(&self, after: u64, re: Option<&Regex>) -> Vec<LogLine> {
        // Copy the `Arc`s under the lock and match outside it, so loggers never wait on a regex.
        let kept: Vec<Arc<LogLine>> = {
            let lines = self.lock();
            let start = lines.partition_point(|(generation, _)| *generation <= after);
            lines.range(start..).map(|(_, line)| line.clone()).collect()
        };
        kept.iter()
            .filter(|line| re.is_none_or(|re| line.matches(re)))
            .map(|line| LogLine::clone(line))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, Arc<LogLine>)>> {
        self.inner
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for LogRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogRing")
            .field("capacity", &self.inner.capacity)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// What [`init_logging`] returns: access to the ring and to the stderr output.
#[derive(Debug, Clone)]
pub struct LogHandle {
    ring: LogRing,
    write_enabled: Arc<AtomicBool>,
}

impl LogHandle {
    /// The ring every shown event (and every INFO one) goes to.
    pub fn ring(&self) -> LogRing {
        self.ring.clone()
    }

    /// Turns the stderr output off or back on; the ring keeps recording. The console mutes
    /// stderr while it owns the terminal.
    pub fn set_stderr(&self, enabled: bool) {
        self.write_enabled.store(enabled, Ordering::Relaxed);
    }
}

/// Installs the logging layer as the process's global subscriber, writing to stderr.
///
/// Callable once per process: a second call (or one after another global subscriber was set)
/// returns [`TelemetryError::LoggingAlreadyInitialized`].
pub fn init_logging(opts: &LogOptions) -> Result<LogHandle, TelemetryError> {
    let layer = LogLayer::new(opts, std::io::stderr as fn() -> std::io::Stderr)?;
    let handle = layer.handle();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| TelemetryError::LoggingAlreadyInitialized)?;
    Ok(handle)
}

/// A [`LogLayer`] that writes nowhere but its ring.
pub type CaptureLayer = LogLayer<fn() -> std::io::Sink>;

/// A logging layer that writes nowhere but the returned ring: for tests and embedders that
/// install it on their own subscriber (e.g. with `tracing::subscriber::with_default`).
pub fn capture_layer(opts: &LogOptions) -> Result<(CaptureLayer, LogRing), TelemetryError> {
    let layer = LogLayer::new(opts, std::io::sink as fn() -> std::io::Sink)?;
    let ring = layer.ring();
    Ok((layer, ring))
}

/// The `tracing` layer behind [`init_logging`]: decides which events are shown, formats them
/// once, writes them to `W` and pushes them into the ring.
pub struct LogLayer<W> {
    /// Shown on the writer and in the ring.
    base: Level,
    /// Kept in the ring even when not shown on the writer: the more verbose of base and INFO.
    ring_level: Level,
    filter: Option<Regex>,
    json: bool,
    ansi: bool,
    ring: LogRing,
    writer: W,
    write_enabled: Arc<AtomicBool>,
}

/// Which outputs an event at a given level may reach, decided from its level alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    WriterAndRing,
    RingOnly,
    IfFilterMatches,
    Never,
}

impl<W> LogLayer<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    /// A layer configured by `opts`, writing lines to `writer` (e.g. `std::io::stderr`).
    pub fn new(opts: &LogOptions, writer: W) -> Result<Self, TelemetryError> {
        let filter = match opts.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(pattern) => {
                Some(
                    Regex::new(pattern).map_err(|err| TelemetryError::InvalidLogFilter {
                        filter: pattern.to_owned(),
                        reason: one_line_regex_error(&err),
                    })?,
                )
            }
        };
        Ok(Self {
            base: opts.level,
            ring_level: opts.level.max(Level::INFO),
            filter,
            json: opts.json,
            ansi: opts.ansi,
            ring: LogRing::new(opts.ring_capacity),
            writer,
            write_enabled: Arc::new(AtomicBool::new(true)),
        })
    }
}

impl<W> LogLayer<W> {
    /// The ring this layer pushes into.
    pub fn ring(&self) -> LogRing {
        self.ring.clone()
    }

    /// A handle to the ring and the writer switch.
    pub fn handle(&self) -> LogHandle {
        LogHandle {
            ring: self.ring.clone(),
            write_enabled: self.write_enabled.clone(),
        }
    }

    fn admission(&self, level: Level) -> Admission {
        if level <= self.base {
            Admission::WriterAndRing
        } else if level <= self.ring_level {
            Admission::RingOnly
        } else if level == Level::DEBUG && self.filter.is_some() {
            Admission::IfFilterMatches
        } else {
            Admission::Never
        }
    }

    fn most_verbose(&self) -> Level {
        if self.filter.is_some() {
            self.ring_level.max(Level::DEBUG)
        } else {
            self.ring_level
        }
    }

    fn format(&self, line: &LogLine, message: Option<&str>, fields: &[NamedValue]) -> String {
        if self.json {
            return json_line(line, message, fields);
        }
        if !self.ansi {
            return format!("{line}\n");
        }
        let colour = match line.level {
            Level::ERROR => "31",
            Level::WARN => "33",
            Level::INFO => "32",
            Level::DEBUG => "34",
            _ => "35",
        };
        format!(
            "\x1b[2m{}\x1b[0m \x1b[{colour}m{:>5}\x1b[0m \x1b[2m{}:\x1b[0m {}\n",
            rfc3339(line.time),
            line.level.as_str(),
            line.target,
            line.text
        )
    }
}

impl<W> fmt::Debug for LogLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogLayer")
            .field("base", &self.base)
            .field("filter", &self.filter.as_ref().map(Regex::as_str))
            .field("json", &self.json)
            .field("ansi", &self.ansi)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl<S, W> Layer<S> for LogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.admission(*metadata.level()) == Admission::Never {
            Interest::never()
        } else {
            Interest::always()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.admission(*metadata.level()) != Admission::Never
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.most_verbose()))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldSet::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<FieldSet>() {
            Some(fields) => values.record(fields),
            None => {
                let mut fields = FieldSet::default();
                values.record(&mut fields);
                extensions.insert(fields);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let admission = self.admission(*metadata.level());
        if admission == Admission::Never {
            return;
        }
        let mut fields = FieldSet::default();
        event.record(&mut fields);
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(span_fields) = span.extensions().get::<FieldSet>() {
                    fields.add_missing(span_fields);
                }
            }
        }
        let line = LogLine {
            time: Utc::now(),
            level: *metadata.level(),
            target: metadata.target().to_owned(),
            text: fields.text(),
        };
        let shown = match admission {
            Admission::WriterAndRing => true,
            Admission::RingOnly => false,
            Admission::IfFilterMatches => {
                let matched = self.filter.as_ref().is_some_and(|re| line.matches(re));
                if !matched {
                    return;
                }
                true
            }
            Admission::Never => return,
        };
        if shown && self.write_enabled.load(Ordering::Relaxed) {
            let formatted = self.format(&line, fields.message.as_deref(), &fields.fields);
            // A log line that cannot be written has nowhere to be reported.
            let _ = self
                .writer
                .make_writer_for(metadata)
                .write_all(formatted.as_bytes());
        }
        self.ring.push(line);
    }
}

/// Turns the multi-line regex error (pattern, caret, "error: …") into its one-line reason.
fn one_line_regex_error(err: &regex::Error) -> String {
    let text = err.to_string();
    if let Some(reason) = text
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
    {
        return reason.to_owned();
    }
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A recorded field value, typed so JSON output keeps numbers and booleans.
#[derive(Debug, Clone)]
enum FieldValue {
    Str(String),
    /// Formatted with `Debug` or `Display` (`?x`, `%x`, errors): written as is.
    Formatted(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

type NamedValue = (&'static str, FieldValue);

/// The fields of an event or span, in recording order; `message` kept apart.
#[derive(Debug, Default)]
struct FieldSet {
    message: Option<String>,
    fields: Vec<NamedValue>,
}

impl FieldSet {
    fn set(&mut self, field: &Field, value: FieldValue) {
        let name = field.name();
        // Peer text reaches logs through messages and `%`/`?` fields: control characters
        // (terminal escapes, NUL) are shown escaped, never written raw to a terminal.
        let value = match value {
            FieldValue::Formatted(s) => FieldValue::Formatted(escape_controls(s)),
            other => other,
        };
        if name == "message" {
            self.message = Some(match value {
                FieldValue::Str(s) => escape_controls(s),
                FieldValue::Formatted(s) => s,
                other => text_value(&other),
            });
            return;
        }
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// Appends a span's fields that the event (or an inner span) did not set itself.
    fn add_missing(&mut self, span: &FieldSet) {
        for (name, value) in &span.fields {
            if !self.fields.iter().any(|(n, _)| n == name) {
                self.fields.push((name, value.clone()));
            }
        }
    }

    /// `message k=v k=v`.
    fn text(&self) -> String {
        let mut out = self.message.clone().unwrap_or_default();
        for (name, value) in &self.fields {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
            out.push('=');
            out.push_str(&text_value(value));
        }
        out
    }
}

impl Visit for FieldSet {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, FieldValue::Formatted(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, FieldValue::Str(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, FieldValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, FieldValue::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, FieldValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, FieldValue::Bool(value));
    }
}

/// `text` with every control character written as an escape (`\u{1b}`, `\0`, `\n`).
fn escape_controls(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A value as written after `name=`: strings quoted only when they would not read as one word.
fn text_value(value: &FieldValue) -> String {
    match value {
        FieldValue::Str(s) => {
            let plain = !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control());
            if plain { s.clone() } else { format!("{s:?}") }
        }
        FieldValue::Formatted(s) => s.clone(),
        FieldValue::I64(n) => n.to_string(),
        FieldValue::U64(n) => n.to_string(),
        FieldValue::F64(n) => n.to_string(),
        FieldValue::Bool(b) => b.to_string(),
    }
}

/// `{"timestamp":…,"level":…,"target":…,"fields":{"message":…,…}}` and a newline.
fn json_line(line: &LogLine, message: Option<&str>, fields: &[NamedValue]) -> String {
    use serde_json::{Map, Value};
    let mut object_fields = Map::new();
    if let Some(message) = message {
        object_fields.insert("message".to_owned(), Value::from(message));
    }
    for (name, value) in fields {
        let value = match value {
            FieldValue::Str(s) | FieldValue::Formatted(s) => Value::from(s.as_str()),
            FieldValue::I64(n) => Value::from(*n),
            FieldValue::U64(n) => Value::from(*n),
            FieldValue::F64(n) => Value::from(*n),
            FieldValue::Bool(b) => Value::from(*b),
        };
        object_fields.insert((*name).to_owned(), value);
    }
    let mut object = Map::new();
    object.insert("timestamp".to_owned(), Value::from(rfc3339(line.time)));
    object.insert("level".to_owned(), Value::from(line.level.as_str()));
    object.insert("target".to_owned(), Value::from(line.target.as_str()));
    object.insert("fields".to_owned(), Value::Object(object_fields));
    let mut out = Value::Object(object).to_string();
    out.push('\n');
    out
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Buckets of `herald_send_seconds`.
const SEND_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of `herald_queued_seconds`: a retried message waits minutes.
const QUEUED_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];
/// Buckets of `herald_store_flush_seconds`: a bulk update takes milliseconds.
const FLUSH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The dispatcher's metrics, rendered in the Prometheus text format 0.0.4.
///
/// Recording is a few atomic operations plus a read lock held for a hash lookup; share it in
/// an `Arc`.
pub struct Metrics {
    /// Labels in output order: event, method, result.
    attempts: Family<3, AtomicU64>,
    send_seconds: Family<1, Histogram>,
    retries: Family<1, AtomicU64>,
    queued_seconds: Family<1, Histogram>,
    inflight: AtomicI64,
    pending_updates: AtomicI64,
    leased: AtomicU64,
    flush_seconds: Histogram,
    late_outcomes: AtomicU64,
    isolated_outcomes: AtomicU64,
    /// `(method, target, count)` of messages no running replica can deliver.
    undeliverable: std::sync::Mutex<Vec<(String, String, i64)>>,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self {
            attempts: Family::new(|| AtomicU64::new(0)),
            send_seconds: Family::new(|| Histogram::new(SEND_BUCKETS)),
            retries: Family::new(|| AtomicU64::new(0)),
            queued_seconds: Family::new(|| Histogram::new(QUEUED_BUCKETS)),
            inflight: AtomicI64::new(0),
            pending_updates: AtomicI64::new(0),
            leased: AtomicU64::new(0),
            flush_seconds: Histogram::new(FLUSH_BUCKETS),
            late_outcomes: AtomicU64::new(0),
            isolated_outcomes: AtomicU64::new(0),
            undeliverable: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// One delivery attempt: `result` is `sent`, `temporary_failure` or `permanent_failure`;
    /// `send_seconds` is how long the channel took.
    pub fn record_attempt(&self, method: &str, event: &str, result: &str, send_seconds: f64) {
        self.attempts.with([event, method, result], |count| {
            count.fetch_add(1, Ordering::Relaxed);
        });
        self.send_seconds
            .with([method], |histogram| histogram.observe(send_seconds));
    }

    /// One message scheduled for another attempt.
    pub fn record_retry(&self, method: &str) {
        self.retries.with([method], |count| {
            count.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// How long a message waited before it was leased.
    pub fn observe_queued(&self, method: &str, seconds: f64) {
        self.queued_seconds
            .with([method], |histogram| histogram.observe(seconds));
    }

    /// Deliveries started (`n > 0`) or finished (`n < 0`).
    pub fn inflight_add(&self, n: i64) {
        self.inflight.fetch_add(n, Ordering::Relaxed);
    }

    /// Outcomes buffered and not yet flushed to the store.
    pub fn set_pending_updates(&self, n: i64) {
        self.pending_updates.store(n, Ordering::Relaxed);
    }

    /// `n` messages leased.
    pub fn record_lease(&self, n: u64) {
        self.leased.fetch_add(n, Ordering::Relaxed);
    }

    /// How long one bulk flush of outcomes to the store took.
    pub fn observe_flush(&self, seconds: f64) {
        self.flush_seconds.observe(seconds);
    }

    /// `n` outcomes dropped because their lease had expired and the message moved on.
    pub fn record_late_outcomes(&self, n: u64) {
        self.late_outcomes.fetch_add(n, Ordering::Relaxed);
    }

    /// One outcome the store refused, replaced by a final state with the store's reason.
    pub fn record_isolated_outcome(&self) {
        self.isolated_outcomes.fetch_add(1, Ordering::Relaxed);
    }

    /// Messages waiting for a method or target no running replica delivers:
    /// `(method, target or "", count)`.
    pub fn set_undeliverable(&self, waiting: Vec<(String, String, i64)>) {
        if let Ok(mut slot) = self.undeliverable.lock() {
            *slot = waiting;
        }
    }

    /// Every metric in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let counter = |count: &AtomicU64| count.load(Ordering::Relaxed);

        family_header(
            &mut out,
            "herald_dispatch_attempts_total",
            "Delivery attempts by method, event and result (sent, temporary_failure, permanent_failure).",
            "counter",
        );
        for (labels, value) in self.attempts.collect(counter) {
            sample(
                &mut out,
                "herald_dispatch_attempts_total",
                &[
                    ("event", &labels[0]),
                    ("method", &labels[1]),
                    ("result", &labels[2]),
                ],
                &value.to_string(),
            );
        }

        family_header(
            &mut out,
            "herald_send_seconds",
            "Time a delivery method took to send one message.",
            "histogram",
        );
        for (labels, snapshot) in self.send_seconds.collect(Histogram::snapshot) {
            histogram_samples(
                &mut out,
                "herald_send_seconds",
                &[("method", &labels[0])],
                &snapshot,
            );
        }

        family_header(
            &mut out,
            "herald_retries_total",
            "Messages scheduled for another attempt, by method.",
            "counter",
        );
        for (labels, value) in self.retries.collect(counter) {
            sample(
                &mut out,
                "herald_retries_total",
                &[("method", &labels[0])],
                &value.to_string(),
            );
        }

        family_header(
            &mut out,
            "herald_queued_seconds",
            "Time a message waited in the queue before it was leased, by method.",
            "histogram",
        );
        for (labels, snapshot) in self.queued_seconds.collect(Histogram::snapshot) {
            histogram_samples(
                &mut out,
                "herald_queued_seconds",
                &[("method", &labels[0])],
                &snapshot,
            );
        }

        family_header(
            &mut out,
            "herald_inflight",
            "Deliveries in progress.",
            "gauge",
        );
        let inflight = self.inflight.load(Ordering::Relaxed);
        sample(&mut out, "herald_inflight", &[], &inflight.to_string());

        family_header(
            &mut out,
            "herald_pending_updates",
            "Delivery outcomes buffered and not yet flushed to the store.",
            "gauge",
        );
        let pending = self.pending_updates.load(Ordering::Relaxed);
        sample(
            &mut out,
            "herald_pending_updates",
            &[],
            &pending.to_string(),
        );

        family_header(
            &mut out,
            "herald_leased_total",
            "Messages leased from the store.",
            "counter",
        );
        let leased = self.leased.load(Ordering::Relaxed);
        sample(&mut out, "herald_leased_total", &[], &leased.to_string());

        family_header(
            &mut out,
            "herald_store_flush_seconds",
            "Time one bulk flush of delivery outcomes to the store took.",
            "histogram",
        );
        histogram_samples(
            &mut out,
            "herald_store_flush_seconds",
            &[],
            &self.flush_seconds.snapshot(),
        );

        family_header(
            &mut out,
            "herald_late_outcomes_total",
            "Delivery outcomes dropped because the message's lease had expired and passed on.",
            "counter",
        );
        let late = self.late_outcomes.load(Ordering::Relaxed);
        sample(
            &mut out,
            "herald_late_outcomes_total",
            &[],
            &late.to_string(),
        );

        family_header(
            &mut out,
            "herald_isolated_outcomes_total",
            "Delivery outcomes the store refused; the message was given a final state instead.",
            "counter",
        );
        let isolated = self.isolated_outcomes.load(Ordering::Relaxed);
        sample(
            &mut out,
            "herald_isolated_outcomes_total",
            &[],
            &isolated.to_string(),
        );

        family_header(
            &mut out,
            "herald_undeliverable_messages",
            "Messages waiting for a method or target that no running replica can deliver.",
            "gauge",
        );
        if let Ok(waiting) = self.undeliverable.lock() {
            for (method, target, count) in waiting.iter() {
                sample(
                    &mut out,
                    "herald_undeliverable_messages",
                    &[("method", method), ("target", target)],
                    &count.to_string(),
                );
            }
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("inflight", &self.inflight.load(Ordering::Relaxed))
            .field("leased", &self.leased.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// One metric's series keyed by label values. Lookups hash the borrowed values and compare
/// them within the hash's bucket, so recording allocates nothing once a series exists; the
/// write lock is taken only to add a series.
struct Family<const N: usize, T> {
    hasher: RandomState,
    series: RwLock<HashMap<u64, Vec<Series<N, T>>>>,
    make: fn() -> T,
}

struct Series<const N: usize, T> {
    labels: [Box<str>; N],
    value: T,
}

impl<const N: usize, T> Family<N, T> {
    fn new(make: fn() -> T) -> Self {
        Self {
            hasher: RandomState::new(),
            series: RwLock::new(HashMap::new()),
            make,
        }
    }

    /// Runs `f` on the series for `labels`, creating it first if needed.
    fn with<R>(&self, labels: [&str; N], f: impl FnOnce(&T) -> R) -> R {
        let hash = self.hasher.hash_one(labels);
        let same = |series: &Series<N, T>| {
            series
                .labels
                .iter()
                .zip(labels)
                .all(|(have, want)| &**have == want)
        };
        {
            let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = map
                .get(&hash)
                .and_then(|bucket| bucket.iter().find(|s| same(s)))
            {
                return f(&series.value);
            }
        }
        let mut map = self.series.write().unwrap_or_else(PoisonError::into_inner);
        let bucket = map.entry(hash).or_default();
        let index = match bucket.iter().position(same) {
            Some(index) => index,
            None => {
                bucket.push(Series {
                    labels: labels.map(Box::from),
                    value: (self.make)(),
                });
                bucket.len() - 1
            }
        };
        f(&bucket[index].value)
    }

    /// Every series' label values and `read` of its value, sorted by label values.
    fn collect<R>(&self, read: impl Fn(&T) -> R) -> Vec<([String; N], R)> {
        let mut all: Vec<([String; N], R)> = {
            let map = self.series.read().unwrap_or_else(PoisonError::into_inner);
            map.values()
                .flatten()
                .map(|series| (series.labels.clone().map(String::from), read(&series.value)))
                .collect()
        };
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

/// A histogram over fixed bucket bounds: per-bucket counts, cumulated when rendered.
struct Histogram {
    bounds: &'static [f64],
    /// `bounds.len() + 1` counts; the last one is for values above every bound.
    counts: Box<[AtomicU64]>,
    sum_bits: AtomicU64,
}

struct HistogramSnapshot {
    bounds: &'static [f64],
    /// Cumulative: how many observations were `<=` each bound, then the total.
    cumulative: Vec<u64>,
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0.0_f64.to_bits()),
        }
    }

    /// Records a duration in seconds. NaN and infinities are dropped; a negative duration
    /// (clock skew between replicas) counts as zero.
    fn observe(&self, seconds: f64) {
        if !seconds.is_finite() {
            return;
        }
        let seconds = seconds.max(0.0);
        let index = self.bounds.partition_point(|bound| *bound < seconds);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        // `fetch_update` only fails when the closure returns None, which it never does.
        let _ = self
            .sum_bits
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + seconds).to_bits())
            });
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|count| {
                total += count.load(Ordering::Relaxed);
                total
            })
            .collect();
        HistogramSnapshot {
            bounds: self.bounds,
            cumulative,
            sum: f64::from_bits(self.sum_bits.load(Ordering::Relaxed)),
        }
    }
}

fn family_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, label_value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            escape_label_value(out, label_value);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(value);
    out.push('\n');
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn histogram_samples(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    snapshot: &HistogramSnapshot,
) {
    let bucket = format!("{name}_bucket");
    for (i, count) in snapshot.cumulative.iter().enumerate() {
        let le = snapshot
            .bounds
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |bound| float_text(*bound));
        let mut with_le: Vec<(&str, &str)> = labels.to_vec();
        with_le.push(("le", &le));
        sample(out, &bucket, &with_le, &count.to_string());
    }
    let count = snapshot.cumulative.last().copied().unwrap_or(0);
    sample(
        out,
        &format!("{name}_sum"),
        labels,
        &float_text(snapshot.sum),
    );
    sample(out, &format!("{name}_count"), labels, &count.to_string());
}

/// A float as Prometheus reads it (`+Inf`, `-Inf`, `NaN` spelled its way).
fn float_text(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        value.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// The /metrics endpoint
// ---------------------------------------------------------------------------------------------

/// At most this many scrapes are answered at once; further connections wait to be accepted.
const MAX_CONNECTIONS: usize = 32;
/// A connection that has not been answered by then is dropped.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest request head read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// Serves `GET /metrics` on `addr` until `shutdown` completes, from a spawned task. Returns the
/// bound address (useful with port 0). Every response closes its connection; other paths get
/// 404, other methods on `/metrics` 405.
pub async fn serve_metrics(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<SocketAddr, TelemetryError> {
    let listen_error = |err: std::io::Error| TelemetryError::MetricsListen {
        addr,
        reason: listen_reason(&err),
    };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let bound = listener.local_addr().map_err(listen_error)?;
    tokio::spawn(accept_scrapes(listener, metrics, shutdown));
    tracing::info!(addr = %bound, "serving metrics at /metrics");
    Ok(bound)
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

async fn accept_scrapes(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Typically out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "metrics endpoint cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(CONNECTION_TIMEOUT, answer_scrape(stream, &metrics)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(error = %err, "metrics connection failed"),
                Err(_) => tracing::debug!("metrics connection timed out"),
            }
        });
    }
    tracing::debug!("metrics endpoint stopped");
}

async fn answer_scrape(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0_u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() >= MAX_REQUEST_HEAD {
            break false;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break false;
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let response = if complete {
        route(&head, metrics)
    } else if head.is_empty() {
        return Ok(());
    } else {
        http_response("400 Bad Request", "text/plain", b"bad request\n", true, "")
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// The response to one request head.
fn route(head: &[u8], metrics: &Metrics) -> Vec<u8> {
    let request_line = head
        .split(|b| *b == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .unwrap_or("");
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return http_response("400 Bad Request", "text/plain", b"bad request\n", true, "");
    };
    if !version.starts_with("HTTP/1.") {
        return http_response("400 Bad Request", "text/plain", b"bad request\n", true, "");
    }
    let path = target.split('?').next().unwrap_or(target);
    if path != "/metrics" {
        return http_response(
            "404 Not Found",
            "text/plain",
            b"not found; metrics are at /metrics\n",
            true,
            "",
        );
    }
    match method {
        "GET" | "HEAD" => http_response(
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render().as_bytes(),
            method == "GET",
            "",
        ),
        _ => http_response(
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            true,
            "Allow: GET, HEAD\r\n",
        ),
    }
}

fn http_response(
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
    extra_headers: &str,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use tracing::{debug, info, info_span, trace, warn};
    use tracing_subscriber::layer::SubscriberExt;

    /// A writer shared with the test, standing in for stderr.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Runs `emit` under a local subscriber built from `opts`; returns what reached stderr and
    /// the ring.
    fn run_logging(opts: &LogOptions, emit: impl FnOnce()) -> (String, LogRing) {
        let out = Captured::default();
        let layer = LogLayer::new(opts, out.clone()).unwrap();
        let ring = layer.ring();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        (out.text(), ring)
    }

    fn opts(level: Level, filter: Option<&str>) -> LogOptions {
        LogOptions {
            filter: filter.map(str::to_owned),
            level,
            ..LogOptions::serve()
        }
    }

    fn texts(ring: &LogRing) -> Vec<String> {
        ring.snapshot().into_iter().map(|line| line.text).collect()
    }

    fn line(level: Level, target: &str, text: &str) -> LogLine {
        LogLine {
            time: Utc::now(),
            level,
            target: target.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn debug_events_are_shown_only_when_they_match_the_filter() {
        let (stderr, ring) = run_logging(&opts(Level::INFO, Some(".*notifications.*")), || {
            debug!(target: "herald::dispatch", "leased notifications batch");
            debug!(target: "herald::store", "flushed outcomes");
            info!(target: "herald::dispatch", "dispatcher started");
        });
        assert_eq!(
            texts(&ring),
            ["leased notifications batch", "dispatcher started"]
        );
        assert!(stderr.contains("leased notifications batch"), "{stderr}");
        assert!(stderr.contains("dispatcher started"), "{stderr}");
        assert!(!stderr.contains("flushed outcomes"), "{stderr}");
    }

    #[test]
    fn the_filter_matches_target_and_fields_too() {
        let (_, ring) = run_logging(&opts(Level::INFO, Some("dispatch.*m-42")), || {
            debug!(target: "herald::dispatch", message_id = "m-42", "delivered");
            debug!(target: "herald::dispatch", message_id = "m-43", "delivered");
            debug!(target: "herald::store", message_id = "m-42", "delivered");
        });
        let kept = ring.snapshot();
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(kept[0].target, "herald::dispatch");
        assert_eq!(kept[0].text, "delivered message_id=m-42");
    }

    #[test]
    fn without_a_filter_debug_events_are_dropped_and_dot_star_keeps_them_all() {
        let emit = || {
            debug!(target: "herald::a", "one");
            debug!(target: "herald::b", "two");
            trace!(target: "herald::c", "three");
        };
        let (stderr, ring) = run_logging(&opts(Level::INFO, None), emit);
        assert!(ring.is_empty(), "{:?}", ring.snapshot());
        assert_eq!(stderr, "");

        let (stderr, ring) = run_logging(&opts(Level::INFO, Some(".*")), emit);
        assert_eq!(texts(&ring), ["one", "two"], "debug only, never trace");
        assert_eq!(stderr.lines().count(), 2, "{stderr}");

        let (_, ring) = run_logging(&opts(Level::INFO, Some("  ")), emit);
        assert!(ring.is_empty(), "a blank filter is no filter");
    }

    #[test]
    fn a_warn_base_level_keeps_info_in_the_ring_but_not_on_stderr() {
        let (stderr, ring) = run_logging(&opts(Level::WARN, None), || {
            info!(target: "herald::service", "paused");
            warn!(target: "herald::service", "store slow");
        });
        assert_eq!(texts(&ring), ["paused", "store slow"]);
        assert!(!stderr.contains("paused"), "{stderr}");
        assert!(stderr.contains("store slow"), "{stderr}");
    }

    #[test]
    fn text_lines_carry_rfc3339_time_level_target_and_fields() {
        let (stderr, _) = run_logging(&opts(Level::INFO, None), || {
            info!(
                target: "herald::dispatch",
                notifier_id = "n-1",
                message_id = %"m-7",
                attempt = 2_u64,
                reason = "connection refused",
                "delivered"
            );
        });
        let expected = Regex::new(
            r#"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z  INFO herald::dispatch: delivered notifier_id=n-1 message_id=m-7 attempt=2 reason="connection refused"\n$"#,
        )
        .unwrap();
        assert!(expected.is_match(&stderr), "{stderr:?}");
        assert!(!stderr.contains('\x1b'), "no colour unless asked");
    }

    #[test]
    fn peer_text_in_a_log_line_cannot_reach_the_terminal_raw() {
        let hostile = "bad\0body \u{1b}[2J\u{1b}]0;pwned\u{7}";
        let (stderr, ring) = run_logging(&opts(Level::INFO, None), || {
            warn!(error = %hostile, reason = hostile, "failed: {hostile}");
        });
        assert!(
            !stderr.contains('\u{1b}') && !stderr.contains('\0'),
            "{stderr:?}"
        );
        assert!(stderr.contains("\\u{1b}[2J"), "{stderr:?}");
        for line in ring.snapshot() {
            assert!(!line.text.chars().any(char::is_control), "{line:?}");
        }
    }

    #[test]
    fn ansi_colours_the_level_only_when_asked() {
        let opts = LogOptions {
            ansi: true,
            ..opts(Level::INFO, None)
        };
        let (stderr, _) = run_logging(&opts, || warn!("careful"));
        assert!(stderr.contains("\x1b[33m WARN\x1b[0m"), "{stderr:?}");
    }

    #[test]
    fn span_fields_are_attached_to_events_inside_the_span() {
        let (_, ring) = run_logging(&opts(Level::INFO, None), || {
            let span = info_span!("dispatch", notifier_id = "n-9", message_id = "outer");
            let _entered = span.enter();
            info!(message_id = "m-1", "sent");
        });
        assert_eq!(texts(&ring), ["sent message_id=m-1 notifier_id=n-9"]);
    }

    #[test]
    fn json_lines_keep_typed_fields() {
        let opts = LogOptions {
            json: true,
            ..opts(Level::INFO, None)
        };
        let (stderr, ring) = run_logging(&opts, || {
            info!(target: "herald::dispatch", notifier_id = "n-1", attempt = 3_i64, ok = true, "sent");
        });
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        let value: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["target"], "herald::dispatch");
        assert_eq!(value["fields"]["message"], "sent");
        assert_eq!(value["fields"]["notifier_id"], "n-1");
        assert_eq!(value["fields"]["attempt"], 3);
        assert_eq!(value["fields"]["ok"], true);
        let timestamp = value["timestamp"].as_str().unwrap();
        assert!(
            DateTime::parse_from_rfc3339(timestamp).is_ok(),
            "{timestamp}"
        );
        assert_eq!(texts(&ring), ["sent notifier_id=n-1 attempt=3 ok=true"]);
    }

    #[test]
    fn muting_stderr_keeps_the_ring_recording() {
        let out = Captured::default();
        let layer = LogLayer::new(&opts(Level::INFO, None), out.clone()).unwrap();
        let handle = layer.handle();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            info!("before");
            handle.set_stderr(false);
            info!("muted");
            handle.set_stderr(true);
            info!("after");
        });
        assert_eq!(texts(&handle.ring()), ["before", "muted", "after"]);
        let stderr = out.text();
        assert!(
            stderr.contains("before") && stderr.contains("after"),
            "{stderr}"
        );
        assert!(!stderr.contains("muted"), "{stderr}");
    }

    #[test]
    fn a_bad_filter_regex_is_a_one_line_error_naming_the_filter() {
        let err = capture_layer(&opts(Level::INFO, Some("(notifications"))).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(&err, TelemetryError::InvalidLogFilter { filter, .. } if filter == "(notifications"),
            "{err:?}"
        );
        assert!(!text.contains('\n'), "{text:?}");
        assert!(text.contains("\"(notifications\""), "{text}");
        assert!(text.contains("unclosed group"), "{text}");
    }

    #[test]
    fn capture_layer_records_without_a_global_subscriber() {
        let (layer, ring) = capture_layer(&opts(Level::INFO, None)).unwrap();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            info!(target: "herald::dispatch", "captured");
        });
        let kept = ring.snapshot();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].level, Level::INFO);
        assert_eq!(kept[0].target, "herald::dispatch");
    }

    #[test]
    fn init_logging_refuses_when_a_global_subscriber_is_set() {
        // Whichever of these installs first, a later init must be an error, not a panic.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
        let result = init_logging(&opts(Level::ERROR, None));
        assert!(
            matches!(result, Err(TelemetryError::LoggingAlreadyInitialized)),
            "{result:?}"
        );
    }

    #[test]
    fn the_ring_keeps_only_the_last_capacity_lines() {
        let ring = LogRing::new(3);
        for i in 0..5 {
            ring.push(line(Level::INFO, "herald::t", &format!("line {i}")));
        }
        assert_eq!(texts(&ring), ["line 2", "line 3", "line 4"]);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.capacity(), 3);
    }

    #[test]
    fn generation_counts_every_push_and_since_returns_newer_lines() {
        let ring = LogRing::new(2);
        assert_eq!(ring.generation(), 0);
        ring.push(line(Level::INFO, "t", "a"));
        let seen = ring.generation();
        assert_eq!(seen, 1);
        ring.push(line(Level::INFO, "t", "b"));
        ring.push(line(Level::INFO, "t", "c"));
        assert_eq!(ring.generation(), 3);
        let newer: Vec<String> = ring.since(seen).into_iter().map(|l| l.text).collect();
        assert_eq!(newer, ["b", "c"]);
        assert!(ring.since(ring.generation()).is_empty());

        let none = LogRing::new(0);
        none.push(line(Level::INFO, "t", "a"));
        assert_eq!((none.len(), none.generation()), (0, 1));
    }

    #[test]
    fn lines_matching_filters_on_level_target_and_text() {
        let ring = LogRing::new(10);
        ring.push(line(Level::INFO, "herald::dispatch", "sent message_id=m-1"));
        ring.push(line(Level::ERROR, "herald::channels::smtp", "refused"));
        ring.push(line(Level::INFO, "herald::store", "flushed"));
        let matching = |pattern: &str| -> Vec<String> {
            ring.lines_matching(&Regex::new(pattern).unwrap())
                .into_iter()
                .map(|l| l.text)
                .collect()
        };
        assert_eq!(matching("^ERROR"), ["refused"]);
        assert_eq!(
            matching("dispatch|store"),
            ["sent message_id=m-1", "flushed"]
        );
        assert_eq!(matching(r"message_id=m-\d"), ["sent message_id=m-1"]);
        assert!(matching("nothing-like-this").is_empty());
    }

    #[test]
    fn log_line_display_is_the_text_form() {
        let line = LogLine {
            time: DateTime::parse_from_rfc3339("2024-05-06T07:08:09.010Z")
                .unwrap()
                .with_timezone(&Utc),
            level: Level::WARN,
            target: "herald::dispatch".to_owned(),
            text: "slow".to_owned(),
        };
        assert_eq!(
            line.to_string(),
            "2024-05-06T07:08:09.010Z  WARN herald::dispatch: slow"
        );
    }

    // --- metrics ---

    /// The sample lines of `text` whose metric name is `name`, label set included.
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    #[test]
    fn attempts_are_counted_per_label_set_with_labels_in_name_order() {
        let metrics = Metrics::new();
        metrics.record_attempt("webhook", "run_failure", "sent", 0.02);
        metrics.record_attempt("webhook", "run_failure", "sent", 0.03);
        metrics.record_attempt("smtp", "run_failure", "temporary_failure", 1.0);
        let text = metrics.render();
        assert_eq!(
            samples(&text, "herald_dispatch_attempts_total"),
            [
                r#"herald_dispatch_attempts_total{event="run_failure",method="smtp",result="temporary_failure"} 1"#,
                r#"herald_dispatch_attempts_total{event="run_failure",method="webhook",result="sent"} 2"#,
            ]
        );
        assert!(
            text.contains(r#"herald_send_seconds_count{method="webhook"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"herald_send_seconds_sum{method="webhook"} 0.05"#),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.record_retry("we\"ird\\me\nthod");
        let text = metrics.render();
        assert_eq!(
            samples(&text, "herald_retries_total"),
            [r#"herald_retries_total{method="we\"ird\\me\nthod"} 1"#]
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let metrics = Metrics::new();
        for seconds in [0.005, 0.3, 0.3, 100.0] {
            metrics.record_attempt("slack", "e", "sent", seconds);
        }
        let text = metrics.render();
        let buckets = samples(&text, "herald_send_seconds_bucket");
        let expected: Vec<String> = [
            ("0.005", 1),
            ("0.01", 1),
            ("0.025", 1),
            ("0.05", 1),
            ("0.1", 1),
            ("0.25", 1),
            ("0.5", 3),
            ("1", 3),
            ("2.5", 3),
            ("5", 3),
            ("10", 3),
            ("30", 3),
            ("60", 3),
            ("+Inf", 4),
        ]
        .iter()
        .map(|(le, n)| format!(r#"herald_send_seconds_bucket{{method="slack",le="{le}"}} {n}"#))
        .collect();
        assert_eq!(buckets, expected);
        assert_eq!(
            samples(&text, "herald_send_seconds_sum"),
            [r#"herald_send_seconds_sum{method="slack"} 100.605"#]
        );
        assert_eq!(
            samples(&text, "herald_send_seconds_count"),
            [r#"herald_send_seconds_count{method="slack"} 4"#]
        );
    }

    #[test]
    fn non_finite_observations_are_dropped_and_negative_ones_count_as_zero() {
        let metrics = Metrics::new();
        metrics.observe_flush(f64::NAN);
        metrics.observe_flush(f64::INFINITY);
        metrics.observe_flush(-2.0);
        let text = metrics.render();
        assert!(
            text.contains("herald_store_flush_seconds_bucket{le=\"0.001\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_store_flush_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("herald_store_flush_seconds_sum 0\n"),
            "{text}"
        );
    }

    #[test]
    fn gauges_and_plain_counters_render_their_current_values() {
        let metrics = Metrics::new();
        metrics.inflight_add(5);
        metrics.inflight_add(-2);
        metrics.set_pending_updates(7);
        metrics.set_pending_updates(4);
        metrics.record_lease(10);
        metrics.record_lease(5);
        metrics.observe_queued("inbox", 400.0);
        let text = metrics.render();
        assert_eq!(samples(&text, "herald_inflight"), ["herald_inflight 3"]);
        assert_eq!(
            samples(&text, "herald_pending_updates"),
            ["herald_pending_updates 4"]
        );
        assert_eq!(
            samples(&text, "herald_leased_total"),
            ["herald_leased_total 15"]
        );
        assert!(
            text.contains("herald_queued_seconds_bucket{method=\"inbox\",le=\"300\"} 0\n")
                && text.contains("herald_queued_seconds_bucket{method=\"inbox\",le=\"600\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn render_is_valid_exposition_text() {
        let metrics = Metrics::new();
        metrics.record_attempt("webhook", "run_failure", "sent", 0.1);
        metrics.record_attempt("smtp", "audit_failed", "permanent_failure", 2.0);
        metrics.record_retry("smtp");
        metrics.observe_queued("smtp", 1.5);
        metrics.observe_flush(0.004);
        let text = metrics.render();

        let sample_line = Regex::new(
            r#"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|\+Inf|-Inf|NaN)$"#,
        )
        .unwrap();
        let mut typed: HashMap<String, String> = HashMap::new();
        let mut helped = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(helped.insert(name), "HELP twice: {line}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().unwrap().to_owned();
                let kind = parts.next().unwrap().to_owned();
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind.as_str()),
                    "{line}"
                );
                assert!(typed.insert(name, kind).is_none(), "TYPE twice: {line}");
            } else {
                let captures = sample_line
                    .captures(line)
                    .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
                let name = &captures[1];
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|suffix| {
                        name.strip_suffix(suffix)
                            .filter(|base| typed.get(*base).is_some_and(|k| k == "histogram"))
                    })
                    .unwrap_or(name);
                assert!(typed.contains_key(family), "sample before its TYPE: {line}");
            }
        }
        assert!(text.ends_with('\n'));
        assert_eq!(typed.len(), 11, "{typed:?}");
        assert_eq!(
            helped.len(),
            typed.len(),
            "every family has HELP: {helped:?}"
        );
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let metrics = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let method = if i % 2 == 0 { "webhook" } else { "smtp" };
                        metrics.record_attempt(method, &format!("event_{}", t % 2), "sent", 0.01);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let text = metrics.render();
        let total: u64 = samples(&text, "herald_dispatch_attempts_total")
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 20_000);
        assert_eq!(samples(&text, "herald_dispatch_attempts_total").len(), 4);
    }

    #[test]
    fn metrics_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<Metrics>();
        shareable::<LogRing>();
        shareable::<LogHandle>();
    }

    #[test]
    fn routing_answers_metrics_404_405_and_400() {
        let metrics = Metrics::new();
        let status = |head: &str| {
            let response = route(head.as_bytes(), &metrics);
            String::from_utf8(response)
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .to_owned()
        };
        assert_eq!(status("GET /metrics HTTP/1.1\r\n\r\n"), "HTTP/1.1 200 OK");
        assert_eq!(
            status("GET /metrics?x=1 HTTP/1.0\r\n\r\n"),
            "HTTP/1.1 200 OK"
        );
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 404 Not Found");
        assert_eq!(
            status("POST /metrics HTTP/1.1\r\n\r\n"),
            "HTTP/1.1 405 Method Not Allowed"
        );
        assert_eq!(status("nonsense\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        let head = String::from_utf8(route(b"HEAD /metrics HTTP/1.1\r\n\r\n", &metrics)).unwrap();
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head:?}");
    }
}
