//! The dispatcher's Prometheus metrics: counters, gauges and histograms behind briefly held
//! locks, rendered in the text exposition format 0.0.4.

use super::*;

/// Buckets of `herald_send_seconds`.
pub(super) const SEND_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets of `herald_queued_seconds`: a retried message waits minutes.
pub(super) const QUEUED_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
];
/// Buckets of `herald_store_flush_seconds`: a bulk update takes milliseconds.
pub(super) const FLUSH_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The dispatcher's metrics, rendered in the Prometheus text format 0.0.4.
///
/// Recording is a few atomic operations plus a read lock held for a hash lookup; share it in
/// an `Arc`.
pub struct Metrics {
    /// Labels in output order: event, method, result.
    pub(super) attempts: Family<3, AtomicU64>,
    pub(super) send_seconds: Family<1, Histogram>,
    pub(super) retries: Family<1, AtomicU64>,
    pub(super) queued_seconds: Family<1, Histogram>,
    pub(super) inflight: AtomicI64,
    pub(super) pending_updates: AtomicI64,
    pub(super) leased: AtomicU64,
    pub(super) flush_seconds: Histogram,
    pub(super) late_outcomes: AtomicU64,
    pub(super) isolated_outcomes: AtomicU64,
    /// `(method, target, count)` of messages no running replica can deliver.
    pub(super) undeliverable: std::sync::Mutex<Vec<(String, String, i64)>>,
    /// `(status, count)`: the store's messages per state.
    pub(super) messages: std::sync::Mutex<Vec<(String, i64)>>,
    /// `(method, count)`: messages waiting per method, targets included.
    pub(super) backlog: std::sync::Mutex<Vec<(String, i64)>>,
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
            messages: std::sync::Mutex::new(Vec::new()),
            backlog: std::sync::Mutex::new(Vec::new()),
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

    /// The store's messages per state, `(status, count)`, as the store's counts keep them.
    pub fn set_message_counts(&self, counts: Vec<(String, i64)>) {
        if let Ok(mut slot) = self.messages.lock() {
            *slot = counts;
        }
    }

    /// Messages waiting (pending, temporary_failure, leased) per method, `(method, count)`.
    pub fn set_backlog(&self, backlog: Vec<(String, i64)>) {
        if let Ok(mut slot) = self.backlog.lock() {
            *slot = backlog;
        }
    }

    /// Every metric in the Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);

        family(
            &mut out,
            "herald_dispatch_attempts_total",
            "Delivery attempts by method, event and result (sent, temporary_failure, permanent_failure).",
            &self.attempts,
            ["event", "method", "result"],
        );
        family(
            &mut out,
            "herald_send_seconds",
            "Time a delivery method took to send one message.",
            &self.send_seconds,
            ["method"],
        );
        family(
            &mut out,
            "herald_retries_total",
            "Messages scheduled for another attempt, by method.",
            &self.retries,
            ["method"],
        );
        family(
            &mut out,
            "herald_queued_seconds",
            "Time a message waited in the queue before it was leased, by method.",
            &self.queued_seconds,
            ["method"],
        );

        single(
            &mut out,
            "herald_inflight",
            "Deliveries in progress.",
            "gauge",
            self.inflight.load(Ordering::Relaxed),
        );

        single(
            &mut out,
            "herald_pending_updates",
            "Delivery outcomes buffered and not yet flushed to the store.",
            "gauge",
            self.pending_updates.load(Ordering::Relaxed),
        );

        single(
            &mut out,
            "herald_leased_total",
            "Messages leased from the store.",
            "counter",
            self.leased.load(Ordering::Relaxed),
        );

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

        single(
            &mut out,
            "herald_late_outcomes_total",
            "Delivery outcomes dropped because the message's lease had expired and passed on.",
            "counter",
            self.late_outcomes.load(Ordering::Relaxed),
        );

        single(
            &mut out,
            "herald_isolated_outcomes_total",
            "Delivery outcomes the store refused; the message was given a final state instead.",
            "counter",
            self.isolated_outcomes.load(Ordering::Relaxed),
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
        labelled_gauge(
            &mut out,
            "herald_messages",
            "Messages in the store by status, from the counts the store keeps.",
            "status",
            &self.messages,
        );
        labelled_gauge(
            &mut out,
            "herald_backlog_messages",
            "Messages waiting for delivery (pending, temporary_failure, leased) by method, targets included.",
            "method",
            &self.backlog,
        );
        out
    }
}

/// A gauge with one label, from `(label value, value)` pairs.
fn labelled_gauge(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &std::sync::Mutex<Vec<(String, i64)>>,
) {
    family_header(out, name, help, "gauge");
    if let Ok(values) = values.lock() {
        for (value, count) in values.iter() {
            sample(out, name, &[(label, value)], &count.to_string());
        }
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
pub(super) struct Family<const N: usize, T> {
    pub(super) hasher: RandomState,
    pub(super) series: RwLock<HashMap<u64, Vec<Series<N, T>>>>,
    pub(super) make: fn() -> T,
}

pub(super) struct Series<const N: usize, T> {
    pub(super) labels: [Box<str>; N],
    pub(super) value: T,
}

impl<const N: usize, T> Family<N, T> {
    pub(super) fn new(make: fn() -> T) -> Self {
        Self {
            hasher: RandomState::new(),
            series: RwLock::new(HashMap::new()),
            make,
        }
    }

    /// Runs `f` on the series for `labels`, creating it first if needed.
    pub(super) fn with<R>(&self, labels: [&str; N], f: impl FnOnce(&T) -> R) -> R {
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
    pub(super) fn collect<R>(&self, read: impl Fn(&T) -> R) -> Vec<([String; N], R)> {
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
pub(super) struct Histogram {
    pub(super) bounds: &'static [f64],
    /// `bounds.len() + 1` counts; the last one is for values above every bound.
    pub(super) counts: Box<[AtomicU64]>,
    pub(super) sum_bits: AtomicU64,
}

pub(super) struct HistogramSnapshot {
    pub(super) bounds: &'static [f64],
    /// Cumulative: how many observations were `<=` each bound, then the total.
    pub(super) cumulative: Vec<u64>,
    pub(super) sum: f64,
}

impl Histogram {
    pub(super) fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0.0_f64.to_bits()),
        }
    }

    /// Records a duration in seconds. NaN and infinities are dropped; a negative duration
    /// (clock skew between replicas) counts as zero.
    pub(super) fn observe(&self, seconds: f64) {
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

    pub(super) fn snapshot(&self) -> HistogramSnapshot {
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

/// What a family's series hold: a counter prints one sample, a histogram its buckets, sum and
/// count.
trait Metric {
    /// The family's `# TYPE`.
    const KIND: &'static str;
    /// A series' value, read under the family's lock.
    type Value;
    fn read(&self) -> Self::Value;
    fn write(out: &mut String, name: &str, labels: &[(&str, &str)], value: &Self::Value);
}

impl Metric for AtomicU64 {
    const KIND: &'static str = "counter";
    type Value = u64;
    fn read(&self) -> u64 {
        self.load(Ordering::Relaxed)
    }
    fn write(out: &mut String, name: &str, labels: &[(&str, &str)], value: &u64) {
        sample(out, name, labels, &value.to_string());
    }
}

impl Metric for Histogram {
    const KIND: &'static str = "histogram";
    type Value = HistogramSnapshot;
    fn read(&self) -> HistogramSnapshot {
        self.snapshot()
    }
    fn write(out: &mut String, name: &str, labels: &[(&str, &str)], value: &HistogramSnapshot) {
        histogram_samples(out, name, labels, value);
    }
}

/// A family: its header, then each series' samples, its labels named `names`.
fn family<const N: usize, T: Metric>(
    out: &mut String,
    name: &str,
    help: &str,
    series: &Family<N, T>,
    names: [&str; N],
) {
    family_header(out, name, help, T::KIND);
    for (labels, value) in series.collect(T::read) {
        T::write(out, name, &named(&names, &labels), &value);
    }
}

/// Label names paired with a series' values.
fn named<'a, const N: usize>(
    names: &[&'a str; N],
    values: &'a [String; N],
) -> Vec<(&'a str, &'a str)> {
    names
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .collect()
}

/// A family of one sample without labels: its header, then its value.
fn single(out: &mut String, name: &str, help: &str, kind: &str, value: impl fmt::Display) {
    family_header(out, name, help, kind);
    sample(out, name, &[], &value.to_string());
}

pub(super) fn family_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

pub(super) fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: &str) {
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

pub(super) fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

pub(super) fn histogram_samples(
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
pub(super) fn float_text(value: f64) -> String {
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
