//! Dispatcher benchmarks (issue 3, item 8), with Herald's default `[notifications]` settings
//! and only the webhook endpoint pointed at a local HTTP sink — the point is "fast without
//! tuning":
//!
//! * **throughput**: N messages enqueued through [`Store::enqueue`] in batches of 1,000 by a
//!   producer on its own store handle while 1 or 3 dispatchers (each on its own handle, as
//!   separate processes would be) deliver them; timed from the first enqueue until
//!   `count_by_state` shows N `sent`.
//! * **raw ceiling**: the same store's schema driven by plain SQL on one connection — batched
//!   INSERT of 1,000 rows, lease 100 with the store's own `UPDATE … RETURNING`, one mark-sent
//!   UPDATE per leased batch, no HTTP — measured in the same run, so the figure is a ratio.
//! * **latency**: one message every 20 ms with `fetch_interval = 15s`; enqueue call → receipt
//!   at the sink, matched by `X-Message-Id`.
//!
//! ```text
//! cargo bench --bench dispatch                       # everything: N = 100,000, 3 runs each
//! cargo bench --bench dispatch -- --quick            # N = 10,000, 1 run, 200 latency samples
//! cargo bench --bench dispatch -- postgres throughput --n 50000 --runs 5 --replicas 3
//! ```
//!
//! PostgreSQL is a throwaway cluster started by the test harness (or `HERALD_TEST_DATABASE_URL`);
//! SQLite is a file in a temp dir. BENCHMARKS.md has the figures and how to read them.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::Utc;
use common::figures::{nproc, percentile, read_trimmed, thousands};
use common::harness::http_sink::{HttpSink, Response};
use common::{Backend, TestDb, discard, parse_count};
use herald::channels::Channels;
use herald::channels::inbox::InboxChannel;
use herald::config::Config;
use herald::dispatch::{DispatchSettings, Dispatcher};
use herald::model::{EventTemplate, MessageState, Method, PlannedMessage};
use herald::store::{self, NewMessage, OpenMode, Store};
use herald::telemetry::Metrics;
use sqlx::sqlite::SqlitePoolOptions;
use sqlx::{Connection, Postgres, QueryBuilder, Row, Sqlite};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Messages per producer enqueue and per raw INSERT.
const BATCH: usize = 1_000;
/// How often the end of a throughput run is checked.
const POLL: Duration = Duration::from_millis(20);
/// Gap between messages in the latency scenario.
const LATENCY_GAP: Duration = Duration::from_millis(20);
/// A run that takes longer than this has failed.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// The event every benchmark message is queued for.
const EVENT: &str = "test_notification";

const USAGE: &str = "\
usage: cargo bench --bench dispatch -- [--quick] [--n N] [--runs R] [--latency-n M]
                                       [--replicas 1,3] [sqlite] [postgres] [throughput] [latency]
                                       [drain]

  --quick        N = 10,000, 1 run, 200 latency samples (defaults: 100,000, 3, 500)
  --n N          messages per throughput run (and per raw-ceiling run)
  --runs R       runs of each throughput scenario; the median is reported
  --latency-n M  messages in each latency run
  --replicas L   comma-separated replica counts for the throughput runs (default 1,3)
  sqlite, postgres, throughput, latency
                 run only these backends / scenarios (default: all)
  drain          diagnostic, not run by default: enqueue N with no dispatcher running (the
                 producer alone), then start the replicas and time until all are sent (the
                 dispatchers alone)";

fn main() -> anyhow::Result<()> {
    let options = match Options::parse(std::env::args().skip(1))? {
        Some(options) => options,
        None => {
            println!("{USAGE}");
            return Ok(());
        }
    };
    let runtime = common::runtime()?;
    runtime.block_on(run(options))
}

// -------------------------------------------------------------------------------------------
// Options
// -------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Options {
    n: usize,
    runs: usize,
    latency_n: usize,
    replicas: Vec<usize>,
    backends: Vec<Backend>,
    throughput: bool,
    latency: bool,
    drain: bool,
    quick: bool,
}

impl Options {
    /// The options, or `None` when help was asked for. Cargo's own `--bench` is ignored.
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Option<Options>> {
        let mut quick = false;
        let (mut n, mut runs, mut latency_n) = (None, None, None);
        let mut replicas = vec![1, 3];
        let mut backends = Vec::new();
        let (mut throughput, mut latency, mut drain) = (false, false, false);
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> anyhow::Result<String> {
                args.next()
                    .with_context(|| format!("{name} needs a value\n\n{USAGE}"))
            };
            match arg.as_str() {
                "--bench" => {}
                "-h" | "--help" => return Ok(None),
                "--quick" => quick = true,
                "--n" => n = Some(parse_count("--n", &value("--n")?)?),
                "--runs" => runs = Some(parse_count("--runs", &value("--runs")?)?),
                "--latency-n" => {
                    latency_n = Some(parse_count("--latency-n", &value("--latency-n")?)?)
                }
                "--replicas" => {
                    replicas = value("--replicas")?
                        .split(',')
                        .map(|r| parse_count("--replicas", r))
                        .collect::<anyhow::Result<_>>()?
                }
                "sqlite" => backends.push(Backend::Sqlite),
                "postgres" => backends.push(Backend::Postgres),
                "throughput" => throughput = true,
                "latency" => latency = true,
                "drain" => drain = true,
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        if backends.is_empty() {
            backends = vec![Backend::Sqlite, Backend::Postgres];
        }
        if !throughput && !latency && !drain {
            (throughput, latency) = (true, true);
        }
        Ok(Some(Options {
            n: n.unwrap_or(if quick { 10_000 } else { 100_000 }),
            runs: runs.unwrap_or(if quick { 1 } else { 3 }),
            latency_n: latency_n.unwrap_or(if quick { 200 } else { 500 }),
            replicas,
            backends,
            throughput,
            latency,
            drain,
            quick,
        }))
    }
}

// -------------------------------------------------------------------------------------------
// The run
// -------------------------------------------------------------------------------------------

async fn run(options: Options) -> anyhow::Result<()> {
    let began = Instant::now();
    let machine = Machine::probe(&options.backends).await?;
    println!("# herald dispatcher benchmark\n");
    machine.print();
    println!(
        "\nsettings: Herald defaults (Config::default()) + notifications.webhook.endpoint = local sink; \
         N = {}, runs = {}, latency messages = {}{}\n",
        options.n,
        options.runs,
        options.latency_n,
        if options.quick { " (--quick)" } else { "" }
    );

    let mut throughput = Vec::new();
    if options.throughput {
        for &backend in &options.backends {
            throughput.extend(throughput_scenarios(&options, backend).await?);
        }
    }
    let mut drains = Vec::new();
    if options.drain {
        for &backend in &options.backends {
            for &replicas in &options.replicas {
                for rep in 1..=options.runs {
                    let run = drain(backend, replicas, options.n)
                        .await
                        .with_context(|| format!("drain on {} x{replicas}", backend.name()))?;
                    println!(
                        "run {rep}/{}: {:8} drain, {replicas} replica(s): enqueue alone {:>8.0} msg/s, dispatchers alone {:>8.0} msg/s ({})",
                        options.runs,
                        backend.name(),
                        run.enqueue_per_second,
                        run.per_second,
                        run.breakdown
                    );
                    drains.push((backend, replicas, run));
                }
            }
        }
    }
    let mut latency = Vec::new();
    if options.latency {
        for &backend in &options.backends {
            for producer in [ProducerKind::OtherProcess, ProducerKind::SameProcess] {
                let run = latency_run(backend, options.latency_n, producer)
                    .await
                    .with_context(|| format!("latency on {}", backend.name()))?;
                println!(
                    "latency {:8} producer {:13}: p50 {} p99 {} max {} (enqueue call p50 {}, {} msgs)",
                    backend.name(),
                    producer.label(),
                    ms(run.p50),
                    ms(run.p99),
                    ms(run.max),
                    ms(run.enqueue_p50),
                    run.samples
                );
                latency.push(run);
            }
        }
    }

    println!("\n## Results\n");
    machine.print();
    println!(
        "load average at the end: {}; total benchmark time {:.0} s\n",
        read_trimmed("/proc/loadavg"),
        began.elapsed().as_secs_f64()
    );
    if !throughput.is_empty() {
        print_throughput_table(&throughput);
    }
    if !latency.is_empty() {
        print_latency_table(&latency);
    }
    if !drains.is_empty() {
        print_drain_table(&drains, options.n);
    }
    Ok(())
}

/// Every throughput run of one backend: per repetition the raw ceiling, then each replica
/// count, each on a fresh database; medians across repetitions.
async fn throughput_scenarios(
    options: &Options,
    backend: Backend,
) -> anyhow::Result<Vec<ThroughputRow>> {
    let mut raw: Vec<f64> = Vec::new();
    let mut e2e: BTreeMap<usize, Vec<EndToEndRun>> = BTreeMap::new();
    for rep in 1..=options.runs {
        let ceiling = raw_ceiling(backend, options.n)
            .await
            .with_context(|| format!("raw ceiling on {}", backend.name()))?;
        println!(
            "run {rep}/{}: {:8} raw ceiling           {:>8.0} msg/s ({:.2} s: {ceiling})",
            options.runs,
            backend.name(),
            per_second(options.n, ceiling.total),
            ceiling.total.as_secs_f64()
        );
        raw.push(per_second(options.n, ceiling.total));
        for &replicas in &options.replicas {
            let run = end_to_end(backend, replicas, options.n)
                .await
                .with_context(|| format!("end to end on {} x{replicas}", backend.name()))?;
            println!(
                "run {rep}/{}: {:8} end to end, {replicas} replica(s) {:>8.0} msg/s ({:.2} s; enqueue {:.0} msg/s; {})",
                options.runs,
                backend.name(),
                run.per_second,
                run.elapsed.as_secs_f64(),
                run.enqueue_per_second,
                run.breakdown
            );
            e2e.entry(replicas).or_default().push(run);
        }
    }
    let raw_median = median(&raw);
    Ok(e2e
        .into_iter()
        .map(|(replicas, runs)| {
            let rates: Vec<f64> = runs.iter().map(|r| r.per_second).collect();
            let enqueue: Vec<f64> = runs.iter().map(|r| r.enqueue_per_second).collect();
            ThroughputRow {
                backend,
                replicas,
                n: options.n,
                runs: rates.clone(),
                median: median(&rates),
                enqueue_median: median(&enqueue),
                raw_runs: raw.clone(),
                raw_median,
            }
        })
        .collect())
}

// -------------------------------------------------------------------------------------------
// Backends, stores and replicas
// -------------------------------------------------------------------------------------------

impl Backend {
    /// What `end to end` must reach, in messages per second (issue 3).
    fn target(self) -> f64 {
        match self {
            Backend::Sqlite => 15_000.0,
            Backend::Postgres => 10_000.0,
        }
    }
}

/// Herald's defaults, with only the webhook endpoint pointed at the sink.
fn default_config(database_url: &str, sink_url: &str) -> Config {
    let mut config = Config {
        database_url: database_url.to_string(),
        ..Config::default()
    };
    config.notifications.webhook.endpoint = Some(sink_url.to_string());
    config
}

/// Creates and migrates the store, loads the catalog, and returns the benchmark's event.
async fn migrated_store(url: &str) -> anyhow::Result<(Arc<dyn Store>, EventTemplate)> {
    let store = store::open(url, OpenMode::Migrate).await?;
    store.upsert_catalog(herald::catalog::builtin()).await?;
    let template = store
        .template_by_name(EVENT)
        .await?
        .with_context(|| format!("the builtin catalog has no `{EVENT}` event"))?;
    Ok((store, template))
}

/// The payload `herald enqueue test_notification` stores.
fn payload(template: &EventTemplate) -> serde_json::Value {
    herald::routing::build_payload(
        template,
        None,
        &BTreeMap::new(),
        &serde_json::json!({}),
        &[],
    )
}

/// Queues webhook messages for the benchmark's event, the way `herald enqueue` does.
struct Producer {
    store: Arc<dyn Store>,
    template_id: Uuid,
    payload: serde_json::Value,
}

impl Producer {
    fn message(&self) -> NewMessage {
        NewMessage {
            id: Uuid::now_v7(),
            template_id: self.template_id,
            created_by: "bench".into(),
            created_at: Utc::now(),
            planned: PlannedMessage {
                user_id: None,
                target: None,
                method: Method::Webhook,
                status: MessageState::Pending,
                status_reason: None,
                payload: self.payload.clone(),
                dedupe_hash: None,
            },
        }
    }

    /// Enqueues `n` messages in batches of [`BATCH`]; returns how long that took.
    async fn enqueue_all(&self, n: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let mut left = n;
        while left > 0 {
            let batch: Vec<NewMessage> = (0..left.min(BATCH)).map(|_| self.message()).collect();
            let outcome = self.store.enqueue(&batch).await?;
            if outcome.enqueued.len() != batch.len() {
                bail!(
                    "enqueued {} of {} messages",
                    outcome.enqueued.len(),
                    batch.len()
                );
            }
            left -= batch.len();
        }
        Ok(started.elapsed())
    }
}

/// One dispatcher on its own store handle, as a separate `herald serve` would have.
struct Replica {
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Replica {
    /// Builds the replica like `herald serve` does: configured channels plus the inbox.
    async fn start(config: &Config) -> anyhow::Result<Replica> {
        let store = store::open(&config.database_url, OpenMode::Existing).await?;
        let mut channels = Channels::from_settings(&config.channel_settings())?;
        channels.insert(Arc::new(InboxChannel::new(store.clone())));
        let metrics = Arc::new(Metrics::new());
        let dispatcher = Dispatcher::new(
            store.clone(),
            Arc::new(channels),
            DispatchSettings::from(config),
            metrics.clone(),
        )?;
        let (stop, stopping) = watch::channel(false);
        let task = tokio::spawn(dispatcher.run(stopping));
        Ok(Replica {
            store,
            metrics,
            stop,
            task,
        })
    }

    /// Stops it cleanly; returns its metrics text.
    async fn stop(self) -> anyhow::Result<String> {
        let _ = self.stop.send(true);
        self.task.await.context("the dispatcher panicked")??;
        Ok(self.metrics.render())
    }
}

fn count_of(counts: &[(MessageState, i64)], state: MessageState) -> i64 {
    counts.iter().find(|(s, _)| *s == state).map_or(0, |c| c.1)
}

// -------------------------------------------------------------------------------------------
// End-to-end throughput
// -------------------------------------------------------------------------------------------

struct EndToEndRun {
    per_second: f64,
    elapsed: Duration,
    enqueue_per_second: f64,
    breakdown: Breakdown,
}

/// Where the dispatchers' time went, from their own metrics (summed over replicas).
struct Breakdown {
    leased: f64,
    flushes: f64,
    flush_seconds: f64,
    send_seconds: f64,
    sends: f64,
    delivered: u64,
}

impl std::fmt::Display for Breakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sink got {}; leased {:.0}; {:.0} flushes, {:.0} ms each on average; mean send {:.2} ms",
            self.delivered,
            self.leased,
            self.flushes,
            1000.0 * self.flush_seconds / self.flushes.max(1.0),
            1000.0 * self.send_seconds / self.sends.max(1.0)
        )
    }
}

/// The sum of every sample of the metric `name` (any labels) in a Prometheus text.
fn metric_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What both end-to-end scenarios run on: a fresh migrated store (with an observer connection),
/// an HTTP sink that answers 200, and the dispatchers' config aimed at them.
struct Rig {
    db: TestDb,
    observer: Arc<dyn Store>,
    sink: HttpSink,
    config: Config,
}

impl Rig {
    /// The rig, and a producer of the bench event on its store.
    async fn new(backend: Backend) -> anyhow::Result<(Rig, Producer)> {
        let db = backend.fresh_db();
        let (observer, template) = migrated_store(&db.url).await?;
        let sink = HttpSink::ok().await;
        sink.set_recording(false);
        let config = default_config(&db.url, &sink.url);
        let producer = Producer {
            store: store::open(&db.url, OpenMode::Existing).await?,
            template_id: template.id,
            payload: payload(&template),
        };
        let rig = Rig {
            db,
            observer,
            sink,
            config,
        };
        Ok((rig, producer))
    }

    async fn start_replicas(&self, replicas: usize) -> anyhow::Result<Vec<Replica>> {
        let mut running = Vec::with_capacity(replicas);
        for _ in 0..replicas {
            running.push(Replica::start(&self.config).await?);
        }
        Ok(running)
    }

    /// Waits until all `n` messages are sent (saying how far the sink got every 10 s) and
    /// returns the time since `started`.
    async fn wait_until_sent(&self, n: usize, started: Instant) -> anyhow::Result<Duration> {
        let mut last_report = started;
        loop {
            tokio::time::sleep(POLL).await;
            // `sent` is written only after the sink answered, so the sink's counter gates the
            // store query: polling COUNT(*) over 100k rows 50 times a second would load the
            // 2-core machine being measured.
            if self.sink.count() >= n as u64 {
                let counts = self.observer.count_by_state().await?;
                if count_of(&counts, MessageState::Sent) >= n as i64 {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > RUN_TIMEOUT {
                let counts = self.observer.count_by_state().await?;
                bail!(
                    "not all {n} messages sent after {RUN_TIMEOUT:?}: sink got {}, counts {counts:?}",
                    self.sink.count()
                );
            }
            if last_report.elapsed() > Duration::from_secs(10) {
                last_report = Instant::now();
                eprintln!(
                    "  … {:.0} s: the sink has {} of {n}",
                    started.elapsed().as_secs_f64(),
                    self.sink.count()
                );
            }
        }
    }

    /// Stops the replicas, checks that all `n` messages stayed sent, and drops the store.
    async fn finish(
        self,
        running: Vec<Replica>,
        n: usize,
        elapsed: Duration,
        enqueue_elapsed: Duration,
    ) -> anyhow::Result<EndToEndRun> {
        let breakdown = stop_all(running, self.sink.count()).await?;
        let counts = self.observer.count_by_state().await?;
        if count_of(&counts, MessageState::Sent) != n as i64 {
            bail!("after the stop: {counts:?}");
        }
        drop(self.observer);
        drop(self.sink);
        discard(self.db);
        Ok(EndToEndRun {
            per_second: per_second(n, elapsed),
            elapsed,
            enqueue_per_second: per_second(n, enqueue_elapsed),
            breakdown,
        })
    }
}

async fn end_to_end(backend: Backend, replicas: usize, n: usize) -> anyhow::Result<EndToEndRun> {
    let (rig, producer) = Rig::new(backend).await?;
    let running = rig.start_replicas(replicas).await?;
    // Let every replica reach its idle wait, as a running deployment would be.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let producing = tokio::spawn(async move { producer.enqueue_all(n).await });
    let elapsed = rig.wait_until_sent(n, started).await?;
    let enqueue_elapsed = producing.await.context("the producer panicked")??;
    rig.finish(running, n, elapsed, enqueue_elapsed).await
}

/// The diagnostic split of [`end_to_end`]: the producer enqueues everything while no
/// dispatcher runs, then the replicas start and drain the queue.
async fn drain(backend: Backend, replicas: usize, n: usize) -> anyhow::Result<EndToEndRun> {
    let (rig, producer) = Rig::new(backend).await?;
    let enqueue_elapsed = producer.enqueue_all(n).await?;
    drop(producer);
    let started = Instant::now();
    let running = rig.start_replicas(replicas).await?;
    let elapsed = rig.wait_until_sent(n, started).await?;
    rig.finish(running, n, elapsed, enqueue_elapsed).await
}

/// Stops every replica cleanly and sums their metrics.
async fn stop_all(running: Vec<Replica>, delivered: u64) -> anyhow::Result<Breakdown> {
    let mut breakdown = Breakdown {
        leased: 0.0,
        flushes: 0.0,
        flush_seconds: 0.0,
        send_seconds: 0.0,
        sends: 0.0,
        delivered,
    };
    for replica in running {
        let text = replica.stop().await?;
        breakdown.leased += metric_total(&text, "herald_leased_total");
        breakdown.flushes += metric_total(&text, "herald_store_flush_seconds_count");
        breakdown.flush_seconds += metric_total(&text, "herald_store_flush_seconds_sum");
        breakdown.sends += metric_total(&text, "herald_send_seconds_count");
        breakdown.send_seconds += metric_total(&text, "herald_send_seconds_sum");
    }
    Ok(breakdown)
}

// -------------------------------------------------------------------------------------------
// The raw ceiling: plain SQL on the same schema
// -------------------------------------------------------------------------------------------

/// Where a raw-ceiling run's time went.
#[derive(Default)]
struct RawTimings {
    /// From the first INSERT to the last mark-sent.
    total: Duration,
    insert: Duration,
    /// Each lease statement (and its transaction), in order.
    leases: Vec<Duration>,
    mark_sent: Duration,
}

impl std::fmt::Display for RawTimings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenth = (self.leases.len() / 10).max(1);
        let mean_ms = |leases: &[Duration]| {
            1000.0 * leases.iter().map(Duration::as_secs_f64).sum::<f64>()
                / leases.len().max(1) as f64
        };
        write!(
            f,
            "insert {:.2} s, lease {:.2} s ({} calls; {:.2} ms each in the first tenth, {:.2} ms in the last), mark-sent {:.2} s",
            self.insert.as_secs_f64(),
            self.leases.iter().sum::<Duration>().as_secs_f64(),
            self.leases.len(),
            mean_ms(&self.leases[..tenth.min(self.leases.len())]),
            mean_ms(&self.leases[self.leases.len().saturating_sub(tenth)..]),
            self.mark_sent.as_secs_f64()
        )
    }
}

/// Inserts, leases and marks sent `n` messages with plain SQL on one connection.
async fn raw_ceiling(backend: Backend, n: usize) -> anyhow::Result<RawTimings> {
    let db = backend.fresh_db();
    let (store, template) = migrated_store(&db.url).await?;
    drop(store);
    let notifications = Config::default().notifications;
    let binds = RawBinds {
        template_id: template.id,
        payload: serde_json::to_string(&payload(&template))?,
        reason: herald::queue::leased_reason(Uuid::now_v7()),
        lease_period: notifications.lease_period,
        lease_count: notifications.lease_count,
    };
    // One connection with the store's own settings (on PostgreSQL: custom plans, so
    // statistics gathered on the still-empty table cannot pin the lease to a sequential scan).
    let timings = match backend {
        Backend::Sqlite => {
            let options = store::sqlite_connect_options(&db.url)?;
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            drive(Raw { pool, binds }, n).await?
        }
        Backend::Postgres => {
            let pool = store::postgres_pool_options()
                .max_connections(1)
                .connect(&db.url)
                .await?;
            drive(Raw { pool, binds }, n).await?
        }
    };
    discard(db);
    Ok(timings)
}

/// What the raw-ceiling statements bind besides ids and times, on either backend.
struct RawBinds {
    template_id: Uuid,
    /// The bench event's payload, as JSON text.
    payload: String,
    /// The `status_reason` a lease writes.
    reason: String,
    lease_period: Duration,
    lease_count: u32,
}

const INSERT_COLUMNS: &str = "INSERT INTO notification_messages (id, notification_template_id, \
     user_id, target, method, status, status_reason, created_by, payload, attempt_count, \
     created_at, updated_at, dedupe_hash) ";

/// The SQLite store's timestamp text (fixed-width UTC).
fn sqlite_ts(at: chrono::DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One backend's raw-ceiling statements, each as its store runs it.
trait RawQueue {
    /// What a lease returns, and the type of its `id` column.
    type Row: Row;
    type Id: for<'r> sqlx::Decode<'r, <Self::Row as Row>::Database>
        + sqlx::Type<<Self::Row as Row>::Database>;
    /// Inserts `count` pending messages in one statement.
    async fn insert(&mut self, count: usize) -> anyhow::Result<()>;
    /// Leases one batch as the store's `lease_batch` does (an empty batch: nothing left).
    async fn lease(&mut self) -> anyhow::Result<Vec<Self::Row>>;
    /// Marks the leased `ids` sent.
    async fn mark_sent(&mut self, ids: &[Self::Id]) -> anyhow::Result<()>;
}

/// One connection to the bench's store, with the store's own settings.
struct Raw<DB: sqlx::Database> {
    pool: sqlx::Pool<DB>,
    binds: RawBinds,
}

/// Inserts `n` messages in batches, leasing and marking sent what each batch made leasable,
/// and times each kind of statement.
async fn drive<DB: sqlx::Database>(mut queue: Raw<DB>, n: usize) -> anyhow::Result<RawTimings>
where
    Raw<DB>: RawQueue<Row = DB::Row>,
    for<'c> &'c str: sqlx::ColumnIndex<DB::Row>,
{
    let mut timings = RawTimings::default();
    let started = Instant::now();
    let (mut inserted, mut sent) = (0, 0);
    while sent < n {
        let count = BATCH.min(n - inserted);
        if count > 0 {
            let clock = Instant::now();
            queue.insert(count).await?;
            inserted += count;
            timings.insert += clock.elapsed();
        }
        loop {
            let clock = Instant::now();
            let rows = queue.lease().await?;
            timings.leases.push(clock.elapsed());
            if rows.is_empty() {
                break;
            }
            let ids = rows
                .iter()
                .map(|row| row.try_get::<<Raw<DB> as RawQueue>::Id, _>("id"))
                .collect::<Result<Vec<_>, _>>()?;
            let clock = Instant::now();
            queue.mark_sent(&ids).await?;
            timings.mark_sent += clock.elapsed();
            sent += ids.len();
        }
    }
    timings.total = started.elapsed();
    queue.pool.close().await;
    Ok(timings)
}

/// The raw ceiling's statements on SQLite: ids and times as text.
impl RawQueue for Raw<Sqlite> {
    type Row = sqlx::sqlite::SqliteRow;
    type Id = String;

    async fn insert(&mut self, count: usize) -> anyhow::Result<()> {
        let now = sqlite_ts(Utc::now());
        let template = self.binds.template_id.to_string();
        let mut insert = QueryBuilder::<Sqlite>::new(INSERT_COLUMNS);
        insert.push_values(0..count, |mut row, _| {
            row.push_bind(Uuid::now_v7().to_string())
                .push_bind(template.as_str())
                .push("NULL, NULL, 'webhook', 'pending', NULL, 'bench'")
                .push_bind(self.binds.payload.as_str())
                .push("0")
                .push_bind(now.clone())
                .push_bind(now.clone())
                .push("NULL");
        });
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert.build().execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lease(&mut self) -> anyhow::Result<Vec<Self::Row>> {
        let now = Utc::now();
        let now_text = sqlite_ts(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // The SQLite store's lease_batch, verbatim.
        let rows = sqlx::query(
            "UPDATE notification_messages SET status = 'leased', leased_until = ?1,
                 status_reason = ?2, updated_at = ?3,
                 queued_seconds = (julianday(?3) - julianday(updated_at)) * 86400.0
             WHERE id IN (
                 SELECT id FROM notification_messages
                 WHERE status IN ('pending', 'temporary_failure', 'leased')
                   AND attempt_count < ?4
                   AND (status = 'pending'
                        OR (status = 'temporary_failure' AND next_retry_after <= ?3)
                        OR (status = 'leased' AND leased_until < ?3))
                 ORDER BY id LIMIT ?5)
             RETURNING id, notification_template_id, user_id, target, method, payload,
                 attempt_count, created_at, queued_seconds",
        )
        .bind(sqlite_ts(
            now + chrono::Duration::from_std(self.binds.lease_period)?,
        ))
        .bind(&self.binds.reason)
        .bind(&now_text)
        .bind(5_i64)
        .bind(i64::from(self.binds.lease_count))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    async fn mark_sent(&mut self, ids: &[String]) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notification_messages SET status = 'sent', status_reason = NULL,
                 attempt_count = attempt_count + 1, leased_until = NULL, updated_at = ?2
             WHERE id IN (SELECT value FROM json_each(?1)) AND status = 'leased'",
        )
        .bind(serde_json::to_string(ids)?)
        .bind(sqlite_ts(Utc::now()))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The raw ceiling's statements on PostgreSQL: native UUIDs, times and JSONB.
impl RawQueue for Raw<Postgres> {
    type Row = sqlx::postgres::PgRow;
    type Id = Uuid;

    async fn insert(&mut self, count: usize) -> anyhow::Result<()> {
        let now = Utc::now();
        let mut insert = QueryBuilder::<Postgres>::new(INSERT_COLUMNS);
        insert.push_values(0..count, |mut row, _| {
            row.push_bind(Uuid::now_v7())
                .push_bind(self.binds.template_id)
                .push("NULL, NULL, 'webhook', 'pending', NULL, 'bench'")
                .push_bind(self.binds.payload.as_str())
                .push_unseparated("::jsonb")
                .push("0")
                .push_bind(now)
                .push_bind(now)
                .push("NULL");
        });
        insert.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn lease(&mut self) -> anyhow::Result<Vec<Self::Row>> {
        // The PostgreSQL store's lease_batch, verbatim.
        let rows = sqlx::query(
            "WITH leasable AS (
                 SELECT id FROM notification_messages
                 WHERE status IN ('pending', 'temporary_failure', 'leased')
                   AND attempt_count < $3
                   AND (status = 'pending'
                        OR (status = 'temporary_failure' AND next_retry_after <= now())
                        OR (status = 'leased' AND leased_until < now()))
                 ORDER BY id LIMIT $4
                 FOR UPDATE SKIP LOCKED)
             UPDATE notification_messages m SET status = 'leased',
                 leased_until = now() + $1 * interval '1 millisecond', status_reason = $2,
                 updated_at = now(),
                 queued_seconds = EXTRACT(EPOCH FROM now() - m.updated_at)::double precision
             FROM leasable WHERE m.id = leasable.id
             RETURNING m.id, m.notification_template_id, m.user_id, m.target, m.method,
                 m.payload::text AS payload, m.attempt_count, m.created_at, m.queued_seconds",
        )
        .bind(self.binds.lease_period.as_millis() as f64)
        .bind(&self.binds.reason)
        .bind(5_i32)
        .bind(i64::from(self.binds.lease_count))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn mark_sent(&mut self, ids: &[Uuid]) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE notification_messages SET status = 'sent', status_reason = NULL,
                 attempt_count = attempt_count + 1, leased_until = NULL, updated_at = now()
             WHERE id = ANY($1) AND status = 'leased'",
        )
        .bind(ids)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

// -------------------------------------------------------------------------------------------
// Latency at light load
// -------------------------------------------------------------------------------------------

/// Who enqueues in the latency scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProducerKind {
    /// Its own store handle, like `herald enqueue` in another process: the dispatcher learns
    /// of the message through `LISTEN/NOTIFY` or SQLite's `PRAGMA data_version` check.
    OtherProcess,
    /// The dispatcher's own store handle, like an enqueue made by the console or service in
    /// the same process: the in-process signal wakes it.
    SameProcess,
}

impl ProducerKind {
    fn label(self) -> &'static str {
        match self {
            ProducerKind::OtherProcess => "other process",
            ProducerKind::SameProcess => "same process",
        }
    }
}

struct LatencyRun {
    backend: Backend,
    producer: ProducerKind,
    samples: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    enqueue_p50: Duration,
}

async fn latency_run(
    backend: Backend,
    n: usize,
    producer_kind: ProducerKind,
) -> anyhow::Result<LatencyRun> {
    let db = backend.fresh_db();
    let (observer, template) = migrated_store(&db.url).await?;
    let receipts: Arc<Mutex<HashMap<Uuid, Instant>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(n)));
    let sink = {
        let receipts = receipts.clone();
        HttpSink::start(move |request, _| {
            let at = Instant::now();
            if let Some(id) = request
                .header("x-message-id")
                .and_then(|v| Uuid::parse_str(v).ok())
            {
                lock(&receipts).entry(id).or_insert(at);
            }
            Response::ok()
        })
        .await
    };
    sink.set_recording(false);
    let config = default_config(&db.url, &sink.url);
    if config.notifications.fetch_interval != Duration::from_secs(15) {
        bail!(
            "the default fetch_interval is {:?}; this scenario is defined at 15s",
            config.notifications.fetch_interval
        );
    }
    let replica = Replica::start(&config).await?;
    let producer = Producer {
        store: match producer_kind {
            ProducerKind::OtherProcess => store::open(&db.url, OpenMode::Existing).await?,
            ProducerKind::SameProcess => replica.store.clone(),
        },
        template_id: template.id,
        payload: payload(&template),
    };
    // Let the dispatcher go idle: from here on only a wake-up (not the 15 s poll) is fast.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut enqueued = Vec::with_capacity(n);
    let mut ticker = tokio::time::interval(LATENCY_GAP);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for _ in 0..n {
        ticker.tick().await;
        let message = producer.message();
        let id = message.id;
        let at = Instant::now();
        producer
            .store
            .enqueue(std::slice::from_ref(&message))
            .await?;
        enqueued.push((id, at, at.elapsed()));
    }
    if !sink.wait_for(n as u64, Duration::from_secs(30)).await {
        bail!("the sink got {} of {n} messages within 30 s", sink.count());
    }
    replica.stop().await?;
    drop(producer);
    drop(observer);

    let receipts = lock(&receipts).clone();
    let mut latencies = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    for (id, at, call) in &enqueued {
        let received = receipts
            .get(id)
            .with_context(|| format!("message {id} never reached the sink"))?;
        latencies.push(received.saturating_duration_since(*at));
        calls.push(*call);
    }
    latencies.sort();
    calls.sort();
    drop(sink);
    discard(db);
    Ok(LatencyRun {
        backend,
        producer: producer_kind,
        samples: n,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        max: latencies.last().copied().unwrap_or_default(),
        enqueue_p50: percentile(&calls, 0.50),
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

// -------------------------------------------------------------------------------------------
// Figures and the report
// -------------------------------------------------------------------------------------------

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// The median (mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => sorted[len / 2],
        len => (sorted[len / 2 - 1] + sorted[len / 2]) / 2.0,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

struct ThroughputRow {
    backend: Backend,
    replicas: usize,
    n: usize,
    runs: Vec<f64>,
    median: f64,
    enqueue_median: f64,
    raw_runs: Vec<f64>,
    raw_median: f64,
}

fn print_throughput_table(rows: &[ThroughputRow]) {
    let list = |values: &[f64]| {
        values
            .iter()
            .map(|v| thousands(*v))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "| scenario | backend | replicas | N | median msg/s | runs msg/s | raw msg/s (median; runs) | ratio | enqueue msg/s | target |"
    );
    println!("|---|---|---|---|---:|---|---|---:|---:|---|");
    for row in rows {
        let target = row.backend.target();
        let verdict = if row.median >= target {
            format!("≥ {} met", thousands(target))
        } else {
            format!(
                "≥ {} **missed** by {:.0}%",
                thousands(target),
                100.0 * (1.0 - row.median / target)
            )
        };
        println!(
            "| end to end | {} | {} | {} | {} | {} | {} ({}) | {:.2} | {} | {} |",
            row.backend.name(),
            row.replicas,
            thousands(row.n as f64),
            thousands(row.median),
            list(&row.runs),
            thousands(row.raw_median),
            list(&row.raw_runs),
            row.median / row.raw_median,
            thousands(row.enqueue_median),
            verdict
        );
    }
    println!();
}

fn print_latency_table(rows: &[LatencyRun]) {
    println!(
        "| scenario | backend | replicas | producer | messages | p50 | p99 | max | enqueue call p50 | target p50 < 10 ms, p99 < 100 ms |"
    );
    println!("|---|---|---|---|---:|---:|---:|---:|---:|---|");
    for row in rows {
        let p50_ok = row.p50 < Duration::from_millis(10);
        let p99_ok = row.p99 < Duration::from_millis(100);
        let verdict = match (p50_ok, p99_ok) {
            (true, true) => "met".to_string(),
            (false, true) => "p50 **missed**".to_string(),
            (true, false) => "p99 **missed**".to_string(),
            (false, false) => "p50 and p99 **missed**".to_string(),
        };
        println!(
            "| latency, one message / {} ms, fetch_interval 15s | {} | 1 | {} | {} | {} | {} | {} | {} | {} |",
            LATENCY_GAP.as_millis(),
            row.backend.name(),
            row.producer.label(),
            row.samples,
            ms(row.p50),
            ms(row.p99),
            ms(row.max),
            ms(row.enqueue_p50),
            verdict
        );
    }
    println!();
}

fn print_drain_table(rows: &[(Backend, usize, EndToEndRun)], n: usize) {
    println!(
        "Diagnostic (`drain`): the producer alone (no dispatcher running), then the dispatchers alone on a full queue.\n"
    );
    println!(
        "| backend | replicas | N | enqueue alone msg/s | dispatchers alone msg/s | flushes | mean flush |"
    );
    println!("|---|---|---|---:|---:|---:|---:|");
    for (backend, replicas, run) in rows {
        let b = &run.breakdown;
        println!(
            "| {} | {replicas} | {} | {} | {} | {:.0} | {:.1} ms |",
            backend.name(),
            thousands(n as f64),
            thousands(run.enqueue_per_second),
            thousands(run.per_second),
            b.flushes,
            1000.0 * b.flush_seconds / b.flushes.max(1.0)
        );
    }
    println!();
}

/// What the figures were measured on.
struct Machine {
    lines: Vec<(String, String)>,
}

impl Machine {
    async fn probe(backends: &[Backend]) -> anyhow::Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let rustc = std::process::Command::new(std::env::var("RUSTC").unwrap_or("rustc".into()))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e})"));
        let kernel = read_trimmed("/proc/sys/kernel/osrelease");

        let mut sqlite = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
        let sqlite_version: String = sqlx::query_scalar("select sqlite_version()")
            .fetch_one(&mut sqlite)
            .await?;
        let postgres_version = if backends.contains(&Backend::Postgres) {
            // Also starts the throwaway cluster now, outside every timed section.
            let db = Backend::Postgres.fresh_db();
            let version = tokio::task::block_in_place(|| {
                common::harness::psql(&db.url, "select version()")
                    .map_err(|e| anyhow::anyhow!("asking PostgreSQL its version: {e}"))
            })?;
            discard(db);
            format!(
                "{version} ({})",
                if std::env::var(common::harness::EXTERNAL_URL_VAR)
                    .is_ok_and(|v| !v.trim().is_empty())
                {
                    "server from HERALD_TEST_DATABASE_URL"
                } else {
                    "throwaway cluster from tests/it/common: fsync = off, synchronous_commit = off, \
                     full_page_writes = off, otherwise defaults"
                }
            )
        } else {
            "not run".into()
        };
        Ok(Machine {
            lines: vec![
                ("nproc".into(), nproc().to_string()),
                ("CPU".into(), cpu),
                ("memory".into(), memory),
                ("kernel".into(), kernel),
                ("rustc".into(), rustc),
                ("PostgreSQL".into(), postgres_version),
                (
                    "SQLite".into(),
                    format!(
                        "{sqlite_version} (bundled with sqlx; WAL, synchronous = NORMAL, file in {})",
                        std::env::temp_dir().display()
                    ),
                ),
                (
                    "load average at start".into(),
                    read_trimmed("/proc/loadavg"),
                ),
            ],
        })
    }

    fn print(&self) {
        for (name, value) in &self.lines {
            println!("- {name}: {value}");
        }
    }
}
